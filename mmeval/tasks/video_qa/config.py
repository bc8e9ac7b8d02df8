"""The settings of a video question-answering benchmark (open-ended or multiple choice)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mmeval.config.base import Loc
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.served import ServedConfig
from mmeval.config.video import FrameSampling


class VideoQAConfig(BenchmarkConfig):
    frames: FrameSampling = Field(default_factory=FrameSampling, description="video: which frames the model sees")
    style: Literal["open", "choice"] = Field("open", description="video QA: open-ended answers (exact match) or "
                                             "multiple choice (the option's letter, or its text)")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="answer decoding")
    prompt_template: str | None = Field(None, description="video QA: the instruction, with {question} (and "
                                        "{options} for multiple choice); default: the model's, else a short-answer "
                                        "/ option-letter instruction")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-video attributes")
    judge: ServedConfig | None = Field(None, description="opt-in, style: open: a served model that grades each "
                                       "answer against the accepted answers (metric judge_accuracy, beside exact_match)")

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """A judge grades open-ended answers; multiple choice is scored exactly."""
        if raw.get("judge") is not None and raw.get("style") == "choice":
            return [(("judge",), ("a judge grades open-ended answers (style: open); multiple-choice answers are "
                                  "scored exactly: remove judge or set style: open"))]
        return []
