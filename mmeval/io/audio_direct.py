"""Decoding a group of plain sound files straight into padded batches, each clip resampled while it is in cache.

Why: the general path (`io/audio.decode_native` per clip, then one `io/audio_resample.resample_into` per group)
decodes all of a group's clips into fresh arrays and resamples them afterwards. On two cores, two decoding
threads doing that contend for memory (16 decoded speech clips are ~1.6 MB, more than a core's share of the L2
cache): each thread's CPU time grows by a fifth. Here a group's files are opened first (their headers give every
row's length, so the padded batches are allocated up front), then each clip is decoded into the thread's reused
buffer and fed to the group's libsoxr stream at once, or, when the file is mono and at the model's rate, decoded
straight into its row. 200 spoken-shapes clips to 22.05 kHz in 2 threads: 82-97 ms against 104-109 ms
(scripts/bench_audio.py). The samples are the general path's, bit for bit (tests/audio/test_audio_direct.py).

Anything unusual in a group (in-memory clips, a file libsndfile does not read, an unreadable, empty or truncated
file, an implausible header, a clip over `max_seconds` with `on_too_long` skip / fail, NaN / Inf samples) makes
`decode_group` return None, and the general path decodes the group and names the fault: every message is made
in one place.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from mmeval.config.audio import AudioSettings
from mmeval.errors import DataError
from mmeval.io.audio import SOUNDFILE_SUFFIXES, check_rate, check_wav_header, frame_limit, over_limit, read_bytes
from mmeval.io.audio_resample import JoinedStream, output_length
from mmeval.io.sndfile_direct import OpenSoundFile, open_sound

# per batch: ([(clip index, sha256 of its bytes)], padded float32 (B, N) batch, int64 (B,) lengths, row views)
DecodedBatch = tuple[list[tuple[int, str]], np.ndarray, np.ndarray, list[np.ndarray]]

_scratch = threading.local()  # each decoding thread's reused buffer
_KEPT_SAMPLES = 1 << 22  # 16 MB of float32: 87 s of 48 kHz stereo; longer clips get a buffer of their own


def empty_batch(lengths: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """A (B, max length) float32 batch with only its padding zeroed, and each row's first `lengths[i]` samples as
    a view to fill (filled in NumPy: torch's per-row copies cost more than the decoding on a busy CPU)."""
    batch = np.empty((len(lengths), int(lengths.max()) if len(lengths) else 0), dtype=np.float32)
    rows = []
    for row, n in enumerate(lengths):
        batch[row, n:] = 0.0
        rows.append(batch[row, :n])
    return batch, rows


def decode_group(paths: list[Path], batches: list[list[int]], settings: AudioSettings,
                 rate: int) -> list[DecodedBatch] | None:  # fmt: skip
    """The clips `paths[i]` of each batch of `batches` (lists of indices), decoded, mixed down to mono and
    resampled to `rate` into one padded batch each; None when any clip is not plain (the general path then
    decodes the group and names the fault)."""
    opened: list[tuple[int, str, OpenSoundFile]] = []
    try:
        for index in (index for indices in batches for index in indices):
            plain = _open(paths[index], settings)
            if plain is None:
                return None
            opened.append((index, *plain))
        return _decode(opened, batches, settings, rate)
    finally:
        for _, _, sound in opened:
            sound.close()


def _open(path: Path, settings: AudioSettings) -> tuple[str, OpenSoundFile] | None:
    """(sha256 of the file's bytes, the file opened) when it is plain; else None."""
    if path.suffix.lower() not in SOUNDFILE_SUFFIXES:
        return None
    try:
        data = read_bytes(path)
        check_wav_header(path, data)
    except DataError:
        return None
    sound = open_sound(path, lambda native: frame_limit(settings, native)) if data else None
    if sound is None:
        return None
    try:
        rate = check_rate(path, sound.rate)
    except DataError:
        rate = None
    # over max_seconds with on_too_long skip / fail: the general path says so (truncate is read up to the limit)
    refused = rate is not None and settings.on_too_long != "truncate" \
        and over_limit(settings, sound.declared_frames / rate)  # fmt: skip
    if rate is None or refused or sound.frames == 0:
        sound.close()
        return None
    return hashlib.sha256(data).hexdigest(), sound


def _decode(opened: list[tuple[int, str, OpenSoundFile]], batches: list[list[int]], settings: AudioSettings,
            rate: int) -> list[DecodedBatch] | None:  # fmt: skip
    out: list[DecodedBatch] = []
    jobs: list[tuple[OpenSoundFile, np.ndarray]] = []  # every clip and its row, in order
    at = 0
    for indices in batches:
        mine, at = opened[at : at + len(indices)], at + len(indices)
        lengths = np.array([output_length(sound.frames, sound.rate, rate) for _, _, sound in mine], np.int64)
        batch, rows = empty_batch(lengths)
        jobs += [(sound, row) for (_, _, sound), row in zip(mine, rows)]
        out.append(([(index, digest) for index, digest, _ in mine], batch, lengths, rows))
    by_rate: dict[int, list[tuple[OpenSoundFile, np.ndarray]]] = {}
    for sound, row in jobs:
        by_rate.setdefault(sound.rate, []).append((sound, row))
    streams = {native: JoinedStream([sound.frames for sound, _ in pairs], native, rate, settings.resampler,
                                    [row for _, row in pairs])
               for native, pairs in by_rate.items() if native != rate}  # fmt: skip
    for sound, row in jobs:
        into_row = sound.rate == rate and sound.channels == 1
        samples = row.reshape(-1, 1) if into_row else _buffer(sound.frames, sound.channels)
        if not sound.read_into(samples) or not np.isfinite(samples).all():
            return None
        mono = samples[:, 0] if sound.channels == 1 else samples.mean(axis=1, dtype=np.float32)
        if sound.rate != rate:
            streams[sound.rate].feed(mono)
        elif not into_row:
            row[:] = mono
    for stream in streams.values():
        stream.finish()
    return out


def _buffer(frames: int, channels: int) -> np.ndarray:
    """This thread's reused float32 (frames, channels) buffer: a clip decoded into it is still in the CPU's cache
    when it is resampled, and no fresh memory is touched. A clip over `_KEPT_SAMPLES` (long recordings) gets an
    array of its own, so a thread never holds on to hundreds of MB after it."""
    need = frames * channels
    if need > _KEPT_SAMPLES:
        return np.empty((frames, channels), dtype=np.float32)
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or len(buffer) < need:
        buffer = _scratch.buffer = np.empty(max(need, 1 << 16), dtype=np.float32)
    return buffer[:need].reshape(frames, channels)
