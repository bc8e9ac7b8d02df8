"""The settings of an audio-text retrieval benchmark."""

from __future__ import annotations

from pydantic import Field, field_validator

from mmeval.config.audio import AudioSettings
from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.bias import BiasConfig


class AudioRetrievalConfig(BenchmarkConfig):
    recall_k: list[int] = Field([1, 5, 10], min_length=1, description="audio retrieval: k values for recall@k")
    map_k: int = Field(10, gt=0, description="audio retrieval: the cut-off of t2a mAP@k (DCASE uses 10)")
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how clips are decoded")
    bias: BiasConfig | None = Field(None, description="caption -> audio metrics by the attributes of each query's clip")

    @field_validator("recall_k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"every k must be >= 1, got {value}")
        return sorted(set(value))
