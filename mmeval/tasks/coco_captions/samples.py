"""Per-sample values of the caption metrics, for paired tests (compare, gate), matched by image_id.

The per-image CIDEr, ROUGE_L, METEOR, SPICE, CLIPScore values: corpus CIDEr and ROUGE_L are the mean of these,
exactly. Corpus METEOR is not (it aggregates matches over the corpus), so its test is on the mean per-image METEOR,
and the comparison says so. BLEU is corpus-level (n-gram counts summed over images before the geometric mean) and
the per-sample rows hold only sentence BLEU, so BLEU gets no p-value.
"""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, image_id, judge_values, no_test, rows_of, single


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    if metric.startswith("Bleu"):
        return no_test("BLEU is corpus-level; the per-image rows hold no n-gram counts")
    ra, rb = rows_of(a, "captions"), rows_of(b, "captions")
    if ra is None or rb is None:
        return no_test("no per-image caption scores")
    judged = judge_values(metric, ra, rb, image_id)
    if judged is not None:
        return judged
    if not any(metric in row for row in ra):
        return no_test(f"no per-image {metric} values")
    out = single(ra, rb, image_id, lambda r: r.get(metric))
    if metric == "METEOR" and not out.reason:
        out.note = "tested on the mean per-image METEOR (corpus METEOR is not a per-image mean)"
    return out
