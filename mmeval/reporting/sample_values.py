"""Per-sample values of a headline metric in two runs, matched by sample id, for the paired test.

Each task says how its metrics decompose into per-sample values in its own `samples.py` (`TaskSpec.paired`);
this module holds what they share: matching rows of two runs by id and the `PairedValues` they return.
Only ids present in both runs are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mmeval.metrics.stats.paired import Statistic



@dataclass
class PairedValues:
    """What the paired test needs for one metric, or why there is nothing to test (`reason`)."""

    strata: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    statistic: Statistic = "mean"
    n_a: int = 0  # samples with a value in each run, before matching
    n_b: int = 0
    reason: str | None = None  # no test possible: why
    note: str | None = None  # a caveat on the test
    clusters: list[np.ndarray] | None = None  # per stratum, the cluster of each sample (paired tests draw clusters)
    unit: str = "rows"  # what the paired test resamples: "rows", or the clusters' name ("images", "videos", ...)

    @property
    def n(self) -> int:
        return sum(len(a) for a, _ in self.strata)

    def statistic_of(self, side: int) -> float:
        """The metric recomputed from the matched per-sample values of run A (0) or B (1)."""
        values = [pair[side] for pair in self.strata]
        if self.statistic == "median":
            return float(np.median(values[0]))
        return float(sum(v.mean() for v in values))


def no_test(reason: str) -> PairedValues:
    return PairedValues(reason=reason)


def matched(rows_a: list[dict], rows_b: list[dict], key: Callable[[dict], Any], value: Callable[[dict], Any],
             keep: Callable[[dict], bool] = lambda _: True) -> tuple[list[Any], np.ndarray, np.ndarray, int, int]:
    """Ids in both runs (A's order) with a finite value in both, and those values."""
    def table(rows: list[dict]) -> dict[Any, float]:
        out = {}
        for row in rows:
            if keep(row):
                v = value(row)
                if v is not None and math.isfinite(float(v)):
                    out[key(row)] = float(v)
        return out

    a, b = table(rows_a), table(rows_b)
    ids = [k for k in a if k in b]
    return ids, np.array([a[k] for k in ids]), np.array([b[k] for k in ids]), len(a), len(b)


def single(rows_a, rows_b, key, value, keep=lambda _: True, statistic: Statistic = "mean",
           cluster: Callable[[dict], Any] | None = None) -> PairedValues:
    """Matched values of one stratum; with `cluster` (e.g. `image_id`), each sample's cluster from run A's rows
    (named by the cluster key's `unit`, e.g. "images"; a median's test stays per row)."""
    ids, a, b, n_a, n_b = matched(rows_a, rows_b, key, value, keep)
    if not len(a):
        return PairedValues(n_a=n_a, n_b=n_b, reason="no sample id in both runs")
    clusters = None
    if cluster is not None:
        of = {key(row): cluster(row) for row in rows_a}
        labels = [of[i] for i in ids]
        clusters = None if any(label is None for label in labels) else [np.array(labels, dtype=object)]
    unit = getattr(cluster, "unit", "clusters") if clusters is not None and statistic == "mean" else "rows"
    return PairedValues([(a, b)], statistic, n_a, n_b, clusters=clusters, unit=unit)


@dataclass(frozen=True)
class ClusterKey:
    """The independent unit of a task's rows as a cluster function for `single`: the row's `field` (e.g.
    "video_id"), and the unit's name that compare and power print (e.g. "videos")."""

    field: str
    unit: str

    def __call__(self, row: dict) -> Any:
        return row.get(self.field)


image_id = ClusterKey("image_id", "images")
video_id = ClusterKey("video_id", "videos")


def question_id(row: dict) -> Any:
    return row.get("question_id")


JUDGE_METRICS = ("judge_accuracy", "judge_score")


def judge_values(metric: str, rows_a: list[dict], rows_b: list[dict], key: Callable[[dict], Any],
                 cluster: Callable[[dict], Any] | None = None) -> PairedValues | None:
    """An opt-in judge's metric (the mean of its verdicts) as paired values: each row's `judge` (yes / no as 1 / 0,
    or the 1-5 score) over the rows judged in both runs; None for any other metric."""
    if metric not in JUDGE_METRICS:
        return None
    return single(rows_a, rows_b, key, lambda r: float(r["judge"]), keep=lambda r: r.get("judge") is not None,
                  cluster=cluster)


def rows_of(samples: dict[str, list] | None, kind: str) -> list[dict] | None:
    rows = (samples or {}).get(kind)
    return rows if isinstance(rows, list) else None


def paired_values(task: str, metric: str, samples_a: dict | None, samples_b: dict | None,
                  metric_names: list[str]) -> PairedValues:
    """Matched per-sample values of `metric` in two runs of one benchmark (`samples_*`: {kind: rows}), from the
    task's own `paired` function (mmeval.tasks.spec.TaskSpec)."""
    if samples_a is None or samples_b is None:
        return no_test("no per-sample output")
    from mmeval.registry import find_task

    spec = find_task(task)
    paired = spec.load("paired") if spec is not None else None
    if paired is None:
        return no_test(f"no paired test for task {task}")
    return paired(metric, samples_a, samples_b, metric_names)
