"""What every benchmark has (`name`, `task`, `data`) and the settings several tasks share (decoding, list files).

Each task's own fields live in its folder (`mmeval/tasks/<task>/config.py`), in a subclass of `BenchmarkConfig`;
the run config picks the subclass from `task` (see `mmeval.config.run`), so a typo is reported against that
task's own field list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from mmeval.config.base import Loc, _Strict, _valid_name
from mmeval.config.data import DataConfig
from mmeval.config.model import ModelConfig
from mmeval.config.model_list import is_pattern
from mmeval.config.perturb import PerturbConfig


class BenchmarkConfig(_Strict):
    """One benchmark: a unique name, a task and its data; subclasses add the task's own settings."""

    name: str = Field(description="unique; used in report keys")
    task: str = Field(description="a task name (mmeval list) or 'package.module:attr' naming a TaskSpec")
    data: DataConfig = Field(description="where the images and texts come from: format and its fields")
    model: ModelConfig | None = Field(None, description="this benchmark's own model (a model entry like the "
                                      "top-level one), run instead of the run's model")
    perturb: PerturbConfig | None = Field(None, description="re-run the benchmark under deterministic perturbations "
                                          "of one input modality at a time (the task's TaskSpec.perturbs)")

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        return _valid_name(value)

    @field_validator("model")
    @classmethod
    def _one_model(cls, value: ModelConfig | None) -> ModelConfig | None:
        if value is not None and is_pattern(value.checkpoint):  # one model per benchmark; lists are top-level
            raise ValueError("a benchmark's model takes one checkpoint, not a pattern (list several models at "
                             "the top-level 'model:')")
        return value

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """Problems that span several of this task's fields, on the raw mapping (reported with all the others)."""
        return []


class GenerationConfig(_Strict):
    """How captions are decoded (captioning tasks). Deterministic: no sampling."""

    max_new_tokens: int = Field(30, gt=0, description="the longest caption, in model tokens")
    num_beams: int = Field(1, gt=0, description="1 = greedy decoding, more = beam search")
    min_new_tokens: int = Field(0, ge=0, description="end-of-caption is forbidden before this many tokens")
    length_penalty: float = Field(1.0, description="beam search: score / length ** length_penalty")
    prompt: str | None = Field(None, description="prompted image-text-to-text models: the instruction; vqa / "
                               "multiple_choice: a model prompt around {question} (default: its chat template)")


def read_list_file(path: Path) -> list[str]:
    """The non-blank lines of a text file (class names, templates), stripped of surrounding spaces."""
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({exc})") from exc
