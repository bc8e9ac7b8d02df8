"""The settings of a spoken-question VQA benchmark: the recogniser that turns the questions into text."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mmeval.config.audio import AudioSettings
from mmeval.config.base import Loc
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.model import ModelConfig, _model_problems
from mmeval.registry import MODELS


class SpokenVQAConfig(BenchmarkConfig):
    recognizer: ModelConfig = Field(description="spoken_vqa: the speech recogniser (a speech_recognizer model) "
                                    "whose transcripts the run's model answers")  # fmt: skip
    prompt_template: str | None = Field(None, description="spoken_vqa: prompt with {question} (default: the "
                                        "model's own, else the vqa task's)")  # fmt: skip
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="answer decoding")
    recognizer_generation: GenerationConfig = Field(
        default_factory=GenerationConfig, description="spoken_vqa: the recogniser's decoding"
    )
    normalizer: Literal["none", "basic", "whisper_en"] = Field(
        "basic", description="spoken_vqa: text normaliser applied to both sides before the questions' WER"
    )
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how the spoken questions are decoded")

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """The recogniser: a valid model entry that can transcribe."""
        recognizer = raw.get("recognizer")
        if not isinstance(recognizer, dict):
            return []
        problems = [(("recognizer", *loc), message) for loc, message in _model_problems(recognizer)]
        kind = recognizer.get("type")
        if isinstance(kind, str) and kind in MODELS and "speech_recognizer" not in MODELS[kind].capabilities:
            message = f"the recognizer must be a speech_recognizer; model type '{kind}' is not"
            problems.append((("recognizer", "type"), message))
        return problems
