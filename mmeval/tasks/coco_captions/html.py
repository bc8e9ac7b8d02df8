"""The captioning part of a benchmark's HTML section: the best and worst captions of each report."""

from __future__ import annotations

from typing import Any

from mmeval.reporting.html.sections import Run, esc, fmt, swatch
from mmeval.tasks.coco_captions.gallery import Gallery, caption_gallery


def section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    return _galleries(name, done)


def _galleries(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    parts = ["<h3>Best and worst captions</h3>"]
    for run, _ in done:
        rows = ((run.samples or {}).get(name) or {}).get("captions")
        if not rows:
            parts.append(f'<p class="note">{swatch(run)}: no per-image caption scores '
                         f"({esc(run.samples_note or 'not in the per-sample file')})</p>")
            continue
        gallery = caption_gallery(rows, _data_config(run.report, name))
        parts.append(_gallery_html(run, gallery))
    return "\n".join(parts)


def _data_config(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    for bench in (report.get("config") or {}).get("benchmarks") or []:
        if isinstance(bench, dict) and bench.get("name") == name and isinstance(bench.get("data"), dict):
            return bench["data"]
    return None


def _gallery_html(run: Run, gallery: Gallery) -> str:
    note = f'<p class="note">{esc(gallery.note)}</p>' if gallery.note else ""
    if gallery.metric is None:
        return f"<h3>{swatch(run)}</h3>{note}"
    blocks = []
    for title, items in (("best", gallery.best), ("worst", gallery.worst)):
        cards = []
        for item in items:
            image = (f'<img src="{item.thumbnail}" alt="image {esc(item.image_id)}">' if item.thumbnail else "")
            refs = "".join(f"<li>{esc(ref)}</li>" for ref in item.references)
            cards.append(f'<div class="card">{image}<div><div class=muted>{esc(item.image_id)} &middot; '
                         f"{esc(gallery.metric)} {fmt(item.score)}</div><div class=caption>{esc(item.caption)}</div>"
                         f"{f'<ul>{refs}</ul>' if refs else ''}</div></div>")
        blocks.append(f"<p><b>{title} {len(items)}</b> by {esc(gallery.metric)}</p>"
                      f'<div class="gallery" data-gallery="{title}">{"".join(cards)}</div>')
    return f"<h3>{swatch(run)}</h3>{note}{''.join(blocks)}"
