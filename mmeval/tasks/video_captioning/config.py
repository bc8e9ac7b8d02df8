"""The settings of a video captioning benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from mmeval.config.base import _existing
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.served import ServedConfig
from mmeval.config.video import FrameSampling


class VideoCaptioningConfig(BenchmarkConfig):
    frames: FrameSampling = Field(default_factory=FrameSampling, description="video: which frames the model sees")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="captioning: decoding")
    metrics: list[Literal["Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]] = Field(
        ["Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE"], min_length=1,
        description="video captioning: which pycocoevalcap metrics to compute")
    tokenizer: Literal["auto", "ptb", "python"] = Field(
        "auto", description="captioning: ptb (Java, as pycocoevalcap), python (fallback), auto (ptb if Java)")
    spice_jars: Path | None = Field(None, description="captioning: folder with the Stanford CoreNLP 3.6.0 jars")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-video attributes")
    judge: ServedConfig | None = Field(None, description="opt-in: a served model that scores each caption 1-5 "
                                       "against the references (metric judge_score, beside the rule-based ones)")

    @field_validator("spice_jars")
    @classmethod
    def _jars_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")
