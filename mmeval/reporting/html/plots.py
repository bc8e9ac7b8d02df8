"""The HTML report's figures, drawn with matplotlib (Agg, no pyplot state) and returned as PNG data URIs.

Each function takes plain numbers, one series per checkpoint (a label and a colour, so a checkpoint has the
same colour in every figure), and returns a `data:image/png;base64,...` string the page embeds: the report
stays one self-contained file, and PNG keeps it small where SVG would carry every histogram bar as a path.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

DPI = 100
WIDTH_IN = 10.0  # figures are drawn 1000 px wide, the page's content width
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10, spelled out so the page's legend swatches use the same colours


LINESTYLES = ("-", "--", ":", "-.")  # lines of checkpoints with equal numbers stay visible on top of each other


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def linestyle(index: int) -> str:
    return LINESTYLES[index % len(LINESTYLES)]


@dataclass
class Series:
    """One checkpoint's numbers for one figure."""

    label: str
    colour: str
    linestyle: str = "-"
    values: dict[str, float | None] = field(default_factory=dict)  # metric (or group) -> value
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (lo, hi), where known


def to_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})  # constrained layout: no tight bbox pass
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _new_figure(height_in: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    fig.set_facecolor("white")
    return fig


def _grouped_bars(ax, names: Sequence[str], series: Sequence[Series], show_values: bool = True) -> None:
    """Bars for each name, one per series side by side, with 95% CI error bars where a series has them."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(names))
    for s, one in enumerate(series):
        offsets = x - 0.4 + width * (s + 0.5)
        values = [one.values.get(n) for n in names]
        heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        bars = ax.bar(offsets, heights, width * 0.92, color=one.colour, label=one.label)
        lows = [v - one.ci95[n][0] if n in one.ci95 and v is not None else 0.0 for n, v in zip(names, values)]
        highs = [one.ci95[n][1] - v if n in one.ci95 and v is not None else 0.0 for n, v in zip(names, values)]
        if any(n in one.ci95 for n in names):
            ax.errorbar(offsets, heights, yerr=[np.maximum(lows, 0), np.maximum(highs, 0)], fmt="none",
                        ecolor="#222222", elinewidth=1, capsize=3)
        has_ci = any(one.ci95 for one in series)  # value labels would sit on the error bars; the table has them
        if show_values and not has_ci and (len(series) == 1 or len(names) * len(series) <= 8):
            ax.bar_label(bars, labels=[_short(v) for v in values], fontsize=7, padding=2)
    crowded = len(names) > 3 and max(map(len, names), default=0) > 6
    ax.set_xticks(x, names, rotation=30 if crowded else 0, ha="right" if crowded else "center",
                  rotation_mode="anchor")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _short(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _in_unit_range(name: str, series: Sequence[Series]) -> bool:
    values = [s.values.get(name) for s in series]
    return all(v is None or 0.0 <= v <= 1.0 for v in values)


def _plain_log_ticks(axis, low: float, high: float) -> None:
    """Tick labels 1, 10, 100 (and 2, 3, 5 within a decade or two) instead of matplotlib's 10^0 notation."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    some = FuncFormatter(lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5)
                         else "")
    axis.set_minor_formatter(some if high / max(low, 1e-12) < 30 else NullFormatter())


def _panels(n: int, per_row: int, row_height: float) -> list:
    """n axes, per_row to a row (a pass per panel: `mmeval bench` reports have one per batch size)."""
    rows = math.ceil(n / per_row)
    fig = _new_figure(row_height * rows)
    axes = list(fig.subplots(rows, min(n, per_row), squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def metric_bars(names: Sequence[str], series: Sequence[Series], lower_is_better: set[str]) -> str:
    """A benchmark's metrics per checkpoint: metrics on a 0-1 scale share one panel, every other metric (ranks,
    CIDEr, throughput) gets its own panel so its scale does not flatten the rest."""
    label = {n: n + (" \u2193" if n in lower_is_better else "") for n in names}  # a down arrow: lower is better
    unit = [n for n in names if n not in lower_is_better and _in_unit_range(n, series)]
    other = [n for n in names if n not in unit]
    per_bar = 1 + 0.4 * (len(series) - 1)  # wider panels for more checkpoints side by side
    if len(other) <= 5:  # one row, panel widths by how many bars each holds
        widths = ([max(len(unit), 2) * per_bar] if unit else []) + [1.1 * per_bar] * len(other)
        fig = _new_figure(3.6)
        axes = list(fig.subplots(1, len(widths), gridspec_kw={"width_ratios": widths}, squeeze=False)[0])
    else:  # many metrics on their own scales (mmeval bench): the 0-1 panel on top, the others 5 to a row
        rows = math.ceil(len(other) / 5)
        fig = _new_figure(3.2 * bool(unit) + 2.6 * rows)
        grid = fig.add_gridspec(rows + bool(unit), 5)
        axes = [fig.add_subplot(grid[0, :])] if unit else []
        axes += [fig.add_subplot(grid[bool(unit) + i // 5, i % 5]) for i in range(len(other))]
    if unit:
        relabelled = [Series(s.label, s.colour, s.linestyle, {label[n]: s.values.get(n) for n in unit},
                             {label[n]: s.ci95[n] for n in unit if n in s.ci95}) for s in series]
        _grouped_bars(axes[0], [label[n] for n in unit], relabelled)
        axes[0].set_ylim(0, 1.08)
    for ax, name in zip(axes[1 if unit else 0:], other):
        _grouped_bars(ax, [name], series)
        head, slash, tail = label[name].rpartition("/")  # bench names (pass/precision/batch/metric): 2 lines
        ax.set_xticks([0], [f"{head}/\n{tail}" if slash and len(label[name]) > 20 else label[name]], fontsize=8)
        ax.margins(y=0.15)
    _legend(fig, series)
    return to_data_uri(fig)


def _legend(fig: Figure, series: Sequence[Series]) -> None:
    """One legend above the panels, only when there is more than one checkpoint to tell apart."""
    unique = list({s.label: s for s in series}.values())
    if len(unique) > 1:
        fig.legend(handles=[Patch(color=s.colour, label=s.label) for s in unique], loc="outside upper center",
                   ncols=min(len(unique), 3), frameon=False, fontsize=9)


def recall_curves(panels: dict[str, list[tuple[Series, np.ndarray, np.ndarray]]], y_label: str = "recall@k",
                  k_max: dict[str, int] | None = None) -> str:
    """recall@k against k, one panel per direction and one line per checkpoint; the x axis runs to `k_max` of
    the panel (the gallery size; log scale beyond 20). A series' `values` and `ci95` hold the report's own
    recall@k (keys "1", "5", ...), drawn as points with CI bars on the curve."""
    fig = _new_figure(3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, lines) in zip(axes, panels.items()):
        right = max([int(ks[-1]) for _, ks, _ in lines if len(ks)] + [int(k) for one, _, _ in lines
                                                                       for k in one.values] + [2])
        right = max(right, (k_max or {}).get(title, 0))
        for one, ks, recall in lines:
            if len(ks) and right > 20:  # the last value holds for every larger k: draw it to the axis end
                ax.step(np.append(ks, right), np.append(recall, recall[-1]), where="post", color=one.colour,
                        linestyle=one.linestyle, linewidth=1.6)
            elif len(ks):  # a few k: one point per k
                ax.plot(np.append(ks, np.arange(ks[-1] + 1, right + 1)),
                        np.append(recall, [recall[-1]] * (right - int(ks[-1]))), color=one.colour,
                        linestyle=one.linestyle, linewidth=1.6, marker=".")
            points = sorted((int(k), v) for k, v in one.values.items() if v is not None)
            if points:
                px, py = zip(*points)
                err = [[v - one.ci95[str(k)][0] if str(k) in one.ci95 else 0.0 for k, v in points],
                       [one.ci95[str(k)][1] - v if str(k) in one.ci95 else 0.0 for k, v in points]]
                ax.errorbar(px, py, yerr=np.maximum(err, 0), fmt="o", color=one.colour, markersize=4, capsize=3)
        if right > 20:
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis, 1, right)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.9 if right > 20 else 0.5, right * (1.1 if right > 20 else 1.0) + (0 if right > 20 else 0.5))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k")
        ax.set_ylabel(y_label)
        ax.set_ylim(0, 1.03)
        ax.grid(alpha=0.3, which="both")
    _legend(fig, [one for lines in panels.values() for one, _, _ in lines])
    return to_data_uri(fig)


def latency_histograms(panels: dict[str, list[tuple[Series, np.ndarray]]]) -> str:
    """Per-sample model latency (ms per row of each timed call), one panel per pass, one filled histogram per
    checkpoint on shared bins (log-spaced when the times span more than 3x), each call marked on the axis, and
    each checkpoint's p50 (solid) and p95 (dashed) as vertical lines."""
    axes = _panels(len(panels), 3, 3.2)
    fig = axes[0].figure
    for ax, (title, lines) in zip(axes, panels.items()):
        everything = np.concatenate([ms for _, ms in lines])
        lo, hi = float(everything.min()), float(everything.max())
        wide = lo > 0 and hi / lo > 3.0
        bins = np.geomspace(lo * 0.97, hi * 1.03, 31) if wide else np.linspace(lo * 0.97, hi * 1.03 + 1e-9, 31)
        for one, ms in lines:
            ax.hist(ms, bins=bins, histtype="stepfilled", color=one.colour, alpha=0.3)
            ax.hist(ms, bins=bins, histtype="step", linewidth=1.5, color=one.colour)
            ax.plot(ms, np.zeros_like(ms), "|", color=one.colour, markersize=10, clip_on=False)
            for q, style in ((50, "-"), (95, "--")):
                ax.axvline(float(np.percentile(ms, q)), color=one.colour, linestyle=style, linewidth=1, alpha=0.7)
        if wide:
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis, lo, hi)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        calls = sum(len(ms) for _, ms in lines)
        ax.set_title(f"{title} ({calls} timed call{'s' if calls != 1 else ''})", fontsize=10)
        ax.set_xlabel("ms per sample (p50 solid, p95 dashed)")
        ax.set_ylabel("model calls")
        ax.grid(alpha=0.3)
    _legend(fig, [one for lines in panels.values() for one, _ in lines])
    return to_data_uri(fig)


def group_bars(metrics: dict[str, list[Series]], groups: Sequence[str]) -> str:
    """A bias attribute's sliced metrics: one small panel per metric, groups on the x axis, one bar per
    checkpoint (Series.values maps group -> value)."""
    n = len(metrics)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = _new_figure(2.6 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, series) in zip(axes, metrics.items()):
        _grouped_bars(ax, list(groups), series, show_values=len(series) == 1 or len(groups) * len(series) <= 4)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.15)
    for ax in axes[n:]:
        ax.set_visible(False)
    _legend(fig, next(iter(metrics.values())))
    return to_data_uri(fig)


def perturbation_colour(index: int, n: int) -> str:
    """Perturbation colours: tab10 for up to 10 lines, tab20 beyond (the 15 ImageNet-C corruptions)."""
    if n <= len(PALETTE):
        return PALETTE[index]
    from matplotlib import colormaps

    rgba = colormaps["tab20"](index % 20)
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def severity_curves(panels: dict[str, list[tuple[Series, float | None, dict[str, list[tuple[float, float]]]]]],
                    perturbations: Sequence[str]) -> str:
    """A metric against perturbation severity, one panel per metric: one line per perturbation (its colour, the
    same in every panel) and checkpoint (its line style), and each checkpoint's clean value as a grey reference
    line in its line style. A panel's entry per checkpoint: (series, clean value, {perturbation: [(severity,
    value), ...]})."""
    axes = _panels(len(panels), 3, 3.4)
    fig = axes[0].figure
    colours = {p: perturbation_colour(i, len(perturbations)) for i, p in enumerate(perturbations)}
    markers = ("o", "s", "^", "D", "v")
    for ax, (title, lines) in zip(axes, panels.items()):
        severities: set[float] = set()
        for one, clean, grid in lines:
            if clean is not None and math.isfinite(clean):
                ax.axhline(clean, color="#555555", linestyle=one.linestyle, linewidth=1.2, alpha=0.8)
            for p, points in grid.items():
                kept = [(s, v) for s, v in points if v is not None and math.isfinite(v)]
                if not kept:
                    continue
                xs, ys = zip(*kept)
                severities.update(xs)
                ax.plot(xs, ys, color=colours[p], linestyle=one.linestyle, linewidth=1.5, markersize=4,
                        marker=markers[perturbations.index(p) // len(PALETTE) % len(markers)])
        if severities:
            ax.set_xticks(sorted(severities))
        ax.set_title(f"{title} (grey: clean)", fontsize=10)
        ax.set_xlabel("severity")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.margins(y=0.12)
    handles = [Line2D([], [], color=colours[p], marker=markers[i // len(PALETTE) % len(markers)], markersize=4,
                      label=p) for i, p in enumerate(perturbations)]
    runs = list({one.label: one for lines in panels.values() for one, _, _ in lines}.values())
    if len(runs) > 1:  # checkpoints by line style
        handles += [Line2D([], [], color="#333333", linestyle=one.linestyle, label=one.label) for one in runs]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 5), frameon=False, fontsize=8)
    return to_data_uri(fig)
