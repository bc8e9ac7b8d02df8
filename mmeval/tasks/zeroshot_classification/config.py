"""The settings of a zero-shot classification benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from mmeval.config.base import Loc, _existing
from mmeval.config.benchmark import BenchmarkConfig, read_list_file
from mmeval.config.bias import BiasConfig

SINGLE_LABEL_FORMATS = ("imagefolder",)  # formats that hold exactly one class per image


class ZeroShotConfig(BenchmarkConfig):
    classnames: list[str] | None = Field(None, description="zero-shot: class names (default: from the data)")
    classnames_file: Path | None = Field(None, description="zero-shot: a text file with one class name per line")
    templates: list[str] | None = Field(None, description="zero-shot: prompt templates with {c} for the class name")
    templates_file: Path | None = Field(None, description="zero-shot: a text file with one template per line")
    temperature: float | None = Field(None, gt=0, description="zero-shot: logit scale for softmax / ECE "
                                      "(default: the model's logit_scale.exp(), else 100)")
    multilabel: bool = Field(False, description="zero-shot: labels are lists; scored by mAP")
    bias: BiasConfig | None = Field(None, description="bias and fairness metrics by per-image attributes")

    @field_validator("classnames", "templates")
    @classmethod
    def _usable_list(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            check_list(value, info.field_name)
        return value

    @field_validator("classnames_file", "templates_file")
    @classmethod
    def _usable_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        value = _existing(value, "file")
        if value is not None:
            check_list(read_list_file(value), info.field_name.removesuffix("_file"), value)
        return value

    @classmethod
    def cross_problems(cls, raw: dict[str, Any]) -> list[tuple[Loc, str]]:
        """Settings given twice, and multi-label scoring on data with one class per image."""
        problems: list[tuple[Loc, str]] = []
        for key in ("classnames", "templates"):
            if raw.get(key) is not None and raw.get(f"{key}_file") is not None:
                problems.append(((f"{key}_file",), f"set '{key}' or '{key}_file', not both"))
        fmt = raw.get("data", {}).get("format") if isinstance(raw.get("data"), dict) else None
        if raw.get("multilabel") is True and fmt in SINGLE_LABEL_FORMATS:
            problems.append((("multilabel",), f"format '{fmt}' has one class per image; multi-label data "
                                              "needs csv, json, hf or shapes"))
        return problems


def check_list(items: list[str], kind: str, file: Path | None = None) -> None:
    """Class names: non-empty and unique; templates: non-empty, each with {c} and no other placeholder."""
    if not items:
        raise ValueError(f"no {kind} given{f' in {file}' if file else ''}; list at least one")
    for n, item in enumerate(items):
        place = f"{file} line {n + 1}" if file else f"{kind}[{n}]"
        if not item.strip():
            raise ValueError(f"{place}: empty {kind[:-1]}")
        if kind == "templates":
            try:
                ok = "{c}" in item and item.format(c="x") is not None
            except (KeyError, IndexError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{place}: template {item!r} needs '{{c}}' (the class name) and no other braces")
    repeated = sorted({i for i in items if items.count(i) > 1})
    if kind == "classnames" and repeated:
        raise ValueError(f"class names must be unique; repeated: {', '.join(repeated[:5])}")
