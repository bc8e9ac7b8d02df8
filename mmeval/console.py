"""Terminal rendering with rich: progress bars, the results table, errors on one line each."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

stderr = Console(stderr=True)
stdout = Console()


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_time=False, show_path=debug, markup=False)],
        force=True,
    )
    for noisy in ("PIL", "urllib3", "filelock", "httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )


def print_error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _format(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if "rank" in name:
        return f"{value:.1f}"
    return f"{value:.4f}"


def results_table(report: dict[str, Any]) -> Table:
    """One row per benchmark, one column per metric (benchmarks of the same task line up)."""
    model = report["model"]
    table = Table(title=f"mmeval results: {model['name']} ({model['adapter']})", title_justify="left")
    names: list[str] = []
    for bench in report["benchmarks"].values():
        for metric in bench.get("metrics", {}):
            if metric not in names:
                names.append(metric)
    table.add_column("benchmark", style="bold")
    table.add_column("images / texts", justify="right")
    for metric in names:
        table.add_column(metric, justify="right")
    for bench_name, bench in report["benchmarks"].items():
        if bench["status"] != "complete":
            table.add_row(bench_name, "", f"[red]{bench['status']}[/]", *[""] * (len(names) - 1))
            continue
        data = bench["dataset"]
        metrics = bench["metrics"]
        cells = [_format(m, metrics[m]["value"]) if m in metrics else "" for m in names]
        table.add_row(bench_name, f"{data['n_images']} / {data['n_texts']}", *cells)
    return table
