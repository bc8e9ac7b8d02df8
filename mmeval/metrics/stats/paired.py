"""Paired significance of a metric difference between two runs on the same samples: p-value and 95% CI.

The two runs' per-sample values are matched by sample id. A metric is a sum of means over strata (one stratum
for a plain mean such as recall@1 or VQA accuracy; the two directions for rsum; the classes for mean
per-class recall), or a median (median rank, one stratum).

p-value: a paired **sign-flip permutation test** (approximate randomisation; Noreen 1989). Under the null the
two runs are exchangeable on every sample, so each sample's pair of values may be swapped; the p-value is
the share of random swap patterns whose difference is at least as extreme as the observed one, counted with
the +1 of Phipson & Smyth (2010), so it is never 0 and the test keeps its level. It needs no distributional
assumption, is valid at any sample size, and for 0/1 outcomes (recall@k hits, correct answers) it is the
exact McNemar test up to Monte-Carlo error (tested against scipy's binomial test). We prefer it to a
bootstrap p-value, which is only asymptotically valid and rejects too often at small n (Riezler & Maxwell
2005 found approximate randomisation the safer of the two for paired system comparisons).

Power: with m samples whose two values differ, the most extreme outcome (every one of them moved the same
way) has exact one-sided p = 1 / 2^m for a mean, so a test over 9 images of which 4 differ can never go
below 1/16, whatever the drop. `smallest_p_value` gives that floor, so callers can say when a test could
not have reached its alpha instead of passing a drop silently.

CI: a permutation distribution is centred on zero and says nothing about the size of the difference, so the
95% interval of the difference comes from a **paired percentile bootstrap**: sample ids are resampled with
replacement (within each stratum) and both runs keep their values for the drawn ids.

Clusters: when samples share an image (the five captions of a COCO image, the questions about one VQA image),
their differences are correlated, and flipping or resampling them one by one understates the variance. With
`clusters` (an image id per sample), a mean's test flips the sign of each image's summed difference and the
bootstrap draws images, so every sample of an image moves together (`resampled: "clusters"` in the result).
The median's test stays per sample.

Written with numpy rather than `scipy.stats.permutation_test` / `bootstrap`, which took 3 s for 2,000
resamples of 5,000 queries here (a general permutation loop). For a mean, the swapped difference is a sum of
randomly signed differences: when they take few distinct values (0/1 hits, ranks, VQA accuracy) it is drawn
exactly from binomial counts per value, and a bootstrap resample from multinomial counts per value; otherwise
(CIDEr per image) it is a matrix product of random signs, or a gather of resampled ids. Both are seeded
(numpy's PCG64), so a comparison is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Statistic = Literal["mean", "median"]
_CHUNK_CELLS = 4_000_000  # resamples x samples per chunk: ~32 MB of float64, whatever n is
_FEW_VALUES = 64  # at most this many distinct values (0/1 hits, ranks, VQA's 0 / 0.3 / ... / 1): count, not draw


@dataclass(frozen=True)
class PairedResult:
    """B - A on the matched samples: the difference, its 95% CI and p-values of the sign-flip test."""

    n: int  # matched samples (over all strata)
    delta: float  # statistic(B) - statistic(A)
    ci95: tuple[float, float]  # paired percentile bootstrap
    p_value: float  # two-sided: P(|T*| >= |T|)
    p_less: float  # one-sided, alternative B < A: P(T* <= T)
    p_greater: float  # one-sided, alternative B > A: P(T* >= T)
    n_resamples: int
    seed: int
    n_differing: int  # matched samples whose two values differ: the only ones that carry evidence
    min_p_one_sided: float  # the smallest one-sided p the test could give on these samples (smallest_p_value)
    min_p_two_sided: float
    resampled: str = "rows"  # or "clusters": the samples of one image flipped / drawn together

    def cannot_reach(self, alpha: float, two_sided: bool = False) -> bool:
        """Whether no outcome on these samples could give p < alpha: the test cannot reject here."""
        return (self.min_p_two_sided if two_sided else self.min_p_one_sided) >= alpha

    def as_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


def paired_test(strata: list[tuple[np.ndarray, np.ndarray]], statistic: Statistic = "mean",
                n_resamples: int = 10_000, seed: int = 0, clusters: list[np.ndarray] | None = None) -> PairedResult:
    """Compare run B with run A on matched samples.

    `strata`: one (a, b) pair of equal-length float arrays per stratum, row i of a and b being the same
    sample. "mean": the metric is the sum over strata of the mean of the stratum's values (scale values
    beforehand for weights, e.g. 1 / n_classes per class). "median": one stratum, the metric is its median.
    `clusters`: per stratum, a cluster label (e.g. the image id) per sample; a mean's samples of one cluster
    are then flipped and drawn together (module docstring).
    """
    strata = _checked(strata, statistic, n_resamples)
    rng = np.random.default_rng(seed)
    n, differing = sum(len(a) for a, _ in strata), _n_differing(strata)
    resampled = "rows"
    if statistic == "mean":
        delta = float(sum(b.mean() - a.mean() for a, b in strata))
        if clusters is not None:
            strata, resampled = _by_cluster(strata, clusters), "clusters"
        null = _flip_means(strata, n_resamples, rng)
        boot = _bootstrap_means(strata, n_resamples, rng)
        floors = _mean_floors(strata, n_resamples)
    else:
        a, b = strata[0]
        delta = float(np.median(b) - np.median(a))
        null = _flip_medians(a, b, n_resamples, rng)
        boot = _bootstrap_medians(a, b, n_resamples, rng)
        floors = _median_floors(a, b, null)
    p_two, p_less, p_greater = _p_values(null, delta)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return PairedResult(n, delta, (float(lo), float(hi)), p_two, p_less, p_greater, n_resamples, seed, differing,
                        *floors, resampled)


def _by_cluster(strata, clusters: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One stratum of per-cluster summed weighted differences, shaped so that the mean's helpers (which take
    mean(b - a) per stratum) see sum over clusters = the metric difference: a = 0, b = n_clusters x sum."""
    labels = np.concatenate([np.asarray(c, dtype=object) for c in clusters])
    weighted = np.concatenate([(b - a) / len(a) for a, b in strata])
    if labels.shape != weighted.shape:
        raise ValueError("clusters need one label per sample of every stratum")
    index: dict = {}
    codes = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    sums = np.bincount(codes, weights=weighted)
    return [(np.zeros_like(sums), sums * len(sums))]


def smallest_p_value(strata: list[tuple[np.ndarray, np.ndarray]], statistic: Statistic = "mean",
                     n_resamples: int = 10_000, seed: int = 0, two_sided: bool = False) -> float:
    """The smallest p-value `paired_test` could return on these samples, whichever values B had.

    It is the p of the most extreme outcome: every differing sample moved the same way (B takes the smaller
    value of each pair). Mean: exactly 1 / 2^m one-sided and 2 / 2^m two-sided for m non-zero differences
    (only that one sign pattern, or it and its mirror, is as extreme; capped at 1). Median: many patterns
    can share the extreme median, so it is counted on the test's own null distribution (same seed, same
    draws). Never below 1 / (n_resamples + 1), the Monte-Carlo test's own resolution.
    """
    strata = _checked(strata, statistic, n_resamples)
    if statistic == "mean":
        floors = _mean_floors(strata, n_resamples)
    else:
        a, b = strata[0]
        floors = _median_floors(a, b, _flip_medians(a, b, n_resamples, np.random.default_rng(seed)))
    return floors[1] if two_sided else floors[0]


def _checked(strata, statistic: Statistic, n_resamples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    strata = [(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for a, b in strata if len(a)]
    if any(a.shape != b.shape or a.ndim != 1 for a, b in strata):
        raise ValueError("each stratum needs two 1-d arrays of the same length")
    if not strata:
        raise ValueError("no matched samples")
    if statistic == "median" and len(strata) != 1:
        raise ValueError("the median statistic takes one stratum")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    return strata


def _p_values(null: np.ndarray, delta: float) -> tuple[float, float, float]:
    """Two-sided, B < A and B > A p-values of `delta` on the null draws, with the +1 of Phipson & Smyth."""
    # Resampled sums can differ from the observed one by rounding only; count those as ties (as extreme).
    tol = 1e-9 * max(1.0, abs(delta))
    total = null.size + 1
    return (float((np.count_nonzero(np.abs(null) >= abs(delta) - tol) + 1) / total),
            float((np.count_nonzero(null <= delta + tol) + 1) / total),
            float((np.count_nonzero(null >= delta - tol) + 1) / total))


def _n_differing(strata) -> int:
    return int(sum(np.count_nonzero(a != b) for a, b in strata))


def _mean_floors(strata, n_resamples: int) -> tuple[float, float]:
    """(one-sided, two-sided) p of the most extreme outcome of the mean's sign-flip test."""
    m = int(np.count_nonzero(np.concatenate([(b - a) / len(a) for a, b in strata])))
    resolution = 1 / (n_resamples + 1)
    return max(0.5**m, resolution), max(min(1.0, 2 * 0.5**m), resolution)


def _median_floors(a: np.ndarray, b: np.ndarray, null: np.ndarray) -> tuple[float, float]:
    """(one-sided, two-sided) p of the most extreme median difference, counted on the null draws."""
    extreme = float(np.median(np.minimum(a, b)) - np.median(np.maximum(a, b)))  # <= 0: B took every smaller value
    p_two, p_less, _ = _p_values(null, extreme)  # the null is symmetric: B > A has the same floor
    return p_less, p_two


def _chunks(total: int, width: int):
    step = max(1, _CHUNK_CELLS // max(1, width))
    for start in range(0, total, step):
        yield min(step, total - start)


def _flip_means(strata, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Sum over strata of mean(s_i * d_i) for random signs s: only non-zero differences matter."""
    weighted = np.concatenate([(b - a) / len(a) for a, b in strata])
    weighted = weighted[weighted != 0]
    if weighted.size == 0:
        return np.zeros(n_resamples)
    # s_i * d_i with a random sign s_i has the law of s_i * |d_i|: per distinct |d|, (2 * Binomial(m, 1/2) - m) |d|
    values, counts = np.unique(np.abs(weighted), return_counts=True)
    if values.size <= _FEW_VALUES:
        return sum(v * (2.0 * rng.binomial(m, 0.5, size=n_resamples) - m) for v, m in zip(values, counts, strict=True))
    out = []
    for size in _chunks(n_resamples, weighted.size):
        signs = rng.integers(0, 2, size=(size, weighted.size), dtype=np.int8).astype(np.float64) * 2.0 - 1.0
        out.append(signs @ weighted)
    return np.concatenate(out)


def _bootstrap_means(strata, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Sum over strata of the mean difference on ids resampled with replacement within each stratum."""
    if all(np.unique(b - a).size <= _FEW_VALUES for a, b in strata):
        # n draws with replacement from few distinct values: multinomial counts of each value, the same law
        total = np.zeros(n_resamples)
        for a, b in strata:
            values, counts = np.unique(b - a, return_counts=True)
            total += rng.multinomial(len(a), counts / len(a), size=n_resamples) @ values / len(a)
        return total
    weighted = np.concatenate([(b - a) / len(a) for a, b in strata])
    sizes = np.array([len(a) for a, _ in strata])
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)  # each position's stratum start and size
    widths = np.repeat(sizes, sizes)
    out = []
    for size in _chunks(n_resamples, weighted.size):
        draws = starts + (rng.random((size, weighted.size)) * widths).astype(np.int64)
        out.append(weighted[draws].sum(axis=1))
    return np.concatenate(out)


def _flip_medians(a: np.ndarray, b: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for size in _chunks(n_resamples, a.size):
        swap = rng.integers(0, 2, size=(size, a.size), dtype=bool)
        out.append(np.median(np.where(swap, a, b), axis=1) - np.median(np.where(swap, b, a), axis=1))
    return np.concatenate(out)


def _bootstrap_medians(a: np.ndarray, b: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for size in _chunks(n_resamples, a.size):
        draws = rng.integers(0, a.size, size=(size, a.size))
        out.append(np.median(b[draws], axis=1) - np.median(a[draws], axis=1))
    return np.concatenate(out)


def significant_worsening(result: PairedResult, higher_is_better: bool, alpha: float) -> bool:
    """Whether B is worse than A at level alpha (one-sided: a gate only fails on drops)."""
    p = result.p_less if higher_is_better else result.p_greater
    return math.isfinite(p) and p < alpha
