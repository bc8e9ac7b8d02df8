"""Per-sample values of zero-shot video classification, for paired tests: image zero-shot's own decomposition
(`tasks/zeroshot_classification/samples.py`) over rows keyed by video id."""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues
from mmeval.tasks.zeroshot_classification.samples import paired_values as _image_paired


def _as_image_rows(samples: dict) -> dict:
    rows = samples.get("predictions") if isinstance(samples, dict) else None
    if not isinstance(rows, list):
        return samples
    return {**samples, "predictions": [{**row, "image_id": row.get("video_id")} for row in rows]}


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    return _image_paired(metric, _as_image_rows(a), _as_image_rows(b), names)
