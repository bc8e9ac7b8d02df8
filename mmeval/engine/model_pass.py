"""The one model pass, for every modality: items a loader turns into batches, a model call turns into outputs.

`model_pass(model, loader, kind, runtime, progress)` owns what every pass needs:

- the output cache (`cache.py`): the key is the model's identity, precision, device type, what the loader says
  the inputs depend on (source fingerprint, preprocessing) and what the output kind adds (generation settings,
  prompts); a rerun of the same model on the same inputs reuses the outputs and what the input pass found;
- `resume.run_pass`: under torchrun every rank takes whole batches and rank 0 gathers the outputs by source
  index (each model call gets the same rows as in a single process), and finished batches are saved in chunks
  as the pass goes, so `--resume` after a crash redoes only the rest;
- `RowLimit`: when CUDA runs out of memory, a model call is split in halves and the rest of the pass runs at the
  smaller batch size (down to one row, then a clear error); rows never interact in a model call (the capability
  contracts in models/base.py), so the results are those of a run configured at the smaller size;
- timers (data / host-to-device / model, `timing.Timer`) and progress (one tick per item, readable or not).

The input side is an `io.source.BatchLoader` (images, texts; next video frames, audio waveforms); the model
call is an output kind (`outputs.py`: embeddings, generated text), which also checks its outputs (finite
embeddings, one string per row) and says how they are kept in the output cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from mmeval.engine.cache import active_memo, model_identity
from mmeval.engine.resume import Chunker, Part, findings_from_meta, run_pass
from mmeval.engine.runtime import Runtime
from mmeval.engine.timing import Timer
from mmeval.errors import MmevalError
from mmeval.io.source import Batch, BatchLoader

log = logging.getLogger(__name__)
T = TypeVar("T")


class OutputKind(Protocol):
    """What a model call makes of a batch, and how those outputs are kept (`outputs.py`)."""

    name: str  # the output cache's "kind": image_embeddings, text_embeddings, captions, answers
    what: str  # the pass in log lines: images, texts, captions, answers
    pass_name: str  # the pass in out-of-memory messages and the report's batch_reductions: images, texts, generate

    def run(self, batch: Batch, limit: RowLimit, number: int, describe: Callable[[int], str]) -> dict[str, Any]:
        """The outputs of batch `number` (1-based) as `Part` fields: {"rows": tensor} or {"items": list}."""
        ...

    def store(self, part: Part) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The tensors and the metadata (besides the findings) an output-cache entry keeps."""
        ...

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], ok: list[int]) -> dict[str, Any]:
        """`Part` output fields from an output-cache entry, for the readable source indices `ok`."""
        ...


@dataclass
class PassResult:
    """A whole pass: the merged part (every output on rank 0, findings only elsewhere) and this rank's timer."""

    part: Part
    from_cache: bool
    timer: Timer  # Timer(cached=True) when the outputs came from the output cache

    @property
    def rows(self) -> torch.Tensor:
        """The embeddings (an empty tensor where there are none: other ranks, generation passes)."""
        return self.part.rows if self.part.rows is not None else torch.empty(0, 0)


def output_parts(model, runtime: Runtime, kind: str, **content: Any) -> dict[str, Any] | None:
    """The cache key parts of one pass's outputs; None when they cannot be cached (caching off, a model
    without a checkpoint hash, inputs that cannot be fingerprinted)."""
    identity = model_identity(model) if runtime.cache is not None else None
    if identity is None or any(value is None for value in content.values()):
        return None
    return {"kind": kind, "model": identity, "precision": runtime.precision, "device": runtime.device.type,
            **content}  # fmt: skip


def model_pass(model, loader: BatchLoader, kind: OutputKind, runtime: Runtime, progress: Callable[[int], None],
               **content: Any) -> PassResult:  # fmt: skip
    """Run `kind`'s model call over every item of `loader.source` once, in `loader.order()`, sharded, resumable
    and cached; `content` adds to the output-cache key what the outputs depend on besides model and inputs."""
    parts = output_parts(model, runtime, kind.name, **content, **loader.cache_parts())
    order = loader.order()
    timer = Timer()

    def compute(indices: list[int], chunker: Chunker, advance: Callable[[int], None]) -> Part:
        limit, number = RowLimit(runtime, kind.pass_name, timer), 0
        for batch in loader.batches(indices, timer):
            outputs: dict[str, Any] = {}
            if batch.indices:
                number += 1
                outputs = kind.run(batch, limit, number, loader.source.describe)
            chunker.add(Part(batch.covered, list(batch.indices), list(batch.bad), dict(batch.digests), **outputs))
            advance(len(batch.covered))
        return chunker.result()

    def cached() -> Part | None:
        hit = runtime.cache.get(parts)
        if hit is None:
            return None
        found = findings_from_meta(hit[1], order)
        return Part(**found, **kind.restore(hit[0], hit[1], found["ok"]))

    def keep(part: Part) -> None:
        tensors, meta = kind.store(part)
        runtime.cache.put(parts, tensors, {**part.meta(), **meta})

    memo = active_memo()  # a benchmark under robustness re-runs: whole passes kept in memory (cache.OutputMemo)
    memo_key = memo.key(model, runtime, kind.name, content, loader) if memo is not None else None
    if memo_key is not None and (kept := memo.get(memo_key)) is not None:
        progress(len(order))
        return PassResult(kept, True, Timer(cached=True))
    part, from_cache = run_pass(runtime, parts, order, compute, progress, cached, keep, kind.what)
    if memo_key is not None:
        memo.put(memo_key, part)
    return PassResult(part, from_cache, Timer(cached=True) if from_cache else timer)


class RowLimit:
    """The most rows one model call of a pass may take: the batch size, halved whenever CUDA runs out of memory
    and kept for the rest of the pass (so a pass pays for at most log2(batch size) failed calls)."""

    def __init__(self, runtime: Runtime, name: str, timer: Timer):
        self.runtime, self.name, self.timer = runtime, name, timer
        self.rows = runtime.batch_size

    def run(self, call: Callable[[slice], T], n: int) -> list[T]:
        """`call(rows)` for consecutive slices covering rows 0..n-1, each of at most `self.rows` rows."""
        results, start = [], 0
        while start < n:
            size = min(self.rows, n - start)
            began = time.perf_counter()
            try:
                results.append(call(slice(start, start + size)))
                start += size
                continue
            except torch.cuda.OutOfMemoryError:
                failed_s = time.perf_counter() - began
            self._halve(size, failed_s)  # outside `except`: the failed call's tensors are released by now
        return results

    def _halve(self, size: int, failed_s: float) -> None:
        self.timer.model_s += failed_s  # time spent in the model all the same (not a call in the latency stats)
        if size == 1:
            raise MmevalError(f"CUDA out of memory in the {self.name} pass even at batch size 1; free GPU memory, "
                              "use runtime.precision: bf16 or fp16, or run a smaller model")
        self.rows = size // 2
        self.runtime.batch_reductions.append({"pass": self.name, "from": size, "to": self.rows,
                                              "failed_call_s": failed_s})  # fmt: skip
        log.warning("CUDA out of memory on a batch of %d in the %s pass: continuing at batch size %d (results do not "
                    "change; the report's latency block records it)", size, self.name, self.rows)
        if self.runtime.device.type == "cuda":
            torch.cuda.empty_cache()
