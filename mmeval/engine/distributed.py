"""Data-parallel runs on PyTorch's own stack: `torchrun --nproc_per_node N -m mmeval run --config ...`.

torchrun starts one process per rank and sets RANK, WORLD_SIZE and LOCAL_RANK; without them (or with
WORLD_SIZE=1) a run is a plain single process and every helper here is the identity. In a data-parallel run
each process joins one process group (NCCL when the run is on CUDA, each rank on cuda:LOCAL_RANK; gloo on
CPU), takes a share of every model pass (whole batches, see `shard`), and the results are gathered on rank 0,
which alone computes the metrics and writes the report.

Every collective here is called by all ranks in the same order. Decisions that could differ between ranks
(is the pass in the output cache, which chunks an interrupted run left) are taken by rank 0 and broadcast;
an error on any rank inside a pass is shared (`together`), so all ranks fail that benchmark and stay in step.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from mmeval.errors import MmevalError

log = logging.getLogger(__name__)
T = TypeVar("T")
# Ranks other than 0 wait at the next benchmark's first collective while rank 0 computes metrics (SPICE on
# 5,000 captions takes minutes): torch's default of 10 minutes could kill a healthy run.
TIMEOUT = datetime.timedelta(hours=2)


def shard(n_units: int, rank: int, world_size: int) -> list[int]:
    """The units (batches) of `n_units` that `rank` runs: every `world_size`-th one, from `rank` on.

    Each unit goes to exactly one rank and the counts differ by at most one. Interleaving, rather than
    contiguous blocks, balances the ranks when units get costlier along the order (texts are batched by
    length, so the last batches hold the longest texts)."""
    return list(range(rank, n_units, world_size))


@dataclass
class Distributed:
    """This process's place in a data-parallel run (rank 0 of 1 in a plain run).

    `together` is True while every rank takes part in the model passes; a benchmark sets it to False on
    rank 0 once its data-parallel passes are done (`RunContext.passes_done`), so that any further pass (a
    CLIPScore scorer, bias queries) runs on rank 0 alone, without collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # nccl | gloo, once the process group is up
    together: bool = True

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether passes are split across ranks now (several ranks, all of them taking part)."""
        return self.world_size > 1 and self.together

    @property
    def _device(self) -> torch.device:
        """Where collective tensors live: the rank's GPU for NCCL, the CPU for gloo."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def my_units(self, n_units: int) -> list[int]:
        """This rank's units of a pass (all of them when the pass is not split)."""
        return shard(n_units, self.rank, self.world_size) if self.parallel else list(range(n_units))

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` on every rank (a picklable object)."""
        if not self.parallel:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value` (picklable), in rank order, on rank 0; None on the other ranks."""
        if not self.parallel:
            return [value]
        out: list[Any] | None = [None] * self.world_size if self.is_primary else None
        dist.gather_object(value, out, dst=0)
        return out

    def gather_rows(self, rows: torch.Tensor | None) -> list[torch.Tensor | None] | None:
        """Every rank's float32 (n_r, d) rows on rank 0 (on the collective device), in rank order; None
        elsewhere. Sizes go first, then each rank pads to the largest and the padding is cut off again."""
        if not self.parallel:
            return [rows]
        shape = (0, 0) if rows is None else tuple(rows.shape)
        shapes: list[Any] = [None] * self.world_size
        dist.all_gather_object(shapes, shape)
        longest, width = max(s[0] for s in shapes), max(s[1] for s in shapes)
        if longest == 0:
            return [None] * self.world_size if self.is_primary else None
        padded = torch.zeros(longest, width, dtype=torch.float32, device=self._device)
        if rows is not None and len(rows):
            padded[: len(rows)] = rows.to(self._device, torch.float32)
        out = [torch.empty_like(padded) for _ in range(self.world_size)] if self.is_primary else None
        dist.gather(padded, out, dst=0)
        if not self.is_primary:
            return None
        return [tensor[:n] if n else None for tensor, (n, _) in zip(out, shapes)]

    def together_run(self, work: Callable[[], T]) -> T:
        """`work()` on every rank; if it fails on any rank, it fails on all of them (with that rank's message),
        so no rank is left waiting in a collective that the failed one will never reach. A user error
        (MmevalError) stays one; anything else is an internal error everywhere. Ctrl-C is not caught."""
        if not self.parallel:
            return work()
        failure: tuple[int, bool, str] | None = None
        own: Exception | None = None
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - shared with the other ranks, then re-raised
            user_error = isinstance(exc, MmevalError)
            failure, own = (self.rank, user_error, str(exc) if user_error else f"{type(exc).__name__}: {exc}"), exc
        failures: list[Any] = [None] * self.world_size
        dist.all_gather_object(failures, failure)
        if own is not None:
            raise own
        first = next((f for f in failures if f is not None), None)
        if first is None:
            return result
        rank, user_error, message = first
        if user_error:
            raise MmevalError(f"{message} (on rank {rank})")
        raise RuntimeError(f"rank {rank} failed: {message}")


def from_env() -> Distributed:
    """This process's ranks from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); a plain run without."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise MmevalError(f"WORLD_SIZE / RANK / LOCAL_RANK: expected integers as torchrun sets them ({exc})") from None
    if world < 1 or not 0 <= rank < world:
        raise MmevalError(f"RANK={rank}, WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE (as torchrun sets them)")
    return Distributed(rank, world, local)


def device_spec(spec: str, ranks: Distributed) -> str:
    """The device this rank runs on: 'cuda' means cuda:LOCAL_RANK in a data-parallel run (one GPU per
    process); naming one GPU there would put every process of the node on it, so it is refused."""
    if ranks.world_size == 1 or not spec.startswith("cuda"):
        return spec
    if ":" in spec:
        raise MmevalError(f"runtime.device: '{spec}' names one GPU, but torchrun started {ranks.world_size} "
                          "processes; use device: cuda (or auto): each process then takes cuda:LOCAL_RANK")
    return f"cuda:{ranks.local_rank}"


def start(ranks: Distributed, device: torch.device) -> None:
    """Join the process group (once per process): NCCL for a CUDA run, gloo on CPU."""
    if ranks.world_size == 1:
        return
    if not dist.is_available():
        raise MmevalError("torch.distributed is not available in this torch build; run a single process")
    ranks.backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(ranks.backend, timeout=TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmevalError(f"torchrun: cannot join the process group ({ranks.backend}, rank {ranks.rank} of "
                          f"{ranks.world_size}): {first}") from exc
    log.debug("rank %d of %d joined the %s process group on %s", ranks.rank, ranks.world_size, ranks.backend, device)
    _interrupt_once()


def _interrupt_once() -> None:
    """Ctrl-C raises KeyboardInterrupt once; later SIGINTs are ignored. torchrun forwards the terminal's Ctrl-C
    to its workers a second time (and SIGKILLs them 30 s later): the first one must be able to finish saving
    the finished work and the report."""
    seen = []

    def handler(signum: int, frame: Any) -> None:
        if not seen:
            seen.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
