"""Run every benchmark of a config on one model and write the report; what finished is always kept.

A benchmark that fails (bad data, a model error) is recorded as failed in the report and the others still
run; Ctrl-C stops the run and the finished benchmarks are written before exiting.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.benchmarks import RunContext
from mmeval.config import ModelConfig, RunConfig
from mmeval.errors import MmevalError, ModelLoadError
from mmeval.latency import MemoryWatch, latency_block
from mmeval.models.base import capabilities_of
from mmeval.registry import MODELS, TASKS, resolve
from mmeval.report import add_failure, add_result, new_report, validate_report, write_json_no_clobber
from mmeval.runner import NullProgress, Runtime, place_model, resolve_runtime

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    report: dict[str, Any]
    report_path: Path | None = None
    samples_path: Path | None = None
    errors: list[str] = field(default_factory=list)  # one line per failed benchmark
    internal_error: BaseException | None = None  # a bug, not bad input: re-raised by the CLI
    interrupted: bool = False


def load_model(model_cfg: ModelConfig):
    """Load a model through its adapter; unexpected loader failures become ModelLoadError."""
    loader = resolve("model type", model_cfg.type, MODELS)
    try:
        model = loader(model_cfg)
    except MmevalError:
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        where = model_cfg.checkpoint or model_cfg.pretrained or model_cfg.arch or model_cfg.entry
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model.checkpoint: cannot load {where} as '{model_cfg.type}' ({first_line})") from exc
    if model_cfg.name:
        model.info.name = model_cfg.name
    return model


def missing_capability(model, task: str) -> str | None:
    """Why `model` cannot run `task`, or None; checked before any data is loaded."""
    needs = TASKS[task].capabilities[0]
    has = capabilities_of(model)
    if needs in has:
        return None
    return (f"task '{task}' needs a model with capability '{needs}'; {model.info.name} "
            f"({model.info.adapter}) has: {', '.join(sorted(has)) or 'none'}")


def _start(cfg: RunConfig, config_path: str | None) -> tuple[Runtime, Any, dict[str, Any]]:
    """Resolve the runtime, load and place the model, and start its report (with the model's load time)."""
    runtime = resolve_runtime(cfg.runtime)
    started = time.perf_counter()
    model = load_model(cfg.model)
    place_model(model, runtime)
    report = new_report(cfg.model_dump(mode="json"), model.info, runtime, config_path)
    report["model"]["load_s"] = time.perf_counter() - started
    return runtime, model, report


def run_config(cfg: RunConfig, config_path: str | None = None, progress=None) -> RunOutcome:
    """Evaluate the model on every benchmark and write the report (and per-sample output) to output.dir."""
    runtime, model, report = _start(cfg, config_path)
    outcome = RunOutcome(report)
    samples: dict[str, Any] = {}
    stem = cfg.output.name or f"{_safe(model.info.name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    directory = cfg.output.dir.expanduser()

    for bench in cfg.benchmarks:
        def save_artifact(kind: str, payload: Any, _name: str = bench.name) -> Path:
            return write_json_no_clobber(payload, directory, f"{stem}.{_name}", f".{kind}.json")

        ctx = RunContext(runtime, progress or NullProgress(), save_artifact)
        memory = MemoryWatch(runtime.device)
        memory.start()
        try:
            problem = missing_capability(model, bench.task)
            if problem:
                raise MmevalError(problem)
            result = resolve("task", bench.task, TASKS)(model, bench, ctx)
        except MmevalError as exc:
            add_failure(report, bench.name, bench.task, str(exc))
            outcome.errors.append(f"benchmark '{bench.name}': {exc}")
            continue
        except KeyboardInterrupt:
            add_failure(report, bench.name, bench.task, "interrupted by the user")
            report["benchmarks"][bench.name]["status"] = "interrupted"
            report["status"] = "interrupted"
            outcome.interrupted = True
            break
        except Exception as exc:  # a bug: keep what finished, then let the CLI show it
            add_failure(report, bench.name, bench.task, f"internal error: {type(exc).__name__}: {exc}")
            outcome.internal_error = exc
            break
        add_result(report, bench.name, result)
        report["benchmarks"][bench.name]["latency"] = latency_block(result.timers, result.timings,
                                                                    runtime.warmup_batches, memory.stop())
        samples[bench.name] = result.per_sample

    write_outputs(report, samples, directory, stem, cfg.output.per_sample, outcome)
    return outcome


def bench_config(cfg: RunConfig, batch_sizes: list[int], precisions: list[str] | None, iterations: int,
                 config_path: str | None = None, progress=lambda _: None) -> RunOutcome:
    """`mmeval bench`: time the config's model on synthetic inputs and write the report (no dataset read)."""
    from mmeval.bench import run_bench
    from mmeval.models.base import GenerationSettings

    runtime, model, report = _start(cfg, config_path)
    generating = [b for b in cfg.benchmarks if b.task in ("coco_captions", "vqa", "multiple_choice")]
    settings = GenerationSettings(**generating[0].generation.model_dump()) if generating else GenerationSettings()
    report["benchmarks"]["bench"] = run_bench(model, runtime, batch_sizes, precisions or [runtime.precision],
                                              iterations, settings, progress)
    outcome = RunOutcome(report)
    stem = cfg.output.name or f"{_safe(model.info.name)}-bench-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(report, {}, cfg.output.dir.expanduser(), stem, False, outcome)
    return outcome


def write_outputs(report: dict[str, Any], samples: dict[str, Any], directory: Path, stem: str,
                  per_sample: bool, outcome: RunOutcome) -> None:
    """Write per-sample rows (if wanted) and the schema-checked report; record their paths in `outcome`."""
    if per_sample and samples:
        outcome.samples_path = write_json_no_clobber(samples, directory, stem, ".samples.json")
        stem = outcome.samples_path.name.removesuffix(".samples.json")
        report["per_sample_file"] = outcome.samples_path.name
    report = _without_nan(report)
    validate_report(report)
    outcome.report = report
    outcome.report_path = write_json_no_clobber(report, directory, stem)


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
