"""`benchmarks[].audio`: how an audio benchmark's clips are decoded (rate, length limit, downmix, resampler).

Torch-free (read by `mmeval validate`); `mmeval.io.audio` applies it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmeval.config.base import _Strict

# Named resamplers (the `soxr` package, libsoxr): "soxr_hq" is libsoxr's HQ quality (its default, 20-bit
# precision), "soxr_vhq" its VHQ (28-bit). Both are band-limited; they move WER only for clips not already at
# the model's rate.
RESAMPLERS = ("soxr_hq", "soxr_vhq")


class AudioSettings(_Strict):
    """How clips become model input: mono float32 at one sample rate, optionally length-limited."""

    sample_rate: int | None = Field(None, gt=0, description="resample every clip to this rate (Hz); "
                                    "None: the model's own rate")  # fmt: skip
    max_seconds: float | None = Field(None, gt=0, description="the longest clip (seconds); None: no limit")
    on_too_long: Literal["truncate", "skip", "fail"] = Field(
        "skip", description="a clip over max_seconds: truncate it, skip it (counted and named), or stop the run")
    mono: Literal["mean"] = Field("mean", description="how channels are combined: their mean")
    resampler: Literal["soxr_hq", "soxr_vhq"] = Field("soxr_hq", description="the resampler (the soxr package)")

    def key(self) -> str:
        """What decoded samples depend on, as a short string for cache keys and the report."""
        return (f"rate={self.sample_rate}|max={self.max_seconds}|long={self.on_too_long}|mono={self.mono}"
                f"|resampler={self.resampler}")  # fmt: skip
