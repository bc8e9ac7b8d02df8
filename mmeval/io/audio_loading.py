"""Reading audio files into model-ready waveform batches: decoding and padding in workers, the decoded cache.

`AudioBatches` is the audio `BatchLoader` (`io/source.py`) the engine's model pass runs over. Clips are read and
decoded (`io/audio.read_audio`: mono, resampled to the model's rate) in DataLoader workers, which also hash the
raw bytes (the dataset digest). A batch is `{"audio": float32 [B, N] zero-padded, "lengths": int64 [B]}`; models
must ignore the padding (the capability contracts in models/base.py). Unreadable clips come back by index with
the reason, so the main process skips them (counted, named) or stops with one line (`on_bad_input: fail`); a clip
over `audio.max_seconds` with `audio.on_too_long: fail` always stops the run.

Decoded-input cache (`io/audio_store.AudioStore`): a pass over a whole source appends every decoded clip to one
float32 file keyed by the source, the settings and the rate; a later pass (another model at the same rate, a
rerun) reads it back through a memory map, without reading, decoding or resampling a file or starting a worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmeval.config.audio import AudioSettings
from mmeval.engine.timing import Timer, sync
from mmeval.errors import DataError
from mmeval.io.audio import ClipTooLong, read_audio, read_bytes
from mmeval.io.audio_store import AudioStore
from mmeval.io.source import Batch

log = logging.getLogger(__name__)


class AudioSource:
    """Audio files and their ids: the audio `InputSource` (picklable; nothing is read until a pass)."""

    def __init__(self, paths: list[Path], ids: list[str] | None = None, blobs: list[bytes | None] | None = None):
        self.paths = [Path(p) for p in paths]
        self.ids = list(ids) if ids is not None else [p.stem for p in self.paths]
        self.blobs = blobs  # in-memory clips (a Hugging Face Audio column; None: read the path), named by `paths`
        if len(self.ids) != len(self.paths) or (blobs is not None and len(blobs) != len(self.paths)):
            raise ValueError(f"{len(self.paths)} audio paths but {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def read(self, index: int) -> bytes:
        """The clip's raw bytes (DataError naming the file when missing or unreadable)."""
        blob = self.blobs[index] if self.blobs is not None else None
        return blob if blob is not None else read_bytes(self.paths[index])

    def fingerprint(self) -> str:
        """The files as they are now (path, size, modification time), without reading them; in-memory clips
        by their bytes."""
        if self.blobs is not None:
            digest = hashlib.sha256(b"audio-blobs")
            for path, blob in zip(self.paths, self.blobs):
                digest.update(f"{path}|{hashlib.sha256(blob).hexdigest() if blob is not None else _stat(path)}\n".encode())
            return digest.hexdigest()
        digest = hashlib.sha256(b"audio-files")
        for path in self.paths:
            digest.update(f"{_stat(path)}\n".encode())
        return digest.hexdigest()

    def subset(self, indices: list[int]) -> AudioSource:
        blobs = [self.blobs[i] for i in indices] if self.blobs is not None else None
        return AudioSource([self.paths[i] for i in indices], [self.ids[i] for i in indices], blobs)


def _stat(path: Path) -> str:
    try:
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    except (OSError, ValueError):
        return f"{path}|missing"


@dataclass
class AudioPass:
    """One pass's findings: readable and unreadable clips (with the reason), raw-byte digests, timers."""

    ok_indices: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    digests: dict[int, str] = field(default_factory=dict)
    timer: Timer = field(default_factory=Timer)
    decoded_from_cache: int = 0  # clips read from the decoded-input cache (no decoding)
    decoder: dict[str, Any] = field(default_factory=dict)  # io.audio.describe_decoder(), for the report


class _AudioDataset(Dataset):
    """Item k -> (source index, float32 samples or None, sha256 hex of the raw bytes, error or None, fatal)."""

    def __init__(self, source: AudioSource, settings: AudioSettings, rate: int, indices: list[int]):
        self.source, self.settings, self.rate, self.indices = source, settings, rate, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[int, np.ndarray | None, str, str | None, bool]:
        index = self.indices[item]
        try:
            data = self.source.read(index)
        except DataError as exc:
            return index, None, "", str(exc), False
        digest = hashlib.sha256(data).hexdigest()
        try:
            return index, read_audio(self.source.paths[index], self.settings, self.rate, data).samples, digest, None, False
        except ClipTooLong as exc:
            return index, None, digest, str(exc), self.settings.on_too_long == "fail"
        except DataError as exc:
            return index, None, digest, str(exc), False


def pad(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, max length) float32 batch and the (B,) lengths (filled in NumPy: torch's per-row copies
    cost more than the decoding on a busy CPU)."""
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    out = np.zeros((len(waves), int(lengths.max()) if len(waves) else 0), dtype=np.float32)
    for row, wave in enumerate(waves):
        out[row, : len(wave)] = wave
    return torch.from_numpy(out), torch.from_numpy(lengths)


def _collate(items):
    """In the worker: the items' findings, and the readable clips (also padded into one batch)."""
    good = [samples for _, samples, _, error, _ in items if error is None]
    return [(index, digest, error, fatal) for index, _, digest, error, fatal in items], good, pad(good) if good else None


class AudioBatches:
    """The `BatchLoader` of an audio pass: padded waveforms of `source` at `rate` (the model's, unless the
    settings fix one)."""

    def __init__(self, source: AudioSource, runtime, settings: AudioSettings, rate: int, on_bad_input: str):
        self.source, self.runtime, self.settings, self.on_bad_input = source, runtime, settings, on_bad_input
        self.rate = settings.sample_rate or rate
        cache, fingerprint = runtime.cache, source.fingerprint()
        self.store = AudioStore(cache.root, {"audio": fingerprint, "settings": settings.key(), "rate": self.rate}) \
            if cache is not None and cache.pixels else None  # fmt: skip
        self.done = AudioPass()

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict[str, Any]:
        return {"audio": self.source.fingerprint(), "audio_settings": self.settings.key(), "rate": self.rate,
                "on_bad_input": self.on_bad_input}  # fmt: skip

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `batch_size` consecutive entries of `indices`, the unreadable clips left out. Only a pass
        over the whole source writes the decoded-input cache; any pass reads a complete one."""
        self.done = AudioPass(timer=timer)
        if self.store is not None and self.store.complete():
            yield from self._stored(indices, timer)
            return
        writing = self.store is not None and len(indices) == len(self.source) and self.store.begin()
        try:
            yield from self._decoded(indices, timer, self.store if writing else None)
        except BaseException:
            if writing:
                self.store.abandon()
            raise
        if writing:
            self.store.finish({"bad": [list(b) for b in self.done.bad], "digests": self.done.digests})

    def _decoded(self, indices: list[int], timer: Timer, store: AudioStore | None) -> Iterator[Batch]:
        dataset = _AudioDataset(self.source, self.settings, self.rate, indices)
        loader = DataLoader(dataset, batch_size=self.runtime.batch_size, num_workers=self.runtime.num_workers,
                            collate_fn=_collate, persistent_workers=False)  # fmt: skip
        iterator, began = iter(loader), _now()
        while True:
            try:
                items, waves, padded = next(iterator)
            except StopIteration:
                break
            finally:
                timer.data_s += _now() - began
            good = []
            for index, digest, error, fatal in items:
                if digest:
                    self.done.digests[index] = digest
                if error is None:
                    good.append(index)
                else:
                    self._bad(index, error, fatal)
            if store is not None:
                for index, samples in zip(good, waves):
                    store.add(index, samples)
            yield self._batch([index for index, *_ in items], good, padded, timer)
            began = _now()

    def _stored(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches cut as when decoding (`batch_size` entries of `indices`), read from the complete store."""
        meta = self.store.meta()
        unreadable = {int(i): str(r) for i, r in meta["bad"]}
        for start in range(0, len(indices), self.runtime.batch_size):
            began = _now()
            items = indices[start : start + self.runtime.batch_size]
            good = []
            for index in items:
                if str(index) in meta["digests"]:
                    self.done.digests[index] = meta["digests"][str(index)]
                if index in unreadable:
                    self._bad(index, unreadable[index], False)
                else:
                    good.append(index)
            padded = pad([self.store.clip(index) for index in good]) if good else None
            self.done.decoded_from_cache += len(good)
            timer.data_s += _now() - began
            yield self._batch(items, good, padded, timer)

    def _bad(self, index: int, error: str, fatal: bool) -> None:
        if fatal:
            raise ClipTooLong(error)
        if self.on_bad_input == "fail":
            raise DataError(f"{error} (set data.on_bad_input: skip to skip such clips)")
        log.warning("skipping audio: %s", error)
        self.done.bad.append((index, error))

    def _batch(self, items: list[int], good: list[int], padded, timer: Timer) -> Batch:
        inputs = None
        if good:
            copied = _now()
            audio, lengths = padded
            if self.runtime.device.type == "cuda":
                audio = audio.pin_memory().to(self.runtime.device, non_blocking=True)
                lengths = lengths.to(self.runtime.device)
                sync(self.runtime.device)
            inputs = {"audio": audio, "lengths": lengths}
            timer.h2d_s += _now() - copied
        self.done.ok_indices += good
        covered = set(items)
        bad = [(i, r) for i, r in self.done.bad[-len(items):] if i in covered]  # this batch's: the last ones
        return Batch(good, inputs, bad, {i: self.done.digests[i] for i in items if i in self.done.digests})


def _now() -> float:
    import time

    return time.perf_counter()
