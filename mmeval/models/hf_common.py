"""Pieces shared by the transformers adapters (hf_clip, hf_captioner)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mmeval.errors import ModelLoadError


class ImageProcessorTransform:
    """Picklable wrapper: one PIL image -> the image processor's pixel tensor (C, H, W)."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]


def check_weights_fit(folder: Path, loading: dict) -> None:
    """Refuse a partly random model: transformers only warns about missing or reshaped weights.

    `loading` is what `from_pretrained(..., output_loading_info=True, ignore_mismatched_sizes=True)` returns.
    """
    mismatched = sorted(loading.get("mismatched_keys") or [], key=lambda item: item[0])
    problems = [f"size mismatch for {key}: checkpoint {tuple(saved)}, config {tuple(wanted)}"
                for key, saved, wanted in mismatched]
    problems += [f"missing key {key}" for key in sorted(loading.get("missing_keys") or [])]
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ModelLoadError(
            f"model.checkpoint: the weights in {folder} do not fit its config.json: {problems[0]}{more}"
        )
