"""The report's `latency` block: model-call latency percentiles, throughput, a time breakdown and peak memory.

Every model call of a benchmark is timed by the runner (`timing.Timer`: seconds and rows per batch, CUDA
synchronised before each clock read). Here those records become figures a user compares across checkpoints:

- per pass (images, texts, generate): the first batch on its own (it pays for lazy initialisation, cuDNN /
  oneDNN autotuning, allocator growth), then, without the first `warmup` batches, per-batch and per-sample
  latency (mean, p50, p90, p95, p99, max; ms; percentiles by numpy's linear interpolation) and throughput
  (samples per second of model time), and every call's time and size (`calls_ms`, `calls_rows`, warm-up
  included) for histograms and gates;
- the benchmark's wall time split into setup (reading annotations), waiting for data, host-to-device copy,
  model, metrics, and what none of these covers (`unaccounted_s`, small by construction; tested under 5%);
- peak memory during the benchmark: CUDA max allocated / reserved on a GPU; on every device the peak resident
  memory of the main process (reset per benchmark where Linux allows) and of the largest finished child (data
  workers; a lifetime figure, the OS cannot reset it).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

PERCENTILES = (50, 90, 95, 99)


def distribution_ms(seconds: list[float]) -> dict[str, float]:
    """mean / p50 / p90 / p95 / p99 / max of `seconds`, in milliseconds (empty input: no keys)."""
    if not seconds:
        return {}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    stats = {"mean": float(ms.mean())}
    stats.update({f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(ms, PERCENTILES))})
    stats["max"] = float(ms.max())
    return stats


def pass_latency(batch_seconds: list[float], batch_rows: list[int], warmup: int) -> dict[str, Any]:
    """Latency figures of one pass over the data (`batch_seconds[i]` for `batch_rows[i]` samples)."""
    if not batch_seconds:
        return {"n_batches": 0}
    skip = min(warmup, len(batch_seconds) - 1)  # always keep at least one batch to report
    seconds, rows = batch_seconds[skip:], batch_rows[skip:]
    return {
        "n_batches": len(batch_seconds),
        "warmup_batches_excluded": skip,
        "first_batch_ms": batch_seconds[0] * 1000.0,
        "first_batch_rows": batch_rows[0],
        "batch_ms": distribution_ms(seconds),
        "sample_ms": distribution_ms([s / r for s, r in zip(seconds, rows) if r > 0]),
        "throughput_per_s": sum(rows) / sum(seconds) if sum(seconds) > 0 else None,
        "calls_ms": [s * 1000.0 for s in batch_seconds],
        "calls_rows": list(batch_rows),
    }


def _rss_peak_mb() -> float | None:
    """This process's peak resident set (VmHWM) in MiB, from /proc (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_rss_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class MemoryWatch:
    """Peak memory over a span of work: `start()` before, `stop()` after (returns the report fields)."""

    device: torch.device
    _rss_reset: bool = False

    def start(self) -> None:
        self._rss_reset = _reset_rss_peak()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict[str, Any]:
        mib = 1024.0 * 1024.0
        peak: dict[str, Any] = {
            "cpu_peak_rss_mb": _rss_peak_mb(),
            "cpu_peak_rss_scope": "benchmark" if self._rss_reset else "process lifetime",
            "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        }
        if self.device.type == "cuda":
            peak["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / mib
            peak["cuda_max_reserved_mb"] = torch.cuda.max_memory_reserved(self.device) / mib
        return peak


def latency_block(timers: dict[str, Any], timings: dict[str, float], warmup: int,
                  memory: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The benchmark's `latency` block from its passes' timers and its `timings` (load_data_s, metrics_s,
    total_s, as every benchmark records them)."""
    total = timings.get("total_s", 0.0)
    breakdown = {
        "setup_s": timings.get("load_data_s", 0.0),
        "data_wait_s": sum(t.data_s for t in timers.values()),
        "h2d_s": sum(t.h2d_s for t in timers.values()),
        "model_s": sum(t.model_s for t in timers.values()),
        "metrics_s": timings.get("metrics_s", 0.0),
    }
    breakdown["unaccounted_s"] = total - sum(breakdown.values())
    breakdown["total_s"] = total
    return {
        "warmup_batches": warmup,
        "passes": {name: {**pass_latency(t.batches, t.rows, warmup), "cached": t.cached} for name, t in timers.items()},
        "breakdown_s": breakdown,
        "peak_memory": memory,
    }
