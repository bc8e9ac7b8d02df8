"""The settings of a captioning benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mmeval.config.base import Loc, _existing
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.bias import BiasConfig
from mmeval.config.model import ModelConfig, _model_problems
from mmeval.config.served import ServedConfig
from mmeval.registry import MODELS

CAPTION_METRICS = ("Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE")


class CaptioningConfig(BenchmarkConfig):
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="captioning: decoding")
    metrics: list[Literal["Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]] = Field(
        list(CAPTION_METRICS), min_length=1, description="captioning: which pycocoevalcap metrics to compute"
    )
    tokenizer: Literal["auto", "ptb", "python"] = Field(
        "auto", description="captioning: ptb (Java, as pycocoevalcap), python (fallback), auto (ptb if Java)"
    )
    spice_jars: Path | None = Field(None, description="captioning: folder with the Stanford CoreNLP 3.6.0 jars")
    scorer: ModelConfig | None = Field(None, description="captioning: an image-text encoder for CLIPScore")
    clipscore_prefix: str = Field("A photo depicts", description="captioning: text put before each caption")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-image attributes")
    judge: ServedConfig | None = Field(None, description="opt-in: a served model that scores each caption 1-5 "
                                       "against the references (metric judge_score, beside the rule-based ones)")

    @field_validator("spice_jars")
    @classmethod
    def _jars_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """The CLIPScore scorer: a valid model entry that can embed images and texts."""
        scorer = raw.get("scorer")
        if not isinstance(scorer, dict):
            return []
        problems = [(("scorer", *loc), message) for loc, message in _model_problems(scorer)]
        kind = scorer.get("type")
        if isinstance(kind, str) and kind in MODELS and "image_text_encoder" not in MODELS[kind].capabilities:
            problems.append((("scorer", "type"), f"a CLIPScore scorer must be an image_text_encoder; model type "
                                                 f"'{kind}' is not"))
        return problems
