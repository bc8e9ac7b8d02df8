"""The settings of a video retrieval benchmark."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.video import FrameSampling


class VideoRetrievalConfig(BenchmarkConfig):
    frames: FrameSampling = Field(default_factory=FrameSampling, description="video: which frames the model sees")
    recall_k: list[int] = Field([1, 5, 10], min_length=1, description="video retrieval: k values for recall@k")
    rerank: Literal["dual_softmax", "inverted_softmax"] | None = Field(
        None, description="video retrieval: also report dual-softmax (dsl_) or inverted-softmax (isn_) re-ranked "
                          "metrics (uses the test set's queries jointly; reported separately, never the headline)")
    rerank_temperature: float = Field(100.0, gt=0, description="rerank: inverse temperature of the softmax")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-video attributes")

    @field_validator("recall_k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"every k must be >= 1, got {value}")
        return sorted(set(value))
