"""Visual question answering (VQAv2-style): the official VQA accuracy, overall and per answer type."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.vqa.config import VQAConfig

METRICS = {
    "vqa_accuracy": (True, ("official VQA accuracy, 0-1 (the official script prints x100): mean over the 10 "
                            "leave-one-annotator-out subsets of min(1, matches / 3), after its answer normalisation")),
    "vqa_accuracy_<type>": (True, "the same over questions of one answer type (yes/no, number, other) when known"),
    "judge_accuracy": (True, "opt-in (judge:): the share of judged answers a served judge model calls correct; "
                             "agreement with the rule-based score (VQA accuracy > 0) in extra.judge"),
}

TASK = TaskSpec(
    name="vqa",
    summary="visual question answering (VQAv2-style): official VQA accuracy, overall and per answer type",
    needs="answerer",
    config=VQAConfig,
    formats=("vqav2", "hf_vqa", "shapes_vqa"),
    reads="VQA questions",
    metrics=METRICS,
    run="mmeval.tasks.vqa.run:run",
    load_data="mmeval.tasks.vqa.run:load_data",
    headline=first_present(("vqa_accuracy",)),
    paired="mmeval.tasks.vqa.samples:paired_values",
    answers="short",
    perturbs=("text", "image"),
)
