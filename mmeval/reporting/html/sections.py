"""The per-benchmark sections of the HTML report (`mmeval.reporting.html.report`), and the small helpers both use.

One section per benchmark: failures, the data each report used, metric bars with CIs, recall@k / top-k curves from
the per-sample ranks, per-sample latency histograms, per-group bias bars, the captioning gallery, and metric vs
perturbation severity with worst case and mCE where the report has a robustness block (html/robustness.py). Each report
is a `Run` with a label, a colour and a line style that every figure and table uses.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmeval.reporting.html import plots
from mmeval.reporting.html.plots import Series


@dataclass
class Run:
    """One report as the page shows it: its JSON, its per-sample output (None if unavailable), its label."""

    path: Path
    report: dict[str, Any]
    samples: dict[str, Any] | None
    samples_note: str | None
    label: str
    colour: str
    linestyle: str

    def series(self, values: dict[str, Any] | None = None, ci95: dict[str, Any] | None = None) -> Series:
        """This report's numbers for one figure, in its colour and line style."""
        return Series(self.label, self.colour, self.linestyle, values or {}, ci95 or {})


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def swatch(run: Run) -> str:
    return f'<span class="swatch" style="background:{run.colour}"></span>{esc(run.label)}'


def plot_img(uri: str, kind: str, alt: str) -> str:
    return f'<img class="plot" data-plot="{kind}" alt="{esc(alt)}" src="{uri}">'


def fmt(value: Any) -> str:
    if not isinstance(value, (int, float)) or value is None:
        return "n/a"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"


def metric_names(benches: list[dict[str, Any] | None]) -> list[str]:
    names: list[str] = []
    for bench in benches:
        if bench and bench.get("status") != "failed":
            names += [m for m in bench.get("metrics") or {} if m not in names]
    return names


def higher_is_better(benches: list[dict[str, Any] | None], metric: str) -> bool | None:
    for bench in benches:
        entry = ((bench or {}).get("metrics") or {}).get(metric)
        if isinstance(entry, dict) and "higher_is_better" in entry:
            return bool(entry["higher_is_better"])
    return None



def _series(run: Run, metrics: dict[str, Any], names: list[str]) -> Series:
    values, cis = {}, {}
    for name in names:
        entry = metrics.get(name) or {}
        value = entry.get("value")
        values[name] = float(value) if isinstance(value, (int, float)) else None
        ci = entry.get("ci95")
        if isinstance(ci, list) and len(ci) == 2 and values[name] is not None:
            cis[name] = (float(ci[0]), float(ci[1]))
    return run.series(values, cis)


def benchmark_section(name: str, runs: list[Run]) -> str:
    present = [(run, run.report["benchmarks"][name]) for run in runs if name in run.report["benchmarks"]]
    done = [(run, b) for run, b in present if b.get("status") != "failed"]
    tasks = sorted({str(b.get("task")) for _, b in present})
    parts = [f'<h2 id="b-{esc(name)}">{esc(name)} <span class=muted>({esc(", ".join(tasks))})</span></h2>']
    parts += [f'<p class="failed">{swatch(run)}: failed: {esc(b.get("error", "no error recorded"))}</p>'
              for run, b in present if b.get("status") == "failed"]
    parts += [f"<p class=muted>{swatch(run)} not in this report</p>" for run in runs
              if name not in run.report["benchmarks"]]
    if not done:
        return "\n".join(parts)
    parts.append(_dataset_line(done))
    metrics = metric_names([b for _, b in done])
    if metrics:
        lower = {m for m in metrics if higher_is_better([b for _, b in done], m) is False}
        series = [_series(run, b.get("metrics") or {}, metrics) for run, b in done]
        parts.append("<h3>Metrics</h3>" + plot_img(plots.metric_bars(metrics, series, lower), "metrics",
                                                 f"{name}: metrics per checkpoint"))
    parts.append(_task_parts(name, done))
    parts.append(_latency(name, done))
    parts.append(_bias(name, done))
    parts.append(_robustness(name, done))
    return "\n".join(p for p in parts if p)


def _robustness(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    from mmeval.reporting.html.robustness import robustness_section  # it draws on this module's helpers

    return robustness_section(name, done)


def _task_parts(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    """What the benchmark's task adds to its section (TaskSpec.html: curves, galleries), if anything."""
    from mmeval.registry import find_task

    spec = find_task(done[0][1].get("task"))
    section = spec.load("html") if spec is not None else None
    return section(name, done) if section is not None else ""


def _dataset_line(done: list[tuple[Run, dict[str, Any]]]) -> str:
    rows = []
    for run, bench in done:
        data = bench.get("dataset") or {}
        sizes = ", ".join(f"{data[k]:,} {k.removeprefix('n_')}" for k in ("n_images", "n_texts", "n_questions")
                          if isinstance(data.get(k), int))
        own = bench.get("model")  # a benchmark with its own model (benchmarks[].model) names it
        rows.append(f"{swatch(run)}: {esc(data.get('source', '?'))}, {esc(sizes)}, "
                    f"<code>sha256 {esc(str(data.get('sha256', '?'))[:12])}</code>"
                    + (f", model {esc(own.get('name'))} ({esc(own.get('adapter'))})" if own else ""))
    digests = {str((b.get("dataset") or {}).get("sha256")) for _, b in done}
    warn = ('<p class="note">the reports evaluated different data (dataset sha256 differs): their numbers are not '
            "directly comparable</p>") if len(digests) > 1 else ""
    return f"<p class=muted>{'<br>'.join(rows)}</p>{warn}"


def rank_curve(ranks: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, fraction of queries with rank <= k) for k = 1 .. max rank: recall@k (or top-k accuracy) at every k."""
    r = np.asarray(ranks, dtype=np.int64)
    if r.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    counts = np.bincount(r, minlength=int(r.max()) + 1)
    return np.arange(1, len(counts)), np.cumsum(counts)[1:] / r.size


def recall_curves(name: str, done: list[tuple[Run, dict[str, Any]]], directions: tuple[tuple[str, str, str], ...],
                  y_label: str, gallery_size: Callable[[dict[str, Any], str], int]) -> str:
    """recall@k (or top-k accuracy) at every k from the per-sample ranks, with the report's own points and CIs.

    `directions`: (per-sample list, panel title, report metric prefix) per panel; `gallery_size(bench, list)`: how
    many candidates a query of that list ranks (the curves end there)."""
    panels: dict[str, list] = {}
    k_max: dict[str, int] = {}
    notes = []
    for run, bench in done:
        rows = (run.samples or {}).get(name) or {}
        metrics = bench.get("metrics") or {}
        for key, title, prefix in directions:
            ranks = [row["rank"] for row in rows.get(key) or [] if isinstance(row.get("rank"), int)]
            points = [m for m in metrics if m.startswith(prefix) and m[len(prefix):].isdigit()]
            if not ranks and not points:
                continue
            point = run.series({m[len(prefix):]: metrics[m].get("value") for m in points},
                               {m[len(prefix):]: tuple(metrics[m]["ci95"]) for m in points if "ci95" in metrics[m]})
            panels.setdefault(title, []).append((point, *rank_curve(ranks)))
            k_max[title] = max(k_max.get(title, 0), gallery_size(bench, key))
        if not rows:
            notes.append(f"{swatch(run)}: no per-sample ranks, only the report's own points are drawn")
    if not panels:
        return ""
    note = "".join(f'<p class="note">{n}</p>' for n in notes)
    return (f"<h3>{esc(y_label)} curves</h3>{note}"
            + plot_img(plots.recall_curves(panels, y_label, k_max), "curves", f"{name}: {y_label} against k"))


def _per_sample_ms(entry: dict[str, Any]) -> np.ndarray:
    """ms per row of each timed call after the warm-up calls the report left out of its percentiles."""
    calls, rows = entry.get("calls_ms") or [], entry.get("calls_rows") or []
    skip = int(entry.get("warmup_batches_excluded") or 0)
    return np.asarray([ms / n for ms, n in list(zip(calls, rows))[skip:] if n], dtype=np.float64)


def _latency(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    panels: dict[str, list] = {}
    notes = []
    for run, bench in done:
        passes = (bench.get("latency") or {}).get("passes") or {}
        for pass_name, entry in passes.items():
            ms = _per_sample_ms(entry)
            if len(ms):
                panels.setdefault(pass_name, []).append((run.series(), ms))
            elif entry.get("cached"):
                notes.append(f"{swatch(run)}: {esc(pass_name)}: outputs came from the cache, no model call was "
                             "timed (run with --no-cache to time it)")
            elif entry.get("n_batches"):
                notes.append(f"{swatch(run)}: {esc(pass_name)}: no per-call times (a report from before schema 1.1)")
    if not panels and not notes:
        return ""
    note = "".join(f'<p class="muted">{n}</p>' for n in notes)
    figure = plot_img(plots.latency_histograms(panels), "latency", f"{name}: per-sample latency") if panels else ""
    return f"<h3>Latency per sample</h3>{note}{figure}"


def _bias(name: str, done: list[tuple[Run, dict[str, Any]]]) -> str:
    attributes: list[str] = []
    for _, bench in done:
        attributes += [a for a in ((bench.get("bias") or {}).get("attributes") or {}) if a not in attributes]
    parts = []
    for attribute in attributes:
        sliced = {run.label: (((bench.get("bias") or {}).get("attributes") or {}).get(attribute) or {})
                  .get("sliced") or {} for run, bench in done}
        metrics = [m for m in metric_names([{"metrics": s} for s in sliced.values()])]
        groups: list[str] = []
        for per_run in sliced.values():
            for entry in per_run.values():
                groups += [str(g) for g in entry.get("per_group") or {} if str(g) not in groups]
        if not metrics or not groups:
            continue
        figure = {m: [run.series({str(g): v for g, v in (sliced[run.label].get(m) or {}).get("per_group", {}).items()})
                      for run, _ in done] for m in metrics}
        gaps = "".join(f"<tr><td>{esc(m)}</td>" + "".join(
            f"<td>{esc(sliced[run.label][m].get('worst_group', '-'))}, gap {fmt(sliced[run.label][m].get('gap'))}</td>"
            if m in sliced[run.label] else "<td>-</td>" for run, _ in done) + "</tr>" for m in metrics)
        head = "".join(f"<th>{swatch(run)}: worst group, max-min gap</th>" for run, _ in done)
        parts.append(f"<h3>Bias: {esc(attribute)}</h3>"
                     + plot_img(plots.group_bars(figure, groups), "bias", f"{name}: metrics per {attribute} group")
                     + f"<details><summary>worst groups and gaps</summary><table><tr><th>metric</th>{head}</tr>"
                     f"{gaps}</table></details>")
    return "\n".join(parts)
