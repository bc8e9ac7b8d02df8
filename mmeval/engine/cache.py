"""On-disk caches: model outputs per (model, data, preprocessing, precision), and preprocessed pixels.

Two kinds of entry, under `runtime.cache_dir` (default `$MMEVAL_CACHE_DIR`, else `$XDG_CACHE_HOME/mmeval`,
else `~/.cache/mmeval`):

- `outputs/`: image and text embeddings, generated captions and answers, with what the image pass found
  (readable images, skipped ones, raw-byte digests for the dataset hash). A rerun of the same model on the
  same data reuses them instead of running the model.
- `pixels/`: uint8 images at a model's resolution (`pixels.PixelPipeline`), one memory-mapped array per
  (image source, geometry), shared by every checkpoint with the same preprocessing: comparing N checkpoints
  decodes the images once.

An entry's key is the sha256 of everything its content depends on: for outputs the checkpoint's own hash
(a model without one, such as a plugin without a checkpoint file, is never cached), the adapter and its
architecture facts, the preprocessing, the precision and device type, the decode path, and the data's
fingerprint (file paths, sizes and modification times; a dataset library's fingerprint; the synthetic scenes).
The key's parts are also stored in the entry and compared when it is read, so an entry is never used for a
different model or data, even by a hash collision. Entries are written to a temporary name and renamed when
complete, so an interrupted run leaves no half entry. `--no-cache` (runtime.cache: false) bypasses both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmeval.files import atomic_write

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

    def pixel_store(self, parts: dict[str, Any]) -> PixelStore | None:
        if not self.pixels:
            return None
        base, canonical = self._paths("pixels", parts)
        return PixelStore(base, canonical)


class PixelStore:
    """A memory-mapped uint8 array of one image source at one geometry, with the pass's findings.

    Reading: `complete()` then `array()` (N, 3, H, W), `meta()` (readable indices, skipped ones, digests).
    Writing: `begin(n, shape)`, `write(indices, pixels)` per batch, `finish(meta)`; the array is renamed into
    place only by `finish`, so a store is either complete or absent.
    """

    def __init__(self, base: Path, canonical: str):
        self.base = base
        self.canonical = canonical
        self._writing: np.memmap | None = None
        self._tmp: Path | None = None

    def complete(self) -> bool:
        try:
            return json.loads(self.base.with_suffix(".json").read_text()).get("key") == self.canonical
        except (OSError, ValueError):
            return False

    def meta(self) -> dict[str, Any]:
        return json.loads(self.base.with_suffix(".json").read_text())["meta"]

    def array(self) -> np.ndarray:
        meta = self.meta()
        return np.memmap(self.base.with_suffix(".u8"), dtype=np.uint8, mode="r", shape=tuple(meta["shape"]))

    def begin(self, n: int, shape: tuple[int, ...]) -> bool:
        """Start writing an (n, *shape) array; False (and no store) if the folder cannot be written."""
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.base.name}.", suffix=".u8", dir=self.base.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            self._writing = np.memmap(self._tmp, dtype=np.uint8, mode="w+", shape=(n, *shape))
            return True
        except OSError as exc:
            log.warning("could not start the pixel cache %s (%s); continuing without it", self.base, exc)
            self.abandon()
            return False

    def write(self, indices: list[int], pixels: torch.Tensor) -> None:
        if self._writing is not None:
            self._writing[indices] = pixels.numpy()

    def finish(self, meta: dict[str, Any]) -> None:
        if self._writing is None or self._tmp is None:
            return
        try:
            self._writing.flush()
            meta = {**meta, "shape": list(self._writing.shape)}
            del self._writing
            self._writing = None
            os.replace(self._tmp, self.base.with_suffix(".u8"))
            atomic_write(self.base.with_suffix(".json"),
                    lambda p: p.write_text(json.dumps({"key": self.canonical, "meta": meta})))  # fmt: skip
        except OSError as exc:
            log.warning("could not finish the pixel cache %s (%s)", self.base, exc)
        finally:
            self.abandon()

    def abandon(self) -> None:
        self._writing = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None
