"""Resampling many clips in one libsoxr call: the clips of a batch joined with silence between them.

Why: a `soxr.resample` call costs a fixed ~0.3-0.4 ms to set up its filters for a ratio such as 16000 -> 22050
Hz, as much as resampling ~2 s of audio, so for the short clips of speech and sound-event sets the set-up
dominates. Joining a batch's clips pays it once. Each clip starts at an input offset that is a multiple of the
ratio's denominator (so its output starts on an output sample, at the same filter phase as alone) and is
followed by silence longer than the filter's measured impulse response (so no clip leaks into the next); its
output is then the clip resampled as if preceded and followed by silence. Against one call per clip
(tests/audio/test_audio_resample.py, 16 kHz speech to 8-48 kHz): equal lengths, samples equal to ~3e-7 except
the output samples of the first ~3 input samples (up to 8 at 44.1 kHz), which differ by up to ~3e-4 on clips
that start with sound (a lone call starts its filter on the first sample; here it runs on the silence before
it). The silence costs 1/16 s or more per clip of extra resampling. No library does this join; it is written
here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

SOXR_QUALITY = {"soxr_hq": "HQ", "soxr_vhq": "VHQ"}


def resample(samples: np.ndarray, rate: int, rate_out: int, resampler: str) -> np.ndarray:
    """One clip through libsoxr (`resampler` names its quality); unchanged when the rates match."""
    if rate == rate_out:
        return samples
    import soxr

    return soxr.resample(np.ascontiguousarray(samples, dtype=np.float32), rate, rate_out,
                         quality=SOXR_QUALITY[resampler])  # fmt: skip


def output_length(n: int, rate: int, rate_out: int) -> int:
    """libsoxr's output length for `n` input samples: n x rate_out / rate rounded half up (checked in tests)."""
    g = math.gcd(rate, rate_out)
    up, down = rate_out // g, rate // g
    return (2 * n * up + down) // (2 * down)


@lru_cache(maxsize=64)
def _gap(rate: int, rate_out: int, resampler: str) -> int:
    """Input samples of silence after a clip: twice the filter's impulse response reach (measured on an
    impulse), at least 1/16 s."""
    probe = np.zeros(4 * rate, dtype=np.float32)
    probe[2 * rate] = 1.0
    out = resample(probe, rate, rate_out, resampler)
    reach = np.flatnonzero(out)
    centre = 2 * rate_out
    extent = max(abs(int(reach.min()) - centre), abs(int(reach.max()) - centre)) if reach.size else 0
    return max(2 * math.ceil(extent * rate / rate_out), rate // 16)


def resample_joined(clips: list[np.ndarray], rate: int, rate_out: int, resampler: str) -> list[np.ndarray]:
    """Every clip of `clips` (float32, all at `rate`) resampled to `rate_out` in one libsoxr call."""
    if rate == rate_out or len(clips) < 2:
        return [resample(clip, rate, rate_out, resampler) for clip in clips]
    g = math.gcd(rate, rate_out)
    up, down = rate_out // g, rate // g
    gap = _gap(rate, rate_out, resampler)
    starts, at = [], -(-gap // down) * down  # silence before the first clip too: every clip alike
    for clip in clips:
        starts.append(at)
        at += -(-(len(clip) + gap) // down) * down
    joined = np.zeros(at, dtype=np.float32)
    for start, clip in zip(starts, clips):
        joined[start : start + len(clip)] = clip
    out = resample(joined, rate, rate_out, resampler)
    # views of one array: the batch is padded (copied) next, and the array freed with the batch
    return [out[start // down * up : start // down * up + output_length(len(clip), rate, rate_out)]
            for start, clip in zip(starts, clips)]  # fmt: skip
