"""The zero-shot classification part of a benchmark's HTML section: top-k accuracy against k."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, recall_curves


def _classes(bench: dict[str, Any], _key: str) -> int:
    return len((bench.get("classification") or {}).get("classes") or [])


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    return recall_curves(name, done, (("predictions", "top-k accuracy", "top"),), "top-k accuracy", _classes)
