"""Terminal rendering with rich: progress bars, the results table, errors on one line each."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# soft_wrap: a long message (an error naming a file) stays on one line, so it can be copied and grepped
# whatever the terminal width; rich would otherwise break it at the width (80 columns when not a TTY).
stderr = Console(stderr=True, soft_wrap=True)
stdout = Console()


_LEVEL_STYLE = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}


class _ConsoleHandler(logging.Handler):
    """Log records as `level: message` lines, like the CLI's `error:` lines.

    Printed through the stderr console, so a line is never wrapped (it can be grepped) and appears above a
    live progress bar instead of through it; rich's own RichHandler wraps messages at the terminal width.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = Text(f"{record.levelname.lower()}: ", style=_LEVEL_STYLE.get(record.levelname, ""))
            line.append(self.format(record))
            stderr.print(line, soft_wrap=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(debug: bool) -> None:
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s" if debug else "%(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)
    # Libraries (open_clip, transformers) log chatty INFO lines on the root logger; show only ours.
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("mmeval").setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("PIL", "urllib3", "filelock", "httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _Progress(Progress):
    """rich's Progress without the empty line it prints when it stops with no visible bar (Ctrl-C while the
    model loads, a run whose bars were all hidden) or when transient (`bench`): in a log, a stray blank line."""

    def stop(self) -> None:
        if self.disable or (not self.live.transient and any(task.visible for task in self.tasks)):
            super().stop()
            return
        self.live.transient = True  # nothing to leave behind: print nothing on the way out,
        self.live.stop()  # not even the line break Progress.stop adds for a non-interactive console


def make_progress() -> Progress:
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )


def make_status() -> Progress:
    """A spinner, a description and the time elapsed, for work whose length is not known in advance (`bench`):
    no `0/?` count, and transient, so no finished bar is left above the results table."""
    return _Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=stderr,
                     transient=True)


def print_error(message: str) -> None:
    """`error: message` on one line; the message is printed as is (a path like data/[a]/x.jpg is not markup)."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _format(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if "rank" in name:
        return f"{value:.1f}"
    return f"{value:.4f}"


# When the two halves of an interval "differ much", the terminal shows its ends instead of ±: when ± (the larger
# half on both sides) would overstate the interval's width by more than half, i.e. the larger half is over 3x
# the smaller, the halves compared as displayed (median rank 3.0 in [2, 12]: 9x; R@1 0.40 in [0.37, 0.41]: 3x, ±).
_WIDTH_OVERSTATED = 1.5


def _with_interval(name: str, entry: dict[str, Any]) -> str:
    """The value and, when the report has one, its 95% interval (dimmed): `±` the larger distance to an end, or
    `[lo, hi]` when the interval is lopsided (percentile intervals need not be symmetric; the JSON has both ends)."""
    text = _format(name, entry["value"])
    if entry.get("ci95") and entry["value"] is not None:
        lo, hi = entry["ci95"]
        halves = [float(_format(name, half)) for half in (entry["value"] - lo, hi - entry["value"])]
        larger, smaller = max(halves), min(halves)
        if 2 * larger > _WIDTH_OVERSTATED * (larger + smaller):
            text += f" [dim]{escape(f'[{_format(name, lo)}, {_format(name, hi)}]')}[/]"
        else:
            text += f" [dim]±{_format(name, larger)}[/]"
    return text


def results_table(report: dict[str, Any]) -> Group:
    """The results: one table per task (benchmarks of one task side by side share their metric rows, so a demo
    of ten benchmarks over images, video and sound still fits a terminal), one column per benchmark, one row per
    metric; `±` gives the bootstrap 95% interval's larger half-width, `[lo, hi]` its ends when one half is over
    3x the other."""
    model = report["model"]
    groups: dict[str, dict[str, Any]] = {}
    for name, bench in report["benchmarks"].items():
        groups.setdefault(str(bench.get("task")), {})[name] = bench
    title = f"mmeval results: {model['name']} ({model['adapter']})"
    if len(groups) == 1:
        return Group(_task_table(report, next(iter(groups.values())), title))
    return Group(Text(title, style="italic"),
                 *(_task_table(report, benches, f"task: {task}") for task, benches in groups.items()))


def _task_table(report: dict[str, Any], benches: dict[str, Any], title: str) -> Table:
    """One column per benchmark of `benches`, one row per metric."""
    model = report["model"]
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    rows: dict[str, list[str]] = {"data": []}
    for bench_name, bench in benches.items():
        table.add_column(bench_name, justify="right")
        ok = bench["status"] == "complete"
        data = bench.get("dataset") or {}
        inputs = (f"{data['n_clips']} clips" if "n_clips" in data  # audio: clips, video: videos, not images
                  else f"{data['n_videos']} videos" if "n_videos" in data else f"{data.get('n_images')} images")
        rows["data"].append(f"{inputs} / {data.get('n_texts')} texts" if ok else f"[red]{bench['status']}[/]")
    entries = {b.get("name"): b.get("model") for b in (report.get("config") or {}).get("benchmarks", [])
               if isinstance(b, dict)}  # benchmarks[].model as configured: named even when it did not load
    if any("model" in bench or entries.get(name) for name, bench in report["benchmarks"].items()):
        rows["model"] = [escape(bench["model"]["name"] if "model" in bench else
                                (entries[name].get("name") or entries[name].get("type")) if entries.get(name)
                                else model["name"]) for name, bench in benches.items()]
    for position, bench in enumerate(benches.values()):
        for metric, entry in bench.get("metrics", {}).items():
            rows.setdefault(metric, [""] * len(benches))[position] = _with_interval(metric, entry)
    for metric, cells in rows.items():
        table.add_row(metric, *(cells + [""] * (len(benches) - len(cells))))
    return table


def bench_table(report: dict[str, Any]) -> Table:
    """`mmeval bench`: one row per (pass, precision, batch size) with its latency and throughput."""
    model = report["model"]
    table = Table(title=f"mmeval bench: {model['name']} ({model['adapter']}) on {report['environment']['device_name']}"
                  "\nms per model call: the first one, then p50 / p99 after warm-up (p90 and more in the JSON report)", title_justify="left")
    table.add_column("pass", no_wrap=True, min_width=13)
    table.add_column("prec", no_wrap=True)
    for column in ("batch", "first", "p50", "p99", "ms/item", "items/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for key, figures in report["benchmarks"]["bench"]["latency"]["passes"].items():
        name, precision, batch = key.split("/")
        ms = figures["batch_ms"]
        table.add_row(name, precision, batch.removeprefix("bs"), f"{figures['first_batch_ms']:.1f}",
                      f"{ms['p50']:.1f}", f"{ms['p99']:.1f}",
                      f"{figures['sample_ms']['p50']:.2f}", f"{figures['throughput_per_s']:.1f}")
    return table


def leaderboard_table(board: dict[str, Any]) -> Table:
    """Several models' headline metrics: one row per model, one column per (benchmark, metric), best in bold."""
    from mmeval.reporting.leaderboard import cell, columns

    table = Table(title=f"mmeval leaderboard: {len(board['models'])} models ({board['status']})",
                  caption="* best of the column (higher or lower is better per metric); every metric is in the "
                  "leaderboard JSON and each model's report", title_justify="left", caption_justify="left")
    table.add_column("model", style="bold", no_wrap=True)
    cols = columns(board)
    for bench, metric in cols:
        table.add_column(f"{bench}\n{metric}", justify="right")
    for model in board["models"]:
        cells = []
        for bench, metric in cols:
            text, best = cell(board, model, bench, metric)
            if best:
                cells.append(f"[bold green]{escape(text)}*[/]")
            else:
                cells.append(f"[red]{escape(text)}[/]" if text in ("failed", "interrupted") else escape(text))
        table.add_row(escape(model["name"]), *cells)
    return table


def compare_table(comparison) -> Table:
    """`mmeval compare`: one row per (benchmark, metric); per report its value, then (after the first) the
    change from the first report, the paired p-value and the 95% CI of the change. Better in green, worse red."""
    from mmeval.reporting.compare import ALPHA, fmt_ci, fmt_p, fmt_value

    reports = comparison.reports
    legend = ("delta [n]: report n - report 0; p: two-sided paired sign-flip permutation test; CI95: paired "
              "bootstrap 95% interval of the delta")
    table = Table(title="mmeval compare: " + " vs ".join(f"[{n}] {escape(r.label)}" for n, r in enumerate(reports)),
                  caption=escape(legend), title_justify="left", caption_justify="left")
    table.add_column("benchmark", style="bold", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for n, _ in enumerate(reports):
        table.add_column(f"[{n}]", justify="right", no_wrap=True)
        if n:
            for column in (f"delta [{n}]", "p", "CI95"):
                table.add_column(column, justify="right", no_wrap=True)
    for row in comparison.rows:
        cells = [escape(row.benchmark), escape(row.metric)]
        for n, value in enumerate(row.values):
            cells.append(fmt_value(row.metric, value))
            if not n:
                continue
            delta, paired = row.deltas[n], row.paired[n]
            text = fmt_value(row.metric, delta, signed=True)
            if delta and row.higher_is_better is not None and paired and paired["p_value"] < ALPHA:
                text = f"[{'green' if (delta > 0) == row.higher_is_better else 'red'}]{text}[/]"
            cells += [text, fmt_p(paired and paired["p_value"]), fmt_ci(row.metric, paired and paired["ci95"])]
        table.add_row(*cells)
    return table


def gate_table(result) -> Table:
    """`mmeval gate`: one row per (rule, matched target) with its values, limit and result."""
    from mmeval.reporting.gate import fmt

    failed = f"[bold red]FAILED[/] ({result.n_failed} of {len(result.checks)})"
    verdict = "[green]passed[/]" if result.passed else failed
    table = Table(title=f"mmeval gate: {verdict}", title_justify="left")
    for column in ("rule", "target", "candidate", "baseline", "limit", "p", "result", "detail"):
        table.add_column(column, justify="right" if column in ("candidate", "baseline", "p") else "left")
    style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
    for c in result.checks:
        table.add_row(escape(c.rule_name), escape(c.target), fmt(c.candidate), fmt(c.baseline), escape(c.limit),
                      "" if c.p_value is None else f"{c.p_value:.2g}", style[c.status], escape("; ".join(c.messages)))
    return table


def print_whole(table: Table) -> None:
    """Print a table on stdout; when stdout is not a terminal (a CI log, a pipe) at its natural width rather than
    squeezed into 80 columns, where rich would cut numbers short."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    from rich.measure import Measurement

    wide = Console(width=1000)
    width = Measurement.get(wide, wide.options, table).maximum
    Console(width=max(width, 80)).print(table)


def robustness_table(report: dict[str, Any]) -> Table | None:
    """One row per benchmark with a `perturb` grid and headline metric: clean value, mean relative robustness
    (perturbed / clean over the grid), the worst cell, and mCE when a baseline gave one; None when no benchmark has
    a grid. The full grid is in the report (and plotted by `mmeval report --html`)."""
    from mmeval.reporting.leaderboard import headline_metrics
    from mmeval.reporting.robustness_numbers import benchmark_numbers

    rows, failed = [], []
    for name, bench in report["benchmarks"].items():
        block = bench.get("robustness")
        if bench.get("status") != "complete" or not isinstance(block, dict):
            continue
        if block.get("errors"):
            failed.append(f"{name}: {len(block['errors'])} cell(s) failed")
        numbers = {path.split("/", 1)[1]: number.value for path, number in benchmark_numbers(name, bench).items()}
        for metric in headline_metrics(str(bench.get("task")), list(block.get("clean") or {})):
            worst = (block.get("worst") or {}).get(metric) or {}
            where = f"{worst['perturbation']}@{worst.get('severity')}" if worst.get("perturbation") else "-"
            rows.append([name, metric, _format(metric, block["clean"].get(metric)),
                         _format("", numbers.get(f"{metric}/mean_relative")), _format(metric, worst.get("value")),
                         where, numbers.get(f"{metric}/mce")])
    if not rows:
        return None
    with_mce = any(row[-1] is not None for row in rows)
    table = Table(title="robustness: perturbed runs (full grid in the report)", title_justify="left")
    for column in ("benchmark", "metric", "clean", "perturbed / clean (mean)", "worst", "worst cell", "mCE"):
        if column != "mCE" or with_mce:
            table.add_column(column, justify="right" if column in ("clean", "worst", "mCE") or "/" in column
                             else "left")
    for *row, mce in rows:
        table.add_row(*row, *([_format("", mce)] if with_mce else []))
    if failed:
        table.caption = "; ".join(failed) + " (listed in the report's robustness.errors)"
    return table

