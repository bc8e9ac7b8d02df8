"""Opening and reading a sound file with the libsndfile that `soundfile` loaded, in three C calls.

Why: `soundfile.SoundFile(path).read()` spends ~0.13 ms per file in Python (mode parsing, path checks, seeks,
format lookups) holding the GIL; for the short clips of speech and sound-event sets that is a third of the
decoding, and it stops decoding threads from running in parallel (200 spoken-shapes FLAC clips on 2 cores:
87 ms with two threads through `soundfile.read`, 53 ms through this; scripts/bench_audio.py). `soundfile` has no
public call without that overhead, so the happy path is written here: `sf_open` (`open_sound`: the header),
`sf_readf_float` into a NumPy array (`read_into`: any array of the right shape, e.g. a reused buffer or a batch
row), `sf_close`, each releasing the GIL (cffi does for every C call). The samples are libsndfile's own
(normalised float, as `soundfile.read(dtype="float32")` gives; tests/audio/test_sndfile_direct.py checks them
equal). Anything unusual (a file libsndfile cannot open, fewer frames than declared, soundfile without the
attributes used) returns None, and the caller reads the file through `soundfile`'s public API, whose messages
name the fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

_SFM_READ = 0x10  # libsndfile's open mode for reading (sndfile.h)
_FORMAT_TYPEMASK, _FORMAT_SUBMASK = 0x0FFF0000, 0x0000FFFF


@dataclass
class SoundFileFrames:
    """What one read gave: float32 samples (frames, channels), the header's rate and declared frames, and the
    container / encoding names as `soundfile` spells them (e.g. "FLAC", "PCM_16")."""

    samples: np.ndarray
    rate: int
    declared_frames: int
    format: str
    subtype: str


@lru_cache(maxsize=1)
def _library() -> tuple[Any, Any, dict[int, str], dict[int, str]] | None:
    """(cffi FFI, the loaded libsndfile, format names, subtype names), or None when `soundfile` lacks them."""
    try:
        import soundfile

        ffi, lib = soundfile._ffi, soundfile._snd
        formats = {value: name for name, value in soundfile._formats.items()}
        subtypes = {value: name for name, value in soundfile._subtypes.items()}
        ffi.typeof("SF_INFO")
        for name in ("sf_open", "sf_readf_float", "sf_close"):
            getattr(lib, name)
    except (ImportError, AttributeError, KeyError, TypeError):
        return None
    return ffi, lib, formats, subtypes


class OpenSoundFile:
    """A file libsndfile has opened, its header read and nothing decoded yet: `frames` (what a read gives: the
    declared frames, at most `max_frames(rate)`) are decoded by `read_into` into any float32 array of that shape,
    such as a decoding thread's reused buffer or a padded batch's row (io/audio_direct.py). Close it after."""

    def __init__(self, handle: Any, rate: int, declared: int, channels: int, frames: int, format: str,
                 subtype: str):  # fmt: skip
        self._handle, self.rate, self.declared_frames, self.channels = handle, rate, declared, channels
        self.frames, self.format, self.subtype = frames, format, subtype

    def read_into(self, out: np.ndarray) -> bool:
        """Decode all `frames` into `out` (C-contiguous float32, frames x channels); False when fewer could be
        read (a truncated or undecodable file: the public path names it)."""
        if out.shape != (self.frames, self.channels) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"read_into needs a C-contiguous float32 ({self.frames}, {self.channels}) array, "
                             f"not {out.dtype} {out.shape}")  # fmt: skip
        ffi, lib = _library()[:2]
        if not self.frames:
            return True
        return lib.sf_readf_float(self._handle, ffi.from_buffer("float[]", out), self.frames) == self.frames

    def close(self) -> None:
        if self._handle is not None:
            _library()[1].sf_close(self._handle)
            self._handle = None


def open_sound(path: Path | str, max_frames: Callable[[int], int | None] | None = None) -> OpenSoundFile | None:
    """The file at `path` opened through libsndfile with its header read, or None when the direct read is not
    possible (no such file, a format libsndfile does not know, an implausible header: the public path names it)."""
    library = _library()
    if library is None:
        return None
    ffi, lib, formats, subtypes = library
    info = ffi.new("SF_INFO*")
    handle = lib.sf_open(os.fsencode(str(path)), _SFM_READ, info)
    if handle == ffi.NULL:
        return None
    declared, channels, rate = int(info.frames), int(info.channels), int(info.samplerate)
    if declared < 0 or channels <= 0:
        lib.sf_close(handle)
        return None
    limit = max_frames(rate) if max_frames is not None else None
    return OpenSoundFile(handle, rate, declared, channels, declared if limit is None else min(declared, limit),
                         formats.get(info.format & _FORMAT_TYPEMASK, "?"),
                         subtypes.get(info.format & _FORMAT_SUBMASK, "?"))  # fmt: skip


def read_frames(path: Path | str, max_frames: Callable[[int], int | None] | None = None) -> SoundFileFrames | None:
    """All frames of the file at `path` as float32 (at most `max_frames(its rate)` when given), or None when the
    direct read is not possible or not clean (the caller then goes through `soundfile`, which names the reason)."""
    opened = open_sound(path, max_frames)
    if opened is None:
        return None
    try:
        samples = np.empty((opened.frames, opened.channels), dtype=np.float32)
        complete = opened.read_into(samples)
    finally:
        opened.close()
    if not complete:
        return None  # truncated or undecodable: the public path says which
    return SoundFileFrames(samples, opened.rate, opened.declared_frames, opened.format, opened.subtype)
