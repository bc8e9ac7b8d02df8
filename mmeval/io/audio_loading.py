"""Reading audio files into model-ready waveform batches: decoding in workers, padding, a per-clip decoded cache.

`AudioBatches` is the audio `BatchLoader` (`io/source.py`) the engine's model pass runs over. Clips are read and
decoded (`io/audio.read_audio`: mono, resampled to the model's rate) in DataLoader workers, which also hash the
raw bytes (the dataset digest). A batch is `{"audio": float32 [B, N] zero-padded, "lengths": int64 [B]}`; models
must ignore the padding (the capability contracts in models/base.py). Unreadable clips come back by index with
the reason, so the main process skips them (counted, named) or stops with one line (`on_bad_input: fail`); a clip
over `audio.max_seconds` with `audio.on_too_long: fail` always stops the run.

Decoded-input cache: clips have different lengths, so instead of the fixed-shape `DecodedStore` each clip is one
`.npy` file under `<cache>/audio/`, keyed by the sha256 of its bytes, `AudioSettings.key()` and the rate; every
model at the same rate (and every rerun) reads it back without decoding or resampling.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
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
    """Item k -> (source index, float32 samples or None, sha256 hex of the raw bytes, error or None, from cache)."""

    def __init__(self, source: AudioSource, settings: AudioSettings, rate: int, indices: list[int],
                 cache_dir: Path | None):  # fmt: skip
        self.source, self.settings, self.rate, self.indices, self.cache_dir = source, settings, rate, indices, cache_dir

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[int, np.ndarray | None, str, str | None, bool, bool]:
        index = self.indices[item]
        path = self.source.paths[index]
        try:
            data = self.source.read(index)
        except DataError as exc:
            return index, None, "", str(exc), False, False
        digest = hashlib.sha256(data).hexdigest()
        stored = self._stored(digest)
        if stored is not None:
            try:
                return index, np.load(stored), digest, None, False, True
            except (OSError, ValueError):
                pass  # an unreadable cache file: decode again
        try:
            samples = read_audio(path, self.settings, self.rate, data).samples
        except ClipTooLong as exc:
            return index, None, digest, str(exc), self.settings.on_too_long == "fail", False
        except DataError as exc:
            return index, None, digest, str(exc), False, False
        if stored is not None:
            _save(stored, samples)
        return index, samples, digest, None, False, False

    def _stored(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{digest}|{self.settings.key()}|{self.rate}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.npy"


def _save(path: Path, samples: np.ndarray) -> None:
    """Write atomically (a half-written file never has the final name); a failure only costs the cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, samples)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the decoded-audio cache %s (%s)", path, exc)


def pad(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, max length) float32 batch and the (B,) lengths."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.int64)
    out = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0, dtype=torch.float32)
    for row, wave in enumerate(waves):
        out[row, : len(wave)] = torch.from_numpy(wave)
    return out, lengths


def _collate(items):
    return items


class AudioBatches:
    """The `BatchLoader` of an audio pass: padded waveforms of `source` at `rate` (the model's, unless the
    settings fix one)."""

    def __init__(self, source: AudioSource, runtime, settings: AudioSettings, rate: int, on_bad_input: str):
        self.source, self.runtime, self.settings, self.on_bad_input = source, runtime, settings, on_bad_input
        self.rate = settings.sample_rate or rate
        cache = runtime.cache
        self.cache_dir = cache.root / "audio" if cache is not None and cache.pixels else None
        self.done = AudioPass()

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict[str, Any]:
        return {"audio": self.source.fingerprint(), "audio_settings": self.settings.key(), "rate": self.rate,
                "on_bad_input": self.on_bad_input}  # fmt: skip

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `batch_size` consecutive entries of `indices`, the unreadable clips left out."""
        self.done = AudioPass(timer=timer)
        dataset = _AudioDataset(self.source, self.settings, self.rate, indices, self.cache_dir)
        loader = DataLoader(dataset, batch_size=self.runtime.batch_size, num_workers=self.runtime.num_workers,
                            collate_fn=_collate, persistent_workers=False)  # fmt: skip
        iterator, began = iter(loader), _now()
        while True:
            try:
                items = next(iterator)
            except StopIteration:
                break
            finally:
                timer.data_s += _now() - began
            good, bad = [], []
            for index, samples, digest, error, fatal, cached in items:
                if digest:
                    self.done.digests[index] = digest
                if error is None:
                    good.append((index, samples))
                    self.done.decoded_from_cache += cached
                    continue
                if fatal:
                    raise ClipTooLong(error)
                if self.on_bad_input == "fail":
                    raise DataError(f"{error} (set data.on_bad_input: skip to skip such clips)")
                log.warning("skipping audio: %s", error)
                bad.append((index, error))
            self.done.bad += bad
            inputs = None
            if good:
                copied = _now()
                audio, lengths = pad([samples for _, samples in good])
                if self.runtime.device.type == "cuda":
                    audio = audio.pin_memory().to(self.runtime.device, non_blocking=True)
                    lengths = lengths.to(self.runtime.device)
                    sync(self.runtime.device)
                inputs = {"audio": audio, "lengths": lengths}
                timer.h2d_s += _now() - copied
            ok = [index for index, _ in good]
            self.done.ok_indices += ok
            yield Batch(ok, inputs, bad, {i: self.done.digests[i] for i, *_ in items if i in self.done.digests})
            began = _now()


def _now() -> float:
    import time

    return time.perf_counter()
