"""One module per task; each exposes `run(model, bench_cfg, runtime, progress) -> BenchmarkResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchmarkResult:
    """What a benchmark hands to the report: dataset facts, metrics, timings and per-sample rows."""

    task: str
    dataset: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    timings: dict[str, float]
    per_sample: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
