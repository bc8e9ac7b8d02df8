"""Percentile bootstrap confidence intervals, every resample of every metric computed at once.

Method. The evaluated items (images, queries or questions) are resampled with replacement `n` times, each
resample as large as the data. A resample is held as counts: row r of an (n, n_items) matrix says how often
each item was drawn in resample r (a multinomial(n_items, 1/n_items) draw, made by bincount of uniform
draws). Headline metrics are functions of per-item statistics summed over items (corpus BLEU's clipped
matches and lengths, hits at k, per-image CIDEr, per-class hit counts, METEOR's alignment statistics), so
the sums of all resamples are one matrix product `counts @ stats`, and the metric's own formula then runs
on those sums, row by row: each replicate is the metric *recomputed* on the resampled data (corpus BLEU of
the resampled corpus, not a mean of per-image BLEU). Metrics that are not sums (median rank, average
precision) are computed from the counts after sorting the items once (`weighted_median`, `GroupSums`).
The 95% interval is the 2.5th and 97.5th percentile of the replicates (numpy's linear interpolation);
replicates where a metric is undefined (e.g. no question of one answer type was drawn) are left out.

Clustered resampling (the default, `bootstrap.unit: cluster`). Items that share an image are not
independent: the five captions of a COCO image, the several questions about one VQA image. Resampling them
one by one treats them as independent and gives intervals that are too narrow (tests/test_cluster_bootstrap.py
measures the coverage of both). A task that knows the clusters passes them (`Clusters`): each resample then
draws the clusters (images) with replacement and every item comes with its cluster, so an item's count is
its cluster's count; the groups of one benchmark (retrieval's text and image queries) share one draw of
images. A resample's size in items then varies, so means divide by the drawn total (`mean`), not by
n_items. `bootstrap.unit: row` keeps the per-item resampling. The report's block says which was used.

Resamples depend only on the seed, `n` and the number of items, so the same data gives the same intervals,
and two models scored on the same data see the same resamples. Independent sets of items (retrieval's text
and image queries) get independent streams (`SeedSequence.spawn`) drawn within the same replicate, so rsum
adds both directions of one replicate.

Why not scipy.stats.bootstrap: it resamples by gathering (n, n_items, k) copies of the data and calls the
statistic per call with its own resamples; sharing one set of resamples across all metrics of a benchmark
and both retrieval directions, and summing through one matrix product, needs the counts themselves.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

LEVEL = 0.95
METHOD = "percentile"
# Counts drawn per chunk of replicates (elements of the count matrices): bounds memory whatever the data size.
CHUNK_ELEMENTS = 4_000_000

# statistic(*counts) -> {metric: (b,) replicate values}; counts[g] is the (b, n_items_g) count matrix of group g
Statistic = Callable[..., dict[str, np.ndarray]]


def resample_counts(rng: np.random.Generator, n_items: int, n_rows: int) -> np.ndarray:
    """(n_rows, n_items) float counts: how often each item is drawn in each of n_rows resamples of n_items."""
    if n_items == 0:
        return np.zeros((n_rows, 0))
    draws = rng.integers(0, n_items, size=(n_rows, n_items))
    draws += (np.arange(n_rows) * n_items)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rows * n_items).reshape(n_rows, n_items).astype(np.float64)


@dataclass(frozen=True)
class Clusters:
    """The independent unit of a benchmark's items: `of_items[g][i]` is the cluster (0..n - 1, e.g. the image)
    of item i of group g; every group indexes the same n clusters. `name` says what a cluster is."""

    n: int
    of_items: tuple[np.ndarray, ...]
    name: str = "images"

    @classmethod
    def from_labels(cls, *labels: Sequence[Any], name: str = "images") -> Clusters:
        """Clusters from any hashable labels per item (e.g. image ids), numbered in order of first appearance."""
        index: dict[Any, int] = {}
        codes = tuple(np.array([index.setdefault(x, len(index)) for x in group], dtype=np.int64) for group in labels)
        return cls(len(index), codes, name)

    @classmethod
    def of_gallery(cls, owner: Sequence[int], has_caption: np.ndarray, name: str = "images") -> Clusters:
        """Retrieval's clusters: a gallery item (image, video, clip) with its captions; groups (text queries,
        gallery queries of the items that have a caption), as retrieval tasks hand them to `add_intervals`."""
        captioned = np.flatnonzero(has_caption)
        return cls(len(captioned), (np.searchsorted(captioned, owner), np.arange(len(captioned))), name)


def replicates(sizes: Sequence[int], statistic: Statistic, n_resamples: int, seed: int,
               clusters: Clusters | None = None) -> dict[str, np.ndarray]:
    """Every metric of `statistic` on n_resamples resamples of each group of items (sizes: items per group);
    with `clusters`, each resample draws the clusters and carries their items (module docstring)."""
    if clusters is not None:
        return _clustered_replicates(statistic, n_resamples, seed, clusters)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(sizes))]
    rows = max(1, min(n_resamples, CHUNK_ELEMENTS // max(1, sum(sizes))))  # depends on the sizes only
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    # One BLAS thread: the products here are small, and on a busy CPU OpenBLAS's spinning threads made a
    # (1000 x 500) @ (500,) product 100x slower (25 ms instead of 0.2 ms, 2 cores shared with other jobs).
    with threadpool_limits(1, user_api="blas"), np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, n_resamples, rows):
            counts = [resample_counts(rng, size, min(rows, n_resamples - start)) for rng, size in zip(streams, sizes)]
            for name, values in statistic(*counts).items():
                parts[name].append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _clustered_replicates(statistic: Statistic, n_resamples: int, seed: int,
                          clusters: Clusters) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_resamples, CHUNK_ELEMENTS // max(1, clusters.n + sum(map(len, clusters.of_items)))))
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    with threadpool_limits(1, user_api="blas"), np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, n_resamples, rows):
            drawn = resample_counts(rng, clusters.n, min(rows, n_resamples - start))
            for name, values in statistic(*[drawn[:, codes] for codes in clusters.of_items]).items():
                parts[name].append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """[lo, hi]: the (1 - level) / 2 and (1 + level) / 2 quantiles of the defined replicates; None if none is."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


def add_intervals(metrics: dict[str, dict[str, Any]], sizes: Sequence[int], statistic: Statistic, settings,
                  unit: str, clusters: Clusters | None = None) -> dict[str, Any] | None:
    """Put `ci95: [lo, hi]` beside the value of every metric the statistic resamples; return the report's
    `bootstrap` block (None when settings.n is 0). `unit` says what the items are; `clusters`, when the task
    knows them, are resampled instead unless `settings.unit` is "row" (the block's `resampled` says which)."""
    if not settings.n:
        return None
    started = time.perf_counter()
    use = clusters if getattr(settings, "unit", "cluster") == "cluster" else None
    values = replicates(sizes, statistic, settings.n, settings.seed, use)
    if use is not None:
        unit = f"{use.name}, each with all of its items ({unit})"
    for name, entry in metrics.items():
        interval = percentile_interval(values[name]) if name in values else None
        value = entry.get("value")
        if interval is not None and value is not None and np.isfinite(value):
            entry["ci95"] = interval
    return {"n": settings.n, "seed": settings.seed, "method": METHOD, "level": LEVEL, "unit": unit,
            "resampled": "clusters" if use is not None else "rows", "seconds": time.perf_counter() - started}


def mean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(b, ...) mean of per-item values (n_items, ...) over each resample (divided by the drawn total, which
    varies when clusters are resampled)."""
    total = counts.sum(axis=1)
    return counts @ values / (total[:, None] if np.ndim(values) > 1 else total)


def masked_mean(counts: np.ndarray, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean over each resample of the items in `mask` (default: items with a finite value); NaN if none drawn."""
    mask = np.isfinite(values) if mask is None else mask
    return (counts @ np.where(mask, values, 0.0)) / (counts @ mask.astype(np.float64))


def weighted_median(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(b,) numpy median of each resample (the mean of the two middle values when the size is even)."""
    if len(values) == 0:
        return np.full(counts.shape[0], np.nan)
    n = counts.sum(axis=1).round().astype(np.int64)[:, None]  # the resample's size (varies with clusters)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    distinct = ordered[starts]
    cumulative = np.cumsum(np.add.reduceat(counts[:, order], starts, axis=1), axis=1)
    # the value at 0-based position p of a sorted resample: the first distinct value whose cumulative count > p
    low = distinct[(cumulative <= (n - 1) // 2).sum(axis=1)]
    high = distinct[(cumulative <= n // 2).sum(axis=1)]
    return (low + high) / 2


class GroupSums:
    """Per-group sums of per-item values over each resample, e.g. hits per class: (b, n_groups).

    The items are sorted by group once; a sum is then a gather and `np.add.reduceat` (no dense one-hot
    matrix, which for 1,000 classes x 50,000 images would not fit).
    """

    def __init__(self, groups: np.ndarray, n_groups: int):
        groups = np.asarray(groups, dtype=np.int64)
        self.order = np.argsort(groups, kind="stable")
        ordered = groups[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(groups) else ordered
        self.present = ordered[self.starts]
        self.n_groups = n_groups

    def sorted_counts(self, counts: np.ndarray) -> np.ndarray:
        """The count matrix with its columns in group order (reuse it across several sums)."""
        return counts[:, self.order]

    def sums(self, sorted_counts: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """(b, n_groups) sums of `values` (default 1: item counts) per group; groups without items are 0."""
        out = np.zeros((sorted_counts.shape[0], self.n_groups))
        if len(self.starts):
            weighted = sorted_counts if values is None else sorted_counts * np.asarray(values)[self.order]
            out[:, self.present] = np.add.reduceat(weighted, self.starts, axis=1)
        return out
