"""Spoken questions about images (a voice assistant): recogniser -> vision-language answerer, scored end to end,
with the recogniser's WER and the accuracy on the same questions given as text (the loss due to speech)."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.spoken_vqa.config import SpokenVQAConfig

METRICS = {
    "spoken_accuracy": (True, "VQA accuracy of the answers to the recognised (transcribed) questions, end to end"),
    "text_accuracy": (True, "VQA accuracy of the same model on the same questions given as their reference text"),
    "speech_loss": (False, "text_accuracy - spoken_accuracy: the accuracy lost to speech recognition"),
    "question_wer": (False, "the recogniser's corpus word error rate on the questions (normalised, jiwer alignment)"),
}

TASK = TaskSpec(
    name="spoken_vqa",
    summary="spoken questions about images: recogniser -> answerer accuracy, the questions' WER, loss vs text",
    needs="answerer",
    config=SpokenVQAConfig,
    formats=("spoken_shapes",),
    reads="spoken questions about images",
    metrics=METRICS,
    run="mmeval.tasks.spoken_vqa.run:run",
    load_data="mmeval.tasks.spoken_vqa.run:load_data",
    headline=first_present(("spoken_accuracy", "speech_loss", "question_wer")),
    paired="mmeval.tasks.spoken_vqa.samples:paired_values",
    answers="short",
)
