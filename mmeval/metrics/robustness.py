"""Robustness summaries of a benchmark run under perturbations: relative robustness, worst case and mean
corruption error (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR).

- relative robustness of a metric under perturbation c at severity s: perturbed value / clean value;
- worst case: the (perturbation, severity) with the worst value (lowest for higher-is-better metrics);
- corruption error CE_c = sum_s E_(s,c) / sum_s E^baseline_(s,c), mCE = mean_c CE_c, with E = 1 - accuracy
  (or any error in [0, 1]) and the baseline another model's errors on the same grid (AlexNet in the paper);
  relative CE_c = sum_s (E_(s,c) - E_clean) / sum_s (E^baseline_(s,c) - E^baseline_clean), relative mCE its mean.
Pure functions over plain numbers: the grid comes from the run, the baseline from a named baseline report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

Grid = Mapping[str, Sequence[float]]  # perturbation -> metric (or error) value at severities 1..S


def relative_robustness(clean: float, grid: Grid) -> dict[str, list[float]]:
    """Perturbed / clean for every perturbation and severity (NaN when the clean value is 0)."""
    return {name: [v / clean if clean else math.nan for v in values] for name, values in grid.items()}


def worst_case(grid: Grid, higher_is_better: bool = True, severities: Sequence[int] | None = None) -> dict[str, Any]:
    """The worst value over the grid, with its perturbation and severity (`severities[i]` for the i-th value;
    1, 2, ... when not given). Missing (None) and non-finite values are skipped."""
    cells = [(v, name, severity) for name, values in grid.items()
             for severity, v in zip(severities if severities is not None else itertools.count(1), values)
             if isinstance(v, (int, float)) and math.isfinite(v)]
    if not cells:
        return {"value": math.nan, "perturbation": None, "severity": None}
    value, name, severity = (min if higher_is_better else max)(cells, key=lambda cell: cell[0])
    return {"value": value, "perturbation": name, "severity": severity}


def corruption_errors(errors: Grid, baseline: Grid, clean: float | None = None,
                      baseline_clean: float | None = None) -> dict[str, Any]:
    """CE per corruption and mCE against a baseline's errors on the same corruptions and severities; with both
    clean errors, the relative CE and relative mCE too. Corruptions missing from the baseline are an error."""
    missing = sorted(set(errors) - set(baseline))
    if missing:
        raise ValueError(f"the baseline has no errors for {', '.join(missing)}")
    ce: dict[str, float] = {}
    relative: dict[str, float] = {}
    for name, values in errors.items():
        base = baseline[name]
        if len(base) != len(values):
            raise ValueError(f"{name}: {len(values)} severities here, {len(base)} in the baseline")
        ce[name] = sum(values) / sum(base) if sum(base) else math.nan
        if clean is not None and baseline_clean is not None:
            denominator = sum(b - baseline_clean for b in base)
            relative[name] = sum(v - clean for v in values) / denominator if denominator else math.nan
    out: dict[str, Any] = {"ce": ce, "mce": sum(ce.values()) / len(ce) if ce else math.nan}
    if relative:
        out["relative_ce"] = relative
        out["relative_mce"] = sum(relative.values()) / len(relative)
    return out
