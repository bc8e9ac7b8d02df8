"""The settings of a zero-shot audio classification benchmark."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from mmeval.config.audio import AudioSettings
from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.bias import BiasConfig
from mmeval.tasks.zeroshot_classification.config import check_list


class AudioZeroShotConfig(BenchmarkConfig):
    classnames: list[str] | None = Field(None, description="audio zero-shot: class names (default: from the data)")
    templates: list[str] | None = Field(None, description="audio zero-shot: prompt templates with {c} for the class "
                                        "name (default: 'this is the sound of {c}.')")  # fmt: skip
    temperature: float | None = Field(None, gt=0, description="audio zero-shot: logit scale for softmax / ECE "
                                      "(default: the model's logit_scale.exp(), else 100)")  # fmt: skip
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how clips are decoded")
    bias: BiasConfig | None = Field(None, description="metrics and fairness by per-clip attributes")

    @field_validator("classnames", "templates")
    @classmethod
    def _usable_list(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            check_list(value, info.field_name)
        return value
