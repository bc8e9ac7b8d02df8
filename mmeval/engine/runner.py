"""The one inference loop: batching, device, precision, timers, caches and progress for every benchmark.

Pixels come from `image_loading` (workers, uint8 transfer, GPU decoding, pixel cache). Every model pass
first asks the output cache (`cache.py`): a rerun of the same model on the same data, preprocessing and
precision reuses the embeddings, captions or answers of the earlier run, with what its image pass found.

Each pass runs through `resume.run_pass`: under torchrun every rank takes whole batches and rank 0 gathers
the outputs by source index (bit-identical to a single process: each model call gets the same rows), and
finished batches are saved in chunks as the pass goes, so `--resume` after a crash redoes only the rest.

Every model call goes through `_RowLimit`: when CUDA runs out of memory, the call is split in halves and the
rest of the pass runs at the smaller batch size (down to one row, then a clear error). Rows never interact in
a model call (the capability contracts in models/base.py), so the results are those of a run configured at
the smaller size; `Runtime.batch_reductions` records each halving for the report's latency block. Embeddings
are checked to be finite; an error names the batch and the samples that were not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any, Callable, TypeVar

import torch
import torch.nn.functional as F

from mmeval.engine.cache import model_identity
from mmeval.engine.resume import Chunker, ImageParts, Part, findings_from_meta, image_pass_of, run_pass
from mmeval.engine.runtime import Runtime
from mmeval.engine.timing import Timer, sync
from mmeval.errors import MmevalError
from mmeval.io.image_loading import ImagePass, image_batches, plan_pixels
from mmeval.io.images import source_fingerprint

__all__ = ["ImagePass", "Runtime", "Timer", "encode_images", "encode_texts", "generate_answers", "generate_captions"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _to_device(tokens: Any, device: torch.device) -> Any:
    if isinstance(tokens, dict):
        return {k: v.to(device, non_blocking=True) for k, v in tokens.items()}
    return tokens.to(device, non_blocking=True)


def _output_parts(model, runtime: Runtime, kind: str, **content: Any) -> dict[str, Any] | None:
    """The cache key parts of one pass's outputs; None when they cannot be cached (caching off, a model
    without a checkpoint hash, an image source that cannot be fingerprinted)."""
    identity = model_identity(model) if runtime.cache is not None else None
    if identity is None or any(value is None for value in content.values()):
        return None
    return {"kind": kind, "model": identity, "precision": runtime.precision, "device": runtime.device.type,
            **content}  # fmt: skip


def _image_content(model, source, runtime: Runtime, on_bad_image: str, decode: str) -> dict[str, Any]:
    plan = plan_pixels(model, source, runtime, decode)
    return {"images": source_fingerprint(source), "pixels": plan.mode, "on_bad_image": on_bad_image}


def _digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, ensure_ascii=False, default=str).encode()).hexdigest()


def encode_images(model, source, runtime: Runtime, on_bad_image: str, progress: Callable[[int], None],
                  decode: str = "auto") -> tuple[torch.Tensor, ImagePass]:  # fmt: skip
    """Embed every image of `source` once, in order (L2-normalised float32 rows on the run's device).

    In a data-parallel run the embeddings are whole on rank 0 only (other ranks get an empty tensor and the
    pass's findings: readable and skipped images, digests)."""
    parts = _output_parts(model, runtime, "image_embeddings",
                          **_image_content(model, source, runtime, on_bad_image, decode))  # fmt: skip
    done = ImagePass()

    def compute(indices: list[int], chunker: Chunker, advance: Callable[[int], None]) -> Part:
        limit, tracker = _RowLimit(runtime, "images", done.timer), ImageParts(done)
        batches = image_batches(model, source, runtime, on_bad_image, advance, done, decode, _subset(indices, source))
        for number, pixels in enumerate(batches, 1):
            out = _joined(limit.run(lambda rows: _run_model(model.encode_image, pixels[rows], runtime, done.timer),
                                      len(pixels)))  # fmt: skip
            indices_now = done.batch_indices
            _require_finite(out, "image", number, lambda row: source.describe(indices_now[row]), runtime)
            chunker.add(tracker.batch(rows=out))
        chunker.add(tracker.rest())
        return chunker.result()

    def cached() -> Part | None:
        hit = runtime.cache.get(parts)
        return None if hit is None else Part(**findings_from_meta(hit[1]), rows=hit[0]["embeddings"])

    part, from_cache = run_pass(runtime, parts, list(range(len(source))), compute, progress, cached,
                                lambda p: runtime.cache.put(parts, {"embeddings": _rows(p)}, p.meta()), "images")
    return _rows(part).to(runtime.device), image_pass_of(part, done, from_cache)


def _subset(indices: list[int], source) -> list[int] | None:
    """`indices` for `image_batches`, None when they are the whole source (then the pixel cache is written)."""
    return None if len(indices) == len(source) else indices


def _rows(part: Part) -> torch.Tensor:
    return part.rows if part.rows is not None else torch.empty(0, 0)


def _generate_batch(call: Callable[[slice], list[str]], expected: int, limit: _RowLimit, device: torch.device,
                    what: str) -> list[str]:  # fmt: skip
    """`call(rows)` over the batch's rows in calls of at most `limit.rows` (timed, each checked to return one
    string per row)."""
    def timed(rows: slice) -> list[str]:
        began = time.perf_counter()
        out = call(rows)
        sync(device)
        n = rows.stop - rows.start
        limit.timer.record(time.perf_counter() - began, n)
        if not isinstance(out, list) or len(out) != n or not all(isinstance(c, str) for c in out):
            got = f"{len(out)} strings" if isinstance(out, (list, tuple)) else f"a {type(out).__name__}"
            raise MmevalError(f"the model returned {got} for {n} {what} (it must return a list with one "
                              f"string per {what.rstrip('s')})")  # fmt: skip
        return out

    return [text for part in limit.run(timed, expected) for text in part]


def generate_captions(model, source, runtime: Runtime, settings, on_bad_image: str, progress: Callable[[int], None],
                      decode: str = "auto") -> tuple[list[str], ImagePass]:  # fmt: skip
    """One caption per readable image of `source`, in order (aligned with `ImagePass.ok_indices`; in a
    data-parallel run on rank 0 only, the other ranks get no captions)."""
    parts = _output_parts(model, runtime, "captions", settings=dataclasses.asdict(settings),
                          **_image_content(model, source, runtime, on_bad_image, decode))  # fmt: skip
    done = ImagePass()

    def compute(indices: list[int], chunker: Chunker, advance: Callable[[int], None]) -> Part:
        limit, tracker = _RowLimit(runtime, "generate", done.timer), ImageParts(done)
        for pixels in image_batches(model, source, runtime, on_bad_image, advance, done, decode,
                                    _subset(indices, source)):  # fmt: skip
            with torch.inference_mode(), runtime.autocast:
                captions = _generate_batch(lambda rows: model.generate(pixels[rows], settings), len(pixels), limit,
                                           runtime.device, "images")  # fmt: skip
            chunker.add(tracker.batch(items=captions))
        chunker.add(tracker.rest())
        return chunker.result()

    def cached() -> Part | None:
        hit = runtime.cache.get(parts)
        return None if hit is None else Part(**findings_from_meta(hit[1]), items=list(hit[1]["captions"]))

    part, from_cache = run_pass(runtime, parts, list(range(len(source))), compute, progress, cached,
                                lambda p: runtime.cache.put(parts, {}, {**p.meta(), "captions": p.items}), "captions")
    return list(part.items or []), image_pass_of(part, done, from_cache)


def generate_answers(model, source, prompts_of: list[list[tuple[Any, str]]], runtime: Runtime, settings,
                     on_bad_image: str, progress: Callable[[int], None],
                     decode: str = "auto") -> tuple[dict[Any, str], ImagePass]:  # fmt: skip
    """Answer every question about every readable image of `source`; each image is read and decoded once.

    `prompts_of[i]` lists (key, prompt) for image i. The pixels of a batch of images are repeated once per
    question in model batches of at most `runtime.batch_size` rows. Returns {key: answer} (in a data-parallel
    run on rank 0 only) and the image pass.
    """
    parts = _output_parts(model, runtime, "answers", settings=dataclasses.asdict(settings),
                          prompts=_digest(prompts_of), **_image_content(model, source, runtime, on_bad_image, decode))
    done = ImagePass()

    def compute(indices: list[int], chunker: Chunker, advance: Callable[[int], None]) -> Part:
        limit, tracker = _RowLimit(runtime, "generate", done.timer), ImageParts(done)
        for pixels in image_batches(model, source, runtime, on_bad_image, advance, done, decode,
                                    _subset(indices, source)):  # fmt: skip
            rows = [(row, key, prompt) for row, index in enumerate(done.batch_indices)
                    for key, prompt in prompts_of[index]]  # fmt: skip
            answers = {}
            for start in range(0, len(rows), runtime.batch_size):
                chunk = rows[start : start + runtime.batch_size]
                with torch.inference_mode(), runtime.autocast:
                    batch = _generate_batch(
                        lambda part: model.answer(pixels[[row for row, _, _ in chunk[part]]],
                                                  [p for _, _, p in chunk[part]], settings),
                        len(chunk), limit, runtime.device, "questions")  # fmt: skip
                answers.update((key, text) for (_, key, _), text in zip(chunk, batch))
            chunker.add(tracker.batch(items=[[[key, answers[key]] for key, _ in prompts_of[index]]
                                             for index in done.batch_indices]))  # fmt: skip
        chunker.add(tracker.rest())
        return chunker.result()

    def cached() -> Part | None:
        hit = runtime.cache.get(parts)
        if hit is None:
            return None
        found = findings_from_meta(hit[1])
        answer_of = {_restore_key(k): a for k, a in hit[1]["answers"]}
        return Part(**found, items=[[[k, answer_of[k]] for k, _ in prompts_of[i]] for i in found["ok"]])

    def keep(part: Part) -> None:
        runtime.cache.put(parts, {}, {**part.meta(), "answers": [pair for item in part.items or [] for pair in item]})

    part, from_cache = run_pass(runtime, parts, list(range(len(source))), compute, progress, cached, keep, "answers")
    answers = {_restore_key(k): a for item in part.items or [] for k, a in item}
    return answers, image_pass_of(part, done, from_cache)


def _restore_key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key  # JSON turns tuple keys into lists


def encode_texts(model, texts: list[str], runtime: Runtime, progress: Callable[[int], None]) -> tuple[torch.Tensor, Timer]:
    """Embed every text once, in batches of similar length (embeddings come back in the input order; in a
    data-parallel run on rank 0 only, the other ranks get an empty tensor).

    Batching texts of similar length lets adapters that drop padding (open_clip) cut most of it; the length
    used is the character count, a cheap stand-in for the token count. Tokenisation counts as data time.
    """
    parts = _output_parts(model, runtime, "text_embeddings", texts=_digest(texts), n_texts=len(texts))
    timer = Timer()

    def compute(indices: list[int], chunker: Chunker, advance: Callable[[int], None]) -> Part:
        limit = _RowLimit(runtime, "texts", timer)
        for number, start in enumerate(range(0, len(indices), runtime.batch_size), 1):
            began = time.perf_counter()
            batch = indices[start : start + runtime.batch_size]  # in length order already (the pass's order)
            tokens = model.tokenize([texts[i] for i in batch])
            timer.data_s += time.perf_counter() - began
            out = _joined(limit.run(lambda rows: _run_model(model.encode_text, _rows_of(tokens, rows), runtime,
                                                              timer), len(batch)))  # fmt: skip
            _require_finite(out, "text", number, lambda row: f"text {batch[row]} {texts[batch[row]][:60]!r}", runtime)
            chunker.add(Part(batch, batch, rows=out))
            advance(len(batch))
        return chunker.result()

    def cached() -> Part | None:
        hit = runtime.cache.get(parts)
        return None if hit is None else Part(ok=list(range(len(texts))), rows=hit[0]["embeddings"].to(runtime.device))

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    part, from_cache = run_pass(runtime, parts, order, compute, progress, cached,
                                lambda p: runtime.cache.put(parts, {"embeddings": _rows(p)}, {}), "texts")
    return _rows(part).to(runtime.device), Timer(cached=True) if from_cache else timer


def _joined(pieces: list[torch.Tensor]) -> torch.Tensor:
    """The outputs of a batch's model calls as one tensor (one call, the usual case: no copy)."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _rows_of(inputs: Any, rows: slice) -> Any:
    """Rows `rows` of a batch of model inputs (a tensor, or a dict of tensors such as tokens and mask)."""
    if isinstance(inputs, dict):
        return {k: v[rows] for k, v in inputs.items()}
    return inputs[rows]


def _run_model(encode: Callable, inputs: Any, runtime: Runtime, timer: Timer) -> torch.Tensor:
    """One timed encoder call: L2-normalised float32 rows; a row that is not finite stays NaN (see
    `_require_finite`), also when its values are finite but too large to normalise."""
    began = time.perf_counter()
    inputs = _to_device(inputs, runtime.device)
    sync(runtime.device)
    copied = time.perf_counter()
    with torch.inference_mode(), runtime.autocast:
        raw = encode(inputs).float()
    out = F.normalize(raw, dim=-1)
    broken = ~torch.isfinite(torch.linalg.vector_norm(raw, dim=-1))  # any NaN / Inf value, or an overflow
    out[broken] = float("nan")
    sync(runtime.device)
    done = time.perf_counter()
    timer.h2d_s += copied - began
    timer.record(done - copied, out.shape[0])
    return out


def _require_finite(out: torch.Tensor, what: str, batch: int, describe: Callable[[int], str],
                    runtime: Runtime) -> None:  # fmt: skip
    """Refuse embeddings with NaN or Inf, naming the batch (1-based, of runtime.batch_size rows) and samples."""
    bad = (~torch.isfinite(out).all(dim=-1)).nonzero().flatten().tolist()
    if not bad:
        return
    named = ", ".join(describe(row) for row in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    hint = "; try runtime.precision: fp32" if runtime.precision != "fp32" else ""
    raise MmevalError(f"the model returned NaN or Inf {what} embeddings in {what} batch {batch} for {len(bad)} of "
                      f"its {out.shape[0]} {what}s: {named}{hint}")


class _RowLimit:
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


class NullProgress:
    """The progress interface benchmarks use (rich.progress.Progress's), doing nothing: for library use."""

    def add_task(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        pass
