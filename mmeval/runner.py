"""The one inference loop: batching, device, precision, timers, caches and progress for every benchmark.

Pixels come from `image_loading` (workers, uint8 transfer, GPU decoding, pixel cache). Every model pass
first asks the output cache (`cache.py`): a rerun of the same model on the same data, preprocessing and
precision reuses the embeddings, captions or answers of the earlier run, with what its image pass found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from mmeval.cache import Cache, default_cache_dir, model_identity
from mmeval.data.images import source_fingerprint
from mmeval.errors import MmevalError
from mmeval.image_loading import ImagePass, image_batches, plan_pixels
from mmeval.timing import Timer, sync

__all__ = ["ImagePass", "Runtime", "Timer", "encode_images", "encode_texts", "generate_answers", "generate_captions"]

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

    fp32 is what the reference implementations compute in, so it keeps mmeval's numbers equal to theirs;
    bf16 is chosen only where it pays clearly. On AVX512-BF16 without AMX (the 2-core AMD EPYC this was
    developed on) a 1024^3 bf16 matmul was 2.1x faster than fp32, but end-to-end evaluation gains less
    (decoding, tokenising, non-matmul layers) and scores would move: fp32 stays the default there.
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


def resolve_runtime(cfg) -> Runtime:
    """Turn a RuntimeConfig into concrete settings; CUDA asked for but absent is a clear error."""
    spec = cfg.device
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
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
    return Runtime(device, precision, cfg.batch_size, workers, cfg.seed, cfg.warmup_batches, cache)


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
    """Embed every image of `source` once, in order (L2-normalised float32 rows on the run's device)."""
    parts = _output_parts(model, runtime, "image_embeddings",
                          **_image_content(model, source, runtime, on_bad_image, decode))  # fmt: skip
    hit = runtime.cache.get(parts) if parts else None
    if hit is not None:
        progress(len(source))
        return hit[0]["embeddings"].to(runtime.device), ImagePass.from_meta(hit[1], "output cache")
    done, chunks = ImagePass(), []
    for pixels in image_batches(model, source, runtime, on_bad_image, progress, done, decode):
        chunks.append(_run_model(model.encode_image, pixels, runtime, done.timer))
    embeddings = torch.cat(chunks) if chunks else torch.empty(0, 0)
    if parts:
        runtime.cache.put(parts, {"embeddings": embeddings}, done.to_meta())
    return embeddings, done


def _generate_batch(call: Callable[[], list[str]], expected: int, pixels_rows: int, timer: Timer,
                    device: torch.device, what: str) -> list[str]:  # fmt: skip
    """One timed generation call, checked to return `expected` strings."""
    began = time.perf_counter()
    out = call()
    sync(device)
    timer.record(time.perf_counter() - began, pixels_rows)
    if not isinstance(out, list) or len(out) != expected or not all(isinstance(c, str) for c in out):
        got = f"{len(out)} strings" if isinstance(out, (list, tuple)) else f"a {type(out).__name__}"
        raise MmevalError(f"the model returned {got} for {expected} {what} (it must return a list with one "
                          f"string per {what.rstrip('s')})")  # fmt: skip
    return out


def generate_captions(model, source, runtime: Runtime, settings, on_bad_image: str, progress: Callable[[int], None],
                      decode: str = "auto") -> tuple[list[str], ImagePass]:  # fmt: skip
    """One caption per readable image of `source`, in order (aligned with `ImagePass.ok_indices`)."""
    parts = _output_parts(model, runtime, "captions", settings=dataclasses.asdict(settings),
                          **_image_content(model, source, runtime, on_bad_image, decode))  # fmt: skip
    hit = runtime.cache.get(parts) if parts else None
    if hit is not None:
        progress(len(source))
        return list(hit[1]["captions"]), ImagePass.from_meta(hit[1], "output cache")
    done, captions = ImagePass(), []
    for pixels in image_batches(model, source, runtime, on_bad_image, progress, done, decode):
        with torch.inference_mode(), runtime.autocast:
            captions += _generate_batch(lambda: model.generate(pixels, settings), len(pixels), len(pixels),
                                        done.timer, runtime.device, "images")  # fmt: skip
    if parts:
        runtime.cache.put(parts, {}, {**done.to_meta(), "captions": captions})
    return captions, done


def generate_answers(model, source, prompts_of: list[list[tuple[Any, str]]], runtime: Runtime, settings,
                     on_bad_image: str, progress: Callable[[int], None],
                     decode: str = "auto") -> tuple[dict[Any, str], ImagePass]:  # fmt: skip
    """Answer every question about every readable image of `source`; each image is read and decoded once.

    `prompts_of[i]` lists (key, prompt) for image i. The pixels of a batch of images are repeated once per
    question in model batches of at most `runtime.batch_size` rows. Returns {key: answer} and the image pass.
    """
    parts = _output_parts(model, runtime, "answers", settings=dataclasses.asdict(settings),
                          prompts=_digest(prompts_of), **_image_content(model, source, runtime, on_bad_image, decode))
    hit = runtime.cache.get(parts) if parts else None
    if hit is not None:
        progress(len(source))
        return {_restore_key(k): a for k, a in hit[1]["answers"]}, ImagePass.from_meta(hit[1], "output cache")
    done, answers = ImagePass(), {}
    for pixels in image_batches(model, source, runtime, on_bad_image, progress, done, decode):
        rows = [(row, key, prompt) for row, index in enumerate(done.batch_indices) for key, prompt in prompts_of[index]]
        for start in range(0, len(rows), runtime.batch_size):
            chunk = rows[start : start + runtime.batch_size]
            with torch.inference_mode(), runtime.autocast:
                batch = _generate_batch(
                    lambda: model.answer(pixels[[row for row, _, _ in chunk]], [p for _, _, p in chunk], settings),
                    len(chunk), len(chunk), done.timer, runtime.device, "questions")  # fmt: skip
            answers.update((key, text) for (_, key, _), text in zip(chunk, batch))
    if parts:
        runtime.cache.put(parts, {}, {**done.to_meta(), "answers": [[k, a] for k, a in answers.items()]})
    return answers, done


def _restore_key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key  # JSON turns tuple keys into lists


def encode_texts(model, texts: list[str], runtime: Runtime, progress: Callable[[int], None]) -> tuple[torch.Tensor, Timer]:
    """Embed every text once, in batches of similar length (embeddings come back in the input order).

    Batching texts of similar length lets adapters that drop padding (open_clip) cut most of it; the length
    used is the character count, a cheap stand-in for the token count. Tokenisation counts as data time.
    """
    parts = _output_parts(model, runtime, "text_embeddings", texts=_digest(texts), n_texts=len(texts))
    hit = runtime.cache.get(parts) if parts else None
    if hit is not None:
        progress(len(texts))
        return hit[0]["embeddings"].to(runtime.device), Timer(cached=True)
    timer, chunks = Timer(), []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(texts), runtime.batch_size):
        began = time.perf_counter()
        tokens = model.tokenize([texts[i] for i in order[start : start + runtime.batch_size]])
        timer.data_s += time.perf_counter() - began
        chunks.append(_run_model(model.encode_text, tokens, runtime, timer))
        progress(min(runtime.batch_size, len(texts) - start))
    embeddings = torch.empty(0, 0)
    if chunks:
        sorted_embeddings = torch.cat(chunks)
        embeddings = torch.empty_like(sorted_embeddings)
        embeddings[torch.tensor(order, device=embeddings.device)] = sorted_embeddings
    if parts:
        runtime.cache.put(parts, {"embeddings": embeddings}, {})
    return embeddings, timer


def _run_model(encode: Callable, inputs: Any, runtime: Runtime, timer: Timer) -> torch.Tensor:
    began = time.perf_counter()
    inputs = _to_device(inputs, runtime.device)
    sync(runtime.device)
    copied = time.perf_counter()
    with torch.inference_mode(), runtime.autocast:
        out = encode(inputs)
    out = F.normalize(out.float(), dim=-1)
    if not torch.isfinite(out).all():
        raise MmevalError("the model returned NaN or Inf embeddings; try runtime.precision: fp32")
    sync(runtime.device)
    done = time.perf_counter()
    timer.h2d_s += copied - began
    timer.record(done - copied, out.shape[0])
    return out


def place_model(model, runtime: Runtime) -> None:
    """Move the model to the run's device in eval mode, seeding torch for anything stochastic."""
    torch.manual_seed(runtime.seed)
    model.module.to(runtime.device).eval()


class NullProgress:
    """The progress interface benchmarks use (rich.progress.Progress's), doing nothing: for library use."""

    def add_task(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        pass
