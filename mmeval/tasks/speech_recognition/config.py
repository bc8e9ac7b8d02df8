"""The settings of a speech recognition benchmark: audio decoding, decoding of the transcript, normalisers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mmeval.config.audio import AudioSettings
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig

Normaliser = Literal["none", "basic", "whisper_en"]


class SpeechRecognitionConfig(BenchmarkConfig):
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how clips are decoded")
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(max_new_tokens=128),
                                         description="transcript decoding (generative models such as Whisper)")
    normalizers: list[Normaliser] = Field(default_factory=lambda: ["basic", "whisper_en", "none"], min_length=1,
                                          description="text normalisers applied to references and transcripts; the "
                                          "first gives wer / cer, each other one wer_<name> / cer_<name>")

    @field_validator("normalizers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"each normaliser at most once, got {value}")
        return value
