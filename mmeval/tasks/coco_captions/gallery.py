"""The HTML report's captioning gallery: the best- and worst-scored images, with caption, references and image.

The per-sample file holds each image's caption and scores but no pixels and no references, so the benchmark's
data is rebuilt from the `data` block the report recorded, through mmeval's own loaders (shapes scenes are
re-rendered from their seed; COCO / Karpathy images are read from `data.images`). A report from another machine
may point at files that are not here: the gallery then shows captions and scores only and says why.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mmeval.ids import natural_key

log = logging.getLogger("mmeval")

THUMBNAIL_PX = 128
# The metric the gallery ranks by: the first of these the per-sample rows have.
RANK_BY = ("CIDEr", "SPICE", "METEOR", "Bleu_4", "ROUGE_L", "RefCLIPScore", "CLIPScore")
_LOCAL_FORMATS = ("shapes", "coco", "karpathy")  # formats whose images are re-read without a network


@dataclass
class GalleryItem:
    image_id: Any
    caption: str
    score: float
    references: list[str] = field(default_factory=list)
    thumbnail: str | None = None  # a data:image/jpeg URI


@dataclass
class Gallery:
    metric: str | None
    best: list[GalleryItem]
    worst: list[GalleryItem]
    note: str | None = None  # why images or references are not shown


def rank_metric(rows: list[dict[str, Any]]) -> str | None:
    """The metric the gallery ranks by: CIDEr when the rows have it, else the next of RANK_BY."""
    present = {key for row in rows[:50] for key in row}
    return next((m for m in RANK_BY if m in present), None)


def best_and_worst(rows: list[dict[str, Any]], metric: str, n: int) -> tuple[list[dict], list[dict]]:
    """The n highest-scored rows (best first) and the n lowest (worst first), never the same row twice; rows
    without a finite score are left out. Ties are broken by image id (2 before 10), so the choice is reproducible.

    With fewer than 2n scored rows the ranked list is split in two (the extra middle row of an odd count goes
    to best), so both galleries are shown and none is cut short to keep them apart."""
    scored = [r for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    ordered = sorted(scored, key=lambda r: (-r[metric], natural_key(r.get("image_id"))))
    split = min(n, (len(ordered) + 1) // 2)
    best = ordered[:split]
    worst = ordered[max(split, len(ordered) - n):][::-1]
    return best, worst


def thumbnail(image: Image.Image, max_px: int = THUMBNAIL_PX) -> str:
    """A JPEG data URI of `image`, shrunk (never enlarged) to fit max_px x max_px."""
    small = image.convert("RGB")
    small.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rebuild(data_config: dict[str, Any]):
    """The benchmark's data, loaded as the run loaded it; raises with a reason a reader can act on."""
    from pydantic import ValidationError

    from mmeval.config.run import DataConfig
    from mmeval.data.loaders import load_retrieval_data
    from mmeval.errors import MmevalError

    fmt = data_config.get("format")
    if fmt not in _LOCAL_FORMATS and not (fmt == "hf" and Path(str(data_config.get("path"))).is_dir()):
        raise MmevalError(f"images of data format '{fmt}' are not re-read for the gallery")
    try:
        cfg = DataConfig.model_validate(data_config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        raise MmevalError(f"data.{where}: {first['msg']}") from None
    return load_retrieval_data(cfg)


def caption_gallery(rows: list[dict[str, Any]], data_config: dict[str, Any] | None, n: int = 6) -> Gallery:
    """The best and worst n captioned images of one benchmark, with thumbnails and references when the data
    can be rebuilt here. Never raises for missing or changed data: the gallery's note says what is missing."""
    from mmeval.errors import MmevalError

    metric = rank_metric(rows)
    if metric is None:
        return Gallery(None, [], [], "the per-sample rows have no caption score to rank by")
    best_rows, worst_rows = best_and_worst(rows, metric, n)
    gallery = Gallery(metric, *[[GalleryItem(r.get("image_id"), str(r.get("caption", "")), float(r[metric]))
                                 for r in part] for part in (best_rows, worst_rows)])
    if data_config is None:
        gallery.note = "images not shown: the report does not record this benchmark's data config"
        return gallery
    try:
        data = _rebuild(data_config)
    except (MmevalError, OSError, ValueError) as exc:
        gallery.note = f"images not shown: {exc}"
        return gallery
    position = {str(image_id): i for i, image_id in enumerate(data.image_ids)}
    references: dict[int, list[str]] = {}
    for text, owner in zip(data.texts, data.text_image_index):
        references.setdefault(owner, []).append(text)
    problems = []
    for item in gallery.best + gallery.worst:
        index = position.get(str(item.image_id))
        if index is None:
            problems.append(f"image id {item.image_id} is not in the data rebuilt here")
            continue
        item.references = references.get(index, [])
        try:
            item.thumbnail = thumbnail(data.images.load(index)[1])
        except (MmevalError, OSError) as exc:
            problems.append(str(exc))
    if problems:
        gallery.note = f"{len(problems)} image(s) not shown: {problems[0]}"
    return gallery
