"""Timers of model passes (CUDA-synchronised), shared by the runner, the image loading and `mmeval bench`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Timer:
    """Seconds spent waiting for data, copying to the device and in the model, and each model call."""

    data_s: float = 0.0
    h2d_s: float = 0.0
    model_s: float = 0.0
    batches: list[float] = field(default_factory=list)  # model seconds per batch
    rows: list[int] = field(default_factory=list)  # samples per batch
    cached: bool = False  # the outputs came from the cache: no model call was made

    def record(self, seconds: float, rows: int) -> None:
        """One model call of `rows` samples that took `seconds`."""
        self.model_s += seconds
        self.batches.append(seconds)
        self.rows.append(rows)

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_data_s": self.data_s, f"{prefix}_h2d_s": self.h2d_s, f"{prefix}_model_s": self.model_s}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
