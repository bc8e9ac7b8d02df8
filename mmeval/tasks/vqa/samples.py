"""Per-sample values of question answering, for paired tests (compare, gate), matched by question_id.

VQA: per-question accuracy (per answer type: that type's questions); multiple choice: correct, unparseable.
"""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, image_id, judge_values, no_test, question_id, rows_of, single


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    ra, rb = rows_of(a, "answers"), rows_of(b, "answers")
    if ra is None or rb is None:
        return no_test("no per-question rows")
    if metric == "vqa_accuracy":
        return single(ra, rb, question_id, lambda r: r.get("accuracy"), cluster=image_id)
    if metric.startswith("vqa_accuracy_"):
        kind = metric.removeprefix("vqa_accuracy_")
        return single(ra, rb, question_id, lambda r: r.get("accuracy"), keep=lambda r: r.get("answer_type") == kind,
                      cluster=image_id)
    if metric == "mc_accuracy":
        return single(ra, rb, question_id, lambda r: float(bool(r.get("correct"))), cluster=image_id)
    if metric == "unparseable_rate":
        return single(ra, rb, question_id, lambda r: float(r.get("choice") is None), cluster=image_id)
    judged = judge_values(metric, ra, rb, question_id, cluster=image_id)
    return judged if judged is not None else no_test("no per-sample values for this metric")
