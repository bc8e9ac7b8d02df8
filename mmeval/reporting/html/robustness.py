"""The HTML report's robustness part of a benchmark section: the headline metrics against perturbation severity
(one line per perturbation, the clean value as a reference line) and a table of each checkpoint's worst case,
mean relative robustness and mCE. Drawn only for benchmarks whose report has a `robustness` block."""

from __future__ import annotations

import math
from typing import Any

from mmeval.metrics.robustness import worst_case
from mmeval.reporting.html import plots
from mmeval.reporting.html.sections import Run, esc, fmt, plot_img, swatch
from mmeval.reporting.leaderboard import headline_metrics
from mmeval.reporting.robustness_numbers import RobustNumber, benchmark_numbers, metric_direction, severity_label


def _finite(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _worst_cell(block: dict[str, Any], metric: str, higher: bool) -> tuple[float, str, Any] | None:
    """(value, perturbation, severity) of the worst grid cell, the severity as the block lists it."""
    grid = {p: (by_metric or {}).get(metric) or [] for p, by_metric in (block.get("grid") or {}).items()}
    worst = worst_case(grid, higher, block.get("severities") or [])
    return (worst["value"], worst["perturbation"], worst["severity"]) if worst["perturbation"] is not None else None


def _lookup(numbers: dict[str, RobustNumber], prefix: str):
    """key -> the value of the robustness number `prefix/key` (None when absent or undefined)."""
    def number(key: str) -> float | None:
        entry = numbers.get(f"{prefix}/{key}")
        return entry.value if entry is not None else None

    return number


def _metrics(done: list[tuple[Run, dict[str, Any]]]) -> list[str]:
    """The headline metrics among those the blocks report (the task's choice; the first three otherwise)."""
    names: list[str] = []
    for _, bench in done:
        names += [m for m in (bench["robustness"].get("clean") or {}) if m not in names]
    return headline_metrics(str(done[0][1].get("task")), names) if names else []


def _table(name: str, done: list[tuple[Run, dict[str, Any]]], metrics: list[str]) -> str:
    rows = []
    for run, bench in done:
        block, numbers = bench["robustness"], benchmark_numbers(name, bench)
        mce = block.get("mce") if isinstance(block.get("mce"), dict) else None
        for metric in metrics:
            worst = _worst_cell(block, metric, metric_direction(bench, metric))
            where = f" ({esc(worst[1])} @ {esc(severity_label(worst[2]))})" if worst else ""
            number = _lookup(numbers, f"{name}/{metric}")
            if mce is None:
                errors = "<td class=muted>no baseline</td>"
            elif "error" in mce:
                errors = f"<td class=failed>{esc(mce['error'])}</td>"
            elif not isinstance(mce.get(metric), dict):
                errors = "<td class=muted>not computed for this metric</td>"
            else:
                errors = f"<td class=num>{fmt(number('mce'))} / {fmt(number('relative_mce'))}</td>"
            rows.append(f"<tr><td>{swatch(run)}</td><td>{esc(metric)}</td>"
                        f"<td class=num>{fmt((block.get('clean') or {}).get(metric))}</td>"
                        f"<td class=num>{fmt(worst[0] if worst else None)}{where}</td>"
                        f"<td class=num>{fmt(number('worst_relative'))}</td>"
                        f"<td class=num>{fmt(number('mean_relative'))}</td>{errors}</tr>")
    return ("<table><tr><th>checkpoint</th><th>metric</th><th>clean</th><th>worst (perturbation @ severity)</th>"
            "<th>worst / clean</th><th>mean relative</th><th>mCE / relative mCE</th></tr>"
            f"{''.join(rows)}</table>")


def robustness_section(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    """Severity curves and the worst-case / mCE table; empty when no report has a robustness block here."""
    done = [(run, bench) for run, bench in done if isinstance(bench.get("robustness"), dict)]
    metrics = _metrics(done) if done else []
    if not metrics:
        return ""
    perturbations: list[str] = []
    for _, bench in done:
        perturbations += [p for p in bench["robustness"].get("grid") or {} if p not in perturbations]
    panels: dict[str, list] = {}
    for metric in metrics:
        for run, bench in done:
            block = bench["robustness"]
            severities = block.get("severities") or []
            grid = {p: list(zip(severities, (by_metric or {}).get(metric) or []))
                    for p, by_metric in (block.get("grid") or {}).items()}
            if any(grid.values()):
                panels.setdefault(metric, []).append((run.series(), _finite((block.get("clean") or {}).get(metric)),
                                                      grid))
    if not panels:
        return ""
    seeds = sorted({str(bench["robustness"].get("seed")) for _, bench in done})
    figure = plot_img(plots.severity_curves(panels, perturbations), "robustness",
                      f"{name}: metrics against perturbation severity")
    return (f"<h3>Robustness</h3><p class=muted>{len(perturbations)} perturbation(s), seed {esc(', '.join(seeds))}; "
            "mCE against the report named in perturb.baseline (Hendrycks &amp; Dietterich 2019)</p>"
            f"{figure}{_table(name, done, metrics)}")
