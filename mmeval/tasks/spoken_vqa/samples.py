"""Per-question values of spoken VQA for paired tests (matched by question_id): each accuracy is a mean of
per-question accuracies; speech_loss of their differences. WER is a ratio of corpus sums: no p-value."""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, no_test, question_id, rows_of, single

_VALUE = {"spoken_accuracy": lambda r: r["spoken_accuracy"], "text_accuracy": lambda r: r["text_accuracy"],
          "speech_loss": lambda r: r["text_accuracy"] - r["spoken_accuracy"]}  # fmt: skip


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    if metric not in _VALUE:
        return no_test(f"{metric} is not a mean of per-question values")
    ra, rb = rows_of(a, "questions"), rows_of(b, "questions")
    if ra is None or rb is None:
        return no_test("no per-question rows")
    return single(ra, rb, question_id, _VALUE[metric])
