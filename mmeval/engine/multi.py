"""Several checkpoints in one run: each model loaded, evaluated on every benchmark and freed in turn.

Data is shared (`data_memo`): each benchmark's annotations are read once and its images decoded once per
distinct preprocessing, whatever the number of models. Each model gets its own report, the same as a run
of that model alone would write (its config names that model only), and the run ends with a leaderboard
(`leaderboard.py`). A model that fails to load, or fails a benchmark, is recorded and the others still run;
Ctrl-C or an internal error stops the run, and what finished is written.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmeval.config.run import ModelConfig, RunConfig
from mmeval.engine.data_memo import DataMemo, run_scoped_pixels
from mmeval.engine.evaluate import RunOutcome, _safe, evaluate_model, start_model
from mmeval.engine.runner import NullProgress
from mmeval.engine.runtime import Runtime, resolve_runtime
from mmeval.errors import MmevalError
from mmeval.reporting.leaderboard import build_leaderboard, write_leaderboard
from mmeval.reporting.report import check_writable

log = logging.getLogger(__name__)


@dataclass
class ModelRun:
    """One model of the run: its config, and its outcome or why it did not load."""

    config: ModelConfig
    outcome: RunOutcome | None = None
    error: str | None = None  # the model could not be loaded
    status: str = "not run"  # complete | partial | failed | interrupted | not run


@dataclass
class MultiOutcome:
    runs: list[ModelRun]
    leaderboard: dict[str, Any] = field(default_factory=dict)
    leaderboard_path: Path | None = None
    markdown_path: Path | None = None
    errors: list[str] = field(default_factory=list)  # one line per failed model or benchmark
    internal_error: BaseException | None = None
    interrupted: bool = False


class _Prefixed:
    """The progress interface with the model's name before each bar; the bars are hidden when it is done."""

    def __init__(self, progress, prefix: str):
        self.progress, self.prefix, self.tasks = progress, prefix, []

    def add_task(self, description: str, total: int | None = None) -> Any:
        task = self.progress.add_task(f"{self.prefix}: {description}", total=total)
        self.tasks.append(task)
        return task

    def advance(self, task: Any, advance: float = 1) -> None:
        self.progress.advance(task, advance)

    def hide(self) -> None:
        for task in self.tasks if hasattr(self.progress, "update") else []:
            self.progress.update(task, visible=False)


def run_models(cfg: RunConfig, config_path: str | None = None, progress=None, trust_checkpoint: bool = False,
               resume: bool = False, memo: DataMemo | None = None) -> MultiOutcome:  # fmt: skip
    """Evaluate every model of `cfg` on every benchmark; write one report per model and the leaderboard.
    `trust_checkpoint` (--trust-checkpoint) as for `evaluate.run_config`; `resume` (--resume) reuses the finished
    work an interrupted run left (resume.py); `memo` may hold the data the pre-run checks loaded."""
    progress = progress or NullProgress()
    check_writable(cfg.output.dir.expanduser())  # before any model is loaded
    runtime = resolve_runtime(cfg.runtime, trust_checkpoint, resume)
    result = MultiOutcome([ModelRun(model) for model in cfg.models])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    memo = memo if memo is not None else DataMemo()
    overall = progress.add_task("models", total=len(result.runs))
    with run_scoped_pixels(runtime):
        for run in result.runs:
            try:
                _run_one(cfg.for_model(run.config), run, runtime, memo, stamp, config_path, progress)
            except KeyboardInterrupt:
                run.status, result.interrupted = "interrupted", True
            except MmevalError as exc:  # e.g. its report could not be written: the other models still run
                run.status, run.error = "failed", str(exc)
            except Exception as exc:  # a bug while loading: keep what finished, then let the CLI show it
                run.status, run.error, result.internal_error = "failed", f"internal error: {exc}", exc
            finally:
                _free(runtime)
            _collect(run, result)
            progress.advance(overall, 1)
            if result.interrupted or result.internal_error is not None:
                break
    if not runtime.dist.is_primary:  # a data-parallel run: rank 0 writes the reports and the leaderboard
        return result
    result.leaderboard = build_leaderboard(cfg, result.runs, config_path)
    directory = cfg.output.dir.expanduser()
    result.leaderboard_path, result.markdown_path = write_leaderboard(result.leaderboard, directory,
                                                                      cfg.output.name or f"run-{stamp}")
    return result


def _run_one(cfg: RunConfig, run: ModelRun, runtime: Runtime, memo: DataMemo, stamp: str,
             config_path: str | None, progress) -> None:  # fmt: skip
    """Load one model, evaluate it on every benchmark, write its report; the model is freed on return."""
    name = cfg.model.name or "model"
    try:
        model, report = start_model(cfg, runtime, config_path)
    except MmevalError as exc:
        run.status, run.error = "failed", str(exc)
        log.debug("model %s did not load: %s", name, exc)
        return
    stem = f"{cfg.output.name}-{_safe(name)}" if cfg.output.name else f"{_safe(name)}-{stamp}"
    bars = _Prefixed(progress, name)
    run.outcome = evaluate_model(cfg, model, runtime, report, stem, bars, memo)
    bars.hide()
    run.status = run.outcome.report["status"]


def _collect(run: ModelRun, result: MultiOutcome) -> None:
    """The model's errors, Ctrl-C and internal error, into the run's outcome."""
    name = run.config.name
    if run.error is not None:
        result.errors.append(f"model '{name}': {run.error}")
    if run.outcome is None:
        return
    result.errors += [f"model '{name}': {line}" for line in run.outcome.errors]
    result.interrupted |= run.outcome.interrupted
    if run.outcome.internal_error is not None:
        result.internal_error = run.outcome.internal_error


def _free(runtime: Runtime) -> None:
    """Give the finished model's memory back before the next one loads (its last reference is gone)."""
    gc.collect()
    if runtime.device.type == "cuda":
        torch.cuda.empty_cache()
