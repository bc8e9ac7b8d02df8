"""The settings of a video question-answering benchmark (open-ended or multiple choice)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.bias import BiasConfig
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
