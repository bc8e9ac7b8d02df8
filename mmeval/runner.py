"""The one inference loop: batching, device, precision, timers and progress for every benchmark.

Images are read and decoded in DataLoader workers; each worker also hashes the raw bytes, so the dataset
digest in the report costs no extra pass over the files. Bad images are reported back by index instead of
raising inside a worker, so the main process can skip or fail with a message that names the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mmeval.errors import DataError, MmevalError

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Resolved runtime settings (no 'auto' left)."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    batch_size: int
    num_workers: int
    seed: int

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


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
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    workers = cfg.num_workers if cfg.num_workers is not None else min(8, max(1, (os.cpu_count() or 1)))
    return Runtime(device, precision, cfg.batch_size, workers, cfg.seed)


@dataclass
class Timer:
    """Seconds spent waiting for data, copying to the device and in the model (CUDA-synchronised)."""

    data_s: float = 0.0
    h2d_s: float = 0.0
    model_s: float = 0.0
    batches: list[float] = field(default_factory=list)  # model seconds per batch

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_data_s": self.data_s, f"{prefix}_h2d_s": self.h2d_s, f"{prefix}_model_s": self.model_s}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to_device(tokens: Any, device: torch.device) -> Any:
    if isinstance(tokens, dict):
        return {k: v.to(device, non_blocking=True) for k, v in tokens.items()}
    return tokens.to(device, non_blocking=True)


class _ImageDataset(Dataset):
    def __init__(self, source, transform: Callable):
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, bytes, str | None]:
        try:
            data, image = self.source.load(index)
        except DataError as exc:
            return index, None, b"", str(exc)
        digest = hashlib.sha256(data).digest()
        try:
            return index, self.transform(image), digest, None
        except Exception as exc:  # a transform that chokes on one image must not kill the worker
            return index, None, digest, f"{self.source.describe(index)}: preprocessing failed ({exc})"


def _collate(items):
    good = [item for item in items if item[1] is not None]
    pixels = torch.stack([item[1] for item in good]) if good else None
    return [item[0] for item in good], pixels, items


@dataclass
class ImagePass:
    """One pass over a dataset's images: what was read, what could not be, and where the time went."""

    ok_indices: list[int] = field(default_factory=list)  # source indices, in the order they were processed
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, reason) of unreadable images
    digests: dict[int, bytes] = field(default_factory=dict)  # sha256 of each image's raw bytes
    timer: Timer = field(default_factory=Timer)
    batch_indices: list[int] = field(default_factory=list)  # source indices of the batch being yielded


def _image_batches(model, source, runtime: Runtime, on_bad_image: str, progress: Callable[[int], None],
                   done: ImagePass) -> Iterator[torch.Tensor]:
    """Yield batches of preprocessed pixels, in order, recording good and bad images in `done`."""
    loader = DataLoader(
        _ImageDataset(source, model.image_transform),
        batch_size=runtime.batch_size,
        num_workers=runtime.num_workers,
        collate_fn=_collate,
        pin_memory=runtime.device.type == "cuda",
        persistent_workers=False,
    )
    for indices, pixels, items in _timed(loader, done.timer):
        for index, _, digest, error in items:
            done.digests[index] = digest
            if error is not None:
                if on_bad_image == "fail":
                    raise DataError(f"{error} (set data.on_bad_image: skip to skip such images)")
                log.warning("skipping image: %s", error)
                done.bad.append((index, error))
        if pixels is not None:
            done.batch_indices = indices
            yield pixels
            done.ok_indices.extend(indices)
        progress(len(items))


def encode_images(model, source, runtime: Runtime, on_bad_image: str,
                  progress: Callable[[int], None]) -> tuple[torch.Tensor, ImagePass]:
    """Embed every image of `source` once, in order (L2-normalised float32 rows on the run's device)."""
    done, chunks = ImagePass(), []
    for pixels in _image_batches(model, source, runtime, on_bad_image, progress, done):
        chunks.append(_run_model(model.encode_image, pixels, runtime, done.timer))
    return (torch.cat(chunks) if chunks else torch.empty(0, 0)), done


def generate_captions(model, source, runtime: Runtime, settings, on_bad_image: str,
                      progress: Callable[[int], None]) -> tuple[list[str], ImagePass]:
    """One caption per readable image of `source`, in order (aligned with `ImagePass.ok_indices`)."""
    done, captions = ImagePass(), []
    for pixels in _image_batches(model, source, runtime, on_bad_image, progress, done):
        began = time.perf_counter()
        pixels = _to_device(pixels, runtime.device)
        _sync(runtime.device)
        copied = time.perf_counter()
        with torch.inference_mode(), runtime.autocast:
            batch = model.generate(pixels, settings)
        _sync(runtime.device)
        finished = time.perf_counter()
        if len(batch) != len(pixels) or not all(isinstance(c, str) for c in batch):
            raise MmevalError(f"the model returned {len(batch)} captions for {len(pixels)} images "
                              "(generate must return one string per image)")
        captions.extend(batch)
        done.timer.h2d_s += copied - began
        done.timer.model_s += finished - copied
        done.timer.batches.append(finished - copied)
    return captions, done


def generate_answers(model, source, prompts_of: list[list[tuple[Any, str]]], runtime: Runtime, settings,
                     on_bad_image: str, progress: Callable[[int], None]) -> tuple[dict[Any, str], ImagePass]:
    """Answer every question about every readable image of `source`; each image is read and decoded once.

    `prompts_of[i]` lists (key, prompt) for image i. The pixels of a batch of images are repeated once per
    question in model batches of at most `runtime.batch_size` rows. Returns {key: answer} and the image pass.
    """
    done, answers = ImagePass(), {}
    for pixels in _image_batches(model, source, runtime, on_bad_image, progress, done):
        began = time.perf_counter()
        pixels = _to_device(pixels, runtime.device)
        _sync(runtime.device)
        done.timer.h2d_s += time.perf_counter() - began
        rows = [(row, key, prompt) for row, index in enumerate(done.batch_indices) for key, prompt in prompts_of[index]]
        for start in range(0, len(rows), runtime.batch_size):
            chunk = rows[start : start + runtime.batch_size]
            began = time.perf_counter()
            with torch.inference_mode(), runtime.autocast:
                batch = model.answer(pixels[[row for row, _, _ in chunk]], [prompt for _, _, prompt in chunk], settings)
            _sync(runtime.device)
            seconds = time.perf_counter() - began
            done.timer.model_s += seconds
            done.timer.batches.append(seconds)
            if not isinstance(batch, list) or len(batch) != len(chunk) or not all(isinstance(a, str) for a in batch):
                got = f"{len(batch)} answers" if isinstance(batch, (list, tuple)) else f"a {type(batch).__name__}"
                raise MmevalError(f"the model returned {got} for {len(chunk)} questions "
                                  "(answer must return a list with one string per question)")
            answers.update((key, text) for (_, key, _), text in zip(chunk, batch))
    return answers, done


def encode_texts(model, texts: list[str], runtime: Runtime, progress: Callable[[int], None]) -> tuple[torch.Tensor, Timer]:
    """Embed every text once, in batches; tokenisation counts as data time."""
    timer, chunks = Timer(), []
    for start in range(0, len(texts), runtime.batch_size):
        began = time.perf_counter()
        tokens = model.tokenize(texts[start : start + runtime.batch_size])
        timer.data_s += time.perf_counter() - began
        chunks.append(_run_model(model.encode_text, tokens, runtime, timer))
        progress(min(runtime.batch_size, len(texts) - start))
    return (torch.cat(chunks) if chunks else torch.empty(0, 0)), timer


def _timed(loader: DataLoader, timer: Timer) -> Iterator[Any]:
    iterator = iter(loader)
    while True:
        began = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        timer.data_s += time.perf_counter() - began
        yield batch


def _run_model(encode: Callable, inputs: Any, runtime: Runtime, timer: Timer) -> torch.Tensor:
    began = time.perf_counter()
    inputs = _to_device(inputs, runtime.device)
    _sync(runtime.device)
    copied = time.perf_counter()
    with torch.inference_mode(), runtime.autocast:
        out = encode(inputs)
    out = F.normalize(out.float(), dim=-1)
    if not torch.isfinite(out).all():
        raise MmevalError("the model returned NaN or Inf embeddings; try runtime.precision: fp32")
    _sync(runtime.device)
    done = time.perf_counter()
    timer.h2d_s += copied - began
    timer.model_s += done - copied
    timer.batches.append(done - copied)
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
