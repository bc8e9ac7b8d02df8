"""`mmeval bench`: latency and throughput of the configured model on synthetic inputs, without a dataset.

Inputs are made at the model's own input size: a 640 x 480 noise image goes through the model's own
preprocessing (so a 224-pixel CLIP gets 3 x 224 x 224 pixels, the shapes model 3 x 64 x 64), texts are
12-word captions, questions a short question. For each capability of the model (image and text encoders,
captioning, answering), each precision and each batch size, `warmup` calls are made and then `iterations`
timed ones (CUDA synchronised before each clock read). The report has the same schema as `mmeval run`'s: one
benchmark "bench" whose `latency.passes` hold one entry per (pass, precision, batch size), and whose metrics
(`<pass>/<precision>/bs<B>/throughput_per_s`, `.../p50_ms`) can be compared and gated like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmeval.engine.latency import MemoryWatch, latency_block
from mmeval.engine.runner import Timer, _run_model, _to_device
from mmeval.engine.runtime import Runtime, match_weights
from mmeval.engine.timing import sync
from mmeval.errors import MmevalError
from mmeval.models.base import GenerationSettings, capabilities_of

_WORDS = ("a", "small", "red", "dog", "runs", "across", "the", "green", "park", "next", "to", "two", "people",
          "sitting", "on", "wooden", "bench", "near", "lake")  # fmt: skip
QUESTION = "What colour is the object in the middle of the image?"


def synthetic_pixels(model, batch_size: int, seed: int = 0) -> torch.Tensor:
    """`batch_size` preprocessed noise images (8 distinct ones, repeated), at the model's input size."""
    rng = np.random.default_rng(seed)
    distinct = [model.image_transform(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
                for _ in range(min(batch_size, 8))]  # fmt: skip
    return torch.stack([distinct[i % len(distinct)] for i in range(batch_size)])


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(12)) for _ in range(n)]


def _question_prompt(model) -> str:
    from mmeval.registry import short_answer_task
    from mmeval.tasks.vqa.run import DEFAULT_TEMPLATE, render

    template = model.question_template(short_answer_task()) if hasattr(model, "question_template") else DEFAULT_TEMPLATE
    return render(template, {"question": QUESTION})


Call = Callable[[Runtime, Timer], None]  # one timed model call on prepared inputs


def _passes(model, settings: GenerationSettings) -> dict[str, Callable[[int], Call]]:
    """pass name -> (batch size -> a timed call on inputs prepared once), for each capability of the model."""
    has = capabilities_of(model)
    passes: dict[str, Callable[[int], Call]] = {}

    def encoder(encode: Callable, make_inputs: Callable[[int], Any]) -> Callable[[int], Call]:
        def prepare(batch: int) -> Call:
            inputs = make_inputs(batch)
            return lambda runtime, timer: _run_model(encode, inputs, runtime, timer)

        return prepare

    def generation(call: Callable[[torch.Tensor], list[str]]) -> Callable[[int], Call]:
        def prepare(batch: int) -> Call:
            pixels = synthetic_pixels(model, batch)

            def run(runtime: Runtime, timer: Timer) -> None:
                began = time.perf_counter()
                on_device = _to_device(pixels, runtime.device)
                sync(runtime.device)
                copied = time.perf_counter()
                with torch.inference_mode(), runtime.autocast:
                    call(on_device)
                sync(runtime.device)
                timer.h2d_s += copied - began
                timer.record(time.perf_counter() - copied, batch)

            return run

        return prepare

    if "image_text_encoder" in has:
        passes["image_encoder"] = encoder(model.encode_image, lambda b: synthetic_pixels(model, b))
        passes["text_encoder"] = encoder(model.encode_text, lambda b: model.tokenize(synthetic_texts(b)))
    if "captioner" in has:
        passes["generate"] = generation(lambda pixels: model.generate(pixels, settings))
    if "answerer" in has:
        prompt = _question_prompt(model)
        passes["answer"] = generation(lambda pixels: model.answer(pixels, [prompt] * len(pixels), settings))
    if not passes:
        raise MmevalError(f"model {model.info.name} has no capability mmeval can time ({', '.join(sorted(has))})")
    return passes


def sweep(model, runtime: Runtime, batch_sizes: list[int], precisions: list[str], iterations: int, warmup: int,
          settings: GenerationSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Timer]:
    """Time every pass at every precision and batch size: {"<pass>/<precision>/bs<B>": Timer}."""
    if iterations < 1 or warmup < 0 or not batch_sizes or min(batch_sizes) < 1:
        raise MmevalError("bench: iterations must be at least 1, warm-up at least 0, batch sizes at least 1")
    timers: dict[str, Timer] = {}
    for name, prepare in _passes(model, settings).items():
        for batch in batch_sizes:
            began = time.perf_counter()
            call = prepare(batch)
            prepared_s = time.perf_counter() - began
            for precision in precisions:
                progress(f"{name} {precision} batch {batch}")
                at = dataclasses.replace(runtime, precision=precision)
                match_weights(model, at)
                timer = Timer(data_s=prepared_s if precision == precisions[0] else 0.0)
                for _ in range(warmup + iterations):
                    call(at, timer)
                timers[f"{name}/{precision}/bs{batch}"] = timer
    return timers


def bench_result(timers: dict[str, Timer], warmup: int, total_s: float, memory: dict[str, Any],
                 source: str) -> dict[str, Any]:  # fmt: skip
    """The report's "bench" benchmark: synthetic dataset facts, latency block and comparable metrics."""
    latency = latency_block(timers, {"total_s": total_s}, warmup, memory)
    metrics: dict[str, dict[str, Any]] = {}
    for key, figures in latency["passes"].items():
        metrics[f"{key}/throughput_per_s"] = {"value": figures["throughput_per_s"], "higher_is_better": True}
        metrics[f"{key}/p50_ms"] = {"value": figures["batch_ms"]["p50"], "higher_is_better": False}
    return {
        "status": "complete",
        "task": "bench",
        "dataset": {"n_images": 0, "n_texts": 0, "source": source,
                    "sha256": hashlib.sha256(source.encode()).hexdigest()},  # fmt: skip
        "metrics": metrics,
        "timings": {"total_s": total_s},
        "latency": latency,
    }


def run_bench(model, runtime: Runtime, batch_sizes: list[int], precisions: list[str], iterations: int,
              settings: GenerationSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Sweep and summarise; `runtime.warmup_batches` calls per configuration are left out of the figures."""
    shape = tuple(synthetic_pixels(model, 1).shape[1:])
    source = (f"synthetic: 640x480 noise images -> model preprocessing {'x'.join(map(str, shape))}; 12-word "
              f"captions; question {QUESTION!r}; {iterations} timed calls after {runtime.warmup_batches} warm-up")
    memory = MemoryWatch(runtime.device)
    memory.start()
    started = time.perf_counter()
    # warm-up calls are made and recorded, then left out by the latency block (it skips the first `warmup`)
    timers = sweep(model, runtime, batch_sizes, precisions, iterations, runtime.warmup_batches, settings, progress)
    return bench_result(timers, runtime.warmup_batches, time.perf_counter() - started, memory.stop(), source)
