"""Reading audio files into model-ready waveform batches: decoding and padding in threads, the decoded cache.

`AudioBatches` is the audio `BatchLoader` (`io/source.py`) the engine's model pass runs over. Clips are read and
decoded (mono, resampled to the model's rate: `io/audio_direct.py` for plain files, `io/audio.decode_native` for
the rest and for every fault) a group of whole batches at a time in `runtime.num_workers` threads (`in_threads`:
the C libraries release the GIL), which also hash the raw bytes (the dataset digest). A batch is
`{"audio": float32 [B, N] zero-padded, "lengths": int64 [B]}`; models
must ignore the padding (the capability contracts in models/base.py). Unreadable clips come back by index with
the reason, so the main process skips them (counted, named) or stops with one line (`on_bad_input: fail`); a clip
over `audio.max_seconds` with `audio.on_too_long: fail` always stops the run.

Decoded-input cache (`io/audio_store.AudioStore`): a pass over a whole source appends every decoded clip to one
float32 file keyed by the source, the settings and the rate; a later pass (another model at the same rate, a
rerun) reads it back through a memory map, without reading, decoding or resampling a file or starting a thread.

A robustness re-run (`perturbation`, a `mmeval.perturb.Cell` of modality "audio") perturbs each clip in the
decoding threads, on the decoded mono float32 wave at the model's rate (before the model's feature extraction),
seeded by the clip's id. The decoded-input cache holds clean clips only: a perturbed pass never writes it, and
reads a complete one as the clean decoded clips it then perturbs (the perturbation comes after decoding, so that
is the same input and saves the decoding); the cell is in the output-cache key, so no perturbed pass reads a
clean pass's outputs. A cell of another modality leaves the audio, and its cache keys, clean.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmeval.config.audio import AudioSettings
from mmeval.engine.timing import Timer, sync
from mmeval.errors import DataError
from mmeval.io.audio import Audio, ClipTooLong, decode_native, read_bytes
from mmeval.io.audio_direct import decode_group, empty_batch
from mmeval.io.audio_resample import SMALL_RATIO, output_length, resample_into
from mmeval.io.audio_store import AudioStore
from mmeval.io.source import Batch, file_stamps
from mmeval.perturb import Cell, apply_cell

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
        """The files as they are now (`io.source.file_stamps`: path, size, modification time), without reading
        them; in-memory clips by their bytes."""
        if self.blobs is None:
            return file_stamps(self.paths, b"audio-files")
        digest = hashlib.sha256(b"audio-blobs")
        for path, blob in zip(self.paths, self.blobs):
            stamp = hashlib.sha256(blob).hexdigest() if blob is not None else file_stamps([path], b"")
            digest.update(f"{path}|{stamp}\n".encode())
        return digest.hexdigest()

    def subset(self, indices: list[int]) -> AudioSource:
        blobs = [self.blobs[i] for i in indices] if self.blobs is not None else None
        return AudioSource([self.paths[i] for i in indices], [self.ids[i] for i in indices], blobs)


@dataclass
class AudioPass:
    """One pass's findings: readable and unreadable clips (with the reason), raw-byte digests, timers."""

    ok_indices: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    digests: dict[int, str] = field(default_factory=dict)
    timer: Timer = field(default_factory=Timer)
    decoded_from_cache: int = 0  # clips read from the decoded-input cache (no decoding)
    decoder: dict[str, Any] = field(default_factory=dict)  # io.audio.describe_decoder(), for the report


# Clips a decoding thread reads, decodes and resamples in one go (whole batches: at least one), through one libsoxr
# stream. Swept on 200 short 16 kHz clips with 2 threads (2 cores, medians of 15 interleaved passes): groups of
# 8 / 16 / 32 / 64 clips took 90 / 86 / 86 / 103 ms to 22.05 kHz and 51 / 50 / 53 / 66 ms at 16 kHz; larger groups
# pay fewer stream set-ups but leave a thread idle at the end of a small set. Read ahead: (threads + 1) groups.
GROUP_CLIPS = 16


def resampling_policy() -> str:
    """How clips not at the model's rate are resampled, for the report (it moves samples at the 1e-4 level)."""
    return (f"one libsoxr stream per group of up to {GROUP_CLIPS} clips of one native rate, silence between them "
            f"(io/audio_resample.py: within 3e-7 of one call per clip, up to 3e-4 in a clip's first output samples); "
            f"one call per clip when the reduced rate ratio's terms are at most {SMALL_RATIO} (e.g. 16 -> 48 kHz)")


class _Reader:
    """Reads, digests, decodes (and under an audio robustness cell perturbs) whole batches of clips; called in
    the decoding threads. A batch -> (findings per clip: (index, digest, error, fatal), the readable clips'
    samples, those padded) with everything a batch needs done in the thread, so the main thread only yields."""

    def __init__(self, source: AudioSource, settings: AudioSettings, rate: int, cell: Cell | None):
        self.source, self.settings, self.rate, self.cell = source, settings, rate, cell

    def clip(self, index: int) -> tuple[int, Audio | None, str, str | None, bool]:
        """(index, decoded mono clip at its own rate or None, sha256 hex of the raw bytes, error or None, fatal)."""
        try:
            data = self.source.read(index)
        except DataError as exc:
            return index, None, "", str(exc), False
        digest = hashlib.sha256(data).hexdigest()
        from_path = self.source.blobs is None or self.source.blobs[index] is None
        try:
            return index, decode_native(self.source.paths[index], self.settings, data, from_path), digest, None, False
        except ClipTooLong as exc:
            return index, None, digest, str(exc), self.settings.on_too_long == "fail"
        except DataError as exc:
            return index, None, digest, str(exc), False

    def group(self, batches: list[list[int]]) -> list[tuple[list, list[np.ndarray], Any]]:
        """Several consecutive batches at once, so that one libsoxr stream resamples all their clips of one rate
        (io/audio_resample.py: the fewer streams, the less set-up), straight into the padded batches; returns
        each batch's result as `batch` would. Plain files go through `io/audio_direct.decode_group` (decoded and
        resampled clip by clip, in cache), anything else through `decoded_group`, which names the faults."""
        plain_files = self.source.blobs is None
        direct = decode_group(self.source.paths, batches, self.settings, self.rate) if plain_files else None
        if direct is None:
            out = self.decoded_group(batches)
        else:
            out = [([(index, digest, None, False) for index, digest in found], rows,
                    (torch.from_numpy(batch), torch.from_numpy(lengths)))
                   for found, batch, lengths, rows in direct]  # fmt: skip
        if self.cell is not None:  # perturbed in place, on the decoded wave at the model's rate
            for findings, rows, _ in out:
                good = [index for index, _, error, _ in findings if error is None]
                for index, row in zip(good, rows):
                    row[:] = perturbed_audio(self.cell, row, self.source.ids[index])
        return out

    def decoded_group(self, batches: list[list[int]]) -> list[tuple[list, list[np.ndarray], Any]]:
        """`group` through `io/audio.decode_native` clip by clip (every format, in-memory clips, and each fault
        with its own message), then one libsoxr stream per native rate over the group's decoded clips."""
        items = [self.clip(index) for indices in batches for index in indices]
        by_rate: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # native rate -> [(decoded clip, its row)]
        out, at = [], 0
        for indices in batches:
            mine, at = items[at : at + len(indices)], at + len(indices)
            decoded = [(index, audio) for index, audio, _, error, _ in mine if error is None]
            rows, padded = [], None
            if decoded:
                lengths = np.array([output_length(len(a.samples), a.rate, self.rate) for _, a in decoded], np.int64)
                batch, rows = empty_batch(lengths)
                for (_, audio), row in zip(decoded, rows):
                    by_rate.setdefault(audio.rate, []).append((audio.samples, row))
                padded = (torch.from_numpy(batch), torch.from_numpy(lengths))
            out.append(([(index, digest, error, fatal) for index, _, digest, error, fatal in mine], rows, padded))
        for rate, pairs in sorted(by_rate.items()):  # one libsoxr stream per native rate
            resample_into([clip for clip, _ in pairs], rate, self.rate, self.settings.resampler,
                          [row for _, row in pairs])  # fmt: skip
        return out

    def batch(self, indices: list[int]) -> tuple[list, list[np.ndarray], Any]:
        """One batch: (findings per clip: (index, digest, error, fatal), the readable clips' samples, those padded)."""
        return self.group([indices])[0]


def perturbed_audio(cell: Cell | None, samples: np.ndarray, clip_id: str) -> np.ndarray:
    """`samples` (the decoded mono float32 wave at the model's rate) under `cell` when it perturbs audio, seeded
    by the clip's id; else `samples` unchanged."""
    if cell is None or cell.modality != "audio":
        return samples
    out = apply_cell(cell, "audio", samples, clip_id)
    if not isinstance(out, np.ndarray) or out.shape != samples.shape:
        raise ValueError(f"audio perturbation {cell.name!r} returned {getattr(out, 'shape', type(out))}; "
                         f"expected {samples.shape}")  # fmt: skip
    return np.ascontiguousarray(out, dtype=np.float32)


def in_threads(work: Callable[[Any], Any], chunks: list[Any], threads: int) -> Iterator[Any]:
    """`work(chunk)` for every chunk, in order, computed `threads` at a time with one chunk more than `threads`
    read ahead (inline when `threads` is 0). Threads, not processes: libsndfile (reading a file), libsoxr and
    hashlib release the GIL, so the threads decode in parallel, with no worker start-up and no copying of the
    decoded samples between processes (both cost more than the decoding of short clips; scripts/bench_audio.py)."""
    if threads <= 0:
        yield from (work(chunk) for chunk in chunks)
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mmeval-audio")
    pending: deque = deque()
    try:
        ahead = iter(chunks)
        for chunk in islice(ahead, threads + 1):
            pending.append(pool.submit(work, chunk))
        while pending:
            done = pending.popleft().result()
            for chunk in islice(ahead, 1):
                pending.append(pool.submit(work, chunk))
            yield done
    finally:  # an error, a stopped pass or an interrupt: drop what was read ahead
        pool.shutdown(wait=True, cancel_futures=True)


def pad(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, max length) float32 batch of `waves` and the (B,) lengths."""
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    batch, rows = empty_batch(lengths)
    for row, wave in zip(rows, waves):
        row[:] = wave
    return torch.from_numpy(batch), torch.from_numpy(lengths)


class AudioBatches:
    """The `BatchLoader` of an audio pass: padded waveforms of `source` at `rate` (the model's, unless the
    settings fix one)."""

    def __init__(self, source: AudioSource, runtime, settings: AudioSettings, rate: int, on_bad_input: str,
                 perturbation: Cell | None = None):  # fmt: skip
        self.source, self.runtime, self.settings, self.on_bad_input = source, runtime, settings, on_bad_input
        self.rate = settings.sample_rate or rate
        self.cell = perturbation if perturbation is not None and perturbation.modality == "audio" else None
        cache, self.fingerprint = runtime.cache, source.fingerprint()  # once per pass: the files as they are now
        self.store = AudioStore(cache.root, {"audio": self.fingerprint, "settings": settings.key(), "rate": self.rate}) \
            if cache is not None and cache.pixels else None  # fmt: skip
        self.done = AudioPass()

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict[str, Any]:
        parts = {"audio": self.fingerprint, "audio_settings": self.settings.key(), "rate": self.rate,
                 "on_bad_input": self.on_bad_input}  # fmt: skip
        if self.cell is not None:  # perturbed audio: its outputs are the cell's, never the clean pass's
            parts["perturbation"] = [self.cell.modality, self.cell.name, self.cell.severity, self.cell.seed]
        return parts

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `batch_size` consecutive entries of `indices`, the unreadable clips left out. Only a pass
        over the whole source writes the decoded-input cache; any pass reads a complete one."""
        self.done = AudioPass(timer=timer)
        if self.store is not None and self.store.complete():
            yield from self._stored(indices, timer)
            return
        # the store holds clean decoded clips: a perturbed pass reads a complete one (and perturbs what it reads)
        # but never writes one
        writing = self.store is not None and self.cell is None and len(indices) == len(self.source) \
            and self.store.begin()  # fmt: skip
        try:
            yield from self._decoded(indices, timer, self.store if writing else None)
        except BaseException:
            if writing:
                self.store.abandon()
            raise
        if writing:
            self.store.finish({"bad": [list(b) for b in self.done.bad], "digests": self.done.digests})

    def _decoded(self, indices: list[int], timer: Timer, store: AudioStore | None) -> Iterator[Batch]:
        reader = _Reader(self.source, self.settings, self.rate, self.cell)
        size = self.runtime.batch_size
        chunks = [indices[start : start + size] for start in range(0, len(indices), size)]
        per_task = max(1, -(-GROUP_CLIPS // size))  # batches a thread decodes and resamples together
        groups = [chunks[start : start + per_task] for start in range(0, len(chunks), per_task)]
        done, began = in_threads(reader.group, groups, self.runtime.num_workers), _now()
        batches = (batch for group in done for batch in group)
        try:
            yield from self._collected(batches, timer, store, began)
        finally:
            batches.close()
            done.close()  # stops the threads at once when the pass stops early

    def _collected(self, batches: Iterator[Any], timer: Timer, store: AudioStore | None,
                   began: float) -> Iterator[Batch]:  # fmt: skip
        while True:
            try:
                items, waves, padded = next(batches)
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
            waves = [perturbed_audio(self.cell, self.store.clip(index), self.source.ids[index]) for index in good]
            padded = pad(waves) if good else None
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
