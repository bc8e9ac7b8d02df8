"""Pieces shared by the transformers adapters (hf_clip, hf_captioner)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import torch
from PIL import Image

from mmeval.errors import ModelLoadError
from mmeval.models import checkpoint_files, safe_load


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


def _asks_for_code(folder: Path) -> bool:
    """True when a saved config (model, tokenizer, processor) maps a class to the folder's own Python code."""
    for path in folder.glob("*.json"):
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a config transformers reads; it reports unreadable ones itself
        if isinstance(saved, dict) and "auto_map" in saved:
            return True
    return False


def loading_kwargs(folder: Path, trust_checkpoint: bool) -> dict[str, Any]:
    """Keyword arguments for every `from_pretrained` of a local folder: no network, and the folder's own code
    only with `--trust-checkpoint` (explicitly False otherwise, so transformers neither runs it nor asks)."""
    if _asks_for_code(folder) and not trust_checkpoint:
        raise safe_load.remote_code_refusal(folder)
    return {"local_files_only": True, "trust_remote_code": trust_checkpoint}


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' and huggingface_hub's tqdm bars ("Loading weights") off while mmeval loads a model, then
    back as they were: they would print through mmeval's own progress display and into its logs."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # also huggingface_hub's (disable_progress_bars)
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model(auto_class, folder: Path, trust_checkpoint: bool, **kwargs: Any) -> tuple[Any, str]:
    """`auto_class.from_pretrained(folder, **kwargs)` reading weights without running pickled code unless trusted.

    safetensors when the folder has them (`use_safetensors=True`, so a stray .bin beside them is never read),
    else the .bin with `torch.load(weights_only=True)`; a pickle that needs code is refused, or with
    `--trust-checkpoint` read as it is. Returns what from_pretrained returns and how the weights were read.
    """
    has_safetensors = any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json"))
    for weights in sorted(folder.glob("*.safetensors") if has_safetensors else folder.glob("*.bin")):
        checkpoint_files.check_file(weights)  # a cut-off download or a stray file: said before transformers reads it
    common = {**loading_kwargs(folder, trust_checkpoint), "use_safetensors": has_safetensors, **kwargs}
    code = ", the folder's own code" if trust_checkpoint and _asks_for_code(folder) else ""
    pickled = next(iter(sorted(folder.glob("*.bin"))), folder)

    def load(weights_only: bool):
        try:
            return auto_class.from_pretrained(folder, weights_only=weights_only, **common)
        except Exception as exc:
            reason = safe_load.needs_code(exc)
            if weights_only or reason is None:
                raise
            # transformers 5 reads .bin shards weights-only on some paths whatever weights_only says
            raise ModelLoadError(f"model.checkpoint: {pickled} holds more than weights ({reason}) and this "
                                 "transformers version reads .bin files weights-only even when trusted; load the "
                                 "model yourself and re-save it with save_pretrained (safetensors)") from exc

    with no_progress_bars():
        loaded, safe = safe_load.weights_only_first(load, pickled, trust_checkpoint)
    how = (safe_load.SAFETENSORS if has_safetensors else safe_load.WEIGHTS_ONLY) if safe else safe_load.TRUSTED_PICKLE
    return loaded, f"transformers from_pretrained ({how}{code})"
