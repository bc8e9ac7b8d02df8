"""Spoken questions about images (a voice assistant), scored end to end beside the accuracy on the same questions
given as text (the loss due to speech). Two modes: a pipeline recogniser -> vision-language answerer (with the
recogniser's WER), or one speech-capable model that takes the image and the audio together."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.spoken_vqa.config import SpokenVQAConfig, needed_capability

METRICS = {
    "spoken_accuracy": (True, "VQA accuracy of the answers to the spoken questions, end to end (pipeline: to the "
                              "transcripts; one_model: to the audio itself)"),
    "text_accuracy": (True, "VQA accuracy of the same model on the same questions given as their reference text "
                            "(one_model: only when the model can also answer text)"),
    "speech_loss": (False, "text_accuracy - spoken_accuracy: the accuracy lost to speech"),
    "question_wer": (False, "corpus word error rate of the questions' transcripts (normalised, jiwer alignment): "
                            "the recogniser's; one_model: the model's own, only when it can transcribe"),
}

TASK = TaskSpec(
    name="spoken_vqa",
    summary="spoken questions about images: recogniser -> answerer accuracy, the questions' WER, loss vs text",
    needs="answerer",  # mode pipeline; mode one_model needs spoken_answerer (needs_of)
    needs_of=needed_capability,
    config=SpokenVQAConfig,
    formats=("spoken_shapes",),
    reads="spoken questions about images",
    metrics=METRICS,
    run="mmeval.tasks.spoken_vqa.run:run",
    load_data="mmeval.tasks.spoken_vqa.run:load_data",
    headline=first_present(("spoken_accuracy", "speech_loss", "question_wer")),
    paired="mmeval.tasks.spoken_vqa.samples:paired_values",
    answers="short",
    perturbs=("audio", "image"),  # the spoken questions (noise) and the images; text cells: none (no typed query)
)
