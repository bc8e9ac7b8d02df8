"""Reading a sound file with the libsndfile that `soundfile` loaded, in four C calls and no Python in between.

Why: `soundfile.SoundFile(path).read()` spends ~0.13 ms per file in Python (mode parsing, path checks, seeks,
format lookups) holding the GIL; for the short clips of speech and sound-event sets that is a third of the
decoding, and it stops decoding threads from running in parallel (200 spoken-shapes FLAC clips on 2 cores:
87 ms with two threads through `soundfile.read`, 53 ms through this; scripts/bench_audio.py). `soundfile` has no
public call without that overhead, so the happy path is written here: `sf_open`, `sf_readf_float` into a NumPy
array, `sf_close`, each releasing the GIL (cffi does for every C call). The samples are libsndfile's own
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


def read_frames(path: Path | str, max_frames: Callable[[int], int | None] | None = None) -> SoundFileFrames | None:
    """All frames of the file at `path` as float32 (at most `max_frames(its rate)` when given), or None when the
    direct read is not possible or not clean (the caller then goes through `soundfile`, which names the reason)."""
    library = _library()
    if library is None:
        return None
    ffi, lib, formats, subtypes = library
    info = ffi.new("SF_INFO*")
    handle = lib.sf_open(os.fsencode(str(path)), _SFM_READ, info)
    if handle == ffi.NULL:
        return None
    try:
        declared, channels = int(info.frames), int(info.channels)
        if declared < 0 or channels <= 0:
            return None
        limit = max_frames(int(info.samplerate)) if max_frames is not None else None
        wanted = declared if limit is None else min(declared, limit)
        samples = np.empty((wanted, channels), dtype=np.float32)
        got = lib.sf_readf_float(handle, ffi.from_buffer("float[]", samples), wanted) if wanted else 0
    finally:
        lib.sf_close(handle)
    if got != wanted:
        return None  # truncated or undecodable: the public path says which
    return SoundFileFrames(samples, int(info.samplerate), declared, formats.get(info.format & _FORMAT_TYPEMASK, "?"),
                           subtypes.get(info.format & _FORMAT_SUBMASK, "?"))  # fmt: skip
