"""Per-sample values of video captioning, for paired tests: coco_captions' decomposition (per-caption CIDEr,
ROUGE_L, METEOR, SPICE; BLEU untested) over rows keyed by video id."""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues
from mmeval.tasks.coco_captions.samples import paired_values as _caption_paired


def as_image_rows(samples: dict | None) -> dict | None:
    """The per-sample file's caption rows with `image_id` set to the video id (what coco_captions' code reads)."""
    rows = samples.get("captions") if isinstance(samples, dict) else None
    if not isinstance(rows, list):
        return samples
    return {**samples, "captions": [{**row, "image_id": row.get("video_id")} for row in rows]}


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    return _caption_paired(metric, as_image_rows(a), as_image_rows(b), names)
