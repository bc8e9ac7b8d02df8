"""The video retrieval part of a benchmark's HTML section: recall@k curves in both directions."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, recall_curves

_DIRECTIONS = (("t2v", "text -> video", "t2v_R@"), ("v2t", "video -> text", "v2t_R@"))


def _gallery_size(bench: dict[str, Any], key: str) -> int:
    data = bench.get("dataset") or {}
    return int(data.get("n_videos" if key == "t2v" else "n_texts") or 0)


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    return recall_curves(name, done, _DIRECTIONS, "recall@k", _gallery_size)
