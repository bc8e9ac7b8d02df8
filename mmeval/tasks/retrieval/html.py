"""The retrieval part of a benchmark's HTML section: recall@k curves in both directions."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, recall_curves

_DIRECTIONS = (("t2i", "text -> image", "t2i_R@"), ("i2t", "image -> text", "i2t_R@"))


def _gallery_size(bench: dict[str, Any], key: str) -> int:
    """How many candidates a query ranks: images (text -> image) or texts (image -> text)."""
    return int((bench.get("dataset") or {}).get("n_images" if key == "t2i" else "n_texts") or 0)


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    return recall_curves(name, done, _DIRECTIONS, "recall@k", _gallery_size)
