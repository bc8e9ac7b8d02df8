"""Multiple-choice questions about images: accuracy of the option letter read from the answer."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.vqa.config import QuestionsConfig

METRICS = {
    "mc_accuracy": (True, "fraction of questions whose extracted letter is the correct one (unparseable = wrong)"),
    "unparseable_rate": (False, "fraction of answers from which no option letter could be read"),
}

TASK = TaskSpec(
    name="multiple_choice",
    summary="multiple-choice questions about images: accuracy of the option letter read from the answer",
    needs="answerer",
    config=QuestionsConfig,
    formats=("mc", "hf_mc"),
    reads="multiple-choice questions",
    metrics=METRICS,
    run="mmeval.tasks.multiple_choice.run:run",
    load_data="mmeval.tasks.vqa.run:load_data",
    headline=first_present(("mc_accuracy",)),
    paired="mmeval.tasks.vqa.samples:paired_values",
    answers="letter",
    perturbs=("text", "image"),
)
