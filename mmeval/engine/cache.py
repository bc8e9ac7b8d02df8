"""On-disk caches: model outputs per (model, data, preprocessing, precision), and decoded inputs.

Two kinds of entry, under `runtime.cache_dir` (default `$MMEVAL_CACHE_DIR`, else `$XDG_CACHE_HOME/mmeval`,
else `~/.cache/mmeval`):

- `outputs/`: image and text embeddings, generated captions and answers, with what the image pass found
  (readable images, skipped ones, raw-byte digests for the dataset hash). A rerun of the same model on the
  same data reuses them instead of running the model.
- `pixels/`: the decoded-input cache of images (`io/decoded_cache.py`): uint8 images at a model's resolution
  (`pixels.PixelPipeline`), one memory-mapped array per (image source, geometry), shared by every checkpoint
  with the same preprocessing: comparing N checkpoints decodes the images once. (`pixels` below, the switch
  of that cache, turns every decoded-input store on or off.)

An entry's key is the sha256 of everything its content depends on: for outputs the checkpoint's own hash
(a model without one, such as a plugin without a checkpoint file, is never cached), the adapter and its
architecture facts, the preprocessing, the precision and device type, the decode path, and the data's
fingerprint (file paths, sizes and modification times; a dataset library's fingerprint; the synthetic scenes).
The key's parts are also stored in the entry and compared when it is read, so an entry is never used for a
different model or data, even by a hash collision. Entries are written to a temporary name and renamed when
complete, so an interrupted run leaves no half entry. `--no-cache` (runtime.cache: false) bypasses both.

`output_memo()` adds an in-memory layer for the length of one benchmark and its robustness re-runs
(engine/robustness.py): whole passes by what their outputs depend on, so a perturbed re-run reuses the clean
outputs of the modality it leaves clean even with `--no-cache` or a model without a checkpoint hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmeval.files import atomic_write
from mmeval.io.decoded_cache import DecodedStore

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    if os.environ.get("MMEVAL_CACHE_DIR"):
        return Path(os.environ["MMEVAL_CACHE_DIR"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "mmeval"


def _canonical(parts: dict[str, Any]) -> str:
    return json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str, ensure_ascii=False)


def entry_key(parts: dict[str, Any]) -> tuple[str, str]:
    """The sha256 key of `parts` and the canonical JSON it hashes (stored in an entry, compared on reading)."""
    canonical = _canonical(parts)
    return hashlib.sha256(canonical.encode()).hexdigest(), canonical


def model_identity(model) -> dict[str, Any] | None:
    """What identifies a loaded model's outputs, or None when it has no checkpoint hash (then: no caching)."""
    info = model.info
    if not info.sha256:
        return None
    return {"adapter": info.adapter, "sha256": info.sha256, "extra": info.extra,
            "preprocessing": repr(getattr(model, "image_transform", None))}  # fmt: skip


@dataclass
class Cache:
    """The cache folder, and which of the two caches are on."""

    root: Path
    outputs: bool = True
    pixels: bool = True

    def _paths(self, kind: str, parts: dict[str, Any]) -> tuple[Path, str]:
        key, canonical = entry_key(parts)
        return self.root / kind / key[:2] / key, canonical

    def get(self, parts: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The tensors and metadata stored under `parts`, or None (absent, unreadable, or other parts)."""
        if not self.outputs:
            return None
        base, canonical = self._paths("outputs", parts)
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            if meta.get("key") != canonical:
                return None
            return load_file(str(base.with_suffix(".safetensors"))), meta["meta"]
        except (OSError, ValueError, KeyError) as exc:
            if base.with_suffix(".json").exists():
                log.warning("ignoring unreadable cache entry %s (%s)", base, exc)
            return None

    def put(self, parts: dict[str, Any], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Store tensors + JSON metadata under `parts`; a failure to write only costs the cache (a warning)."""
        if not self.outputs:
            return
        base, canonical = self._paths("outputs", parts)
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
            atomic_write(base.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
            atomic_write(base.with_suffix(".json"), lambda p: p.write_text(json.dumps({"key": canonical, "meta": meta})))
        except OSError as exc:
            log.warning("could not write cache entry %s (%s); continuing without it", base, exc)

    def decoded_store(self, parts: dict[str, Any], folder: str = "pixels",
                      dtype: np.dtype | type = np.uint8) -> DecodedStore | None:  # fmt: skip
        """The decoded-input store keyed by `parts` (source fingerprint + preprocessing) under `folder`, or None
        when that cache is off. Images use `pixels/` (uint8); another modality names its own folder."""
        if not self.pixels:
            return None
        base, canonical = self._paths(folder, parts)
        return DecodedStore(base, canonical, dtype)


class OutputMemo:
    """Whole passes' results in memory, keyed by the model object, precision, device and what the inputs and
    the output kind depend on (the output cache's key parts; a source without a fingerprint by its identity,
    which holds because the memo lives no longer than the benchmark's data)."""

    def __init__(self) -> None:
        self._parts: dict[str, Any] = {}
        self.hits = 0

    def key(self, model, runtime, kind: str, content: dict[str, Any], loader) -> str:
        inputs = {k: (f"object:{id(loader.source)}" if v is None else v) for k, v in loader.cache_parts().items()}
        return entry_key({"kind": kind, "model": id(model), "precision": runtime.precision,
                          "device": str(runtime.device), **content, **inputs})[0]

    def get(self, key: str) -> Any:
        found = self._parts.get(key)
        self.hits += found is not None
        return found

    def put(self, key: str, part: Any) -> None:
        self._parts[key] = part

    def held(self, key: str, make: Callable[[], Any]) -> Any:
        """`make()` once for the benchmark (e.g. a task's scorer model), the same object in every re-run."""
        key = f"object:{key}"
        if key not in self._parts:
            self._parts[key] = make()
        return self._parts[key]


_MEMO: ContextVar[OutputMemo | None] = ContextVar("mmeval_output_memo", default=None)


def active_memo() -> OutputMemo | None:
    """The output memo of the benchmark being run, or None (no `output_memo()` block is open)."""
    return _MEMO.get()


def held_for_benchmark(key: str, make: Callable[[], Any]) -> Any:
    """`make()`, kept for the benchmark's robustness re-runs when a memo is open (so a scorer model is loaded
    once and its passes over clean inputs are reused); a plain call otherwise."""
    memo = _MEMO.get()
    return make() if memo is None else memo.held(key, make)


@contextmanager
def output_memo() -> Iterator[OutputMemo]:
    """Within the block, model passes keep and reuse their whole results in memory (see OutputMemo)."""
    memo = OutputMemo()
    token = _MEMO.set(memo)
    try:
        yield memo
    finally:
        _MEMO.reset(token)
