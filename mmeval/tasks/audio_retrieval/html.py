"""The audio retrieval part of a benchmark's HTML section: recall@k curves in both directions."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, recall_curves

_DIRECTIONS = (("t2a", "caption -> audio", "t2a_R@"), ("a2t", "audio -> caption", "a2t_R@"))


def _gallery_size(bench: dict[str, Any], key: str) -> int:
    """How many candidates a query ranks: clips (caption -> audio) or captions (audio -> caption)."""
    return int((bench.get("dataset") or {}).get("n_clips" if key == "t2a" else "n_texts") or 0)


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    return recall_curves(name, done, _DIRECTIONS, "recall@k", _gallery_size)
