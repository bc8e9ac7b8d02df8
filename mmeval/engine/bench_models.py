"""Benchmarks with their own model (`benchmarks[].model`): loaded when needed, shared, freed.

A benchmark with a `model:` entry runs on that model instead of the run's. Benchmarks with equal entries
(same resolved JSON) share one load; at most one such model is held at a time, next to the run's model:
it is freed (gc, and the CUDA cache emptied) when a benchmark needs another one, and when the run ends.
Its outputs are cached and resumed under its own checkpoint hash (`cache.model_identity` of the model
that runs the pass), so they never mix with the run's model's.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from mmeval.engine.runtime import Runtime, place_model


class BenchmarkModels:
    """The one benchmark model held now, by its entry's JSON, with its report block."""

    def __init__(self, runtime: Runtime, load: Callable[..., Any]):
        self.runtime, self.load = runtime, load  # load: evaluate.load_model
        self.key: str | None = None
        self.model: Any = None
        self.block: dict[str, Any] | None = None

    def model_for(self, bench, index: int, main_model) -> tuple[Any, dict[str, Any] | None]:
        """The model that runs `bench` (its own, loaded on first use, or `main_model`) and, for its own, the
        report block (adapter, name, checkpoint, sha256, n_parameters, loaded_with, load_s). A load failure
        raises (ModelLoadError naming benchmarks[index].model); Ctrl-C during the load is a KeyboardInterrupt."""
        if bench.model is None:
            return main_model, None
        key = bench.model.model_dump_json()
        if key != self.key:
            self.close()  # the model held now is not needed by this benchmark: free it before loading
            started = time.perf_counter()
            model = self.load(bench.model, self.runtime.trust_checkpoint, f"benchmarks[{index}].model")
            place_model(model, self.runtime)
            block = {**asdict(model.info), "load_s": time.perf_counter() - started}  # as the report's `model`
            self.key, self.model, self.block = key, model, block
        return self.model, dict(self.block)

    def close(self) -> None:
        """Free the held model (its last reference here), if any."""
        if self.model is None:
            return
        self.key = self.model = self.block = None
        gc.collect()
        if self.runtime.device.type == "cuda":
            torch.cuda.empty_cache()
