"""The settings of an audio captioning benchmark (the caption metrics of coco_captions, plus SPIDEr)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from mmeval.config.audio import AudioSettings
from mmeval.config.base import _existing
from mmeval.config.benchmark import BenchmarkConfig, GenerationConfig
from mmeval.config.served import ServedConfig
from mmeval.tasks.coco_captions.config import CAPTION_METRICS


class AudioCaptioningConfig(BenchmarkConfig):
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="audio captioning: decoding")
    metrics: list[Literal["Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]] = Field(
        list(CAPTION_METRICS), min_length=1, description="audio captioning: which pycocoevalcap metrics to compute "
        "(SPIDEr is reported when both CIDEr and SPICE ran)")  # fmt: skip
    tokenizer: Literal["auto", "ptb", "python"] = Field(
        "auto", description="audio captioning: ptb (Java, as pycocoevalcap), python (fallback), auto (ptb if Java)"
    )
    spice_jars: Path | None = Field(None, description="audio captioning: folder with the Stanford CoreNLP 3.6.0 jars")
    audio: AudioSettings = Field(default_factory=AudioSettings, description="how clips are decoded")
    judge: ServedConfig | None = Field(None, description="opt-in: a served model that scores each caption 1-5 "
                                       "against the references (metric judge_score, beside the rule-based ones)")

    @field_validator("spice_jars")
    @classmethod
    def _jars_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")
