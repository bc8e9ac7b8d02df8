"""Reading images into model-ready pixel batches: workers, uint8 transfer, GPU JPEG decoding, pixel cache.

`ImageBatches` is the image `BatchLoader` (`io/source.py`) the engine's model pass runs over.

Images are read (and decoded) in DataLoader workers; each worker also hashes the raw bytes, so the dataset
digest in the report costs no extra pass over the files. Bad images are reported back by index instead of
raising inside a worker, so the main process can skip or fail with a message that names the file.

Three ways to get pixels, chosen per pass (`plan_pixels`):

- `float`: the model's `image_transform` in the workers (any model);
- `uint8`: the model's `pixel_pipeline` geometry in the workers, normalisation on the device (a quarter of the
  bytes through shared memory and the host-to-device copy);
- `gpu`: on CUDA, with `data.decode` gpu or auto, workers only read bytes; JPEGs are decoded in batches by
  nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`) and resized on the GPU; other formats, CMYK JPEGs and
  JPEGs nvJPEG rejects are decoded on the CPU in the worker as usual. Both paths read the header first and reject
  the same files (truncated, over the decompression-bomb limit) with the same message, and neither applies the
  EXIF orientation (see docs/reliability.md).

With the pixel cache on, the uint8 images of both split paths are also written to a memory-mapped store
(`decoded_cache.DecodedStore` under `pixels/`, one per source, geometry and decoder: GPU resizing is not PIL's), and a later pass over the same source at the
same geometry reads them from there without decoding anything.

A robustness re-run (`perturbation`, a `mmeval.perturb.Cell` of modality "image") corrupts each image in the
workers, on the decoded uint8 HxWx3 image before the model's preprocessing, seeded by the image's path or row
id (`source.describe(index)`, so the result does not depend on batching, workers or subsets). Such a pass
decodes on the CPU (the corruption needs the decoded image in the worker; GPU decoding is for clean passes),
bypasses the pixel cache (perturbed pixels are used once; a store per cell would write the dataset's pixels
again for every cell, and a clean store must never serve them), and puts the cell in the output-cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mmeval.engine.timing import Timer, sync
from mmeval.errors import DataError
from mmeval.io.bad_inputs import record_bad
from mmeval.io.images import decode_image, gpu_decodable
from mmeval.io.source import Batch, source_fingerprint
from mmeval.perturb import Cell, apply_cell

log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class ImagePass:
    """One pass over a dataset's images: what was read, what could not be, and where the time went."""

    ok_indices: list[int] = field(default_factory=list)  # source indices, in the order they were processed
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, reason) of unreadable images
    digests: dict[int, bytes] = field(default_factory=dict)  # sha256 of each image's raw bytes
    timer: Timer = field(default_factory=Timer)
    batch_indices: list[int] = field(default_factory=list)  # source indices of the batch being yielded
    pixels_from: str = "float"  # float | uint8 | gpu | cache: how the pixels were made (for the report)

    def to_meta(self) -> dict[str, Any]:
        """JSON-able findings of the pass (for the caches)."""
        return {"ok": self.ok_indices, "bad": [list(b) for b in self.bad],
                "digests": {str(i): d.hex() for i, d in self.digests.items()}}  # fmt: skip

    @classmethod
    def from_meta(cls, meta: dict[str, Any], pixels_from: str) -> ImagePass:
        return cls(ok_indices=list(meta["ok"]), bad=[(int(i), str(r)) for i, r in meta["bad"]],
                   digests={int(i): bytes.fromhex(d) for i, d in meta["digests"].items()},
                   timer=Timer(cached=True), pixels_from=pixels_from)  # fmt: skip


@dataclass
class PixelPlan:
    """How one pass makes pixels (see the module docstring)."""

    mode: str  # float | uint8 | gpu
    pipeline: Any = None  # the model's PixelPipeline (uint8, gpu)
    store: Any = None  # the decoded-input cache's store (`decoded_cache.DecodedStore`, uint8 only), or None

    def describe(self) -> str:
        return f"{self.mode}:{self.pipeline.key()}" if self.pipeline is not None else "float"


def plan_pixels(model, source, runtime, decode: str) -> PixelPlan:
    """Pick the pixel path for `model` on `source` (see the module docstring)."""
    pipeline = getattr(model, "pixel_pipeline", None)
    if pipeline is None:
        if decode == "gpu":
            log.warning("data.decode: gpu asked, but %s has no split preprocessing; decoding on the CPU",
                        model.info.name)
        return PixelPlan("float")
    on_cuda = runtime.device.type == "cuda"
    if decode == "gpu" and not on_cuda:
        log.warning("data.decode: gpu asked, but the run is on %s; decoding on the CPU", runtime.device)
    mode = "gpu" if on_cuda and decode in ("gpu", "auto") and hasattr(source, "read_bytes") else "uint8"
    fingerprint = source_fingerprint(source)
    store = None
    if runtime.cache is not None and fingerprint is not None:  # GPU resizing differs from PIL's: its own entry
        decoder = "nvjpeg+gpu-resize" if mode == "gpu" else "cpu"
        store = runtime.cache.decoded_store({"source": fingerprint, "geometry": pipeline.key(), "decoder": decoder})
    return PixelPlan(mode, pipeline, store)


def _perturbs_images(perturbation: Cell | None) -> bool:
    return perturbation is not None and perturbation.modality == "image"


def perturbed_image(cell: Cell | None, image: Image.Image, sample_id: str) -> Image.Image:
    """`image` under `cell` when it perturbs images: the corruption sees the decoded uint8 HxWx3 RGB array."""
    if not _perturbs_images(cell):
        return image
    pixels = np.asarray(image.convert("RGB"))
    out = apply_cell(cell, "image", pixels, sample_id)
    if not isinstance(out, np.ndarray) or out.shape != pixels.shape or out.dtype != np.uint8:
        raise ValueError(f"image perturbation {cell.name!r} returned {getattr(out, 'dtype', type(out))} "
                         f"{getattr(out, 'shape', '')}; expected uint8 {pixels.shape}")
    return Image.fromarray(out)


class _ImageDataset(Dataset):
    """Item k -> (source index i = indices[k], pixels or raw JPEG bytes or None, sha256 of the raw bytes,
    error or None); `indices` defaults to the whole source. With `perturbation` (an image Cell) each decoded
    image is corrupted here, in the worker, before `transform`."""

    def __init__(self, source, transform: Callable, raw_jpeg: bool = False, indices: list[int] | None = None,
                 perturbation: Cell | None = None):
        self.source = source
        self.transform = transform
        self.raw_jpeg = raw_jpeg
        self.indices = indices
        self.perturbation = perturbation

    def __len__(self) -> int:
        return len(self.source) if self.indices is None else len(self.indices)

    def __getitem__(self, item: int) -> tuple[int, Any, bytes, str | None]:
        index = item if self.indices is None else self.indices[item]
        try:
            if self.raw_jpeg:
                data = self.source.read_bytes(index)
                if data[:3] == _JPEG_MAGIC and gpu_decodable(data, self.source.describe(index)):
                    return index, data, hashlib.sha256(data).digest(), None
                image = decode_image(data, self.source.describe(index))
            else:
                data, image = self.source.load(index)
        except DataError as exc:
            return index, None, b"", str(exc)
        digest = hashlib.sha256(data).digest()
        # outside the transform's guard: a failing perturbation is a bug of the cell, not a bad image
        image = perturbed_image(self.perturbation, image, self.source.describe(index))
        try:
            return index, self.transform(image), digest, None
        except Exception as exc:  # a transform that chokes on one image must not kill the worker
            return index, None, digest, f"{self.source.describe(index)}: preprocessing failed ({exc})"


def _collate(items):
    return items


def _timed(loader: DataLoader, timer: Timer) -> Iterator[Any]:
    """The loader's batches; time spent waiting for them (worker start-up included) counts as data time."""
    began = time.perf_counter()
    iterator = iter(loader)
    timer.data_s += time.perf_counter() - began
    while True:
        began = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        timer.data_s += time.perf_counter() - began
        yield batch


class ImageBatches:
    """The `BatchLoader` of an image pass: model-ready pixels of `source` for `model` (see the module docstring).

    The pixel path is planned once per pass; `pixels_from` says afterwards how this rank's pixels were made."""

    def __init__(self, model, source, runtime, on_bad_image: str, decode: str = "auto",
                 perturbation: Cell | None = None):  # fmt: skip
        self.model, self.source, self.runtime = model, source, runtime
        self.on_bad_image, self.decode = on_bad_image, decode
        self.perturbation = perturbation if _perturbs_images(perturbation) else None
        self.plan = plan_pixels(model, source, runtime, decode)
        if self.perturbation is not None:  # decoded on the CPU in the workers, never through the pixel store
            self.plan = PixelPlan("float" if self.plan.pipeline is None else "uint8", self.plan.pipeline, None)
        self.done = ImagePass()  # the latest `batches` call's findings (this rank's share of the pass)

    @property
    def pixels_from(self) -> str:
        return self.done.pixels_from

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict[str, Any]:
        parts = {"images": source_fingerprint(self.source), "pixels": self.plan.mode, "on_bad_image": self.on_bad_image}
        if self.perturbation is not None:  # perturbed outputs never answer for clean ones, nor other cells'
            parts["perturbation"] = list(dataclasses.astuple(self.perturbation))
        return parts

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `indices` (ascending: all of the source, a rank's share of a data-parallel pass, or what a
        resumed pass still has to do), each `batch_size` consecutive entries with the unreadable images left out,
        whichever way the pixels are made. Only a pass over the whole source writes the pixel cache."""
        self.done = ImagePass(timer=timer)
        whole = len(indices) == len(self.source)
        yield from image_batches(self.model, self.plan, self.source, self.runtime, self.on_bad_image, self.done,
                                 None if whole else indices, self.perturbation)  # fmt: skip


def image_batches(model, plan: PixelPlan, source, runtime, on_bad_image: str, done: ImagePass,
                  indices: list[int] | None = None, perturbation: Cell | None = None) -> Iterator[Batch]:  # fmt: skip
    """Batches of model-ready pixels on the run's device, in order, recording good and bad images in `done`.

    `indices` (ascending; default: all) restricts the pass to those source indices. Such a pass reads a complete
    pixel cache but does not write one (it covers only part of the source)."""
    done.pixels_from = plan.mode
    if indices is not None and not indices:
        return
    if plan.store is not None and plan.store.complete():
        done.pixels_from = "cache"
        yield from _stored_batches(plan, runtime, on_bad_image, done,
                                   list(range(len(source))) if indices is None else indices)  # fmt: skip
        return
    writing = indices is None and plan.store is not None and plan.store.begin(len(source), (3, *plan.pipeline.size))
    try:
        yield from _loaded_batches(model, source, plan, runtime, on_bad_image, done, plan.store if writing else None,
                                   indices, perturbation)  # fmt: skip
    except BaseException:
        if writing:
            plan.store.abandon()
        raise
    if writing:
        plan.store.finish(done.to_meta())


def _loaded_batches(model, source, plan: PixelPlan, runtime, on_bad_image: str, done: ImagePass, store,
                    indices: list[int] | None = None, perturbation: Cell | None = None) -> Iterator[Batch]:  # fmt: skip
    transform = plan.pipeline.to_uint8 if plan.pipeline is not None else model.image_transform
    loader = DataLoader(
        _ImageDataset(source, transform, raw_jpeg=plan.mode == "gpu", indices=indices, perturbation=perturbation),
        batch_size=runtime.batch_size,
        num_workers=runtime.num_workers,
        collate_fn=_collate,
        pin_memory=False,  # pinned below, after the batch is assembled (collate returns plain items)
        persistent_workers=False,
    )
    for items in _timed(loader, done.timer):
        good, seen_bad = [], len(done.bad)
        for index, pixels, digest, error in items:
            done.digests[index] = digest
            if error is not None:
                _bad_image(done, index, error, on_bad_image)
            else:
                good.append((index, pixels))
        batch, indices = None, []
        if good:
            began = time.perf_counter()
            indices = [index for index, _ in good]
            if plan.mode == "gpu":
                batch = _gpu_decode(good, plan.pipeline, runtime.device, source, done, on_bad_image)
                indices = done.batch_indices
                if store is not None and len(indices):
                    store.write(indices, batch.cpu())
                batch = plan.pipeline.normalize(batch) if len(indices) else batch
                sync(runtime.device)
            else:
                batch = torch.stack([pixels for _, pixels in good])
                if store is not None:
                    store.write(indices, batch)
                batch = _to_run_device(batch, plan, runtime)
            if plan.mode == "gpu":  # decoding on the GPU is data preparation, not a copy
                done.timer.data_s += time.perf_counter() - began
            else:
                done.timer.h2d_s += time.perf_counter() - began
        yield _batch(done, [index for index, *_ in items], indices, batch, seen_bad)


def _stored_batches(plan: PixelPlan, runtime, on_bad_image: str, done: ImagePass,
                    wanted: list[int]) -> Iterator[Batch]:  # fmt: skip
    """Batches of `wanted` read from a complete pixel store (no decoding); its skipped images are skipped
    again. Batches are cut as when decoding (`batch_size` entries of `wanted`, then the unreadable ones left
    out), so each model call gets the same rows either way."""
    cached = ImagePass.from_meta(plan.store.meta(), "cache")
    unreadable = dict(cached.bad)
    array = plan.store.array()
    for start in range(0, len(wanted), runtime.batch_size):
        items, seen_bad = wanted[start : start + runtime.batch_size], len(done.bad)
        for index in items:
            done.digests[index] = cached.digests[index]
            if index in unreadable:
                _bad_image(done, index, unreadable[index], on_bad_image)
        indices, batch = [index for index in items if index not in unreadable], None
        if indices:
            began = time.perf_counter()
            batch = torch.from_numpy(array[indices])
            done.timer.data_s += time.perf_counter() - began
            began = time.perf_counter()
            batch = _to_run_device(batch, plan, runtime)
            done.timer.h2d_s += time.perf_counter() - began
        yield _batch(done, items, indices, batch, seen_bad)


def _batch(done: ImagePass, items: list[int], indices: list[int], pixels: torch.Tensor | None,
           seen_bad: int) -> Batch:  # fmt: skip
    """One loaded batch of `items` as the engine's `Batch` (its readable `indices`, the images found unreadable
    since `done.bad[seen_bad]`, every item's digest), recorded in `done`."""
    done.ok_indices.extend(indices)
    digests = {index: done.digests[index].hex() for index in items if index in done.digests}
    return Batch(list(indices), pixels if indices else None, done.bad[seen_bad:], digests)


def _bad_image(done: ImagePass, index: int, error: str, on_bad_image: str) -> None:
    record_bad(done.bad, index, error, on_bad_image, "image")


def _to_run_device(batch: torch.Tensor, plan: PixelPlan, runtime) -> torch.Tensor:
    """uint8 batches: pinned, copied, normalised on the device; float batches: pinned and copied."""
    if runtime.device.type == "cuda":
        batch = batch.pin_memory().to(runtime.device, non_blocking=True)
    if plan.pipeline is not None:
        batch = plan.pipeline.normalize(batch)
    sync(runtime.device)
    return batch


def _gpu_decode(good: list[tuple[int, Any]], pipeline, device: torch.device, source, done: ImagePass,
                on_bad_image: str) -> torch.Tensor:  # fmt: skip
    """Decode the batch's JPEG bytes with nvJPEG and resize them on the GPU: a uint8 batch on the device.
    CPU-decoded items (non-JPEG) join as they are; a JPEG nvJPEG rejects is decoded on the CPU instead.
    Sets `done.batch_indices` (the images of the batch, in order)."""
    jpeg = [(i, data) for i, data in good if isinstance(data, bytes)]
    decoded = {i: pixels.to(device) for i, pixels in good if not isinstance(pixels, bytes)}
    if jpeg:
        tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for _, data in jpeg]
        try:
            images = _decode_jpeg(tensors, device)
            resized = pipeline.gpu_geometry(images)
            decoded.update({i: image for (i, _), image in zip(jpeg, resized)})
        except RuntimeError:  # one bad JPEG fails the whole call: decode one by one, on the CPU if need be
            for i, data in jpeg:
                try:
                    image = _decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), device)
                    decoded[i] = pipeline.gpu_geometry([image])[0]
                except RuntimeError:
                    try:
                        decoded[i] = pipeline.to_uint8(decode_image(data, source.describe(i))).to(device)
                    except DataError as exc:
                        done.digests[i] = b""  # as when a worker fails to decode it: the digest stays comparable
                        _bad_image(done, i, str(exc), on_bad_image)
    order = [i for i, _ in good if i in decoded]
    done.batch_indices = order
    if not order:
        return torch.empty(0, dtype=torch.uint8)
    return torch.stack([decoded[i] for i in order])


def _decode_jpeg(data: Any, device: torch.device) -> Any:
    """torchvision's (nvJPEG on CUDA) decoder, RGB; one tensor of bytes or a list of them. The EXIF orientation
    is not applied, as on the CPU path and in the reference tools (PIL's Image.open + convert("RGB"))."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision >= 0.29 points to TorchCodec; its decoder still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=False)
