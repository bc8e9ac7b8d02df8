"""The resolved runtime of a run: device (a torchrun rank's own GPU), precision, batching, workers, caches,
and placing a model on it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from mmeval.engine import distributed
from mmeval.engine.cache import Cache, default_cache_dir
from mmeval.engine.distributed import Distributed
from mmeval.errors import MmevalError


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
    return Runtime(device, precision, cfg.batch_size, workers, cfg.seed, cfg.warmup_batches, cache,
                   trust_checkpoint=trust_checkpoint, dist=ranks, resume=resume, chunk_size=cfg.chunk_size)


def place_model(model, runtime: Runtime) -> None:
    """Move the model to the run's device in eval mode, seeding torch for anything stochastic."""
    torch.manual_seed(runtime.seed)
    model.module.to(runtime.device).eval()
    match_weights(model, runtime)


def match_weights(model, runtime: Runtime) -> None:
    """bf16 on the CPU, for adapters that allow it (`bf16_weights_on_cpu`, open_clip): store the weights in
    bf16 once. Autocast alone gained little (open_clip ViT-B-32, 64 images on this 2-core EPYC: fp32 4.0 s,
    autocast 3.1 s, bf16 weights + autocast 1.8 s). Autocast stays on for the ops it keeps in fp32. Not for
    every module: CPU norm layers refuse fp32 inputs with bf16 weights. On CUDA autocast alone is the usual,
    fast path; fp32 runs keep fp32 weights."""
    if runtime.device.type != "cpu" or not getattr(model, "bf16_weights_on_cpu", False):
        return
    if runtime.precision == "bf16":
        model.module.to(torch.bfloat16)
    elif next(model.module.parameters(), torch.empty(0)).dtype == torch.bfloat16:
        model.module.float()  # `mmeval bench` sweeping precisions on one model: back to fp32 weights
