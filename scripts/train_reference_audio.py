"""Train the shipped reference audio-text model (mmeval/assets/shapes-audio) on the shapes_audio train split.

Deterministic (seeded, single-threaded BLAS order fixed by --threads), a few CPU minutes:

    nice -n 10 python scripts/train_reference_audio.py --out mmeval/assets/shapes-audio

Prints held-out (val split) retrieval and zero-shot numbers beside chance and a trivial baseline: a least-squares
map from the clip's time-averaged log-mel spectrum (no temporal order, so no count or direction) to the trained
text embeddings of its captions.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from mmeval.data.shapes_audio import LABEL_COLUMNS, clip_files, scene_captions
from mmeval.metrics.audio_retrieval import audio_ranks, audio_retrieval_metrics
from mmeval.models.base import ModelInfo
from mmeval.models.reference_arch import SPECIAL_TOKENS
from mmeval.models.reference_audio import (
    ReferenceAudioCLAP,
    ReferenceAudioConfig,
    ReferenceAudioModel,
    frame_counts,
    save_reference_audio,
)

PROMPT = "the sound of {}."


def waveforms(split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Padded (n, N) float32 waveforms read back from the FLAC files, their lengths and the scenes."""
    _, scenes, paths = clip_files(split, n, seed)
    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(n, int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = torch.from_numpy(wave)
    return batch, lengths, scenes


def build_vocab(texts: list[str]) -> list[str]:
    words = sorted({w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())})
    return [*SPECIAL_TOKENS, *words]


def embed(model: ReferenceAudioModel, audio: torch.Tensor, lengths: torch.Tensor, texts: list[str]):
    with torch.inference_mode():
        a = torch.cat([model.encode_audio(audio[i : i + 128], lengths[i : i + 128]) for i in range(0, len(audio), 128)])
        t = torch.cat([model.encode_text(model.tokenize(texts[i : i + 256])) for i in range(0, len(texts), 256)])
    return F.normalize(a, dim=-1), F.normalize(t, dim=-1)


def evaluate(name: str, audio_emb: torch.Tensor, text_emb: torch.Tensor, owner: list[int], class_emb: torch.Tensor,
             labels: list[int]) -> None:  # fmt: skip
    ranks = audio_ranks(audio_emb, text_emb, owner)
    m = audio_retrieval_metrics(ranks, [1, 5, 10])
    top1 = float(((audio_emb @ class_emb.T).argmax(1).numpy() == np.array(labels)).mean())
    print(
        f"| {name} | {m['t2a_R@1']:.3f} | {m['t2a_R@10']:.3f} | {m['a2t_R@1']:.3f} | {m['t2a_mAP@10']:.3f} | {top1:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mmeval/assets/shapes-audio"))
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    started = time.perf_counter()
    audio, lengths, scenes = waveforms("train", args.n_train, 0)
    captions = [scene_captions(s) for s in scenes]
    extra = [PROMPT.format(c) for names in LABEL_COLUMNS.values() for c in names]
    config = ReferenceAudioConfig(vocab=build_vocab([c for cs in captions for c in cs] + extra))
    module = ReferenceAudioCLAP(config)
    model = ReferenceAudioModel(module, ["-"], ModelInfo("reference_audio", "training", None, None, 0))
    with torch.inference_mode():  # the front end has no parameters: computed once
        mels = torch.cat([module.audio.log_mel(audio[i : i + 256]) for i in range(0, len(audio), 256)])
    frames = frame_counts(lengths, config.n_fft, config.hop)
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((args.n_train + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps, pct_start=0.1)
    print(
        f"data {time.perf_counter() - started:.1f}s; vocab {len(config.vocab)}; "
        f"{sum(p.numel() for p in module.parameters())} parameters; {steps} steps"
    )
    module.train()
    for epoch in range(args.epochs):
        order = torch.randperm(args.n_train).tolist()
        total = 0.0
        for start in range(0, args.n_train, args.batch):
            rows = order[start : start + args.batch]
            texts = [rng.choice(captions[i]) for i in rows]
            width = int(frames[rows].max())
            a = F.normalize(module.audio.from_log_mel(mels[rows, :, :width], frames[rows]), dim=-1)
            t = F.normalize(module.encode_text(model.tokenize(texts)), dim=-1)
            logits = module.logit_scale.exp().clamp(max=100) * a @ t.T
            # captions of identical-sounding clips are not negatives of each other: mask exact duplicates
            same = torch.tensor([[texts[i] == texts[j] and i != j for j in range(len(rows))] for i in range(len(rows))])
            logits = logits.masked_fill(same, -1e4)
            target = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        print(f"epoch {epoch + 1}: loss {total / args.n_train:.3f} ({time.perf_counter() - started:.0f}s)")
    module.eval()

    bank = sorted({c for cs in captions[:600] for c in cs})
    save_reference_audio(module, args.out, bank)
    print(f"saved {args.out} ({sum(p.stat().st_size for p in args.out.iterdir()) / 1e6:.2f} MB)")

    val_audio, val_lengths, val_scenes = waveforms("val", args.n_val, 0)
    val_caps = [scene_captions(s) for s in val_scenes]
    texts = [c for cs in val_caps for c in cs]
    owner = [i for i, cs in enumerate(val_caps) for _ in cs]
    classes = list(LABEL_COLUMNS["sound"])
    labels = [classes.index(s.sound) for s in val_scenes]
    a_emb, t_emb = embed(model, val_audio, val_lengths, texts)
    _, c_emb = embed(model, val_audio[:1], val_lengths[:1], [PROMPT.format(c) for c in classes])
    n = len(val_scenes)
    harmonic = sum(1 / r for r in range(1, 11))
    majority = max(np.bincount(labels)) / n
    print(f"\nheld-out shapes_audio val, {n} clips, {len(texts)} captions\n")
    print(
        "| model | t2a R@1 | t2a R@10 | a2t R@1 | t2a mAP@10 | zero-shot top-1 (8 sounds) |\n| --- | --- | --- | --- | --- | --- |"
    )
    print(
        f"| chance | {1 / n:.3f} | {10 / n:.3f} | {5 / len(texts):.3f} | {harmonic / n:.3f} | {majority:.3f} (majority class) |"
    )
    # trivial baseline: time-averaged log-mel -> caption embedding by least squares (fit on the train split)
    with torch.inference_mode():

        def mean_spectrum(x: torch.Tensor, n_len: torch.Tensor) -> torch.Tensor:
            rows = []
            for i in range(0, len(x), 128):
                mel = module.audio.log_mel(x[i : i + 128])
                frames = (n_len[i : i + 128] - config.n_fft) // config.hop + 1
                mask = (torch.arange(mel.shape[-1])[None] < frames[:, None]).float()[:, None]
                rows.append(torch.cat([(mel * mask).sum(-1) / mask.sum(-1), torch.ones(len(mel), 1)], 1))
            return torch.cat(rows)

        train_texts = [c for cs in captions for c in cs]
        _, train_t = embed(model, audio[:1], lengths[:1], train_texts)
        train_owner = torch.tensor([i for i, cs in enumerate(captions) for _ in cs])
        w = torch.linalg.lstsq(mean_spectrum(audio, lengths)[train_owner], train_t).solution
        base = F.normalize(mean_spectrum(val_audio, val_lengths) @ w, dim=-1)
    evaluate("mean spectrum -> text (least squares)", base, t_emb, owner, c_emb, labels)
    evaluate("reference_audio (shipped)", a_emb, t_emb, owner, c_emb, labels)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
