"""Video question answering: open-ended exact match after VQA normalisation (per question type); multiple choice."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.video_qa.config import VideoQAConfig

METRICS = {
    "exact_match": (True, ("open: fraction of answers equal to an accepted answer after the VQA normalisation "
                           "(punctuation, lower case, number words to digits, articles, contractions)")),
    "exact_match_<type>": (True, "open: exact_match over the questions of one type"),
    "mc_accuracy": (True, "choice: fraction of questions whose chosen option (letter or option text) is right"),
    "unparseable_rate": (False, "choice: fraction of answers from which no option could be read"),
    "judge_accuracy": (True, "open, opt-in (judge:): the share of judged answers a served judge model calls "
                             "correct; agreement with exact_match (accuracy, Cohen's kappa) in extra.judge"),
}

TASK = TaskSpec(
    name="video_qa",
    summary="video QA: open-ended exact match after VQA normalisation, per question type; multiple choice",
    needs="video_answerer",
    config=VideoQAConfig,
    formats=("video_manifest", "frame_folders", "hf_video", "shapes_video"),
    reads="video questions",
    metrics=METRICS,
    run="mmeval.tasks.video_qa.run:run",
    load_data="mmeval.tasks.video_qa.run:load_data",
    headline=first_present(("exact_match", "mc_accuracy")),
    paired="mmeval.tasks.video_qa.samples:paired_values",
    answers="short",
    perturbs=("video", "text"),  # robustness: video cells perturb the sampled frames, text cells the questions
)
