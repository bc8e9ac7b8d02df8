"""Decoding one audio file into mono float32 samples at a target rate, or a `DataError` naming the file.

soundfile (libsndfile) reads WAV / FLAC / OGG; PyAV (FFmpeg) reads everything else (MP3, M4A, ...). Channels are
averaged, then the `soxr` package (libsoxr) resamples. Checked, each with its own message: a missing or empty
file, an undecodable or truncated one (fewer frames than its header declares), a header with an implausible
sample rate, a clip with no samples or with NaN / Inf samples, and a clip over `max_seconds`
(`on_too_long`: truncate, skip, fail). A plausible but wrong rate in a header cannot be detected from the samples;
the original rate and duration are kept in `Audio.info` so it shows in per-sample rows.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.config.audio import AudioSettings
from mmeval.errors import DataError
from mmeval.io.audio_resample import SOXR_QUALITY, resample
from mmeval.io.sndfile_direct import read_frames

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}
RATE_RANGE = (1000, 768_000)  # header rates outside this are corrupt metadata, not audio


class ClipTooLong(DataError):
    """A clip over `max_seconds` with `on_too_long` skip or fail (the loader stops the run on fail)."""


@dataclass
class Audio:
    """Decoded mono samples at `rate`, and what the file said about itself (original rate, channels, ...)."""

    samples: np.ndarray  # float32 (N,)
    rate: int
    info: dict[str, Any] = field(default_factory=dict)


def read_audio(path: Path | str, settings: AudioSettings, target_rate: int, data: bytes | None = None,
               from_path: bool = False) -> Audio:
    """Decode `path` (or its bytes `data`, already read) to mono float32 at `settings.sample_rate` (or
    `target_rate`, the model's, when unset). Errors name `path`. `from_path`: see `decode_native`."""
    native = decode_native(path, settings, data, from_path)
    rate_out = settings.sample_rate or target_rate
    return Audio(resample(native.samples, native.rate, rate_out, settings.resampler), rate_out, native.info)


def decode_native(path: Path | str, settings: AudioSettings, data: bytes | None = None,
                  from_path: bool = False) -> Audio:  # fmt: skip
    """Decode `path` (or its bytes `data`) to mono float32 at the file's own rate, cut to `settings.max_seconds`
    (the loader resamples a batch of these at once: io/audio_resample.py). Errors name `path`.

    `from_path`: libsndfile decodes the file at `path` itself rather than `data` (the same bytes, already read for
    the checks and the digest): reading from memory goes through Python read callbacks that hold the GIL, reading
    the file does not, so decoding threads run in parallel (io/audio_loading.py)."""
    path = Path(path)
    if data is None:
        data = read_bytes(path)
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        samples, rate, info = _read_soundfile(path, data, settings, from_path)
    else:
        samples, rate, info = _read_av(path, data, settings)
    if samples.size == 0:
        raise DataError(f"{path}: no audio samples (zero-length clip)")
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: NaN or Inf samples")
    if samples.ndim == 2 and samples.shape[1] == 1:
        mono = samples[:, 0]  # one channel: its own samples (a mean over one channel would only copy them)
    else:
        mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)
    mono = _cut(path, mono, rate, settings, info)
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), rate, info)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or a DataError naming it (missing, unreadable)."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from exc


def check_rate(path: Path, rate: Any) -> int:
    """`rate` when it is a plausible header rate, else a DataError naming `path`."""
    if not isinstance(rate, int) or not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise DataError(f"{path}: implausible sample rate {rate!r} Hz in the header (expected "
                        f"{RATE_RANGE[0]}..{RATE_RANGE[1]}); the file's metadata is wrong")  # fmt: skip
    return rate


def frame_limit(settings: AudioSettings, rate: int) -> int | None:
    """Frames to read at most (truncate: the limit; skip / fail: one past it, enough to tell)."""
    if settings.max_seconds is None:
        return None
    return math.floor(settings.max_seconds * rate) + (0 if settings.on_too_long == "truncate" else 1)


def over_limit(settings: AudioSettings, duration_s: float) -> bool:
    """Whether a clip of `duration_s` (the header's, or the decoded samples') is over `max_seconds`."""
    return settings.max_seconds is not None and duration_s > settings.max_seconds


def _cut(path: Path, mono: np.ndarray, rate: int, settings: AudioSettings, info: dict[str, Any]) -> np.ndarray:
    if not over_limit(settings, info["duration_s"]):
        return mono
    if settings.on_too_long == "truncate":
        info["truncated_to_s"] = settings.max_seconds
        return mono[: math.floor(settings.max_seconds * rate)]
    raise ClipTooLong(f"{path}: clip is {info['duration_s']:.2f} s, over audio.max_seconds = "
                      f"{settings.max_seconds:g} (audio.on_too_long: {settings.on_too_long})")  # fmt: skip


def _read_soundfile(path: Path, data: bytes, settings: AudioSettings,
                    from_path: bool = False) -> tuple[np.ndarray, int, dict[str, Any]]:  # fmt: skip
    import soundfile as sf

    check_wav_header(path, data)
    direct = read_frames(path, lambda rate: frame_limit(settings, rate)) if from_path else None
    if direct is not None:  # the common case without soundfile's per-call Python (io/sndfile_direct.py)
        rate = check_rate(path, direct.rate)
        info = {"original_rate": rate, "channels": direct.samples.shape[1], "duration_s": direct.declared_frames / rate,
                "codec": f"{direct.format}/{direct.subtype}"}  # fmt: skip
        return direct.samples, rate, info
    try:
        with sf.SoundFile(str(path) if from_path else io.BytesIO(data)) as handle:
            rate = check_rate(path, handle.samplerate)
            declared = handle.frames
            info = {"original_rate": rate, "channels": handle.channels, "duration_s": declared / rate,
                    "codec": f"{handle.format}/{handle.subtype}"}  # fmt: skip
            wanted = frame_limit(settings, rate)
            frames = declared if wanted is None else min(declared, wanted)
            samples = handle.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot decode audio ({_first_line(exc)})") from exc
    if len(samples) < frames:
        raise DataError(f"{path}: truncated audio (the header declares {declared} frames, "
                        f"{len(samples)} could be read)")  # fmt: skip
    return samples, rate, info


def check_wav_header(path: Path, data: bytes) -> None:
    """Two header faults libsndfile does not name: a sample rate of 0 or nonsense in the fmt chunk (it says only
    "SF_INFO struct incomplete" or decodes at that rate), and a `data` chunk declared longer than the file holds
    (it silently shortens the frame count). Written here because no library reports either."""
    import struct

    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return  # RIFX, RF64, W64 and friends: trust libsndfile
    at = 12
    while at + 8 <= len(data):
        chunk, length = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        if chunk == b"fmt " and at + 16 <= len(data):
            check_rate(path, struct.unpack("<I", data[at + 12 : at + 16])[0])
        if chunk == b"data":
            if length != 0xFFFFFFFF and at + 8 + length > len(data):
                raise DataError(f"{path}: truncated audio (the data chunk declares {length} bytes, "
                                f"{len(data) - at - 8} are in the file)")  # fmt: skip
            return
        at += 8 + length + (length & 1)


def _read_av(path: Path, data: bytes, settings: AudioSettings) -> tuple[np.ndarray, int, dict[str, Any]]:
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise DataError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            rate = check_rate(path, stream.rate)
            channels = stream.channels
            # fltp: float planar, one row per channel, whatever the codec's own sample format
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
            wanted, have, pieces = frame_limit(settings, rate), 0, []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray())
                    have += pieces[-1].shape[1]
                if wanted is not None and have >= wanted:
                    break
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray())
            codec = stream.codec_context.name
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: cannot decode audio ({_first_line(exc)})") from exc
    samples = np.concatenate(pieces, axis=1).T if pieces else np.zeros((0, channels), np.float32)
    total = len(samples)
    if wanted is not None:
        samples = samples[:wanted]
    # an MP3 / M4A header holds no reliable frame count: the duration is that of the decoded samples (or at
    # least the limit, when decoding stopped there)
    info = {"original_rate": rate, "channels": channels, "duration_s": total / rate, "codec": codec}
    return samples, rate, info


def _first_line(exc: BaseException) -> str:
    """The library's own reason, without soundfile's "Error opening <BytesIO object at 0x...>: " (or "'<path>': ")
    prefix: the message names the file already."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return re.sub(r"^Error opening (<[^>]*>|'[^']*'): ", "", line)


def describe_decoder(settings: AudioSettings | None = None) -> dict[str, Any]:
    """The decoding libraries and versions, and the resampler, for the report."""
    import av
    import soundfile as sf
    import soxr

    settings = settings or AudioSettings()
    return {"soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__, "av": av.__version__,
            "ffmpeg": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())) or None,
            "resampler": f"{settings.resampler} (soxr {soxr.__version__}, libsoxr quality "
                         f"{SOXR_QUALITY[settings.resampler]})",
            "mono": settings.mono, "settings": settings.model_dump()}  # fmt: skip
