"""Per-sample values of video QA, for paired tests (compare, gate), matched by question_id: each answer's
correctness (exact match or the right option); per-type metrics use that type's questions only. The questions
about one video are not independent: they flip and are drawn together (by video, as the report's intervals)."""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, judge_values, no_test, rows_of, single, video_id


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "answers"), rows_of(b, "answers")
    if ra is None or rb is None:
        return no_test("no per-question answers")
    key = lambda r: r.get("question_id")
    if metric in ("exact_match", "mc_accuracy"):
        return single(ra, rb, key, lambda r: float(r["correct"]), cluster=video_id)
    if metric.startswith("exact_match_"):
        kind = metric.removeprefix("exact_match_")
        return single([r for r in ra if r.get("type") == kind], [r for r in rb if r.get("type") == kind], key,
                      lambda r: float(r["correct"]), cluster=video_id)
    if metric == "unparseable_rate":
        return single(ra, rb, key, lambda r: float(r.get("choice") is None), cluster=video_id)
    judged = judge_values(metric, ra, rb, key, cluster=video_id)
    return judged if judged is not None else no_test("no per-sample values for this metric")
