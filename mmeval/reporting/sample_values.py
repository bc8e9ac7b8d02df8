"""Per-sample values of a headline metric in two runs, matched by sample id, for the paired test.

Samples are matched by id: retrieval t2i by (text_index, image_id) and i2t by image_id; captions by image_id;
VQA and multiple choice by question_id; classification by image_id. Only ids present in both runs are used.

Per-sample value of each metric (the metric is then a mean, a sum of means, or a median of these):

- retrieval: R@k = hit (rank <= k); mean / median rank = rank; rsum = the sum over both directions of each
  query's hits at every k (two strata: t2i and i2t, each averaged over its own queries).
- captioning: the per-image CIDEr, ROUGE_L, METEOR, SPICE, CLIPScore values. Corpus CIDEr and ROUGE_L are the
  mean of these, exactly. Corpus METEOR is not (it aggregates matches over the corpus), so its test is on the
  mean per-image METEOR, and the comparison says so. BLEU is corpus-level (n-gram counts summed over images
  before the geometric mean) and the per-sample rows hold only sentence BLEU, so BLEU gets no p-value.
- VQA: per-question accuracy (per answer type: that type's questions); multiple choice: correct, unparseable.
- classification: top1 = prediction is the label, top5 = label rank <= 5, mean per-class recall = a mean of
  per-class means (one stratum per class, each weighted 1 / classes). Macro F1, ECE and mAP are not sums of
  per-sample terms: no p-value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mmeval.metrics.stats.paired import Statistic

_RECALL = re.compile(r"(t2i|i2t)_R@(\d+)")
_RANK = re.compile(r"(t2i|i2t)_(mean|median)_rank")


@dataclass
class PairedValues:
    """What the paired test needs for one metric, or why there is nothing to test (`reason`)."""

    strata: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    statistic: Statistic = "mean"
    n_a: int = 0  # samples with a value in each run, before matching
    n_b: int = 0
    reason: str | None = None  # no test possible: why
    note: str | None = None  # a caveat on the test

    @property
    def n(self) -> int:
        return sum(len(a) for a, _ in self.strata)

    def statistic_of(self, side: int) -> float:
        """The metric recomputed from the matched per-sample values of run A (0) or B (1)."""
        values = [pair[side] for pair in self.strata]
        if self.statistic == "median":
            return float(np.median(values[0]))
        return float(sum(v.mean() for v in values))


def _none(reason: str) -> PairedValues:
    return PairedValues(reason=reason)


def _matched(rows_a: list[dict], rows_b: list[dict], key: Callable[[dict], Any], value: Callable[[dict], Any],
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


def _single(rows_a, rows_b, key, value, keep=lambda _: True, statistic: Statistic = "mean") -> PairedValues:
    _, a, b, n_a, n_b = _matched(rows_a, rows_b, key, value, keep)
    if not len(a):
        return PairedValues(n_a=n_a, n_b=n_b, reason="no sample id in both runs")
    return PairedValues([(a, b)], statistic, n_a, n_b)


def _image_id(row: dict) -> Any:
    return row.get("image_id")


def _question_id(row: dict) -> Any:
    return row.get("question_id")


def _rows(samples: dict[str, list] | None, kind: str) -> list[dict] | None:
    rows = (samples or {}).get(kind)
    return rows if isinstance(rows, list) else None


def _retrieval(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    keys = {"t2i": lambda r: (r.get("text_index"), r.get("image_id")), "i2t": _image_id}
    if metric == "rsum":
        ks = {d: [int(m.group(2)) for n in names if (m := _RECALL.fullmatch(n)) and m.group(1) == d]
              for d in ("t2i", "i2t")}
        out = PairedValues()
        for direction, k_list in ks.items():
            ra, rb = _rows(a, direction), _rows(b, direction)
            if ra is None or rb is None:
                return _none(f"no per-sample {direction} ranks")
            part = _single(ra, rb, keys[direction], lambda r, k_list=k_list: sum(r["rank"] <= k for k in k_list))
            if part.reason:
                return part
            out.strata += part.strata
            out.n_a, out.n_b = out.n_a + part.n_a, out.n_b + part.n_b
        return out
    match = _RECALL.fullmatch(metric) or _RANK.fullmatch(metric)
    if not match:
        return _none("no per-sample values for this metric")
    direction = match.group(1)
    ra, rb = _rows(a, direction), _rows(b, direction)
    if ra is None or rb is None:
        return _none(f"no per-sample {direction} ranks")
    if metric.endswith("_rank"):
        stat: Statistic = "median" if match.group(2) == "median" else "mean"
        return _single(ra, rb, keys[direction], lambda r: r["rank"], statistic=stat)
    k = int(match.group(2))
    return _single(ra, rb, keys[direction], lambda r: float(r["rank"] <= k))


def _captioning(metric: str, a: dict, b: dict) -> PairedValues:
    if metric.startswith("Bleu"):
        return _none("BLEU is corpus-level; the per-image rows hold no n-gram counts")
    ra, rb = _rows(a, "captions"), _rows(b, "captions")
    if ra is None or rb is None:
        return _none("no per-image caption scores")
    if not any(metric in row for row in ra):
        return _none(f"no per-image {metric} values")
    out = _single(ra, rb, _image_id, lambda r: r.get(metric))
    if metric == "METEOR" and not out.reason:
        out.note = "tested on the mean per-image METEOR (corpus METEOR is not a per-image mean)"
    return out


def _vqa(metric: str, a: dict, b: dict) -> PairedValues:
    ra, rb = _rows(a, "answers"), _rows(b, "answers")
    if ra is None or rb is None:
        return _none("no per-question rows")
    if metric == "vqa_accuracy":
        return _single(ra, rb, _question_id, lambda r: r.get("accuracy"))
    if metric.startswith("vqa_accuracy_"):
        kind = metric.removeprefix("vqa_accuracy_")
        return _single(ra, rb, _question_id, lambda r: r.get("accuracy"), keep=lambda r: r.get("answer_type") == kind)
    if metric == "mc_accuracy":
        return _single(ra, rb, _question_id, lambda r: float(bool(r.get("correct"))))
    if metric == "unparseable_rate":
        return _single(ra, rb, _question_id, lambda r: float(r.get("choice") is None))
    return _none("no per-sample values for this metric")


def _classification(metric: str, a: dict, b: dict) -> PairedValues:
    ra, rb = _rows(a, "predictions"), _rows(b, "predictions")
    if ra is None or rb is None or not all("label" in row for row in ra[:1] + rb[:1]):
        return _none("no single-label per-image predictions")
    if metric == "top1":
        return _single(ra, rb, _image_id, lambda r: float(r["prediction"] == r["label"]))
    if metric == "top5":
        return _single(ra, rb, _image_id, lambda r: float(r["rank"] <= 5))
    if metric != "mean_per_class_recall":
        return _none(f"{metric} is not a sum of per-sample terms")
    ids, va, vb, n_a, n_b = _matched(ra, rb, _image_id, lambda r: float(r["prediction"] == r["label"]))
    if not ids:
        return PairedValues(n_a=n_a, n_b=n_b, reason="no sample id in both runs")
    label_of = {r["image_id"]: r["label"] for r in ra}
    labels = np.array([label_of[i] for i in ids], dtype=object)
    classes = list(dict.fromkeys(labels))
    strata = [(va[labels == c] / len(classes), vb[labels == c] / len(classes)) for c in classes]
    return PairedValues(strata, "mean", n_a, n_b)


def paired_values(task: str, metric: str, samples_a: dict | None, samples_b: dict | None,
                  metric_names: list[str]) -> PairedValues:
    """Matched per-sample values of `metric` in two runs of one benchmark (`samples_*`: {kind: rows})."""
    if samples_a is None or samples_b is None:
        return _none("no per-sample output")
    if task == "retrieval":
        return _retrieval(metric, samples_a, samples_b, metric_names)
    if task == "coco_captions":
        return _captioning(metric, samples_a, samples_b)
    if task in ("vqa", "multiple_choice"):
        return _vqa(metric, samples_a, samples_b)
    if task == "zeroshot_classification":
        return _classification(metric, samples_a, samples_b)
    return _none(f"no paired test for task {task}")
