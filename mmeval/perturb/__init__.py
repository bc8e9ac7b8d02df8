"""Deterministic input perturbations for robustness runs, by modality (`PERTURBATIONS[modality][name]`).

Each perturbation is `fn(value, severity, rng) -> value` with severity 1..5; `rng_for(seed, name, severity,
sample_id)` seeds one generator per sample, so a sample's perturbed input depends only on those four things
(not on batch order, worker count or which other samples ran). A modality adds its own with `register`.
A robustness re-run of a benchmark carries one `Cell` (modality, name, severity, seed) in its RunContext
(`ctx.perturbation`); the code that reads that modality's inputs (a loader's worker, a task's query texts)
applies it with `apply_cell`, and leaves every other modality clean.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Perturbation = Callable[[Any, int, np.random.Generator], Any]
PERTURBATIONS: dict[str, dict[str, Perturbation]] = {}
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Cell:
    """One cell of a robustness grid: perturbation `name` of `modality` at `severity`, seeded by `seed`."""

    modality: str
    name: str
    severity: int
    seed: int = 0

    def label(self) -> str:
        return f"{self.modality}:{self.name}@{self.severity}"


def register(modality: str, name: str, fn: Perturbation) -> None:
    """Add a perturbation of one modality (e.g. "text", "image", "audio")."""
    if name in PERTURBATIONS.setdefault(modality, {}):
        raise ValueError(f"{modality} perturbation {name!r} is already registered")
    PERTURBATIONS[modality][name] = fn


def rng_for(seed: int, name: str, severity: int, sample_id: Any) -> np.random.Generator:
    """One generator per (seed, perturbation, severity, sample): stable across runs, machines and batchings."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity, zlib.crc32(repr(sample_id).encode())])


def apply(modality: str, name: str, value: Any, severity: int, seed: int, sample_id: Any) -> Any:
    """`value` under perturbation `name` at `severity`, seeded for this sample."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    table = PERTURBATIONS.get(modality, {})
    if name not in table:
        raise ValueError(f"unknown {modality} perturbation {name!r} (known: {', '.join(sorted(table)) or 'none'})")
    return table[name](value, severity, rng_for(seed, name, severity, sample_id))


def apply_cell(cell: Cell | None, modality: str, value: Any, sample_id: Any) -> Any:
    """`value` under `cell` when the cell perturbs `modality`; else `value` unchanged (the clean input)."""
    if cell is None or cell.modality != modality:
        return value
    return apply(modality, cell.name, value, cell.severity, cell.seed, sample_id)


from mmeval.perturb import image as _image  # noqa: E402,F401  registers the 15 ImageNet-C image corruptions
from mmeval.perturb import text as _text  # noqa: E402,F401  registers the text perturbations
from mmeval.perturb import video as _video  # noqa: E402,F401  registers the video perturbations
from mmeval.perturb import audio as _audio  # noqa: E402,F401  registers the audio perturbations
