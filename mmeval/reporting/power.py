"""`mmeval power`: the minimum detectable effect of every headline metric of a baseline report, and a suggested
gate rules file built from them (mmeval/metrics/stats/power.py holds the statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmeval.errors import MmevalError
from mmeval.metrics.stats.power import minimum_detectable_effect
from mmeval.reporting.leaderboard import headline_metrics
from mmeval.reporting.report_io import load_report, load_samples
from mmeval.reporting.sample_values import paired_values


@dataclass
class PowerRow:
    benchmark: str
    metric: str
    value: float | None
    higher_is_better: bool
    result: dict[str, Any] | None  # minimum_detectable_effect's output; None when no per-sample values
    reason: str | None = None


def power_rows(path: Path, alpha: float, power: float, correlation: float) -> list[PowerRow]:
    """One row per headline metric of every complete benchmark of the report at `path`."""
    report = load_report(path)
    samples = load_samples(path, report)
    if samples is None:
        raise MmevalError(f"{path}: has no per-sample output (output.per_sample: false); `power` needs it")
    rows = []
    for name, bench in report.get("benchmarks", {}).items():
        if bench.get("status", "complete") != "complete" or not bench.get("metrics"):
            continue
        names = list(bench["metrics"])
        for metric in headline_metrics(bench["task"], names):
            entry = bench["metrics"][metric]
            data = paired_values(bench["task"], metric, samples.get(name), samples.get(name), names)
            row = PowerRow(name, metric, entry.get("value"), bool(entry.get("higher_is_better", True)), None,
                           data.reason)
            if not data.reason:
                # the unit the gate's paired test resamples (images, videos, clips; rows when unknown)
                row.result = minimum_detectable_effect([a for a, _ in data.strata], data.statistic, alpha, power,
                                                       correlation, data.clusters, data.unit)
            rows.append(row)
    if not rows:
        raise MmevalError(f"{path}: no complete benchmark with headline metrics")
    return rows


def suggested_rules(rows: list[PowerRow], alpha: float) -> dict[str, Any]:
    """A gate rules file: per metric, fail on a significant worsening larger than its MDE (a smaller threshold
    would be a coin flip; see the README's "Choosing gate thresholds")."""
    rules = []
    for row in rows:
        if row.result is None or row.result["mde"] is None:
            continue
        unit = row.result.get("unit", "rows")
        rules.append({"name": f"{row.benchmark}/{row.metric}: drop beyond the MDE at power {row.result['power']} "
                              f"(paired by {unit})",
                      "metric": f"{row.benchmark}/{row.metric}", "max_drop": float(f"{row.result['mde']:.4g}"),
                      "significant": True})
    return {"alpha": alpha, "rules": rules}


def write_rules(rules: dict[str, Any], path: Path) -> None:
    if not rules["rules"]:
        raise MmevalError(f"--rules {path}: no metric has a detectable effect; no rules file written")
    try:
        path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    except OSError as exc:
        raise MmevalError(f"--rules {path}: cannot write ({exc.strerror or exc})") from None
