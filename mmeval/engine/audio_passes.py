"""The audio model passes tasks call (clip embeddings, transcripts, audio captions): each one `model_pass` call.

Mirrors `engine/runner.py` for the audio modality: the input side is `io.audio_loading.AudioBatches`; the engine
(output cache, resume, data parallelism, OOM halving, timers) is the same one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from mmeval.config.audio import AudioSettings
from mmeval.engine.model_pass import PassResult, RowLimit, model_pass
from mmeval.engine.outputs import Embeddings, Generation
from mmeval.engine.runtime import Runtime
from mmeval.io.audio import describe_decoder
from mmeval.io.audio_loading import AudioBatches, AudioPass, AudioSource, resampling_policy
from mmeval.io.source import Batch

__all__ = ["AudioPass", "AudioSource", "encode_audio", "generate_audio_captions", "transcribe"]


class _WithSeconds(Generation):
    """Generated text per clip, kept with the clip's decoded duration: items are [text, seconds] (the seconds
    feed RTFx and per-sample rows, and survive the output cache)."""

    def __init__(self, call: Callable[[Any, list[Any]], list[str]], name: str, rate: int, runtime: Runtime):
        super().__init__(call, name, "clips", runtime)
        self.rate = rate

    def run(self, batch: Batch, limit: RowLimit, number: int, describe: Callable[[int], str]) -> dict[str, Any]:
        texts = super().run(batch, limit, number, describe)["items"]
        seconds = (batch.inputs["lengths"].double().cpu() / self.rate).tolist()
        return {"items": [[text, s] for text, s in zip(texts, seconds)]}


def encode_audio(model, source: AudioSource, runtime: Runtime, settings: AudioSettings, on_bad_input: str,
                 progress: Callable[[int], None], perturbation=None) -> tuple[torch.Tensor, AudioPass]:  # fmt: skip
    """Embed every readable clip of `source` once, in order: L2-normalised float32 rows on the run's device
    (aligned with `AudioPass.ok_indices`; whole on rank 0 only in a data-parallel run). `perturbation` (a
    RunContext's Cell): the clips are perturbed in the loader's threads when it perturbs audio; every audio pass
    takes it."""
    loader = AudioBatches(source, runtime, settings, model.sample_rate, on_bad_input, perturbation)
    kind = Embeddings(lambda inputs: model.encode_audio(inputs["audio"], inputs["lengths"]), "audio", runtime)
    done = model_pass(model, loader, kind, runtime, progress)
    return done.rows.to(runtime.device), _audio_pass(done, loader, settings)


def transcribe(model, source: AudioSource, runtime: Runtime, settings: AudioSettings, generation, on_bad_input: str,
               progress: Callable[[int], None], perturbation=None) -> tuple[list[tuple[str, float]], AudioPass]:  # fmt: skip
    """(transcript, seconds of decoded audio) per readable clip of `source`, in order (aligned with
    `AudioPass.ok_indices`; on rank 0 only in a data-parallel run)."""
    return _generate(model, model.transcribe, "transcripts", source, runtime, settings, generation, on_bad_input,
                     progress, perturbation)  # fmt: skip


def generate_audio_captions(model, source: AudioSource, runtime: Runtime, settings: AudioSettings, generation,
                            on_bad_input: str, progress: Callable[[int], None],
                            perturbation=None) -> tuple[list[tuple[str, float]], AudioPass]:  # fmt: skip
    """(caption, seconds) per readable clip of `source`, as `transcribe` (capability `audio_captioner`)."""
    return _generate(model, model.generate_audio, "audio_captions", source, runtime, settings, generation,
                     on_bad_input, progress, perturbation)  # fmt: skip


def _generate(model, method, name: str, source, runtime, settings, generation, on_bad_input, progress,
              perturbation=None):  # fmt: skip
    loader = AudioBatches(source, runtime, settings, model.sample_rate, on_bad_input, perturbation)
    kind = _WithSeconds(lambda inputs, _: method(inputs["audio"], inputs["lengths"], generation), name,
                        loader.rate, runtime)  # fmt: skip
    done = model_pass(model, loader, kind, runtime, progress, settings=dataclasses.asdict(generation),
                      model_rate=model.sample_rate)  # fmt: skip
    items = [(str(text), float(seconds)) for text, seconds in done.part.items or []]
    return items, _audio_pass(done, loader, settings)


def _audio_pass(done: PassResult, loader: AudioBatches, settings: AudioSettings) -> AudioPass:
    """The merged findings of a whole pass, with this rank's timer and the decoder description."""
    part = done.part
    return AudioPass(ok_indices=list(part.ok), bad=list(part.bad), digests=dict(part.digests), timer=done.timer,
                     decoded_from_cache=loader.done.decoded_from_cache,
                     decoder={**describe_decoder(settings), "rate": loader.rate,
                              "resampling": resampling_policy()})  # fmt: skip
