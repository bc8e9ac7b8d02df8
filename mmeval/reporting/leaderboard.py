"""The leaderboard of a several-model run: every model's metrics side by side, the best marked, its report named.

Written next to the reports as `<stem>.leaderboard.json` (every metric of every model, which model is best
at each, each model's report file) and `<stem>.leaderboard.md` (the headline metrics as a Markdown table, fit
for a CI job summary or a pull request). `console.leaderboard_table` renders the same table on the terminal.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from mmeval import __version__
from mmeval.errors import MmevalError
from mmeval.reporting.report import git_commit, write_json_no_clobber

LEADERBOARD_VERSION = "1.0.0"
def headline_metrics(task: str, names: list[str]) -> list[str]:
    """The headline metrics of a benchmark among the `names` it reported, as its task chooses them (the first three
    when the task is not known here); every metric is in the JSON."""
    from mmeval.registry import find_task

    spec = find_task(task)
    chosen = spec.headline(names) if spec is not None else []
    return chosen or names[:3]


def _model_entry(run) -> dict[str, Any]:
    """One model's row: identity, status, report file and every benchmark's metrics (or error)."""
    report = run.outcome.report if run.outcome is not None else None
    info = report["model"] if report else {}
    benchmarks = {}
    for name, bench in (report or {}).get("benchmarks", {}).items():
        entry = {"status": bench["status"], "metrics": bench.get("metrics", {})}
        if "error" in bench:
            entry["error"] = bench["error"]
        benchmarks[name] = entry
    path = run.outcome.report_path if run.outcome is not None else None
    return {
        "name": run.config.name, "adapter": info.get("adapter", run.config.type),
        "checkpoint": info.get("checkpoint", str(run.config.checkpoint) if run.config.checkpoint else None),
        "sha256": info.get("sha256"), "status": run.status, "error": run.error,
        "report": path.name if path else None,
        "per_sample_file": report.get("per_sample_file") if report else None,
        "benchmarks": benchmarks,
    }  # fmt: skip


def _best(models: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """For each benchmark and metric, the model(s) with the best value (ties: all of them)."""
    best: dict[str, dict[str, list[str]]] = {}
    values: dict[tuple[str, str], list[tuple[float, str, bool]]] = {}
    for model in models:
        for bench, entry in model["benchmarks"].items():
            for metric, figure in entry["metrics"].items():
                if isinstance(figure.get("value"), (int, float)):
                    values.setdefault((bench, metric), []).append(
                        (figure["value"], model["name"], figure.get("higher_is_better", True)))
    for (bench, metric), rows in values.items():
        higher = rows[0][2]
        top = max(v for v, _, _ in rows) if higher else min(v for v, _, _ in rows)
        best.setdefault(bench, {})[metric] = [name for v, name, _ in rows if v == top]
    return best


def build_leaderboard(cfg, runs: list, config_path: str | None) -> dict[str, Any]:
    """The leaderboard of a finished (or interrupted) several-model run."""
    models = [_model_entry(run) for run in runs]
    benchmarks = {}
    for bench in cfg.benchmarks:
        names = list(dict.fromkeys(m for model in models
                                   for m in model["benchmarks"].get(bench.name, {}).get("metrics", {})))
        benchmarks[bench.name] = {"task": bench.task, "headline": headline_metrics(bench.task, names)}
    statuses = {model["status"] for model in models}
    status = ("interrupted" if "interrupted" in statuses or "not run" in statuses
              else "complete" if statuses == {"complete"} else "partial")
    return {
        "leaderboard_version": LEADERBOARD_VERSION, "mmeval_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(), "command": sys.argv[1:] and " ".join(["mmeval", *sys.argv[1:]]) or None,
        "config_path": config_path, "status": status, "benchmarks": benchmarks, "models": models,
        "best": _best(models), "config": cfg.model_dump(mode="json"),
    }  # fmt: skip


def format_value(metric: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:.1f}" if "rank" in metric else f"{value:.4f}"


def columns(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(benchmark, metric) of every headline column, in config order."""
    return [(bench, metric) for bench, entry in board["benchmarks"].items() for metric in entry["headline"]]


def cell(board: dict[str, Any], model: dict[str, Any], bench: str, metric: str) -> tuple[str, bool]:
    """A model's value in one column as text, and whether it is the best of the column."""
    entry = model["benchmarks"].get(bench)
    if entry is None:
        return ("failed" if model["status"] == "failed" else "-"), False
    if entry["status"] != "complete":
        return entry["status"], False
    value = entry["metrics"].get(metric, {}).get("value")
    best = len([m for m in board["models"] if bench in m["benchmarks"]]) > 1 and \
        model["name"] in board["best"].get(bench, {}).get(metric, [])
    return format_value(metric, value), best


def to_markdown(board: dict[str, Any]) -> str:
    """The headline table (best values in bold), the report files and the failures, as Markdown."""
    cols = columns(board)
    lines = ["# mmeval leaderboard", "",
             f"{len(board['models'])} models, status {board['status']}, {board['created_at']}"
             + (f", config `{board['config_path']}`" if board.get("config_path") else ""), "",
             "| model | " + " | ".join(f"{bench} {metric}" for bench, metric in cols) + " | report |",
             "| --- | " + " | ".join("---:" for _ in cols) + " | --- |"]
    for model in board["models"]:
        cells = []
        for bench, metric in cols:
            text, best = cell(board, model, bench, metric)
            cells.append(f"**{text}**" if best else text)
        report = f"[{model['report']}]({model['report']})" if model["report"] else model["status"]
        lines.append(f"| {model['name']} | " + " | ".join(cells) + f" | {report} |")
    lines += ["", "Best value per column in bold (by each metric's direction: higher or lower is better)."]
    failures = [(model["name"], model["error"]) for model in board["models"] if model["error"]]
    failures += [(f"{model['name']} / {bench}", entry["error"]) for model in board["models"]
                 for bench, entry in model["benchmarks"].items() if entry.get("error")]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {who}: {error}" for who, error in failures]
    return "\n".join(lines) + "\n"


def write_leaderboard(board: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.leaderboard.json` and `.md` (never over an earlier file); their paths."""
    json_path = write_json_no_clobber(board, directory, stem, ".leaderboard.json")
    md_path = json_path.with_name(json_path.name.removesuffix(".json") + ".md")
    try:
        with md_path.open("x", encoding="utf-8") as handle:  # the JSON's free name: the Markdown's is free too
            handle.write(to_markdown(board))
    except OSError as exc:
        raise MmevalError(f"output.dir: cannot write {md_path} ({exc.strerror or exc})") from exc
    return json_path, md_path
