"""How frames are sampled from a video: a benchmark's `frames:` field (torch-free, so configs stay light).

Three modes (every one gives exactly `frames` frames per clip, so clips batch as (B, T, 3, H, W)):

- `uniform` (TSN-style segment sampling, the default of CLIP4Clip / X-CLIP evaluation): the clip window is cut
  into `frames` equal segments and one frame is taken per segment, its middle (`pick: middle`) or a seeded random
  instant (`pick: random`);
- `fps`: one frame every `1 / fps` seconds from the window start; a clip shorter than `frames / fps` repeats its
  last frame;
- `window`: `frames` consecutive frames at the video's own rate (or at `fps` when set): a dense window (the
  action-recognition test crop) centred in the clip window (`middle`) or at a seeded random offset (`random`).

An instant maps to the frame on screen then (the last frame whose presentation time is <= the instant), so
variable frame rates are handled by timestamps, not frame counts, and a video with fewer frames than asked
repeats frames. `start` / `end` (seconds) restrict the clip window.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FrameSampling(BaseModel):
    """Which frames of a video a model sees (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    frames: int = Field(8, ge=1, le=1024, description="frames per clip")
    mode: Literal["uniform", "fps", "window"] = Field("uniform", description="uniform | fps | window")
    pick: Literal["middle", "random"] = Field("middle", description="the instant taken in a segment / the window")
    seed: int = Field(0, description="seed of pick: random (per video: seed and the file name)")
    fps: float | None = Field(None, gt=0, description="fps mode: frames per second (required); window: the rate")
    start: float | None = Field(None, ge=0, description="clip window start, seconds")
    end: float | None = Field(None, gt=0, description="clip window end, seconds")

    @model_validator(mode="after")
    def _consistent(self) -> FrameSampling:
        if self.mode == "fps" and self.fps is None:
            raise ValueError("mode: fps needs fps: (frames per second)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    def key(self) -> str:
        """A short stable text of every setting that changes the frames (cache keys, the report)."""
        parts = [f"{self.mode}{self.frames}"]
        if self.mode != "fps":
            parts.append(self.pick)
        if self.pick == "random" and self.mode != "fps":
            parts.append(f"seed{self.seed}")
        if self.fps is not None:
            parts.append(f"fps{self.fps:g}")
        if self.start is not None or self.end is not None:
            parts.append(f"t{self.start or 0:g}-{'end' if self.end is None else format(self.end, 'g')}")
        return "-".join(parts)
