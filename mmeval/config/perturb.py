"""The `perturb` section of a benchmark: re-run it under deterministic perturbations (mmeval/perturb/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from mmeval.config.base import Loc, _Strict

MODALITIES = ("text", "image", "video", "audio")


class PerturbConfig(_Strict):
    """Perturbations of one modality of the benchmark's inputs at a time, each at every severity; the other
    modalities stay clean (their model outputs are those of the clean run)."""

    text: list[str] = Field(default_factory=list, description="text perturbations: keyboard_typo, char_drop, "
                            "casing, punctuation, template_variant (zero-shot prompt templates)")
    image: list[str] = Field(default_factory=list, description="image corruptions (ImageNet-C names)")
    video: list[str] = Field(default_factory=list, description="video perturbations (frame drops, shuffles)")
    audio: list[str] = Field(default_factory=list, description="audio perturbations (additive noise at set SNRs)")
    severities: list[int] = Field([1, 2, 3, 4, 5], min_length=1, description="severities, 1 (mild) to 5")
    seed: int = Field(0, description="seed; each sample's perturbation depends only on it, the name, the severity "
                      "and the sample")
    baseline: Path | None = Field(None, description="a report of another model with the same perturb grid: "
                                  "mean corruption error (mCE) against it")

    @field_validator("text", "image", "video", "audio")
    @classmethod
    def _known(cls, value: list[str], info) -> list[str]:
        from mmeval.perturb import PERTURBATIONS

        known = PERTURBATIONS.get(info.field_name, {})
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown {info.field_name} perturbation(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known)) or 'none'}")
        return value

    def cells(self) -> list:
        """Every (modality, perturbation, severity) cell of the grid, in config order (mmeval.perturb.Cell)."""
        from mmeval.perturb import Cell

        return [Cell(modality, name, severity, self.seed)
                for modality in MODALITIES for name in getattr(self, modality)
                for severity in self.severities]

    @field_validator("baseline")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @field_validator("severities")
    @classmethod
    def _range(cls, value: list[int]) -> list[int]:
        if any(s not in range(1, 6) for s in value):
            raise ValueError(f"every severity must be 1 to 5, got {value}")
        return sorted(set(value))


def perturb_problems(task: str, perturbs: tuple[str, ...], bench: dict[str, Any]) -> list[tuple[Loc, str]]:
    """A raw benchmark's `perturb` asking for a modality its task does not perturb (TaskSpec.perturbs)."""
    section = bench.get("perturb")
    if not isinstance(section, dict):
        return []
    supports = ", ".join(perturbs) if perturbs else "none (this task cannot be re-run under perturbations)"
    return [(("perturb", modality), f"task '{task}' cannot perturb its {modality} inputs; it supports: {supports}")
            for modality in MODALITIES if section.get(modality) and modality not in perturbs]
