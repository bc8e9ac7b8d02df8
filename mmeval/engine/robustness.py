"""Robustness re-runs of any benchmark with a `perturb` section: the clean run, then the task's own `run` once
per grid cell (`PerturbConfig.cells()`) with `ctx.perturbation` set, and the report's `robustness` block.

The task's readers of the cell's modality apply it (image loader workers, query / question / prompt texts,
video and audio loaders); every other input stays clean. Within the benchmark an in-memory output memo
(`cache.output_memo`) serves every pass whose inputs a cell leaves unchanged from the clean run (the text
embeddings of an image cell, the image embeddings of a text cell), also with `--no-cache` or a model without a
checkpoint hash, and the data is loaded once. A re-run is quiet: no progress bars, no artifacts, no per-sample
rows, no bootstrap, the task's warnings muted (one log line per cell instead). A cell that fails is recorded
in the block (`errors`, its values NaN -> null) and the grid goes on; Ctrl-C keeps the clean result and the
cells done so far (`interrupted: true`).

The block: {"severities", "seed", "clean": {metric: v}, "grid": {"<modality>:<name>": {metric: [v per
severity]}}, "relative": {metric: {cell name: [perturbed / clean]}}, "worst": {metric: {"value",
"perturbation", "severity"}}, "mce" (with `perturb.baseline`), "errors" (if any), "timings": {"clean_s",
"grid_s", "cells", "reused_passes", "cell_s": {"image:fog@3": seconds}}}. mCE (Hendrycks & Dietterich) is
computed for the task's headline metrics that are higher-is-better and in [0, 1] (E = 1 - metric), against the
same benchmark's block in the baseline report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmeval.config.runtime import BootstrapConfig
from mmeval.engine.cache import output_memo
from mmeval.engine.data_memo import DataMemo
from mmeval.engine.runner import NullProgress
from mmeval.errors import DataError
from mmeval.metrics.robustness import corruption_errors, relative_robustness, worst_case
from mmeval.tasks.base import BenchmarkResult, RunContext

log = logging.getLogger(__name__)
_QUIET = ("mmeval.tasks", "mmeval.io.bad_inputs", "mmeval.metrics")  # loggers muted during re-runs


def run_benchmark(spec, model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """`spec`'s run of `bench` on `model`; with a `perturb` grid, also the grid, in `result.extra["robustness"]`."""
    run = spec.load("run")
    cells = bench.perturb.cells() if getattr(bench, "perturb", None) is not None else []
    if not cells:
        return run(model, bench, ctx)
    with output_memo() as memo:
        # the data is loaded once for the clean run and every re-run: through the run's data memo, or one of the
        # benchmark's own when the run has none
        clean_ctx = dataclasses.replace(ctx, memo=ctx.memo if ctx.memo is not None else DataMemo())
        began = time.perf_counter()
        result = run(model, bench, clean_ctx)
        clean_s = time.perf_counter() - began
        ctx.checked_data = clean_ctx.checked_data  # consumed by the clean run (evaluate.py adds its load time)
        values, errors, cell_s, interrupted = _grid(run, model, bench, clean_ctx, cells)
    log.info("%s: robustness grid of %d cells in %.1f s (clean run %.1f s; %d passes reused from the clean run)",
             bench.name, len(cells), sum(cell_s), clean_s, memo.hits)
    if result is None:  # a data-parallel rank other than 0: rank 0 reports
        return None
    block = robustness_block(spec, bench, result, values)
    if errors:
        block["errors"] = errors
    if interrupted:
        block["interrupted"] = True
    block["timings"] = {"clean_s": clean_s, "grid_s": sum(cell_s), "cells": len(cell_s), "reused_passes": memo.hits,
                        "cell_s": {cell.label(): seconds for cell, seconds in zip(cells, cell_s)}}
    result.extra["robustness"] = block
    return result


def _grid(run, model, bench, clean_ctx: RunContext, cells: list) -> tuple[dict, list[dict], list[float], bool]:
    """Every cell's metric values ({cell: {metric: value}}; a failed cell maps to {}), the failures, the seconds
    per cell, and whether Ctrl-C stopped the grid."""
    values: dict[Any, dict[str, float]] = {}
    errors: list[dict[str, str]] = []
    seconds: list[float] = []
    for number, cell in enumerate(cells, start=1):
        ctx = RunContext(clean_ctx.runtime, NullProgress(), None, clean_ctx.memo, BootstrapConfig(n=0),
                         perturbation=cell)
        ctx.runtime.dist.together = True  # every rank takes part in the re-run's passes, as in the clean run
        began = time.perf_counter()
        try:
            with _muted():
                result = run(model, bench, ctx)
        except KeyboardInterrupt:
            log.warning("%s: robustness grid interrupted at %s; keeping the %d cells done", bench.name,
                        cell.label(), number - 1)
            return values, errors, seconds, True
        except Exception as exc:  # noqa: BLE001  a failed cell is recorded; the grid and the clean result go on
            message = f"{type(exc).__name__}: {exc}"
            log.warning("%s: robustness cell %s failed (%s)", bench.name, cell.label(), message)
            errors.append({"perturbation": f"{cell.modality}:{cell.name}", "severity": cell.severity,
                           "error": message})
            values[cell] = {}
            result = None
        else:
            if result is not None:
                values[cell] = {name: m["value"] for name, m in result.metrics.items() if _number(m.get("value"))}
        seconds.append(time.perf_counter() - began)
        log.info("%s: robustness %d/%d %s done in %.1f s", bench.name, number, len(cells), cell.label(), seconds[-1])
    return values, errors, seconds, False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@contextlib.contextmanager
def _muted() -> Iterator[None]:
    """The tasks' own warnings (saturated recall, skipped images) were said by the clean run: not once per cell."""
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def robustness_block(spec, bench, result: BenchmarkResult, values: dict) -> dict[str, Any]:
    """The report's `robustness` block from the clean result and every cell's metric values."""
    cfg = bench.perturb
    clean = {name: m["value"] for name, m in result.metrics.items() if _number(m.get("value"))}
    names = [f"{modality}:{name}" for modality in ("text", "image", "video", "audio") for name in
             getattr(cfg, modality)]
    grid: dict[str, dict[str, list[float]]] = {name: {metric: [] for metric in clean} for name in names}
    for cell in cfg.cells():
        if cell not in values:  # not reached (Ctrl-C): no entry for it or later severities
            continue
        row = grid[f"{cell.modality}:{cell.name}"]
        for metric in clean:
            row[metric].append(float(values[cell].get(metric, math.nan)))
    block: dict[str, Any] = {"severities": cfg.severities, "seed": cfg.seed, "clean": clean, "grid": grid,
                             "relative": {}, "worst": {}}
    for metric, clean_value in clean.items():
        by_name = {name: row[metric] for name, row in grid.items()}
        better = result.metrics[metric].get("higher_is_better")
        better = spec.higher_is_better(metric) if better is None else better
        block["relative"][metric] = relative_robustness(clean_value, by_name)
        block["worst"][metric] = worst_case(by_name, better is not False, block["severities"])
    if cfg.baseline is not None:
        try:
            block["mce"] = mce_block(cfg.baseline, bench.name, block, error_metrics(spec, result))
        except DataError as exc:  # late in the run: keep every computed number, say why mCE is missing
            log.warning("%s: %s", bench.name, exc)
            block["mce"] = {"baseline": str(cfg.baseline), "error": str(exc)}
    return block


def error_metrics(spec, result: BenchmarkResult) -> list[str]:
    """The headline metrics an error E = 1 - metric makes sense for: higher is better and the clean value in [0, 1]."""
    def fits(name: str) -> bool:
        metric = result.metrics[name]
        better = metric.get("higher_is_better")
        better = spec.higher_is_better(name) if better is None else better
        return better is True and _number(metric.get("value")) and 0.0 <= metric["value"] <= 1.0

    return [name for name in spec.headline(list(result.metrics)) if name in result.metrics and fits(name)]


def mce_block(path: Path, bench_name: str, block: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    """Corruption errors and mCE of `metrics` against the same benchmark's robustness block in the report `path`."""
    try:
        other = json.loads(path.read_text())["benchmarks"][bench_name]["robustness"]
        other_grid, other_clean = other["grid"], other["clean"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"perturb.baseline {path}: expected a report with a robustness block for benchmark "
                        f"'{bench_name}' ({type(exc).__name__}: {exc})") from None
    if other.get("severities") != block["severities"]:
        raise DataError(f"perturb.baseline {path}: severities {other.get('severities')} differ from "
                        f"{block['severities']}")
    out: dict[str, Any] = {"baseline": str(path)}
    for metric in metrics:
        errors = {n: [1 - _nan(v) for v in g[metric]] for n, g in block["grid"].items()}
        try:
            base = {n: [1 - _nan(v) for v in g[metric]] for n, g in other_grid.items()}
            out[metric] = corruption_errors(errors, base, 1 - block["clean"][metric], 1 - _nan(other_clean[metric]))
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"perturb.baseline {path}: {metric}: {exc}") from None
    return out


def _nan(value: Any) -> float:
    """A report's null (an undefined or failed value) as NaN."""
    return math.nan if value is None else float(value)
