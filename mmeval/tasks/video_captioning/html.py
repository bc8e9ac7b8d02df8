"""The video captioning part of a benchmark's HTML section: the best and worst captions of each report (ranked
as coco_captions ranks them; no frames are shown)."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, esc, swatch
from mmeval.tasks.coco_captions.gallery import Gallery, GalleryItem, best_and_worst, rank_metric
from mmeval.tasks.coco_captions.html import _gallery_html


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    parts = ["<h3>Best and worst video captions</h3>"]
    for run, _ in done:
        rows = ((run.samples or {}).get(name) or {}).get("captions")
        if not rows:
            parts.append(f'<p class="note">{swatch(run)}: no per-video caption scores '
                         f"({esc(run.samples_note or 'not in the per-sample file')})</p>")
            continue
        rows = [{**row, "image_id": row.get("video_id")} for row in rows]
        metric = rank_metric(rows)
        if metric is None:
            parts.append(_gallery_html(run, Gallery(None, [], [], "the per-sample rows have no caption score")))
            continue
        best, worst = best_and_worst(rows, metric, 6)
        items = [[GalleryItem(r["image_id"], str(r.get("caption", "")), float(r[metric])) for r in part]
                 for part in (best, worst)]
        parts.append(_gallery_html(run, Gallery(metric, *items, "video frames are not shown")))
    return "\n".join(parts)
