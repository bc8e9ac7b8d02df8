"""Run every benchmark of a config on one model and write the report; what finished is always kept.

A benchmark that fails (bad data, a model error) is recorded as failed in the report and the others still
run; Ctrl-C stops the run and the finished benchmarks are written before exiting. A config with several
models runs each of them through `start_model` and `evaluate_model` (see `multi.run_models`).
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mmeval.config.run import ModelConfig, RunConfig
from mmeval.engine.bench_models import BenchmarkModels
from mmeval.engine.latency import MemoryWatch, latency_block
from mmeval.engine.runner import NullProgress
from mmeval.engine.robustness import run_benchmark
from mmeval.engine.runtime import Runtime, place_model, resolve_runtime
from mmeval.errors import Interrupted, MmevalError, ModelLoadError, TooManyBadInputs
from mmeval.models import checkpoint_files
from mmeval.models.base import capabilities_of
from mmeval.registry import MODELS, can_serve, resolve, task_spec
from mmeval.reporting.report import (
    add_failure,
    add_result,
    check_writable,
    new_report,
    validate_report,
    write_json_no_clobber,
)
from mmeval.tasks.base import RunContext

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    report: dict[str, Any]
    report_path: Path | None = None
    samples_path: Path | None = None
    errors: list[str] = field(default_factory=list)  # one line per failed benchmark or output not written
    artifacts: list[Path] = field(default_factory=list)  # files saved during the run (captions, answers)
    internal_error: BaseException | None = None  # a bug, not bad input: re-raised by the CLI
    interrupted: bool = False


def load_model(model_cfg: ModelConfig, trust_checkpoint: bool = False, where: str = "model"):
    """Load a model through its adapter; unexpected loader failures become ModelLoadError (a damaged checkpoint
    file said as such, else the loader's first line; `mmeval --debug` shows the chained original).

    Without `trust_checkpoint` (the --trust-checkpoint flag) no code from the checkpoint runs: weights are read
    as safetensors or weights-only pickles, and transformers folders may not bring their own code. `where` is
    the entry's place in the config (`benchmarks[2].model` for a benchmark's own model), named in messages."""
    loader = resolve("model type", model_cfg.type, MODELS)
    try:
        model = loader(model_cfg, trust_checkpoint=trust_checkpoint)
    except MmevalError as exc:
        if where == "model":
            raise
        text = str(exc)  # adapters name the top-level entry's fields, or none: name this entry's place
        raise ModelLoadError(where + text.removeprefix("model") if text.startswith("model.") else f"{where}: {text}"
                             ) from exc
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        checkpoint = model_cfg.checkpoint
        damaged = (checkpoint_files.read_failure(checkpoint, exc, f"{where}.checkpoint")
                   if checkpoint and checkpoint.is_file() else None)
        if damaged is not None:
            raise damaged from exc
        what = checkpoint or model_cfg.pretrained or model_cfg.arch or model_cfg.entry
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{where}.checkpoint: cannot load {what} as '{model_cfg.type}' ({first_line})") from exc
    if model_cfg.name:
        model.info.name = model_cfg.name
    if model_cfg.video_pooling is not None:  # read by video tasks (mmeval.models.frame_pooling.as_video_encoder)
        model.video_pooling = model_cfg.video_pooling
    return model


def missing_capability(model, task: str, bench=None) -> str | None:
    """Why `model` cannot run `task` (as benchmark `bench` sets it up, when given), or None; checked before any
    data is loaded."""
    spec = task_spec(task)
    return lacking(model, spec.needs_for(bench) if bench is not None else spec.needs, f"task '{task}'")


def lacking(model, capability: str, who: str) -> str | None:
    """Why `model` cannot serve `who` (which needs `capability`), or None."""
    has = capabilities_of(model)
    if can_serve(has, capability):  # directly, or derived (video tasks pool an image model's frames)
        return None
    return (f"{who} needs a model with capability '{capability}'; {model.info.name} "
            f"({model.info.adapter}) has: {', '.join(sorted(has)) or 'none'}")


_LOAD_INTERRUPTED = "interrupted while loading the model; nothing was computed"


def start_model(cfg: RunConfig, runtime: Runtime, config_path: str | None) -> tuple[Any, dict[str, Any]]:
    """Load and place `cfg`'s (one) model and start its report (with the model's load time)."""
    started = time.perf_counter()
    try:
        model = load_model(cfg.model, runtime.trust_checkpoint)
        place_model(model, runtime)
    except KeyboardInterrupt:
        raise Interrupted(_LOAD_INTERRUPTED) from None
    report = new_report(cfg.model_dump(mode="json"), model.info, runtime, config_path)
    report["model"]["load_s"] = time.perf_counter() - started
    limits = {bench.name: bench.data.limit for bench in cfg.benchmarks if bench.data.limit}
    if limits:  # data.limit or --limit: numbers of a part of each benchmark, not comparable with a full run
        report["data_limits"] = limits
    return model, report


def _start(cfg: RunConfig, config_path: str | None, trust_checkpoint: bool = False,
           resume: bool = False) -> tuple[Runtime, Any, dict[str, Any]]:  # fmt: skip
    """Check that the output folder can be written (before any work), resolve the runtime, then load the model
    and start its report."""
    if cfg.is_multi:
        raise MmevalError(f"model: this config lists {len(cfg.models)} models, and this command takes one "
                          "(`mmeval run` evaluates a list: mmeval.engine.multi.run_models)")
    check_writable(cfg.output.dir.expanduser())
    try:
        runtime = resolve_runtime(cfg.runtime, trust_checkpoint, resume)
    except KeyboardInterrupt:  # e.g. during CUDA initialisation
        raise Interrupted(_LOAD_INTERRUPTED) from None
    return (runtime, *start_model(cfg, runtime, config_path))


def run_config(cfg: RunConfig, config_path: str | None = None, progress=None, trust_checkpoint: bool = False,
               resume: bool = False, memo=None) -> RunOutcome:  # fmt: skip
    """Evaluate the model on every benchmark and write the report (and per-sample output) to output.dir.
    `resume` (--resume) reuses the finished work an interrupted run of the same passes left (resume.py);
    `memo` (a data_memo.DataMemo) holds the data the pre-run checks loaded (`mmeval run`)."""
    runtime, model, report = _start(cfg, config_path, trust_checkpoint, resume)
    stem = cfg.output.name or f"{_safe(model.info.name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    return evaluate_model(cfg, model, runtime, report, stem, progress, memo)


def evaluate_model(cfg: RunConfig, model, runtime: Runtime, report: dict[str, Any], stem: str, progress=None,
                   memo=None) -> RunOutcome:  # fmt: skip
    """Run every benchmark of `cfg` on a loaded model, then write its report as `stem` in output.dir.
    `memo` (a data_memo.DataMemo) shares loaded data with the other models of the run."""
    outcome = RunOutcome(report)
    samples: dict[str, Any] = {}
    directory = cfg.output.dir.expanduser()
    own_models = BenchmarkModels(runtime, load_model)  # benchmarks with their own `model:`
    try:
        for index, bench in enumerate(cfg.benchmarks):
            checked, checked_s = memo.checked_data(bench) if memo is not None else (None, 0.0)
            ctx = RunContext(runtime, progress or NullProgress(),
                             _artifact_writer(directory, f"{stem}.{bench.name}", outcome.artifacts), memo,
                             cfg.bootstrap, checked, checked_s)  # fmt: skip
            if not _run_benchmark(partial(own_models.model_for, bench, index, model), bench, ctx, outcome, samples):
                break
    finally:
        own_models.close()
    if runtime.dist.is_primary:  # in a data-parallel run, rank 0 alone writes the report
        write_outputs(report, samples, directory, stem, cfg.output.per_sample, outcome)
    return outcome


def _artifact_writer(directory: Path, stem: str, written: list[Path] | None = None):
    def save_artifact(kind: str, payload: Any) -> Path:
        path = write_json_no_clobber(payload, directory, stem, f".{kind}.json")
        if written is not None:
            written.append(path)
        return path

    return save_artifact


def _run_benchmark(model_for, bench, ctx: RunContext, outcome: RunOutcome, samples: dict[str, Any]) -> bool:
    """Run one benchmark into the report (a failure is recorded); False when the run must stop (Ctrl-C, a bug).
    `model_for()` gives the model that runs it and, for a benchmark with its own model, that model's report block
    (it may load it: a load failure fails this benchmark only, Ctrl-C during it interrupts it)."""
    report = outcome.report
    model, own_block = None, None  # the model stays None when a benchmark's own model fails to load
    memory = MemoryWatch(ctx.runtime.device)
    memory.start()
    reductions_before = len(ctx.runtime.batch_reductions)
    ctx.runtime.dist.together = True  # every rank takes part in the benchmark's passes (see RunContext.passes_done)
    try:
        model, own_block = model_for()
        problem = missing_capability(model, bench.task, bench)
        if problem:
            raise MmevalError(problem)
        result = run_benchmark(task_spec(bench.task), model, bench, ctx)  # + its robustness grid, if any
        if result is None:  # a rank other than 0 in a data-parallel run: rank 0 reports the benchmark
            return True
    except MmevalError as exc:
        add_failure(report, bench.name, bench.task, str(exc))
        if hasattr(model, "serving_block"):  # served models: the failed requests, named
            report["benchmarks"][bench.name]["serving"] = model.serving_block()
        if isinstance(exc, TooManyBadInputs):  # the list of skipped inputs is kept with the failure
            report["benchmarks"][bench.name]["dataset"] = exc.dataset
        outcome.errors.append(f"benchmark '{bench.name}': {exc}")
        return True
    except torch.cuda.OutOfMemoryError:  # outside a model call (those halve their batch: model_pass.RowLimit)
        message = ("CUDA out of memory outside a model call (copying, decoding or scoring a batch); lower "
                   "runtime.batch_size")
        add_failure(report, bench.name, bench.task, message)
        outcome.errors.append(f"benchmark '{bench.name}': {message}")
        return True
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during `mmeval run` (cli/signals.py: "terminated")
        add_failure(report, bench.name, bench.task, str(exc) or "interrupted by the user")
        report["benchmarks"][bench.name]["status"] = "interrupted"
        report["status"] = "interrupted"
        outcome.interrupted = True
        return False
    except Exception as exc:  # a bug: keep what finished, then let the CLI show it
        add_failure(report, bench.name, bench.task, f"internal error: {type(exc).__name__}: {exc}")
        outcome.internal_error = exc
        return False
    finally:  # a benchmark that failed after its own model loaded names that model too
        if own_block is not None and bench.name in report["benchmarks"]:
            report["benchmarks"][bench.name]["model"] = own_block
    result.task = bench.task  # as the config names it: a 'module:attr' task stays resolvable by compare / report
    if ctx.checked_s and ctx.checked_data is None:  # its data came from the pre-run checks: their loading time
        result.timings["load_data_s"] = result.timings.get("load_data_s", 0.0) + ctx.checked_s
        if "total_s" in result.timings:
            result.timings["total_s"] += ctx.checked_s
    add_result(report, bench.name, result)
    if own_block is not None:  # the model that produced these numbers (not the run's model)
        report["benchmarks"][bench.name]["model"] = own_block
    report["benchmarks"][bench.name]["latency"] = latency_block(result.timers, result.timings,
                                                                ctx.runtime.warmup_batches, memory.stop())
    if hasattr(model, "add_serving"):  # served models: requests, cache hits, TTFT / TPOT, tokens, cost
        model.add_serving(report["benchmarks"][bench.name]["latency"])
    if len(ctx.runtime.batch_reductions) > reductions_before:  # CUDA ran out of memory: calls ran at a smaller size
        report["benchmarks"][bench.name]["latency"]["batch_size_reductions"] = (
            ctx.runtime.batch_reductions[reductions_before:])
    samples[bench.name] = result.per_sample
    if result.extra.get("robustness", {}).get("interrupted"):  # Ctrl-C during the grid: clean result and done cells kept
        report["status"] = "interrupted"
        outcome.interrupted = True
        return False
    return True


def bench_config(cfg: RunConfig, batch_sizes: list[int], precisions: list[str] | None, iterations: int,
                 config_path: str | None = None, progress=lambda _: None, trust_checkpoint: bool = False) -> RunOutcome:
    """`mmeval bench`: time the config's model on synthetic inputs and write the report (no dataset read)."""
    from mmeval.engine.bench import run_bench
    from mmeval.models.base import GenerationSettings

    runtime, model, report = _start(cfg, config_path, trust_checkpoint)
    generating = [b for b in cfg.benchmarks if "generation" in type(b).model_fields]
    settings = GenerationSettings(**generating[0].generation.model_dump()) if generating else GenerationSettings()
    report["benchmarks"]["bench"] = run_bench(model, runtime, batch_sizes, precisions or [runtime.precision],
                                              iterations, settings, progress)
    outcome = RunOutcome(report)
    stem = cfg.output.name or f"{_safe(model.info.name)}-bench-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(report, {}, cfg.output.dir.expanduser(), stem, False, outcome)
    return outcome


def write_outputs(report: dict[str, Any], samples: dict[str, Any], directory: Path, stem: str,
                  per_sample: bool, outcome: RunOutcome) -> None:
    """Write per-sample rows (if wanted) and the schema-checked report; record their paths in `outcome`.

    A write that fails (disk full, folder gone) leaves no partial file (`write_json_no_clobber`) and becomes
    one line in `outcome.errors` that names what was kept: the report is still tried when the larger
    per-sample file did not fit, and the CLI still prints the results table."""
    if per_sample and samples:
        try:
            outcome.samples_path = write_json_no_clobber(samples, directory, stem, ".samples.json")
            stem = outcome.samples_path.name.removesuffix(".samples.json")
            report["per_sample_file"] = outcome.samples_path.name
        except MmevalError as exc:
            outcome.errors.append(f"{exc}; the per-sample output was not saved")
    report = _without_nan(report)
    validate_report(report)
    outcome.report = report
    try:
        outcome.report_path = write_json_no_clobber(report, directory, stem)
    except MmevalError as exc:
        kept = [path.name for path in (*outcome.artifacts, outcome.samples_path) if path is not None]
        outcome.errors.append(f"{exc}; no report was written" + (f"; kept in {directory}: {', '.join(kept)}"
                                                                  if kept else ""))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: undefined metric values (e.g. no queries) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value
