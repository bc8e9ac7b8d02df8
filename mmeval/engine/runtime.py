"""The resolved runtime of a run: device (a torchrun rank's own GPU), precision, batching, workers, caches,
and placing a model on it."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from mmeval.engine import distributed
from mmeval.engine.cache import Cache, default_cache_dir
from mmeval.engine.distributed import Distributed
from mmeval.errors import MmevalError

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Resolved runtime settings (no 'auto' left)."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    batch_size: int
    num_workers: int
    seed: int
    warmup_batches: int = 2
    cache: Cache | None = None  # None: caching off
    # Each halving of a pass's batch size after CUDA ran out of memory: {"pass", "from", "to", "failed_call_s"}
    batch_reductions: list[dict[str, Any]] = field(default_factory=list)
    trust_checkpoint: bool = False  # --trust-checkpoint: checkpoints may run code when loaded (models/safe_load.py)
    dist: Distributed = field(default_factory=Distributed)  # this process's rank in a torchrun run
    resume: bool = False  # --resume: reuse the chunks of finished work an interrupted run left (resume.py)
    chunk_size: int = 1024  # rows of a pass persisted together as it runs (resume.py)
    cpu_native_bf16: bool | None = None  # CPU runs: AMX / AVX512-BF16 found (None: flags unreadable); see native_bf16

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def cpu_has_amx() -> bool:
    """Intel AMX tiles (Sapphire Rapids and later): bf16 matrix units several times faster than fp32."""
    try:
        return bool(torch._C._cpu._init_amx())
    except (AttributeError, RuntimeError):
        return False


# CPU flags of bf16 arithmetic in hardware: x86 AMX tiles and AVX512-BF16 (Linux /proc/cpuinfo names), Arm's BF16
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo ('flags' on x86, 'Features' on Arm); None
    where they cannot be read (another OS)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return set(value.split())
    except OSError:
        return None
    return None


def native_bf16() -> bool | None:
    """Whether this CPU computes bf16 in hardware; None when it cannot be told. Without it torch emulates bf16
    by converting to fp32 and back around every operation, which is slower than fp32 itself (5-8x reported on
    an AVX2-only Zen 3; see the README's *Measured speed*)."""
    flags = cpu_flags()
    if flags is None:
        return True if cpu_has_amx() else None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


_warned_bf16 = False  # the slow-bf16 warning is given once per process (several models, a bench sweep)


def warn_if_slow_bf16(device: torch.device, precision: str) -> None:
    """Warn (once) when bf16 is asked for on a CPU that has no bf16 hardware: it runs, slowly."""
    global _warned_bf16
    if _warned_bf16 or device.type != "cpu" or precision != "bf16" or native_bf16() is not False:
        return
    _warned_bf16 = True
    log.warning("runtime.precision: bf16 on a CPU without bf16 hardware (no %s in its flags): torch emulates it, "
                "which is usually several times slower than fp32; use precision fp32 (or auto) on this CPU",
                " / ".join(NATIVE_BF16_FLAGS[:2]))


def default_precision(device: torch.device) -> str:
    """bf16 autocast on CUDA and on CPUs with AMX; fp32 on other CPUs.

    fp32 is what the reference implementations compute in, so it keeps mmeval's numbers equal to theirs and
    reports from different machines comparable. On AVX512-BF16 without AMX (the 2-core AMD EPYC this was
    developed on) bf16 does pay once the weights are stored in bf16 (`match_weights`: a ViT-B-32 retrieval run
    3.6x CLIP_benchmark's time instead of 2.4x, recall within 0.005), but it stays a choice, not the default.
    """
    if device.type == "cuda":
        return "bf16"
    return "bf16" if cpu_has_amx() else "fp32"


def default_workers(device: torch.device) -> int:
    """DataLoader workers from the core count: on CUDA all but one core decode (up to 16); on CPU the model
    needs the cores too, so a quarter of them (at least one) decode while torch's threads compute."""
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(16, cores - 1))
    return max(1, min(8, cores // 4))


def resolve_runtime(cfg, trust_checkpoint: bool = False, resume: bool = False) -> Runtime:
    """Turn a RuntimeConfig into concrete settings; CUDA asked for but absent is a clear error.
    `trust_checkpoint` and `resume` are the command line's --trust-checkpoint and --resume, never config keys.
    Under torchrun (WORLD_SIZE > 1) this joins the process group, each rank on its own GPU (distributed.py)."""
    if resume and cfg.cache == "off":
        raise MmevalError("--resume: finished work is kept in the cache folder, but runtime.cache is off "
                          "(--no-cache); resume with the cache on (runtime.cache: on or pixels)")
    ranks = distributed.from_env()
    spec = cfg.device
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    spec = distributed.device_spec(spec, ranks)
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MmevalError(f"runtime.device: '{cfg.device}' asked for, but no CUDA device is available")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise MmevalError(f"runtime.device: '{spec}' asked for, but only {torch.cuda.device_count()} GPU(s)")
    device = torch.device(spec)
    precision = cfg.precision if cfg.precision != "auto" else default_precision(device)
    workers = cfg.num_workers if cfg.num_workers is not None else default_workers(device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    root = cfg.cache_dir or default_cache_dir()
    cache = None if cfg.cache == "off" else Cache(root, outputs=cfg.cache == "on")
    distributed.start(ranks, device)
    warn_if_slow_bf16(device, precision)
    return Runtime(device, precision, cfg.batch_size, workers, cfg.seed, cfg.warmup_batches, cache,
                   trust_checkpoint=trust_checkpoint, dist=ranks, resume=resume, chunk_size=cfg.chunk_size,
                   cpu_native_bf16=native_bf16() if device.type == "cpu" else None)


def place_model(model, runtime: Runtime) -> None:
    """Move the model to the run's device in eval mode, seeding torch for anything stochastic."""
    torch.manual_seed(runtime.seed)
    model.module.to(runtime.device).eval()
    match_weights(model, runtime)
    if hasattr(model, "use_runtime"):  # served models open their response cache in the run's cache folder
        model.use_runtime(runtime)


def match_weights(model, runtime: Runtime) -> None:
    """bf16 on the CPU, for adapters that allow it (`bf16_weights_on_cpu`, open_clip): store the weights in
    bf16 once. Autocast alone gained little (open_clip ViT-B-32, 64 images on this 2-core EPYC: fp32 4.0 s,
    autocast 3.1 s, bf16 weights + autocast 1.8 s). Autocast stays on for the ops it keeps in fp32. Not for
    every module: CPU norm layers refuse fp32 inputs with bf16 weights. On CUDA autocast alone is the usual,
    fast path; fp32 runs keep fp32 weights. Warns once if the CPU has no bf16 hardware (`mmeval bench` sweeps
    precisions through here)."""
    warn_if_slow_bf16(runtime.device, runtime.precision)
    if runtime.device.type != "cpu" or not getattr(model, "bf16_weights_on_cpu", False):
        return
    if runtime.precision == "bf16":
        model.module.to(torch.bfloat16)
    elif next(model.module.parameters(), torch.empty(0)).dtype == torch.bfloat16:
        model.module.float()  # `mmeval bench` sweeping precisions on one model: back to fp32 weights
