"""Per-sample values of audio captioning, for paired tests: the per-clip score of every metric that is a mean of
per-clip scores (CIDEr-D, ROUGE_L, SPICE, SPIDEr), matched by clip_id. BLEU and METEOR are corpus statistics."""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, judge_values, no_test, rows_of, single

_PER_CLIP = ("CIDEr", "ROUGE_L", "SPICE", "SPIDEr")


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "captions"), rows_of(b, "captions")
    judged = judge_values(metric, ra, rb, lambda r: r.get("clip_id")) if ra is not None and rb is not None else None
    if judged is not None:
        return judged
    if metric not in _PER_CLIP:
        return no_test(f"{metric} is a corpus statistic, not a mean of per-clip scores")
    if ra is None or rb is None or not all(metric in r for r in ra[:1] + rb[:1]):
        return no_test(f"no per-clip {metric}")
    return single(ra, rb, lambda r: r.get("clip_id"), lambda r: float(r[metric]))
