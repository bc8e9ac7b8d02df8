"""The input side of a model pass: what a modality's source and batch loader give the engine.

The engine (`mmeval.engine.model_pass`) runs any model call over any items through two small interfaces:

- an `InputSource`: indexable items (images, texts; next video clips, audio recordings) that can name an item
  in an error message and identify their content for the caches;
- a `BatchLoader` over a source: the pass order, what of the inputs the outputs depend on (the output-cache key
  parts), and model-ready `Batch`es of a list of source indices, each with the items it could not read.

A new modality implements these two in its own `io/` module (decoding, workers, its decoded-input cache) and
reuses the engine's batching, caching, resume, data parallelism, OOM halving, NaN checks and timers as they are.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # torch-free at run time: data loaders import their sources without torch
    from mmeval.engine.timing import Timer


class InputSource(Protocol):
    """Indexable items of one modality (picklable when a loader reads them in DataLoader workers)."""

    def __len__(self) -> int: ...

    def describe(self, index: int) -> str: ...  # a file path or row id, for error messages

    def fingerprint(self) -> str | None: ...  # the content's identity for cache keys; None: never cached


def file_stamps(paths: Iterable[Path], tag: bytes) -> str:
    """Identifies files as they are now (real path, size, modification time) without reading them, so a cache
    entry made from other or since-changed files never matches. Each folder is resolved once (a file's own
    symlink is not followed in its name, but `stat` follows it for the size and time): resolving every file's
    path costs a few `lstat` calls per file, noticeable on sets of short clips."""
    digest, folders = hashlib.sha256(tag), {}
    for path in paths:
        text = os.fspath(path)
        try:
            stat = os.stat(text)
            folder, name = os.path.split(text)
            if folder not in folders:
                folders[folder] = os.path.realpath(folder or ".")
            digest.update(f"{os.path.join(folders[folder], name)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except (OSError, ValueError):  # ValueError: a NUL byte in the path
            digest.update(f"{text}|missing\n".encode())
    return digest.hexdigest()


@dataclass
class Batch:
    """One batch of a pass: the readable items as model-ready inputs, and the items found unreadable with it.

    Batches are cut as `batch_size` consecutive entries of the indices asked for, unreadable items then left out,
    so every model call gets the same rows whichever rank runs it and whether or not the pass was resumed.
    """

    indices: list[int]  # source indices of the rows of `inputs`, in row order
    inputs: Any = None  # on the run's device (or moved there by the model call): a tensor or a dict of tensors
    bad: list[tuple[int, str]] = field(default_factory=list)  # (index, reason) of the batch's unreadable items
    digests: dict[int, str] = field(default_factory=dict)  # sha256 hex of raw bytes, for the dataset digest

    @property
    def covered(self) -> list[int]:
        """Every source index the batch went through, readable or not."""
        return [*self.indices, *(index for index, _ in self.bad)]


class BatchLoader(Protocol):
    """Turns a source's items into model-ready batches for one pass."""

    source: InputSource

    def order(self) -> list[int]:
        """The pass's order of source indices (batches are cut from it; e.g. texts by length)."""
        ...

    def cache_parts(self) -> dict[str, Any]:
        """What the outputs depend on besides the model: the source's fingerprint and the preprocessing.
        A None value means the inputs cannot be identified: the pass is then neither cached nor resumable."""
        ...

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        """Batches of `indices` (a subsequence of `order()`), reading and decoding counted in `timer`."""
        ...


def source_fingerprint(source: Any) -> str | None:
    """What identifies a source's content for caching, or None when it cannot be identified cheaply."""
    method = getattr(source, "fingerprint", None)
    return method() if method is not None else None
