"""What the reports hold, as flat tables a gate rule's glob pattern matches (`mmeval.reporting.gate`): the
headline metrics ('benchmark/metric'), the timed passes ('benchmark/pass'), the bias block's numbers and the
robustness blocks' numbers ('benchmark/metric/...', mmeval.reporting.robustness_numbers) of complete benchmarks."""

from __future__ import annotations

import math
from typing import Any

from mmeval.reporting.compare import LoadedReport
from mmeval.reporting.robustness_numbers import RobustNumber, robustness_numbers


def complete(item: LoadedReport | None) -> dict[str, dict[str, Any]]:
    if item is None:
        return {}
    return {n: b for n, b in item.report["benchmarks"].items() if b.get("status") == "complete"}


def metric_values(item: LoadedReport | None) -> dict[str, float | None]:
    return {f"{bench}/{metric}": entry["value"] for bench, b in complete(item).items()
            for metric, entry in b["metrics"].items()}


def passes(item: LoadedReport | None) -> dict[str, dict[str, Any]]:
    return {f"{bench}/{name}": figures for bench, b in complete(item).items()
            for name, figures in ((b.get("latency") or {}).get("passes") or {}).items()}


def bias_numbers(item: LoadedReport | None) -> dict[str, float | None]:
    """Every number under benchmarks.<name>.bias.attributes, keyed 'name/attribute/.../leaf'."""
    out: dict[str, float | None] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}/{key}", value)
        elif node is None or (isinstance(node, (int, float)) and not isinstance(node, bool)):
            out[prefix] = None if node is None or not math.isfinite(node) else float(node)

    for bench, b in complete(item).items():
        walk(bench, (b.get("bias") or {}).get("attributes") or {})
    return out


def robust(item: LoadedReport | None) -> dict[str, RobustNumber]:
    return robustness_numbers(item.report if item is not None else None)


def absent(item: LoadedReport, bench: str) -> str:
    entry = item.report["benchmarks"].get(bench)
    if entry is None:
        return f"no benchmark '{bench}'"
    if entry.get("status") != "complete":
        return f"benchmark '{bench}' {entry.get('status')}: {entry.get('error', '')}".rstrip(": ")
    return "the benchmark does not report it"
