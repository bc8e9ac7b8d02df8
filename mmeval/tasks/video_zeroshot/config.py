"""The settings of a zero-shot video classification benchmark."""

from __future__ import annotations

from pydantic import Field, field_validator

from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.video import FrameSampling


class VideoZeroShotConfig(BenchmarkConfig):
    frames: FrameSampling = Field(default_factory=FrameSampling, description="video: which frames the model sees")
    classnames: list[str] | None = Field(None, description="video zero-shot: class names (default: from the data)")
    templates: list[str] | None = Field(None, description="video zero-shot: prompt templates with {c} for the class")
    temperature: float | None = Field(None, gt=0, description="video zero-shot: logit scale for softmax / ECE "
                                      "(default: the model's logit_scale.exp(), else 100)")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-video attributes")

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one template")
            bad = [t for t in value if "{c}" not in t or t.replace("{c}", "").count("{") or t.replace("{c}", "").count("}")]
            if bad:
                raise ValueError(f"template {bad[0]!r} needs '{{c}}' (the class name) and no other braces")
        return value

    @field_validator("classnames")
    @classmethod
    def _classnames(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("class names must be unique")
        return value
