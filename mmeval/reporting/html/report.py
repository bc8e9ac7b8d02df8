"""`mmeval report RUN.json [MORE.json ...] --html out.html`: one self-contained HTML page for one or more reports.

The page has a header naming each report's model, date, hardware, mmeval version and git commit, a table of
every headline metric with its 95% CI, and one section per benchmark with: metric bars (CI error bars where the
report has `ci95`), recall@k (or top-k accuracy) curves from the per-sample ranks, per-sample latency histograms
of every timed model call, per-group bars of the bias block, and for captioning the best- and worst-scored
images with their captions. Each report (checkpoint) has one colour throughout. Figures are PNG data URIs and
the CSS is inline, so the file opens anywhere without a network. The sections are built in
`mmeval.reporting.html.sections`, figures in `mmeval.reporting.html.plots`, the gallery in `mmeval.tasks.coco_captions.gallery`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from mmeval import __version__
from mmeval.reporting.html import plots
from mmeval.errors import MmevalError
from mmeval.files import atomic_write
from mmeval.reporting.compare import load_for_comparison
from mmeval.reporting.html.sections import Run, benchmark_section, esc, fmt, higher_is_better, metric_names, swatch


def load_runs(paths: list[Path]) -> list[Run]:
    """Load the reports (and their per-sample files) and give each a unique label and a colour."""
    runs = []
    for n, item in enumerate(load_for_comparison(paths)):  # a missing per-sample file is a note, never an error
        note = item.samples_problem
        if item.samples is None and not item.report.get("per_sample_file"):
            note = "the run wrote no per-sample file (output.per_sample: false)"
        label = str(item.report["model"].get("name") or item.path.stem)
        runs.append(Run(item.path, item.report, item.samples, note, label, plots.colour(n), plots.linestyle(n)))
    _tell_apart(runs)
    return runs


def _settings(report: dict[str, Any]) -> dict[str, str]:
    """What tells two reports of one checkpoint apart, as a reader would name it: precision, batch size, date."""
    runtime = report.get("runtime") or {}
    created = str(report.get("created_at") or "")
    return {"precision": str(runtime.get("precision") or ""),
            "batch": f"bs {runtime['batch_size']}" if runtime.get("batch_size") else "",
            "date": created[:16].replace("T", " ")}  # to the minute, UTC as written


def _tell_apart(runs: list[Run]) -> None:
    """Runs that share a label (one checkpoint at two precisions, batch sizes or dates) get the settings that
    differ between them in brackets; the file name is added only when those are the same too."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    for label, same in groups.items():
        if len(same) < 2:
            continue
        settings = [_settings(run.report) for run in same]
        differing = [key for key in settings[0] if len({s[key] for s in settings}) > 1]
        parts = [[s[key] for key in differing if s[key]] for s in settings]
        keys = [tuple(part) for part in parts]
        for run, part, key in zip(same, parts, keys):
            if keys.count(key) > 1:
                part = [*part, run.path.stem]
            run.label = f"{label} ({', '.join(part)})"


def write_html_report(paths: list[Path], out: Path) -> Path:
    """Render the reports at `paths` into one HTML file at `out` (written atomically, replacing `out`)."""
    page = render_html(load_runs(paths))
    umask = os.umask(0)
    os.umask(umask)

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a report page is meant to be shared

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, write)
    except OSError as exc:
        raise MmevalError(f"--html: cannot write {out} ({exc.strerror or exc})") from None
    return out


# ---------------------------------------------------------------------------------------------------- page


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a;
       max-width: 1040px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 20px 0 6px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; }
.note { color: #6a5000; background: #fff8e0; padding: 4px 8px; border-left: 3px solid #e0b000; }
.failed { color: #a00000; } .muted { color: #666; font-size: 12px; }
img.plot { width: 100%; height: auto; display: block; margin: 6px 0; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(310px, 1fr)); gap: 10px; }
.card { display: flex; gap: 8px; border: 1px solid #ddd; border-radius: 4px; padding: 6px; font-size: 12px; }
.card img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; flex: none;
            border: 1px solid #ccc; }
td code { word-break: break-all; }
.card .caption { font-weight: 600; } .card ul { margin: 2px 0 0; padding-left: 16px; color: #444; }
code { font-size: 12px; }
"""


def render_html(runs: list[Run]) -> str:
    """The whole page for `runs` (at least one)."""
    names = _benchmark_names(runs)
    parts = [_header(runs, names), _headline_table(runs, names)]
    parts += [benchmark_section(name, runs) for name in names]
    title = "mmeval report: " + ", ".join(run.label for run in runs)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _benchmark_names(runs: list[Run]) -> list[str]:
    names: list[str] = []
    for run in runs:
        names += [name for name in run.report["benchmarks"] if name not in names]
    return names


def _header(runs: list[Run], names: list[str]) -> str:
    rows = []
    for run in runs:
        r, env, model = run.report, run.report.get("environment") or {}, run.report["model"]
        hardware = env.get("device_name") or "?"
        if env.get("device"):
            hardware += f" ({env['device']}" + (f", driver {env['gpu_driver']}" if env.get("gpu_driver") else "")
            hardware += f", {env['cpu_count']} CPUs)" if env.get("cpu_count") else ")"
        runtime = r.get("runtime") or {}
        settings = ", ".join(f"{k} {runtime[k]}" for k in ("precision", "batch_size") if k in runtime)
        n_params = model.get("n_parameters")  # 0 for `mmeval score`: a results file has no parameters
        params = f"{n_params:,} parameters" if isinstance(n_params, int) and n_params > 0 else ""
        commit = r.get("git_commit") or "unknown"
        rows.append(
            f"<tr><td>{swatch(run)}</td><td>{esc(model.get('adapter', '?'))}<br><span class=muted>"
            f"{'<br>'.join(esc(x) for x in (params, model.get('checkpoint')) if x)}</span></td>"
            f"<td>{esc(r.get('created_at', '?'))}</td>"
            f"<td>{esc(hardware)}<br><span class=muted>{esc(settings)}</span></td>"
            f"<td>{esc(r.get('mmeval_version', '?'))}<br><span class=muted>schema {esc(r.get('schema_version', '?'))}"
            f"</span></td><td><code title='{esc(commit)}'>{esc(_short_commit(commit))}</code></td>"
            f"<td class='{'' if r.get('status') == 'complete' else 'failed'}'>{esc(r.get('status', '?'))}</td>"
            f"<td><code>{esc(run.path.name)}</code></td></tr>")
    notes = "".join(f'<p class="note">{esc(run.label)}: per-sample curves and gallery not shown: '
                    f"{esc(run.samples_note)}</p>" for run in runs if run.samples_note)
    toc = " | ".join(f'<a href="#b-{esc(name)}">{esc(name)}</a>' for name in names)
    made = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return (f"<h1>mmeval report</h1><p class=muted>made {made} by mmeval {esc(__version__)} from "
            f"{len(runs)} report(s)</p><table><tr><th>model</th><th>adapter / checkpoint</th><th>created</th>"
            f"<th>hardware</th><th>mmeval</th><th>git commit</th><th>status</th><th>file</th></tr>{''.join(rows)}"
            f"</table>{notes}<p>Benchmarks: {toc}</p>")


def _short_commit(commit: str) -> str:
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "") if len(commit) >= 40 else commit


def _metric_cell(bench: dict[str, Any] | None, metric: str) -> str:
    if bench is None:
        return "<td class=muted>not run</td>"
    if bench.get("status") == "failed":
        return "<td class=failed>failed</td>"
    entry = (bench.get("metrics") or {}).get(metric)
    if not isinstance(entry, dict):
        return "<td class=muted>-</td>"
    ci = entry.get("ci95")
    text = fmt(entry.get("value")) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if isinstance(ci, list) else "")
    return f"<td class=num>{text}</td>"


def _headline_table(runs: list[Run], names: list[str]) -> str:
    head = "".join(f"<th>{swatch(run)}</th>" for run in runs)
    rows = []
    for name in names:
        benches = [run.report["benchmarks"].get(name) for run in runs]
        metrics = metric_names(benches)
        if not metrics:
            rows.append(f"<tr><td>{esc(name)}</td><td></td>" + "".join(_metric_cell(b, "") for b in benches) + "</tr>")
        for metric in metrics:
            better = higher_is_better(benches, metric)
            arrow = "" if better is None else (" &uarr;" if better else " &darr;")
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(metric)}{arrow}</td>"
                        + "".join(_metric_cell(b, metric) for b in benches) + "</tr>")
    return ("<h2 id='headline'>Headline metrics</h2><p class=muted>value [95% CI] where the report has one; "
            f"&uarr; higher is better, &darr; lower</p><table><tr><th>benchmark</th><th>metric</th>{head}</tr>"
            f"{''.join(rows)}</table>")


