"""The model passes tasks call: image and text embeddings, captions, answers; each one `model_pass` call.

The engine itself (`model_pass.py`: output cache, resume and data parallelism, OOM halving, timers; with
`outputs.py`: embeddings checked finite, generated text checked one string per row) knows nothing of images or
texts: they come from their batch loaders in `mmeval.io` (`image_loading.ImageBatches`: workers, uint8 transfer,
GPU decoding, the pixel cache; `texts.TextBatches`: tokenised, by length).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from mmeval.engine.model_pass import PassResult, model_pass
from mmeval.engine.outputs import Answers, Embeddings, Generation, restore_key
from mmeval.engine.outputs import run_model as _run_model  # noqa: F401  (mmeval bench times its calls with it)
from mmeval.engine.outputs import to_device as _to_device  # noqa: F401
from mmeval.engine.runtime import Runtime
from mmeval.engine.timing import Timer
from mmeval.io.image_loading import ImageBatches, ImagePass
from mmeval.io.texts import TextBatches, digest

__all__ = ["ImagePass", "Runtime", "Timer", "encode_images", "encode_texts", "generate_answers", "generate_captions"]


def encode_images(model, source, runtime: Runtime, on_bad_image: str, progress: Callable[[int], None],
                  decode: str = "auto", perturbation=None) -> tuple[torch.Tensor, ImagePass]:  # fmt: skip
    """Embed every image of `source` once, in order (L2-normalised float32 rows on the run's device).

    In a data-parallel run the embeddings are whole on rank 0 only (other ranks get an empty tensor and the
    pass's findings: readable and skipped images, digests). `perturbation` (a RunContext's Cell): the images
    are corrupted in the loader's workers when it perturbs images (io/image_loading.py); every image pass takes it."""
    loader = ImageBatches(model, source, runtime, on_bad_image, decode, perturbation)
    done = model_pass(model, loader, Embeddings(model.encode_image, "image", runtime), runtime, progress)
    return done.rows.to(runtime.device), _image_pass(done, loader)


def generate_captions(model, source, runtime: Runtime, settings, on_bad_image: str, progress: Callable[[int], None],
                      decode: str = "auto", perturbation=None) -> tuple[list[str], ImagePass]:  # fmt: skip
    """One caption per readable image of `source`, in order (aligned with `ImagePass.ok_indices`; in a
    data-parallel run on rank 0 only, the other ranks get no captions)."""
    loader = ImageBatches(model, source, runtime, on_bad_image, decode, perturbation)
    kind = Generation(lambda pixels, _: model.generate(pixels, settings), "captions", "images", runtime)
    done = model_pass(model, loader, kind, runtime, progress, settings=dataclasses.asdict(settings))
    return list(done.part.items or []), _image_pass(done, loader)


def generate_answers(model, source, prompts_of: list[list[tuple[Any, str]]], runtime: Runtime, settings,
                     on_bad_image: str, progress: Callable[[int], None],
                     decode: str = "auto", perturbation=None) -> tuple[dict[Any, str], ImagePass]:  # fmt: skip
    """Answer every question about every readable image of `source`; each image is read and decoded once.

    `prompts_of[i]` lists (key, prompt) for image i. The pixels of a batch of images are repeated once per
    question in model batches of at most `runtime.batch_size` rows. Returns {key: answer} (in a data-parallel
    run on rank 0 only) and the image pass.
    """
    loader = ImageBatches(model, source, runtime, on_bad_image, decode, perturbation)
    kind = Answers(lambda pixels, prompts: model.answer(pixels, prompts, settings), prompts_of, runtime)
    done = model_pass(model, loader, kind, runtime, progress, settings=dataclasses.asdict(settings),
                      prompts=digest(prompts_of))  # fmt: skip
    answers = {restore_key(k): a for item in done.part.items or [] for k, a in item}
    return answers, _image_pass(done, loader)


def encode_texts(model, texts: list[str], runtime: Runtime, progress: Callable[[int], None]) -> tuple[torch.Tensor, Timer]:
    """Embed every text once, in batches of similar length (`io/texts.py`; embeddings come back in the input
    order; in a data-parallel run on rank 0 only, the other ranks get an empty tensor)."""
    loader = TextBatches(texts, model.tokenize, runtime.batch_size)
    done = model_pass(model, loader, Embeddings(model.encode_text, "text", runtime), runtime, progress)
    return done.rows.to(runtime.device), done.timer


def _image_pass(done: PassResult, loader: ImageBatches) -> ImagePass:
    """The ImagePass of a whole pass: the merged findings, with this rank's own timer and pixel path."""
    merged = ImagePass.from_meta(done.part.meta(), "output cache" if done.from_cache else loader.pixels_from)
    merged.timer = done.timer
    return merged


class NullProgress:
    """The progress interface benchmarks use (rich.progress.Progress's), doing nothing: for library use."""

    def add_task(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        pass
