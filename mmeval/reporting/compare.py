"""Comparing reports: each metric per report, its change from the first report and, when both runs wrote
per-sample output for the same data, a paired p-value and 95% CI of the change (`mmeval.metrics.stats.paired`).

Reports of a benchmark evaluated on different data (dataset sha256) are refused unless forced, as their
metrics are not comparable; forced, their values are shown without paired statistics. A note says when the
test cannot reach alpha (too few samples differ) or when the bootstrap interval excludes 0 but p does not
reject. Latency rows (p95 ms per sample of each model pass) come with a warning when the reports' hardware or
precision differ.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.errors import MmevalError
from mmeval.metrics.stats.paired import PairedResult, paired_test
from mmeval.reporting.report_io import load_report, load_samples
from mmeval.reporting.sample_values import PairedValues, paired_values

# What latency depends on besides the model: environment fields and runtime fields (issue: compare like for like)
HARDWARE_FIELDS = (("environment", "device_name"), ("environment", "cpu_name"), ("environment", "cpu_count"),
                   ("environment", "torch_threads"), ("environment", "gpu_driver"), ("runtime", "precision"),
                   ("runtime", "batch_size"))  # fmt: skip
LATENCY_STAT = "p95"
ALPHA = 0.05  # compare's level: a change with two-sided p below it is coloured, and its notes refer to it


@dataclass
class LoadedReport:
    path: Path
    report: dict[str, Any]
    samples: dict[str, Any] | None = None
    samples_problem: str | None = None  # why per-sample rows could not be read

    @property
    def label(self) -> str:
        return self.path.name.removesuffix(".json")


@dataclass
class Row:
    """One metric across reports: values, change from the first report, paired statistics vs the first."""

    benchmark: str
    metric: str
    higher_is_better: bool | None
    values: list[float | None]
    deltas: list[float | None] = field(default_factory=list)
    paired: list[dict[str, Any] | None] = field(default_factory=list)  # PairedResult.as_dict() per report
    notes: list[str | None] = field(default_factory=list)  # why no paired statistics, or a caveat


@dataclass
class Comparison:
    reports: list[LoadedReport]
    rows: list[Row]
    warnings: list[str]


def load_for_comparison(paths: list[Path], with_samples: bool = True) -> list[LoadedReport]:
    """Load reports (any known schema version) and, when wanted, their per-sample rows (a missing per-sample
    file only disables the paired statistics)."""
    loaded = []
    for path in paths:
        item = LoadedReport(path, load_report(path))
        if with_samples:
            try:
                item.samples = load_samples(path, item.report)
                if item.samples is None:
                    item.samples_problem = f"{path.name} has no per-sample output (output.per_sample: false)"
            except MmevalError as exc:
                item.samples_problem = str(exc)
        loaded.append(item)
    return loaded


def _complete(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: b for name, b in report["benchmarks"].items() if b.get("status") == "complete"}


def dataset_mismatches(reports: list[LoadedReport]) -> list[tuple[str, LoadedReport]]:
    """(benchmark, report) pairs whose data (task, dataset sha256) differ from the first report's."""
    first = _complete(reports[0].report)
    out = []
    for other in reports[1:]:
        for name, bench in _complete(other.report).items():
            if name in first and (bench["task"] != first[name]["task"]
                                  or bench["dataset"]["sha256"] != first[name]["dataset"]["sha256"]):
                out.append((name, other))
    return out


def check_same_data(reports: list[LoadedReport], force: bool) -> list[str]:
    """Refuse (MmevalError) benchmarks evaluated on different data unless `force`; forced, return warnings."""
    lines = []
    for name, other in dataset_mismatches(reports):
        a, b = _complete(reports[0].report)[name], _complete(other.report)[name]
        what = (f"task {a['task']} vs {b['task']}" if a["task"] != b["task"]
                else f"dataset sha256 {a['dataset']['sha256'][:12]} vs {b['dataset']['sha256'][:12]}")
        lines.append(f"benchmark '{name}': {reports[0].path} and {other.path} were evaluated on different data "
                     f"({what})")
    if lines and not force:
        raise MmevalError("\n".join(f"{line}; pass --force to compare anyway" for line in lines))
    return [f"{line}; compared anyway (--force), without paired statistics" for line in lines]


def _model_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The model that produced a benchmark's numbers: its own (benchmarks[].model), else the report's."""
    return report["benchmarks"][name].get("model") or report["model"]


def benchmark_model_differences(reports: list[LoadedReport]) -> list[str]:
    """One line per benchmark that ran on its own model (benchmarks[].model) in some report and on another
    model than in the first report: the run's model names alone do not say which model a column compares."""
    first = _complete(reports[0].report)
    lines = []
    for other in reports[1:]:
        for name, bench in _complete(other.report).items():
            if name not in first or ("model" not in bench and "model" not in first[name]):
                continue
            a, b = _model_of(reports[0].report, name), _model_of(other.report, name)
            if (a["name"], a["sha256"]) != (b["name"], b["sha256"]):
                lines.append(f"benchmark '{name}': model {a['name']} in {reports[0].path.name} vs {b['name']} in "
                             f"{other.path.name} (a benchmark's own model)")
    return lines


def hardware_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """'field: x vs y' for each hardware / precision field that differs between two reports."""
    out = []
    for section, key in HARDWARE_FIELDS:
        va, vb = (a.get(section) or {}).get(key), (b.get(section) or {}).get(key)
        if va != vb:
            out.append(f"{section}.{key}: {va!r} vs {vb!r}")
    return out


def latency_figures(bench: dict[str, Any], stat: str = LATENCY_STAT) -> dict[str, float | None]:
    """pass -> sample_ms[stat] of each measured model pass (None when the report lacks that statistic)."""
    passes = (bench.get("latency") or {}).get("passes") or {}
    return {name: (p.get("sample_ms") or {}).get(stat) for name, p in passes.items() if p.get("n_batches")}


def compare(reports: list[LoadedReport], force: bool = False, n_resamples: int = 2000, seed: int = 0) -> Comparison:
    """Every metric of every benchmark, per report, against the first report."""
    if len(reports) < 2:
        raise MmevalError("compare needs at least two reports")
    warnings = check_same_data(reports, force)
    mismatched = {(name, id(other)) for name, other in dataset_mismatches(reports)}
    warnings += [f"{r.path}: {r.samples_problem}; no paired statistics" for r in reports if r.samples_problem]
    warnings += benchmark_model_differences(reports)
    benches = [_complete(r.report) for r in reports]
    names = list(dict.fromkeys(name for b in benches for name in b))
    rows: list[Row] = []
    for name in names:
        metric_names = list(dict.fromkeys(m for b in benches if name in b for m in b[name]["metrics"]))
        for metric in metric_names:
            entries = [b.get(name, {}).get("metrics", {}).get(metric) for b in benches]
            better = next((e["higher_is_better"] for e in entries if e), None)
            row = Row(name, metric, better, [e["value"] if e else None for e in entries],
                      *([None] * len(reports) for _ in range(3)))
            for n, other in enumerate(reports[1:], start=1):
                row.deltas[n] = _delta(row.values[0], row.values[n])
                if (name, id(other)) in mismatched:
                    row.notes[n] = "different data"
                    continue
                row.paired[n], row.notes[n] = _paired(reports[0], other, name, metric, metric_names, row.values, n,
                                                      n_resamples, seed)
            rows.append(row)
        rows += _latency_rows(name, benches)
    if any(r.metric.startswith("latency") and any(v is not None for v in r.values[1:]) for r in rows):
        for other in reports[1:]:
            differences = hardware_differences(reports[0].report, other.report)
            if differences:
                warnings.append(f"latency of {other.path.name} and {reports[0].path.name} comes from different "
                                f"hardware or settings ({'; '.join(differences)}): not comparable")
    return Comparison(reports, rows, warnings)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _paired(first: LoadedReport, other: LoadedReport, bench: str, metric: str, metric_names: list[str],
            values: list[float | None], n: int, n_resamples: int, seed: int) -> tuple[dict | None, str | None]:
    if values[0] is None or values[n] is None:
        return None, None
    if first.samples is None or other.samples is None:
        return None, "no per-sample output"
    task = first.report["benchmarks"][bench]["task"]
    data = paired_values(task, metric, first.samples.get(bench), other.samples.get(bench), metric_names)
    if data.reason:
        return None, data.reason
    result = paired_test(data.strata, data.statistic, n_resamples, seed, data.clusters)
    notes = [_caveat(data, values[0], values[n]), *significance_notes(result)]
    # the unit the test flipped and drew (e.g. "videos"), beside `resampled`, so the JSON says what a sample is
    return {**result.as_dict(), "unit": data.unit}, "; ".join(note for note in notes if note) or None


def cannot_reach(result: PairedResult, alpha: float, two_sided: bool = False) -> str:
    """Why a paired test could not reject at alpha: how few samples differ, and the smallest p possible."""
    floor = result.min_p_two_sided if two_sided else result.min_p_one_sided
    return (f"cannot reach alpha {alpha:g} with n = {result.n} ({result.n_differing} differing samples: the smallest "
            f"possible {'two' if two_sided else 'one'}-sided p is {floor:.2g})")


def significance_notes(result: PairedResult, alpha: float = ALPHA) -> list[str]:
    """Where p and the interval can mislead: a test that cannot reach alpha on these samples, and a bootstrap
    interval that excludes 0 while the test does not reject (the interval sizes the change, the test judges it)."""
    if result.n_differing == 0:
        return []  # identical outputs: nothing to test, nothing to explain
    out = [cannot_reach(result, alpha, two_sided=True)] if result.cannot_reach(alpha, two_sided=True) else []
    lo, hi = result.ci95
    if (lo > 0 or hi < 0) and result.p_value >= alpha:
        out.append(f"the bootstrap 95% interval excludes 0 but p = {result.p_value:.2g} >= {alpha:g}: with "
                   f"{result.n_differing} differing samples the percentile bootstrap is too narrow to judge by (it "
                   "only re-draws the changes seen, so if they all went one way so do its resamples); the "
                   "permutation p is the test")
    return out


def _caveat(data: PairedValues, value_a: float | None, value_b: float | None) -> str | None:
    """Say when the test ran on a subset of the samples, or on a value other than the reported one."""
    notes = [data.note] if data.note else []
    if data.n < max(data.n_a, data.n_b):
        notes.append(f"{data.n} of {data.n_a} / {data.n_b} samples matched by id")
    elif not data.note:
        for side, reported in ((0, value_a), (1, value_b)):
            mine = data.statistic_of(side)
            if reported is not None and not math.isclose(mine, reported, rel_tol=1e-6, abs_tol=1e-9):
                notes.append(f"tested on the per-sample {data.statistic} ({mine:.4g}), not the reported {reported:.4g}")
                break
    return "; ".join(notes) or None


def _latency_rows(name: str, benches: list[dict[str, dict[str, Any]]]) -> list[Row]:
    figures = [latency_figures(b[name]) if name in b else {} for b in benches]
    rows = []
    for pass_name in dict.fromkeys(p for f in figures for p in f):
        values = [f.get(pass_name) for f in figures]
        note = None if all(v is not None for v in values) else f"not measured (cached outputs, or no {LATENCY_STAT})"
        rows.append(Row(name, f"latency {pass_name} {LATENCY_STAT} ms/sample", False, values,
                        [None] + [_delta(values[0], v) for v in values[1:]], [None] * len(values),
                        [None] + [note] * (len(values) - 1)))
    return rows


# ------------------------------------------------------------------------------------------------ renderings


def fmt_value(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    digits = 2 if metric.startswith("latency") or "rank" in metric else 4
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_p(p: float | None) -> str:
    return "" if p is None else f"{p:.2g}"


def fmt_ci(metric: str, ci: list[float] | None) -> str:
    return "" if ci is None else f"[{fmt_value(metric, ci[0], True)}, {fmt_value(metric, ci[1], True)}]"


def columns(comparison: Comparison) -> list[str]:
    """Header of the flat tables: metric, then per report its value (and, after the first, delta, p, CI)."""
    out = ["benchmark", "metric"]
    for n, r in enumerate(comparison.reports):
        out.append(r.label)
        if n:
            out += [f"delta {n}", f"p {n}", f"CI95 {n}"]
    return out


def cells(row: Row) -> list[str]:
    out = [row.benchmark, row.metric]
    for n, value in enumerate(row.values):
        out.append(fmt_value(row.metric, value))
        if n:
            paired = row.paired[n]
            out += [fmt_value(row.metric, row.deltas[n], True), fmt_p(paired and paired["p_value"]),
                    fmt_ci(row.metric, paired and paired["ci95"])]
    return out


def to_markdown(comparison: Comparison) -> str:
    header = columns(comparison)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |" for row in comparison.rows]
    explained = notes(comparison)
    legend = (f"delta n: report n minus {comparison.reports[0].label}; p n: two-sided paired sign-flip "
              "permutation p-value; CI95 n: paired bootstrap 95% interval of the delta.")
    return "\n".join([*lines, "", legend, *(f"- {line}" for line in explained + comparison.warnings)]) + "\n"


def notes(comparison: Comparison) -> list[str]:
    """Why a metric has no paired statistics, or a caveat on them; metrics with the same note share a line."""
    grouped: dict[tuple[str, int, str], list[str]] = {}
    for row in comparison.rows:
        for n, note in enumerate(row.notes):
            if note and not row.metric.startswith("latency"):
                grouped.setdefault((row.benchmark, n, note), []).append(row.metric)
    return [f"{bench} {', '.join(metrics)} (vs report {n}): {note}" for (bench, n, note), metrics in grouped.items()]


def to_csv(comparison: Comparison) -> str:
    """Long format: one line per (benchmark, metric, report)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["benchmark", "metric", "higher_is_better", "report", "value", "delta", "p_value", "ci95_low",
                     "ci95_high", "n_paired", "note"])
    for row in comparison.rows:
        for n, report in enumerate(comparison.reports):
            paired = row.paired[n] or {}
            ci = paired.get("ci95") or [None, None]
            writer.writerow([row.benchmark, row.metric, row.higher_is_better, str(report.path), row.values[n],
                             row.deltas[n], paired.get("p_value"), ci[0], ci[1], paired.get("n"), row.notes[n] or ""])
    return buffer.getvalue()


def to_json(comparison: Comparison) -> str:
    payload = {
        "reports": [{"path": str(r.path), "label": r.label, "model": r.report["model"]["name"],
                     "schema_version": r.report["schema_version"]} for r in comparison.reports],
        "rows": [{"benchmark": row.benchmark, "metric": row.metric, "higher_is_better": row.higher_is_better,
                  "values": row.values, "deltas": row.deltas, "paired": row.paired, "notes": row.notes}
                 for row in comparison.rows],
        "warnings": comparison.warnings,
    }
    return json.dumps(payload, indent=2) + "\n"
