"""Time the bootstrap confidence intervals of a 5,000-image captioning result (the issue's target: 1,000
resamples in under 3 s on 2 CPU cores).

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.):

    python scripts/bench_bootstrap.py [--images 5000] [--resamples 1000] [--repeats 5] [--no-meteor]
                                      [--idf-check 200]

The result is synthetic and seeded: a Zipf-distributed vocabulary of 3,000 words, 5 references per image of
8 to 16 words (COCO's are 10.5 on average) and a candidate of 8 to 12 words made from one of them with about a
third of its words replaced. It is scored once (BLEU-1..4, ROUGE_L, CIDEr-D, and METEOR when Java is found:
not timed); then the intervals of every metric are computed --repeats times, and the median is printed, with
the time of BLEU + CIDEr-D alone. --idf-check N also recomputes CIDEr-D's idf on N resamples (pycocoevalcap
run on each resample, a copy of an image counting as a document) and prints both 95% intervals, to show how
much the fixed-idf choice (mmeval/metrics/stats/bootstrap_metrics.py) leaves out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mmeval.metrics.caption.cider import cider_from_stats
from mmeval.metrics.caption.java_scorers import meteor_jar
from mmeval.metrics.caption.scores import score_tokenized
from mmeval.metrics.caption.tokenize import find_java
from mmeval.metrics.stats.bootstrap import percentile_interval, replicates, resample_counts
from mmeval.metrics.stats.bootstrap_metrics import caption_statistic


def synthetic_result(n_images: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Candidates (one per image) and 5 references per image, tokenized (lower case, single spaces)."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{k}" for k in range(3000)])
    weights = 1.0 / np.arange(1, 3001) ** 1.1
    weights /= weights.sum()

    def sentence(length: int) -> list[str]:
        return list(vocabulary[rng.choice(3000, size=length, p=weights)])

    references, candidates = [], []
    for _ in range(n_images):
        refs = [sentence(int(rng.integers(8, 17))) for _ in range(5)]
        words = list(refs[int(rng.integers(5))][: int(rng.integers(8, 13))])
        for position in np.flatnonzero(rng.random(len(words)) < 0.35):
            words[position] = sentence(1)[0]
        references.append([" ".join(r) for r in refs])
        candidates.append(" ".join(words))
    return candidates, references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-meteor", action="store_true", help="leave METEOR out (it needs Java)")
    parser.add_argument("--idf-check", type=int, default=0, metavar="N",
                        help="also compare CIDEr-D intervals with the idf recomputed on N resamples")
    args = parser.parse_args()

    candidates, references = synthetic_result(args.images)
    metrics = ["Bleu", "ROUGE_L", "CIDEr"]
    if not args.no_meteor and find_java() and meteor_jar():
        metrics.append("METEOR")
    started = time.perf_counter()
    scores = score_tokenized(list(range(args.images)), references, candidates, metrics=metrics)
    print(f"{args.images} images, 5 references each; scored {', '.join(metrics)} in "
          f"{time.perf_counter() - started:.1f} s (not part of the timing below)")

    def timed(statistic) -> tuple[float, dict[str, np.ndarray]]:
        times, values = [], {}
        for _ in range(args.repeats):
            started = time.perf_counter()
            values = replicates((args.images,), statistic, args.resamples, seed=0)
            times.append(time.perf_counter() - started)
        return statistics.median(times), values

    everything, values = timed(caption_statistic(scores))
    scores_bc = score_tokenized(list(range(args.images)), references, candidates, metrics=["Bleu", "CIDEr"])
    bleu_cider, _ = timed(caption_statistic(scores_bc))
    print(f"{args.resamples} resamples, median of {args.repeats} runs: all metrics {everything:.3f} s, "
          f"BLEU-1..4 + CIDEr-D {bleu_cider:.3f} s")
    for name, value in scores.scores.items():
        lo, hi = percentile_interval(values[name])
        print(f"  {name:8s} {value:.4f}  95% CI [{lo:.4f}, {hi:.4f}]")

    if args.idf_check:
        counts = resample_counts(np.random.default_rng(1), args.images, args.idf_check)
        started = time.perf_counter()
        recomputed = np.array([cider_from_stats(scores.cider, np.repeat(np.arange(args.images), row.astype(int)))
                               for row in counts])
        fixed = counts @ scores.cider.per_image / args.images
        print(f"CIDEr-D on {args.idf_check} resamples ({time.perf_counter() - started:.1f} s with the idf recomputed):")
        for label, reps in (("idf of the evaluated set (mmeval)", fixed), ("idf recomputed per resample", recomputed)):
            lo, hi = percentile_interval(reps)
            print(f"  {label:34s} 95% CI [{lo:.4f}, {hi:.4f}]  width {hi - lo:.4f}  mean {reps.mean():.4f}")


if __name__ == "__main__":
    main()
