"""Resampling many clips in one libsoxr stream: the clips of a batch joined with silence between them.

Why: a `soxr.resample` call costs a fixed ~0.3-0.4 ms to set up its filters for a ratio such as 16000 -> 22050
Hz, as much as resampling ~2 s of audio, so for the short clips of speech and sound-event sets the set-up
dominates. Joining a batch's clips pays it once. Each clip starts at an input offset that is a multiple of the
ratio's denominator (so its output starts on an output sample, at the same filter phase as alone) and is
followed by silence longer than the filter's measured impulse response (so no clip leaks into the next); its
output is then the clip resampled as if preceded and followed by silence. Against one call per clip
(tests/audio/test_audio_resample.py, 16 kHz speech to 8-48 kHz): equal lengths, samples equal to ~3e-7 except
the output samples of the first ~3 input samples (up to 8 at 44.1 kHz), which differ by up to ~3e-4 on clips
that start with sound (a lone call starts its filter on the first sample; here it runs on the silence before
it). The silence costs 1/16 s or more per clip of extra resampling, so ratios of small terms, whose set-up is
cheap, are not joined (`joins`). No library does this join; it is written here.
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


# Joining pays only when libsoxr's set-up is costly: ~0.1-0.25 ms a call for ratios such as 441/320 (16 -> 22.05
# kHz) or 160/441 (44.1 -> 16 kHz), ~0.03 ms for small ones such as 3/1 (16 -> 48 kHz) or 1/2, where the silence
# between joined clips costs about what it saves (200 speech clips, resampling alone: to 22.05 kHz 101 ms one call
# per clip, 55 ms joined; to 48 kHz 84 ms against 91 ms; the whole audio loader to 48 kHz 96-97 ms either way).
# Those small ratios get one plain call per clip: exactly librosa's samples, at no cost.
SMALL_RATIO = 8


def joins(rate: int, rate_out: int) -> bool:
    """Whether clips going from `rate` to `rate_out` are resampled joined (else one call per clip): the reduced
    ratio up / down has a term above SMALL_RATIO."""
    g = math.gcd(rate, rate_out)
    return rate != rate_out and max(rate // g, rate_out // g) > SMALL_RATIO


def resample_joined(clips: list[np.ndarray], rate: int, rate_out: int, resampler: str) -> list[np.ndarray]:
    """Every clip of `clips` (float32, all at `rate`) resampled to `rate_out` through one libsoxr stream."""
    if not joins(rate, rate_out) or len(clips) < 2:
        return [resample(clip, rate, rate_out, resampler) for clip in clips]
    rows = [np.empty(output_length(len(clip), rate, rate_out), dtype=np.float32) for clip in clips]
    resample_into(clips, rate, rate_out, resampler, rows)
    return rows


def resample_into(clips: list[np.ndarray], rate: int, rate_out: int, resampler: str, rows: list[np.ndarray]) -> None:
    """Resample every clip of `clips` (float32, all at `rate`) into `rows[i]`, a float32 array (a row of a padded
    batch) of exactly `output_length(len(clips[i]), rate, rate_out)` samples, through one libsoxr stream
    (`JoinedStream`)."""
    if len(rows) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(rows)} rows")
    stream = JoinedStream([len(clip) for clip in clips], rate, rate_out, resampler, rows)
    for clip in clips:
        stream.feed(clip)
    stream.finish()


class JoinedStream:
    """One libsoxr stream over clips fed one at a time, in order, each clip's output written into its row (a row
    of a padded batch of exactly `output_length(lengths[i], rate, rate_out)` samples).

    The stream is fed the joined layout piece by piece (silence, clip, silence, clip, ...) and its output is
    copied straight into the rows: the same samples as one call on the joined array (a stream's output does not
    depend on how its input is cut; tests/audio/test_audio_resample.py), without allocating the joined input or
    output. Since clips come one at a time, a decoding thread can decode a clip into a small reused buffer and feed
    it at once, while it is still in the CPU's cache (io/audio_direct.py). A lone clip, or a ratio that `joins`
    leaves alone, is one plain call per clip, as `resample` gives it; matching rates copy the clip."""

    def __init__(self, lengths: list[int], rate: int, rate_out: int, resampler: str, rows: list[np.ndarray]):
        if len(rows) != len(lengths):
            raise ValueError(f"{len(lengths)} clips but {len(rows)} rows")
        for n, row in zip(lengths, rows):
            if len(row) != output_length(n, rate, rate_out):
                raise ValueError(f"a row of {len(row)} samples for a clip of {n} ({rate} -> {rate_out} Hz)")
        self.lengths, self.rate, self.rate_out, self.resampler, self.rows = lengths, rate, rate_out, resampler, rows
        self.fed, self._stream = 0, None
        if not joins(rate, rate_out) or len(lengths) == 1:
            return
        import soxr

        g = math.gcd(rate, rate_out)
        up, self._down = rate_out // g, rate // g
        self._gap = _gap(rate, rate_out, resampler)
        lead = -(-self._gap // self._down) * self._down  # silence before the first clip too: every clip alike
        # the longest piece of silence fed (after a clip: < gap + down)
        self._silence = np.zeros(lead + self._down, dtype=np.float32)
        starts, at = [], lead
        for n in lengths:
            starts.append(at // self._down * up)  # each clip starts on a multiple of `down` input samples
            at += -(-(n + self._gap) // self._down) * self._down
        self._stream = soxr.ResampleStream(rate, rate_out, 1, dtype="float32", quality=SOXR_QUALITY[resampler])
        self._writer = _RowWriter(starts, rows)
        self._writer.take(self._stream.resample_chunk(self._silence[:lead]))

    def feed(self, clip: np.ndarray) -> None:
        """The next clip: float32 samples, exactly as many as its length said."""
        if self.fed >= len(self.rows) or len(clip) != self.lengths[self.fed]:
            raise ValueError(f"clip {self.fed} of {len(self.rows)} has {len(clip)} samples, not the length given")
        row, self.fed = self.rows[self.fed], self.fed + 1
        if self._stream is None:
            row[:] = resample(clip, self.rate, self.rate_out, self.resampler)
            return
        n = len(clip)
        self._writer.take(self._stream.resample_chunk(np.ascontiguousarray(clip, dtype=np.float32)))
        padding = -(-(n + self._gap) // self._down) * self._down - n  # to the next clip's start
        self._writer.take(self._stream.resample_chunk(self._silence[:padding]))

    def finish(self) -> None:
        """Flush the stream after the last clip (every row complete)."""
        if self.fed != len(self.rows):
            raise ValueError(f"{self.fed} of {len(self.rows)} clips fed")
        if self._stream is None:
            return
        self._writer.take(self._stream.resample_chunk(self._silence[:0], last=True))
        if self._writer.next < len(self.rows):
            raise RuntimeError(f"libsoxr returned {self._writer.written} samples, fewer than the clips need")


class _RowWriter:
    """Copies consecutive pieces of the joined output into the rows whose output ranges they cover."""

    def __init__(self, starts: list[int], rows: list[np.ndarray]):
        self.starts, self.rows = starts, rows
        self.written, self.next = 0, 0  # output samples seen; the first row not yet complete

    def take(self, piece: np.ndarray) -> None:
        end = self.written + len(piece)
        while self.next < len(self.rows) and self.starts[self.next] < end:
            start, row = self.starts[self.next], self.rows[self.next]
            low, high = max(start, self.written), min(start + len(row), end)
            if high > low:
                row[low - start : high - start] = piece[low - self.written : high - self.written]
            if start + len(row) > end:
                break  # the rest of this row comes with the next piece
            self.next += 1
        self.written = end
