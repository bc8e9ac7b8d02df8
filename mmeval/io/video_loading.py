"""Reading videos into model-ready frame batches (B, T, 3, H, W), and the video passes tasks call.

`VideoBatches` is the video `BatchLoader` (`io/source.py`) the engine's one model pass runs over: DataLoader
workers decode the sampled frames of each clip (`io/video.read_clip`: PyAV, seeking to the needed frames), apply
the model's per-frame preprocessing and hash the file's bytes (the dataset digest); unreadable videos come back
by index with the reason, so the main process skips them (`data.on_bad_input: skip`, named in the report) or
stops with a one-line message naming the file (`fail`).

Two ways to make frames, as for images (`io/image_loading.py`):

- `uint8`: the model has a `pixel_pipeline` (its resize / crop to uint8 in the workers, normalisation on the
  device): a quarter of the bytes through shared memory, and a decoded-frame cache shared by every model with
  the same geometry;
- `float`: the model's `image_transform` on each frame in the workers; the decoded-frame cache is then keyed by
  the model's checkpoint too (another model's transform may differ).

The decoded-frame cache (`decoded_cache.DecodedStore` under `frames/`) is keyed by the source's fingerprint
(paths, sizes, modification times), `FrameSampling.key()`, the frame geometry and the decoder's version: a second
pass over the same videos with the same sampling decodes nothing, another sampling misses.

A robustness pass with a video `Cell` (`mmeval.perturb`, from `RunContext.perturbation`) perturbs each clip's
sampled uint8 frames in the workers, before the model's preprocessing (sample id: the video id). It never writes
the decoded-frame cache (which holds clean frames only) and reads it only for a temporal perturbation
(`perturb/video.TEMPORAL`: whole frames moved, which commutes with per-frame preprocessing), applying the same
index map to the cached clean frames; any other video perturbation decodes again. Its output-cache key names the
cell, so perturbed outputs never mix with clean ones; a cell of another modality leaves the video pass, and its
key, exactly as in the clean run (the clean outputs are reused).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mmeval.config.video import FrameSampling
from mmeval.engine.model_pass import PassResult, model_pass
from mmeval.engine.outputs import Answers, Embeddings, Generation, restore_key
from mmeval.engine.runtime import Runtime
from mmeval.engine.timing import Timer, sync
from mmeval.errors import DataError
from mmeval.io.source import Batch, source_fingerprint
from mmeval.io.texts import digest
from mmeval.io.video import describe_decoder, read_clip
from mmeval.perturb import Cell, apply_cell, rng_for
from mmeval.perturb.video import TEMPORAL, source_of

log = logging.getLogger(__name__)
_HASH_CHUNK = 1 << 20


@dataclass
class VideoPass:
    """One pass over a dataset's videos: what was read, what could not be, and where the time went."""

    ok_indices: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, reason) of unreadable videos
    digests: dict[int, str] = field(default_factory=dict)  # sha256 hex of each video file's bytes
    timer: Timer = field(default_factory=Timer)
    frames_from: str = "float"  # float | uint8 | cache | output cache: how the frames were made (for the report)

    def to_meta(self) -> dict[str, Any]:
        return {"ok": self.ok_indices, "bad": [list(b) for b in self.bad],
                "digests": {str(i): d for i, d in self.digests.items()}}  # fmt: skip

    @classmethod
    def from_meta(cls, meta: dict[str, Any], frames_from: str) -> VideoPass:
        return cls(ok_indices=[int(i) for i in meta["ok"]], bad=[(int(i), str(r)) for i, r in meta["bad"]],
                   digests={int(i): str(d) for i, d in meta["digests"].items()}, timer=Timer(cached=True),
                   frames_from=frames_from)  # fmt: skip


def file_digest(path) -> str:
    """sha256 hex of a video file's bytes, read in 1 MiB chunks (a frame folder: its file names and bytes)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).iterdir() if p.is_file()) if Path(path).is_dir() else [Path(path)]
    for file in files:
        if len(files) > 1 or file != Path(path):
            digest.update(f"{file.name}\n".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


class _VideoDataset(Dataset):
    """Item k -> (source index, frames (T, 3, H, W) or None, sha256 hex of the file or "", error or None)."""

    def __init__(self, source, sampling: FrameSampling, per_frame: Callable, indices: list[int],
                 cell: Cell | None = None):  # fmt: skip
        self.source, self.sampling, self.per_frame, self.indices = source, sampling, per_frame, indices
        self.cell = cell

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[int, Any, str, str | None]:
        index = self.indices[item]
        path = self.source.path(index)
        try:
            clip = read_clip(path, self.sampling)
            file_hash = file_digest(path)
        except DataError as exc:
            return index, None, "", str(exc)
        except OSError as exc:  # the file vanished or became unreadable between decoding and hashing
            return index, None, "", f"{path}: cannot read the video file ({exc})"
        sampled = perturbed(self.cell, clip.frames, self.source.ids[index])
        try:
            frames = torch.stack([self.per_frame(Image.fromarray(frame)) for frame in sampled])
        except Exception as exc:  # noqa: BLE001 - a transform that chokes on one video must not kill the worker
            return index, None, file_hash, f"{path}: preprocessing failed ({exc})"
        return index, frames, file_hash, None


def _collate(items):
    return items


def perturbed(cell: Cell | None, frames: np.ndarray, video_id: Any) -> np.ndarray:
    """A clip's sampled uint8 (T, H, W, 3) frames under `cell` when it is a video cell, else `frames` as they are."""
    out = apply_cell(cell, "video", frames, video_id)
    if out is not frames and (out.shape != frames.shape or out.dtype != np.uint8):
        raise ValueError(f"video perturbation {cell.name} returned {out.dtype} {out.shape}, expected uint8 "
                         f"{frames.shape}")
    return out


class VideoBatches:
    """The `BatchLoader` of a video pass: (B, T, 3, H, W) float frames of `source` for `model` on the run's
    device (see the module docstring). `done` holds the latest `batches` call's findings."""

    def __init__(self, model, source, runtime: Runtime, sampling: FrameSampling, on_bad_input: str,
                 perturbation: Cell | None = None):  # fmt: skip
        self.model, self.source, self.runtime = model, source, runtime
        self.sampling, self.on_bad_input = sampling, on_bad_input
        self.cell = perturbation if perturbation is not None and perturbation.modality == "video" else None
        self.pipeline = getattr(model, "pixel_pipeline", None)
        self.mode = "uint8" if self.pipeline is not None else "float"
        self.store = self._store()
        self.done = VideoPass(frames_from=self.mode)

    def _store(self):
        fingerprint = source_fingerprint(self.source)
        if self.runtime.cache is None or fingerprint is None:
            return None
        if self.pipeline is not None:
            geometry: Any = self.pipeline.key()
        else:
            from mmeval.engine.cache import model_identity

            geometry = model_identity(self.model)  # the float transform belongs to the checkpoint
            if geometry is None:
                return None
        parts = {"source": fingerprint, "sampling": self.sampling.key(), "geometry": geometry, "mode": self.mode,
                 "decoder": describe_decoder()}  # fmt: skip
        return self.runtime.cache.decoded_store(parts, "frames", np.uint8 if self.mode == "uint8" else np.float32)

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict[str, Any]:
        parts = {"videos": source_fingerprint(self.source), "sampling": self.sampling.key(), "frames": self.mode,
                 "decoder": describe_decoder(), "on_bad_input": self.on_bad_input}  # fmt: skip
        if self.cell is not None:  # only then: a clean pass keeps the key it always had
            parts["perturbation"] = dataclasses.asdict(self.cell)
        return parts

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `indices` (ascending), each `batch_size` consecutive entries with the unreadable videos
        left out. Only a pass over the whole source writes the decoded-frame cache."""
        self.done = VideoPass(timer=timer, frames_from=self.mode)
        if not indices:
            return
        reusable = self.cell is None or self.cell.name in TEMPORAL  # see the module docstring
        if self.store is not None and reusable and self.store.complete():
            self.done.frames_from = "cache"
            yield from self._stored(indices)
            return
        whole = len(indices) == len(self.source) and self.cell is None
        writing = False
        if whole and self.store is not None:
            shape = self._frame_shape()
            writing = shape is not None and self.store.begin(len(self.source), (self.sampling.frames, *shape))
        try:
            yield from self._decoded(indices, self.store if writing else None)
        except BaseException:
            if writing:
                self.store.abandon()
            raise
        if writing:
            self.store.finish(self.done.to_meta())

    def _frame_shape(self) -> tuple[int, int, int] | None:
        """(3, H, W) of a preprocessed frame: the pipeline's size, or the float transform run on a blank frame."""
        if self.pipeline is not None:
            return (3, *self.pipeline.size)
        try:
            return tuple(self.model.image_transform(Image.new("RGB", (64, 48))).shape)
        except Exception:  # noqa: BLE001 - a transform that needs real content: no decoded-frame cache
            return None

    def _decoded(self, indices: list[int], store) -> Iterator[Batch]:
        per_frame = self.pipeline.to_uint8 if self.pipeline is not None else self.model.image_transform
        loader = DataLoader(_VideoDataset(self.source, self.sampling, per_frame, indices, self.cell),
                            batch_size=self.runtime.batch_size, num_workers=self.runtime.num_workers,
                            collate_fn=_collate, persistent_workers=False)  # fmt: skip
        timer = self.done.timer
        iterator, began = iter(loader), time.perf_counter()
        timer.data_s += time.perf_counter() - began
        while True:
            began = time.perf_counter()
            try:
                items = next(iterator)
            except StopIteration:
                return
            timer.data_s += time.perf_counter() - began
            seen_bad, good = len(self.done.bad), []
            for index, frames, file_hash, error in items:
                if file_hash:
                    self.done.digests[index] = file_hash
                if error is not None:
                    self._bad(index, error)
                else:
                    good.append((index, frames))
            ok = [index for index, _ in good]
            batch = torch.stack([frames for _, frames in good]) if good else None
            if batch is not None and store is not None:
                store.write(ok, batch)
            yield self._batch([index for index, *_ in items], ok, batch, seen_bad)

    def _stored(self, wanted: list[int]) -> Iterator[Batch]:
        """Batches read from a complete decoded-frame store (no decoding); its unreadable videos again."""
        cached = VideoPass.from_meta(self.store.meta(), "cache")
        unreadable = dict(cached.bad)
        array = self.store.array()
        for start in range(0, len(wanted), self.runtime.batch_size):
            items, seen_bad = wanted[start : start + self.runtime.batch_size], len(self.done.bad)
            for index in items:
                if index in cached.digests:
                    self.done.digests[index] = cached.digests[index]
                if index in unreadable:
                    self._bad(index, unreadable[index])
            ok = [index for index in items if index not in unreadable]
            began = time.perf_counter()
            batch = torch.from_numpy(np.ascontiguousarray(self._moved(array, ok))) if ok else None
            self.done.timer.data_s += time.perf_counter() - began
            yield self._batch(items, ok, batch, seen_bad)

    def _moved(self, array: np.ndarray, ok: list[int]) -> np.ndarray:
        """The cached clean frames of the videos `ok`, each under the temporal cell's index map (its worker would
        have moved the same uint8 frames before preprocessing them one by one: the same result)."""
        if self.cell is None:
            return array[ok]
        cell, n_frames = self.cell, array.shape[1]
        return np.stack([array[index][source_of(cell.name, n_frames, cell.severity,
                                                rng_for(cell.seed, cell.name, cell.severity, self.source.ids[index]))]
                         for index in ok])  # fmt: skip

    def _batch(self, items: list[int], ok: list[int], frames: torch.Tensor | None, seen_bad: int) -> Batch:
        self.done.ok_indices.extend(ok)
        if frames is not None:
            began = time.perf_counter()
            frames = self._to_run_device(frames)
            self.done.timer.h2d_s += time.perf_counter() - began
        digests = {index: self.done.digests[index] for index in items if index in self.done.digests}
        return Batch(list(ok), frames, self.done.bad[seen_bad:], digests)

    def _to_run_device(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames: copied, then normalised on the device (frame by frame, as the pipeline does images)."""
        device = self.runtime.device
        if device.type == "cuda":
            frames = frames.pin_memory().to(device, non_blocking=True)
        if self.pipeline is not None:
            b, t = frames.shape[:2]
            frames = self.pipeline.normalize(frames.flatten(0, 1)).unflatten(0, (b, t))
        sync(device)
        return frames

    def _bad(self, index: int, error: str) -> None:
        if self.on_bad_input == "fail":
            raise DataError(f"{error} (set data.on_bad_input: skip to skip such videos)")
        log.warning("skipping video: %s", error)
        self.done.bad.append((index, error))


# --- the passes video tasks call (as engine/runner.py's image passes) ---------------------------------------


def encode_videos(model, source, runtime: Runtime, sampling: FrameSampling, on_bad_input: str,
                  progress: Callable[[int], None], perturbation: Cell | None = None,
                  ) -> tuple[torch.Tensor, VideoPass]:  # fmt: skip
    """Embed every readable video of `source` once, in order, with `model.encode_video` (rows on the run's
    device; in a data-parallel run whole on rank 0 only); a video `perturbation` perturbs the sampled frames."""
    loader = VideoBatches(model, source, runtime, sampling, on_bad_input, perturbation)
    done = model_pass(model, loader, Embeddings(model.encode_video, "video", runtime), runtime, progress)
    return done.rows.to(runtime.device), _video_pass(done, loader)


def generate_for_videos(model, source, runtime: Runtime, sampling: FrameSampling, settings, on_bad_input: str,
                        progress: Callable[[int], None], perturbation: Cell | None = None,
                        ) -> tuple[list[str], VideoPass]:  # fmt: skip
    """One caption per readable video (`model.generate_video`), aligned with `VideoPass.ok_indices`."""
    loader = VideoBatches(model, source, runtime, sampling, on_bad_input, perturbation)
    kind = Generation(lambda frames, _: model.generate_video(frames, settings), "captions", "videos", runtime)
    done = model_pass(model, loader, kind, runtime, progress, settings=dataclasses.asdict(settings))
    return list(done.part.items or []), _video_pass(done, loader)


def answer_for_videos(model, source, prompts_of: list[list[tuple[Any, str]]], runtime: Runtime,
                      sampling: FrameSampling, settings, on_bad_input: str, progress: Callable[[int], None],
                      perturbation: Cell | None = None) -> tuple[dict[Any, str], VideoPass]:  # fmt: skip
    """Answer every question about every readable video (`model.answer_video`); each video is decoded once.
    `prompts_of[i]` lists (key, prompt) for video i; returns {key: answer} and the video pass."""
    loader = VideoBatches(model, source, runtime, sampling, on_bad_input, perturbation)
    kind = Answers(lambda frames, prompts: model.answer_video(frames, prompts, settings), prompts_of, runtime)
    done = model_pass(model, loader, kind, runtime, progress, settings=dataclasses.asdict(settings),
                      prompts=digest(prompts_of))  # fmt: skip
    return {restore_key(k): a for item in done.part.items or [] for k, a in item}, _video_pass(done, loader)


def video_report(sampling: FrameSampling, done: VideoPass) -> dict[str, Any]:
    """What a video benchmark's report entry records about its frames: the sampling, the decoder and how the
    frames were made."""
    return {"sampling": {**sampling.model_dump(), "key": sampling.key()}, **describe_decoder(),
            "frames_from": done.frames_from}  # fmt: skip


def _video_pass(done: PassResult, loader: VideoBatches) -> VideoPass:
    merged = VideoPass.from_meta(done.part.meta(), "output cache" if done.from_cache else loader.done.frames_from)
    merged.timer = done.timer
    return merged
