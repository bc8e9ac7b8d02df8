"""One module per task; each exposes `run(model, bench_cfg, ctx) -> BenchmarkResult`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.config.run import BootstrapConfig
from mmeval.engine.runner import NullProgress, Timer
from mmeval.engine.runtime import Runtime
from mmeval.errors import TooManyBadInputs
from mmeval.io.bad_inputs import bad_fraction_problem, skipped_line

log = logging.getLogger(__name__)


@dataclass
class BenchmarkResult:
    """What a benchmark hands to the report: dataset facts, metrics, timings and per-sample rows."""

    task: str
    dataset: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    timings: dict[str, float]
    per_sample: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific report fields (files, tokenizer, ...)
    timers: dict[str, Timer] = field(default_factory=dict)  # each pass's model timings, for the latency block


@dataclass
class RunContext:
    """What a benchmark may use besides its model and config: runtime, progress bars, an artifact writer.

    `save_artifact(kind, payload)` writes JSON next to the report at once (so generated outputs survive a
    later failure) and returns the file's path. `memo` (a `data_memo.DataMemo`) is set when several models
    are evaluated in one run, so each benchmark's data is loaded once for all of them.
    """

    runtime: Runtime
    progress: Any = field(default_factory=NullProgress)
    save_artifact: Callable[[str, Any], Path] | None = None
    memo: Any = None
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)  # confidence intervals of the metrics
    # The data the pre-run checks loaded with the task's own `load_data` (TaskSpec: "exactly as run reads it"),
    # and the seconds that took (added to the benchmark's load_data_s by the engine)
    checked_data: Any = None
    checked_s: float = 0.0
    # A robustness re-run's perturbation (mmeval.perturb.Cell): the readers of its modality apply it; None = clean
    perturbation: Any = None

    def load_data(self, loader: Callable[..., Any], *args: Any) -> Any:
        """`loader(*args)`: the benchmark's data; what the pre-run checks already loaded (once), else through the
        run's memo when there is one."""
        if self.checked_data is not None:
            data, self.checked_data = self.checked_data, None
            if self.memo is not None:  # a later load of the same data (a robustness re-run) gets this copy
                self.memo.remember(loader, args, data)
            return data
        return self.memo.load(loader, *args) if self.memo is not None else loader(*args)

    def passes_done(self) -> bool:
        """Called once a benchmark's model passes are done. In a data-parallel run (torchrun) the ranks other
        than 0 stop there (False): rank 0 has every output and alone computes the metrics, and any later model
        pass of the benchmark (a CLIPScore scorer, bias queries) runs on rank 0 alone. True in a plain run."""
        ranks = self.runtime.dist
        ranks.together = False  # evaluate.py sets it back before the next benchmark
        return ranks.is_primary


def check_skipped(bench, data, images) -> None:
    """After a benchmark's image pass: one line saying how many images were skipped, and the benchmark fails
    when more than `data.max_bad_fraction` of them were, or all of them (the failure keeps the list of skipped
    images in the report)."""
    if not images.bad:
        return
    n_bad, n_total = len(images.bad), len(data.image_ids)
    log.warning("%s: %s; the report lists each under dataset.skipped_images", bench.name,
                skipped_line(n_bad, n_total, "images"))
    problem = bad_fraction_problem(n_bad, n_total, getattr(bench.data, "max_bad_fraction", None), "images")
    if problem is None and n_bad == n_total:
        problem = f"no image could be read ({n_bad:,} of {n_total:,} unreadable)"
    if problem:
        raise TooManyBadInputs(f"{data.source}: {problem}", {
            "n_images": n_total - n_bad, "n_skipped_images": n_bad,
            "skipped_images": [{"image_id": data.image_ids[i], "reason": reason} for i, reason in images.bad]})


def dataset_summary(data, images, n_texts: int) -> dict[str, Any]:
    """The report's `dataset` block: sizes, skipped images, source and a digest of annotations + image bytes."""
    digest = hashlib.sha256(data.annotation_digest.encode())
    for index in sorted(images.digests):
        digest.update(images.digests[index])
    return {
        "n_images": len(images.ok_indices),
        "n_texts": n_texts,
        "n_skipped_images": len(images.bad),
        "skipped_images": [{"image_id": data.image_ids[i], "reason": reason} for i, reason in images.bad],
        "source": data.source,
        "sha256": digest.hexdigest(),
        "pixels_from": images.pixels_from,
    }
