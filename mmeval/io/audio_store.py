"""The decoded-input cache for audio: every clip of one source, decoded at one rate and settings, in one file.

Clips differ in length, so instead of the fixed-shape `decoded_cache.DecodedStore` the samples of all readable
clips are appended to one float32 file as a pass decodes them, with each clip's (offset, length) and the pass's
findings (unreadable clips with the reason, raw-byte digests) in a JSON beside it. Keyed by the source's
fingerprint, `AudioSettings.key()` and the rate (`Cache` key rules), it is shared by every model at that rate: a
later pass reads a memory map, with no file reads, decoding, resampling or worker start-up. Like `DecodedStore`, a
store is either complete or absent: the data file and its JSON get their final names only when the pass finished.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.engine.cache import entry_key
from mmeval.files import atomic_write

log = logging.getLogger(__name__)


class AudioStore:
    """Reading: `complete()`, `meta()`, `clip(index)`. Writing: `begin()`, `add(index, samples)` per clip,
    `finish(findings)`; `abandon()` on failure."""

    def __init__(self, root: Path, parts: dict[str, Any]):
        key, self.canonical = entry_key(parts)
        self.base = root / "audio" / key[:2] / key
        self._handle = None
        self._tmp: Path | None = None
        self._offsets: dict[str, list[int]] = {}
        self._at = 0
        self._map: np.ndarray | None = None
        self._meta: dict[str, Any] | None = None

    def complete(self) -> bool:
        try:
            return json.loads(self.base.with_suffix(".json").read_text()).get("key") == self.canonical
        except (OSError, ValueError):
            return False

    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = json.loads(self.base.with_suffix(".json").read_text())["meta"]
        return self._meta

    def clip(self, index: int) -> np.ndarray:
        if self._map is None:
            total = int(self.meta()["samples"])
            self._map = np.memmap(self.base.with_suffix(".float32"), dtype=np.float32, mode="r", shape=(total,))
        start, length = self.meta()["offsets"][str(index)]
        return np.array(self._map[start : start + length])

    def begin(self) -> bool:
        try:
            self.base.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.base.name}.", suffix=".float32", dir=self.base.parent)
            self._handle, self._tmp = os.fdopen(fd, "wb"), Path(tmp)
            return True
        except OSError as exc:
            log.warning("could not start the decoded-audio cache %s (%s); continuing without it", self.base, exc)
            self.abandon()
            return False

    def add(self, index: int, samples: np.ndarray) -> None:
        if self._handle is None:
            return
        try:
            self._handle.write(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
        except OSError as exc:
            log.warning("could not write the decoded-audio cache %s (%s)", self.base, exc)
            self.abandon()
            return
        self._offsets[str(index)] = [self._at, len(samples)]
        self._at += len(samples)

    def finish(self, findings: dict[str, Any]) -> None:
        if self._handle is None or self._tmp is None:
            return
        try:
            self._handle.close()
            self._handle = None
            os.replace(self._tmp, self.base.with_suffix(".float32"))
            meta = {**findings, "offsets": self._offsets, "samples": self._at}
            atomic_write(self.base.with_suffix(".json"),
                         lambda p: p.write_text(json.dumps({"key": self.canonical, "meta": meta})))  # fmt: skip
        except OSError as exc:
            log.warning("could not finish the decoded-audio cache %s (%s)", self.base, exc)
        finally:
            self.abandon()

    def abandon(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None
