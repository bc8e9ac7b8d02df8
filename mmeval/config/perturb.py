"""The `perturb` section of a benchmark: re-run it under deterministic perturbations (mmeval/perturb/)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from mmeval.config.base import _Strict


class PerturbConfig(_Strict):
    """Text perturbations of the benchmark's queries, each at every severity; images are encoded once."""

    text: list[str] = Field(default_factory=list, description="text perturbations: keyboard_typo, char_drop, "
                            "casing, punctuation")
    severities: list[int] = Field([1, 2, 3, 4, 5], min_length=1, description="severities, 1 (mild) to 5")
    seed: int = Field(0, description="seed; each sample's perturbation depends only on it, the name, the severity "
                      "and the sample")
    baseline: Path | None = Field(None, description="a report of another model with the same perturb grid: "
                                  "mean corruption error (mCE) against it")

    @field_validator("text")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from mmeval.perturb import PERTURBATIONS

        unknown = [name for name in value if name not in PERTURBATIONS["text"]]
        if unknown:
            raise ValueError(f"unknown text perturbation(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(PERTURBATIONS['text']))}")
        return value

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
