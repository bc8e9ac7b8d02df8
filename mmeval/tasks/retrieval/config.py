"""The settings of a retrieval benchmark."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.bias import BiasConfig


class RetrievalConfig(BenchmarkConfig):
    recall_k: list[int] = Field([1, 5, 10], min_length=1, description="retrieval: k values for recall@k")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-image attributes")
    tie_policy: Literal["pessimistic", "topk"] = Field(
        "pessimistic", description="how a negative scoring exactly as high as the best positive counts: against "
        "the model (pessimistic), or as torch.topk breaks the tie (topk: reproduces CLIP_benchmark)")

    @field_validator("recall_k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"every k must be >= 1, got {value}")
        return sorted(set(value))
