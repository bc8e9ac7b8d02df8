"""Spoken VQA with one speech-capable model (`mode: one_model`): the image and the question's audio go to the model
together (`SpokenAnswerer.answer_spoken`), with no transcript in between.

The pass runs over the question clips (the audio loader: decoding, resampling to the model's rate, bad clips,
the decoded-audio cache) through the one engine; each row's image is preprocessed once per image here with the
model's own `image_transform` (a robustness cell of modality image is applied to the decoded uint8 image first,
as the image loader does). The same model then answers the reference text of each question when it is also an
answerer (the loss due to speech as one number), and transcribes the clips when it is also a speech recogniser
(the questions' WER); otherwise the report says that number is not measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmeval.engine.model_pass import model_pass
from mmeval.engine.outputs import Generation
from mmeval.io.audio_loading import AudioBatches
from mmeval.io.source import source_fingerprint
from mmeval.io.texts import digest
from mmeval.models.base import GenerationSettings, capabilities_of
from mmeval.perturb import apply_cell

NOT_MEASURED = ("not measured: one model answers from the audio and gives no separate transcript (measured when "
                "the model can also transcribe: capability speech_recognizer, measure_wer: true)")


class SpokenAnswers(Generation):
    """One answer per question clip; the request of clip n is (n, the instruction)."""

    def __init__(self, call: Callable[[Any, list[Any]], list[str]], prompt: str, runtime: Any):
        super().__init__(call, "spoken_answers", "questions", runtime)
        self.prompt = prompt

    def requests(self, index: int) -> list[tuple[Any, Any]]:
        return [(None, (index, self.prompt))]


def image_pixels(model: Any, data: Any, perturbation: Any) -> dict[int, torch.Tensor]:
    """The model's preprocessed pixels of every image a question is about, by image index."""
    images = data.questions.images
    out = {}
    for index in sorted({q.image for q in data.questions.questions}):
        _, image = images.load(index)
        if perturbation is not None and perturbation.modality == "image":
            array = apply_cell(perturbation, "image", np.asarray(image.convert("RGB"), dtype=np.uint8),
                               data.image_ids[index])  # fmt: skip
            image = Image.fromarray(array)
        out[index] = model.image_transform(image)
    return out


def answer_spoken(model: Any, bench: Any, ctx: Any, data: Any, settings: GenerationSettings,
                  progress: Callable[[int], None]) -> tuple[dict[int, str], Any]:  # fmt: skip
    """{question position: answer} for every readable question clip, and the audio pass."""
    from mmeval.engine.audio_passes import _audio_pass  # the audio passes' own merge of a pass's findings

    pixels = image_pixels(model, data, ctx.perturbation)
    image_of = [q.image for q in data.questions.questions]
    device = ctx.runtime.device

    def call(inputs: dict[str, torch.Tensor], requests: list[tuple[int, str]]) -> list[str]:
        rows = torch.stack([pixels[image_of[n]] for n, _ in requests]).to(device)
        return model.answer_spoken(rows, inputs["audio"], inputs["lengths"], [p for _, p in requests], settings)

    loader = AudioBatches(data.speech.audio, ctx.runtime, bench.audio, model.sample_rate, bench.data.on_bad_input,
                          ctx.perturbation)
    kind = SpokenAnswers(call, bench.spoken_prompt, ctx.runtime)
    done = model_pass(model, loader, kind, ctx.runtime, progress, settings=dataclasses.asdict(settings),
                      prompts=digest([bench.spoken_prompt]), images=source_fingerprint(data.questions.images),
                      preprocessing=repr(model.image_transform), model_rate=model.sample_rate,
                      perturbation=repr(ctx.perturbation))  # fmt: skip
    answers = {n: str(a) for n, a in zip(done.part.ok, done.part.items or [])}
    return answers, _audio_pass(done, loader, bench.audio)


def also_can(model: Any) -> dict[str, bool]:
    """What else the one model can do: answer text questions, transcribe."""
    has = capabilities_of(model)
    return {"answerer": "answerer" in has, "speech_recognizer": "speech_recognizer" in has}
