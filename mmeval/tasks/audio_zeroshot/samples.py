"""Per-sample values of audio zero-shot classification, for paired tests, matched by clip_id.

top1 = prediction is the label, top5 = label rank <= 5, mean per-class recall = one stratum per class, each
weighted 1 / classes. Macro F1 and ECE are not sums of per-sample terms: no p-value.
"""

from __future__ import annotations

import numpy as np

from mmeval.reporting.sample_values import PairedValues, matched, no_test, rows_of, single


def _clip(row: dict):
    return row.get("clip_id")


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "predictions"), rows_of(b, "predictions")
    if ra is None or rb is None:
        return no_test("no per-clip predictions")
    if metric == "top1":
        return single(ra, rb, _clip, lambda r: float(r["prediction"] == r["label"]))
    if metric == "top5":
        return single(ra, rb, _clip, lambda r: float(r["rank"] <= 5))
    if metric != "mean_per_class_recall":
        return no_test(f"{metric} is not a sum of per-sample terms")
    ids, va, vb, n_a, n_b = matched(ra, rb, _clip, lambda r: float(r["prediction"] == r["label"]))
    if not ids:
        return PairedValues(n_a=n_a, n_b=n_b, reason="no sample id in both runs")
    label_of = {r["clip_id"]: r["label"] for r in ra}
    labels = np.array([label_of[i] for i in ids], dtype=object)
    classes = list(dict.fromkeys(labels))
    strata = [(va[labels == c] / len(classes), vb[labels == c] / len(classes)) for c in classes]
    return PairedValues(strata, "mean", n_a, n_b)
