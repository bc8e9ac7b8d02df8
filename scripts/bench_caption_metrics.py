"""Time our BLEU + ROUGE_L + CIDEr-D against pycocoevalcap 1.2's scorers on real COCO captions, same input.

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.) and pycocoevalcap installed:

    python scripts/bench_caption_metrics.py [--images 5000] [--repeats 3] [--data ../shared/data]

It takes the first --images images (by id) of captions_val2014_subset.json, predicts for each one caption of
another image (seeded), and tokenizes both sides with the Java PTB tokenizer, timed on its own against
pycocoevalcap's PTBTokenizer (the output must be identical; the Python fallback tokenizer is timed and compared
too). Then it times pycocoevalcap's Bleu(4) + Rouge() + Cider() and ours on the same tokenized input (median of
--repeats runs each), checks that every corpus and per-image value agrees to 1e-9, and
prints the speed-up.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from mmeval.metrics.caption.scores import score_tokenized
from mmeval.metrics.caption.tokenize import ptb_tokenize_batches, python_tokenize

TOLERANCE = 1e-9


def load_task(data: Path, n_images: int, seed: int) -> tuple[dict, dict]:
    """References {image_id: [captions]} of the first n images and a caption of another image for each."""
    ann = json.loads((data / "coco" / "captions_val2014_subset.json").read_text())
    refs: dict[int, list[str]] = {}
    for a in ann["annotations"]:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(refs)[:n_images]
    rng = random.Random(seed)
    preds = {}
    for i in ids:
        other = rng.choice(ids)
        while other == i:
            other = rng.choice(ids)
        preds[i] = rng.choice(refs[other])
    return {i: refs[i] for i in ids}, preds


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def pycocoevalcap_scores(gts: dict, res: dict) -> dict[str, tuple[float, np.ndarray]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f"Bleu_{k + 1}": (bleu[k], np.array(bleu_per[k])) for k in range(4)}
    out["ROUGE_L"] = Rouge().compute_score(gts, res)
    out["CIDEr"] = Cider().compute_score(gts, res)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()

    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs, preds = load_task(args.data, args.images, args.seed)
    ids = list(refs)
    n_refs = sum(len(r) for r in refs.values())
    print(f"{len(ids)} images, {n_refs} references, predictions drawn from other images (seed {args.seed})")

    batches = [refs, {i: [preds[i]] for i in ids}]
    t_ours, (gts, res1) = timed(lambda: ptb_tokenize_batches(batches), args.repeats)
    tokenizer = PTBTokenizer()

    def theirs_tokenize():
        return [tokenizer.tokenize({i: [{"caption": c} for c in batch[i]] for i in ids}) for batch in batches]

    t_theirs, (theirs_gts, theirs_res) = timed(theirs_tokenize, args.repeats)
    assert theirs_gts == gts and theirs_res == res1, "PTB tokenization differs from pycocoevalcap's"
    t_python, (py_gts, py_res) = timed(lambda: [python_tokenize(batch) for batch in batches], 1)
    pairs = [(a, b) for tok, ref in ((py_gts, gts), (py_res, res1)) for i in ids for a, b in zip(tok[i], ref[i])]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    print(f"tokenizer, both sides: Java PTB ours {t_ours:.3f} s (one JVM), pycocoevalcap {t_theirs:.3f} s (two JVMs),"
          f" identical output; Python fallback {t_python:.3f} s, {agreement:.4%} of captions identical to PTB")

    references = [gts[i] for i in ids]
    candidates = [res1[i][0] for i in ids]
    metrics = ("Bleu", "ROUGE_L", "CIDEr")
    t_theirs, theirs = timed(lambda: pycocoevalcap_scores(gts, res1), args.repeats)
    t_ours, ours = timed(lambda: score_tokenized(ids, references, candidates, metrics), args.repeats)

    worst = 0.0
    for name, (corpus, per_image) in theirs.items():
        per_image_diff = float(np.max(np.abs(ours.per_image[name] - per_image)))
        worst = max(worst, abs(ours.scores[name] - float(corpus)), per_image_diff)
        print(f"  {name:8s} ours {ours.scores[name]:.12f}  pycocoevalcap {float(corpus):.12f}")
    assert worst <= TOLERANCE, f"values differ by {worst:.3g} > {TOLERANCE}"
    print(f"largest difference over corpus and per-image values: {worst:.2e} (tolerance {TOLERANCE})")
    print(f"Bleu+ROUGE_L+CIDEr, median of {args.repeats}: pycocoevalcap {t_theirs:.3f} s, ours {t_ours:.3f} s, "
          f"speed-up {t_theirs / t_ours:.1f}x")


if __name__ == "__main__":
    main()
