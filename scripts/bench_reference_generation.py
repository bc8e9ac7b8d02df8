"""Captioning throughput of the reference model: images/s at several batch sizes, greedy and beam search.

Captions `--images` held-out shapes "test" scenes (preprocessed once, outside the timer) at each batch size,
`--repeats` times, and prints the median images/s and its ratio to batch size 1. It also checks that every
batch size produced the same captions (batch independence), and times greedy decoding without the decoder's
key-value cache (the whole prefix recomputed each step) to show what the cache buys:

    python scripts/bench_reference_generation.py            # the shipped checkpoint, 2 threads
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mmeval.data.shapes import load_shapes
from mmeval.models.base import GenerationSettings
from mmeval.models.reference import DEMO_CHECKPOINT, ReferenceModel, load_folder
from mmeval.models.reference_arch import BOS, EOS, PAD, UNK


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 128])
    p.add_argument("--beams", type=int, nargs="+", default=[1, 3])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def caption_all(
    model: ReferenceModel, pixels: torch.Tensor, batch_size: int, settings: GenerationSettings
) -> list[str]:
    return [c for batch in pixels.split(batch_size) for c in model.generate(batch, settings)]


@torch.inference_mode()
def greedy_without_cache(model: ReferenceModel, pixels: torch.Tensor, batch_size: int) -> list[str]:
    """Greedy decoding that re-runs the decoder over the whole prefix at every step (no key-value cache)."""
    return [c for batch in pixels.split(batch_size) for c in _greedy_without_cache(model, batch, 30)]


def _greedy_without_cache(model: ReferenceModel, pixels: torch.Tensor, max_new_tokens: int) -> list[str]:
    image_tokens = model.module.visual.tokens(pixels)
    tokens = torch.full((pixels.shape[0], 1), BOS, dtype=torch.long)
    finished = torch.zeros(pixels.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model.module.caption_logits(image_tokens, tokens)[:, -1]
        logits[:, [PAD, UNK, BOS]] = -torch.inf
        token = logits.argmax(dim=-1).masked_fill(finished, EOS)
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        finished |= token == EOS
        if finished.all():
            break
    return [" ".join(model.config.vocab[t] for t in row[1:] if t != EOS) for row in tokens.tolist()]


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = load_folder(args.checkpoint)
    data = load_shapes("test", n_images=args.images, seed=0, image_size=model.config.image_size)
    pixels = torch.stack([model.image_transform(data.images.load(i)[1]) for i in range(args.images)])
    model.generate(pixels[:8], GenerationSettings())  # warm-up
    print(f"{args.images} held-out scenes, {args.threads} threads, median of {args.repeats} repeats")
    print(
        f"{'decoding':<10}{'batch':>6}{'images/s':>10}{'vs batch 1':>12}  same captions as batch {args.batch_sizes[0]}"
    )
    for beams in args.beams:
        settings = GenerationSettings(num_beams=beams)
        base_rate, base_captions = None, None
        for batch_size in args.batch_sizes:
            runs = [timed(caption_all, model, pixels, batch_size, settings) for _ in range(args.repeats)]
            rate = args.images / statistics.median(t for t, _ in runs)
            captions = runs[0][1]
            base_rate = base_rate or rate
            base_captions = base_captions or captions
            name = "greedy" if beams == 1 else f"beam {beams}"
            print(f"{name:<10}{batch_size:>6}{rate:>10.1f}{rate / base_rate:>11.1f}x  {captions == base_captions}")
    batch = max(args.batch_sizes)
    with_cache = [timed(caption_all, model, pixels, batch, GenerationSettings())[0] for _ in range(args.repeats)]
    no_cache = [timed(greedy_without_cache, model, pixels, batch) for _ in range(args.repeats)]
    same = no_cache[0][1] == caption_all(model, pixels, batch, GenerationSettings())
    print(
        f"greedy at batch {batch}: {args.images / statistics.median(with_cache):.1f} images/s with the key-value "
        f"cache, {args.images / statistics.median(t for t, _ in no_cache):.1f} without (same captions: {same})"
    )


if __name__ == "__main__":
    main()
