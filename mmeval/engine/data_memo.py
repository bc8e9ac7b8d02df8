"""What several models evaluated in one run share: each benchmark's data loaded once, images decoded once.

- Annotations: `DataMemo.load(loader, *args)` calls a benchmark's loader once per distinct arguments (the
  data config) and hands every later model the same object (benchmarks only read it). A loader that fails
  fails once: the same error is raised again for the other models, without reading the files again.
- Pixels: uint8 images at a model's resolution go to a pixel store (`decoded_cache.DecodedStore`) keyed by image
  source and geometry, so models with the same preprocessing read them instead of decoding, and a model
  with another preprocessing decodes once more. With the on-disk pixel cache off (`runtime.cache: off`),
  `run_scoped_pixels` gives the run a store of its own in a temporary folder, removed when the run ends:
  memory-mapped files, so memory stays bounded however large the dataset.

Models whose preprocessing does not split into geometry + normalisation (`pixels.py`: Hugging Face
processors, plugins) decode for each model, as an image source without a fingerprint does.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mmeval.engine.cache import Cache
from mmeval.errors import MmevalError

log = logging.getLogger(__name__)


def _arg_key(value: Any) -> str:
    """A stable key for a loader argument: a config section by its resolved JSON, anything else by repr."""
    return value.model_dump_json() if isinstance(value, BaseModel) else repr(value)


class DataMemo:
    """Loaded benchmark data by (loader, arguments), for the length of one run.

    `checked` holds the data the pre-run checks loaded (`mmeval.data.check`), by benchmark: a benchmark's
    RunContext takes it from there (`checked_data`) instead of reading its annotations again."""

    def __init__(self, checked: dict[str, Any] | None = None, seconds: dict[str, float] | None = None) -> None:
        self._loaded: dict[tuple[str, ...], tuple[Any, MmevalError | None]] = {}
        self._checked = dict(checked or {})
        self._seconds = dict(seconds or {})

    def checked_data(self, bench) -> tuple[Any, float]:
        """The data the pre-run checks loaded for `bench` (as its task's `load_data` returns it), or None; and the
        seconds that took, counted once (for the first model that uses it, as a memo load is)."""
        from mmeval.data.check import bench_key

        key = bench_key(bench)
        return self._checked.get(key), self._seconds.pop(key, 0.0)

    @staticmethod
    def _key(loader: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, ...]:
        return (loader.__module__, loader.__qualname__, *(_arg_key(a) for a in args))

    def remember(self, loader: Callable[..., Any], args: tuple[Any, ...], data: Any) -> None:
        """Hand later `load(loader, *args)` calls `data`, loaded elsewhere (the pre-run checks' copy)."""
        self._loaded.setdefault(self._key(loader, args), (data, None))

    def load(self, loader: Callable[..., Any], *args: Any) -> Any:
        """`loader(*args)` the first time; the same result (or the same error) afterwards."""
        key = self._key(loader, args)
        if key not in self._loaded:
            try:
                self._loaded[key] = (loader(*args), None)
            except MmevalError as exc:
                self._loaded[key] = (None, exc)
        else:
            log.debug("data for %s reused from an earlier model", loader.__qualname__)
        value, error = self._loaded[key]
        if error is not None:
            raise error
        return value


@contextlib.contextmanager
def run_scoped_pixels(runtime) -> Iterator[None]:
    """Within the block, `runtime.cache` has a pixel store: the configured one, or (cache off) a temporary
    one that only pixels go to; model outputs are then still neither read nor written."""
    if runtime.cache is not None and runtime.cache.pixels:
        yield
        return
    configured = runtime.cache
    with tempfile.TemporaryDirectory(prefix="mmeval-run-pixels-") as folder:
        runtime.cache = Cache(Path(folder), outputs=False, pixels=True)
        try:
            yield
        finally:
            runtime.cache = configured
