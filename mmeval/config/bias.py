"""The `bias` section of a benchmark: which attributes to slice by and the task-specific bias settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmeval.config.base import _expand
from mmeval.metrics.bias import MAN_WORD_LIST, WOMAN_WORD_LIST

# Hendricks et al. 2018 ("Women also Snowboard"), the word lists of the paper's code (mmeval.metrics.bias)
MAN_WORDS = list(MAN_WORD_LIST)
WOMAN_WORDS = list(WOMAN_WORD_LIST)


class BiasConfig(BaseModel):
    """Bias and fairness metrics of one benchmark, in its report's `bias` block."""

    model_config = ConfigDict(extra="forbid")

    attributes: list[str] = Field(min_length=1, description="per-image attributes to slice every metric by "
                                  "(e.g. gender, skin_tone; shapes: background, n_shapes, dominant_color)")
    attributes_file: Path | None = Field(None, description="a CSV (image_id column) or JSON ({image_id: {...}}) "
                                         "of per-image attributes; default: the data's own")
    # retrieval: which images text queries return
    queries: list[str] = Field(default_factory=list, description="retrieval: neutral text queries whose top-k "
                               "images are checked for skew (e.g. 'a photo of a doctor')")
    k: list[int] = Field([10], min_length=1, description="retrieval: cut-offs for Skew@k, NDKL@k and Bias@k")
    target: Literal["uniform", "dataset"] = Field("dataset", description="retrieval: the fair distribution "
                                                  "of an attribute: uniform over its values or the gallery's own")
    # captioning: which group a caption talks about
    caption_attribute: str | None = Field(None, description="captioning: the attribute whose two groups captions "
                                          "name (Hendricks et al. 2018 error / ratio, LIC)")
    reference_attribute: str | None = Field(None, description="captioning: derive this attribute of each image "
                                            "from its reference captions with `caption_words` (a group when some "
                                            "reference names it and none names the other; Hendricks et al.'s COCO "
                                            "labels), e.g. gender when no attribute file exists")
    caption_words: dict[str, list[str]] | None = Field(None, description="captioning: words per group value "
                                                       "(default: the paper's man / woman word lists)")
    leakage_seeds: int = Field(0, ge=0, description="captioning: seeds of the LIC leakage classifier "
                               "(0: no leakage metric; it needs human captions for the same images)")
    # classification: predictions into a harmful set of classes
    harmful_classes: list[str] = Field(default_factory=list, description="zero-shot: classes whose prediction "
                                       "harms (e.g. criminal); their rate and fairness gaps per group")
    training_counts: Path | None = Field(None, description="zero-shot: JSON {attribute: {class: {group: count}}} "
                                         "of the training labels, for bias amplification (Zhao et al. 2017)")

    @field_validator("attributes_file", "training_counts")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = _expand(value).resolve()  # `~user` that does not exist: a problem with the value, not a crash
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @field_validator("k")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if min(value) < 1:
            raise ValueError(f"every k must be >= 1, got {value}")
        return sorted(set(value))

    @field_validator("caption_words")
    @classmethod
    def _two_groups(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if value is not None and (len(value) != 2 or not all(value.values())):
            raise ValueError("expected exactly two groups, each with a non-empty word list")
        return value

    @model_validator(mode="after")
    def _derived_attribute_listed(self) -> BiasConfig:
        if self.reference_attribute is not None and self.reference_attribute not in self.attributes:
            raise ValueError(f"reference_attribute '{self.reference_attribute}' must also be one of `attributes` "
                             f"({', '.join(self.attributes)})")
        return self

    def words(self) -> dict[str, list[str]]:
        return self.caption_words or {"man": MAN_WORDS, "woman": WOMAN_WORDS}
