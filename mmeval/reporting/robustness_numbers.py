"""The numbers of a report's robustness blocks as flat 'benchmark/metric/number' paths, for gate rules
(`robustness: ...`) and the HTML report's table.

Per benchmark with a `robustness` block and per metric of its `clean` values:

- `grid/<perturbation>@<severity>`: the metric under that perturbation at that severity;
- `relative/<perturbation>@<severity>`: perturbed / clean (relative robustness);
- `worst`: the worst grid value (lowest for higher-is-better metrics); `worst_relative`: worst / clean;
- `mean_relative`: relative robustness averaged over every cell of the grid (all perturbations and severities);
- `mce`, `relative_mce`, `ce/<perturbation>`: the corruption errors against `perturb.baseline`, where computed
  (null, with the block's error, when the baseline could not be used).

Grid names are "<modality>:<name>" ("image:gaussian_noise"); the first, text-only retrieval blocks used bare
names ("casing"). A path keeps the name as the report writes it and can also be matched by the other spelling
(bare names are text perturbations), so `relative/text:casing@2` and `relative/casing@2` name the same number
in both kinds of report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mmeval.metrics.robustness import relative_robustness, worst_case

ERRORS = ("mce", "relative_mce")  # lower is better, whatever the metric's direction


@dataclass(frozen=True)
class RobustNumber:
    """One number of a robustness block, with the direction that counts as worse and the paths that name it."""

    value: float | None  # None: undefined (NaN, a zero clean value, an mCE that could not be computed)
    higher_is_better: bool
    aliases: tuple[str, ...]  # the path as the report writes it first, then the other spelling of the name
    note: str | None = None  # why the value is undefined, where the report says


def other_spelling(name: str) -> str:
    """'casing' <-> 'text:casing'; 'image:fog' -> 'fog'."""
    return name.split(":", 1)[1] if ":" in name else f"text:{name}"


def severity_label(severity: Any) -> str:
    return f"{severity:g}" if isinstance(severity, float) else str(severity)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def metric_direction(bench: dict[str, Any], metric: str) -> bool:
    """Whether higher is better for a metric of the benchmark (its metrics entry; ranks are lower-is-better)."""
    entry = (bench.get("metrics") or {}).get(metric)
    if isinstance(entry, dict) and "higher_is_better" in entry:
        return bool(entry["higher_is_better"])
    return "rank" not in metric


def benchmark_numbers(name: str, bench: dict[str, Any]) -> dict[str, RobustNumber]:
    """Every number of one benchmark's robustness block (empty when it has none), keyed by its path."""
    block = bench.get("robustness")
    if not isinstance(block, dict):
        return {}
    severities = [severity_label(s) for s in block.get("severities") or []]
    out: dict[str, RobustNumber] = {}

    def add(metric: str, tail: str, value: Any, higher: bool, perturbation: str | None = None,
            suffix: str = "", note: str | None = None) -> None:
        """`tail` is the path after the metric; with `perturbation`, tail/perturbation+suffix in both spellings."""
        spellings = [perturbation, other_spelling(perturbation)] if perturbation is not None else [None]
        paths = tuple(f"{name}/{metric}/{tail}" + ("" if p is None else f"/{p}{suffix}") for p in spellings)
        out[paths[0]] = RobustNumber(_number(value), higher, paths, note)

    mce = block.get("mce") if isinstance(block.get("mce"), dict) else {}
    for metric, clean in (block.get("clean") or {}).items():
        higher = metric_direction(bench, metric)
        grid = {p: list(by_metric.get(metric) or []) for p, by_metric in (block.get("grid") or {}).items()
                if isinstance(by_metric, dict)}
        clean = _number(clean)
        relative = relative_robustness(clean, grid) if clean is not None else {p: [math.nan] * len(v)
                                                                               for p, v in grid.items()}
        for perturbation, values in grid.items():
            for severity, value, ratio in zip(severities, values, relative[perturbation]):
                add(metric, "grid", value, higher, perturbation, f"@{severity}")
                add(metric, "relative", ratio, higher, perturbation, f"@{severity}")
        worst = worst_case(grid, higher)["value"]
        ratios = [r for values in relative.values() for r in values if _number(r) is not None]
        if _number(worst) is not None:
            add(metric, "worst", worst, higher)
            add(metric, "worst_relative", worst / clean if clean else None, higher)
        if ratios:
            add(metric, "mean_relative", sum(ratios) / len(ratios), higher)
        if "error" in mce:
            for key in ERRORS:
                add(metric, key, None, False, note=f"no mCE: {mce['error']}")
        elif isinstance(mce.get(metric), dict):
            for key in ERRORS:
                if key in mce[metric]:
                    add(metric, key, mce[metric][key], False)
            for perturbation, ce in (mce[metric].get("ce") or {}).items():
                add(metric, "ce", ce, False, perturbation)
    return out


def robustness_numbers(report: dict[str, Any] | None) -> dict[str, RobustNumber]:
    """The numbers of every complete benchmark's robustness block of a report, keyed 'benchmark/metric/...'."""
    out: dict[str, RobustNumber] = {}
    for name, bench in ((report or {}).get("benchmarks") or {}).items():
        if bench.get("status", "complete") == "complete":
            out.update(benchmark_numbers(name, bench))
    return out


def has_robustness(report: dict[str, Any] | None) -> bool:
    return any(isinstance(b.get("robustness"), dict) for b in ((report or {}).get("benchmarks") or {}).values())
