"""The decoded-input cache: a source's items decoded and preprocessed once, read back without decoding.

One store holds every item of one source at one preprocessing as a memory-mapped array (N, *item shape) of a
fixed dtype, with what the decoding pass found (readable items, unreadable ones with the reason, raw-byte
digests). Keyed by the source's fingerprint and the preprocessing (`Cache.decoded_store`), it is shared by every
model with the same preprocessing: comparing N checkpoints decodes the data once. Images are its first user
(uint8 pixels at a model's geometry, under `pixels/`); video frames or audio waveforms at a fixed length fit the
same store under a folder of their own.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.files import atomic_write

log = logging.getLogger(__name__)


class DecodedStore:
    """A memory-mapped array of one source's decoded items, with the pass's findings.

    Reading: `complete()` then `array()` (N, *shape), `meta()` (readable indices, skipped ones, digests).
    Writing: `begin(n, shape)`, `write(indices, values)` per batch, `finish(meta)`; the array is renamed into
    place only by `finish`, so a store is either complete or absent.
    """

    def __init__(self, base: Path, canonical: str, dtype: np.dtype | type = np.uint8):
        self.base = base
        self.canonical = canonical
        self.dtype = np.dtype(dtype)
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
        return np.memmap(self._data_path(), dtype=self.dtype, mode="r", shape=tuple(meta["shape"]))

    def begin(self, n: int, shape: tuple[int, ...]) -> bool:
        """Start writing an (n, *shape) array; False (and no store) if the folder cannot be written."""
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.base.name}.", suffix=self._data_path().suffix,
                                       dir=self.base.parent)  # fmt: skip
            os.close(fd)
            self._tmp = Path(tmp)
            self._writing = np.memmap(self._tmp, dtype=self.dtype, mode="w+", shape=(n, *shape))
            return True
        except OSError as exc:
            log.warning("could not start the decoded-input cache %s (%s); continuing without it", self.base, exc)
            self.abandon()
            return False

    def write(self, indices: list[int], values: Any) -> None:
        """Rows `indices` of the array (a CPU tensor or array of `len(indices)` items)."""
        if self._writing is not None:
            self._writing[indices] = values.numpy() if hasattr(values, "numpy") else values

    def finish(self, meta: dict[str, Any]) -> None:
        if self._writing is None or self._tmp is None:
            return
        try:
            self._writing.flush()
            meta = {**meta, "shape": list(self._writing.shape)}
            del self._writing
            self._writing = None
            os.replace(self._tmp, self._data_path())
            atomic_write(self.base.with_suffix(".json"),
                    lambda p: p.write_text(json.dumps({"key": self.canonical, "meta": meta})))  # fmt: skip
        except OSError as exc:
            log.warning("could not finish the decoded-input cache %s (%s)", self.base, exc)
        finally:
            self.abandon()

    def abandon(self) -> None:
        self._writing = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None

    def _data_path(self) -> Path:
        """`<key>.u8` for uint8 (the pixel cache's layout), `<key>.<dtype>` otherwise (e.g. `.float32`)."""
        return self.base.with_suffix(".u8" if self.dtype == np.uint8 else f".{self.dtype.name}")
