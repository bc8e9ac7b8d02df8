"""The commands that read reports rather than run models: `report` (HTML), `compare` and `gate` (CI).

They register on the `mmeval` app of `mmeval.cli.app`, with its error handling (bad input: one line, exit code 2).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from mmeval.cli.app import _user_errors, app
from mmeval.reporting.console import stderr, stdout


@app.command()
def report(
    reports: Annotated[list[Path], typer.Argument(help="Report JSON files (mmeval run / score / bench); several "
                                                  "are drawn side by side, one colour each.")],
    html_out: Annotated[Path, typer.Option("--html", help="The HTML file to write (replaced if it exists).")],
) -> None:
    """Write one self-contained HTML page for one or more reports.

    Metric bars with 95% CIs per checkpoint, recall@k curves, latency histograms, per-group bias bars and, for
    captioning, the best- and worst-scored images with their captions. Plots and images are embedded: the file
    needs no network. Per-sample files are read from beside each report when present.
    """
    with _user_errors():
        from mmeval.files import check_folder

        check_folder(html_out.parent, "--html")  # before the reports are read and the figures drawn
        if html_out.is_dir():
            from mmeval.errors import MmevalError

            raise MmevalError(f"--html: expected the HTML file to write, got a folder: {html_out}")
        from mmeval.reporting.html.report import write_html_report  # matplotlib: imported only for this command

        written = write_html_report(reports, html_out)
    stderr.print(f"html report: {written} ({written.stat().st_size / 1024:,.0f} KiB)", markup=False, highlight=False)


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"


_COMPARE_HELP = """Compare reports: every metric per report and its change from the first report.

Where both runs wrote per-sample output, a paired p-value and the 95% CI of the change come with it.

Reports of any schema version this mmeval has written are read. The p-value is a two-sided paired sign-flip
permutation test over the samples both runs share (matched by id); the CI is a paired percentile bootstrap.
A benchmark evaluated on different data (dataset sha256) is refused unless --force. Latency rows (p95 ms per
sample) come with a warning when hardware, threads, precision or batch size differ. Exit codes: 0 compared,
2 bad input (a missing or malformed report, different data)."""


@app.command(help=_COMPARE_HELP)
def compare(
    reports: Annotated[list[Path], typer.Argument(help="Two or more report JSON files; the first is the reference.",
                                                  show_default=False)],
    output_format: Annotated[CompareFormat, typer.Option("--format", "-f", help="table (rich), markdown, json or "
                                                         "csv (one line per benchmark, metric and report).")]
    = CompareFormat.table,
    force: Annotated[bool, typer.Option("--force", help="Compare benchmarks evaluated on different data "
                                        "(their paired statistics are left out).")] = False,
    resamples: Annotated[int, typer.Option(min=100, help="Permutation and bootstrap resamples per metric.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
) -> None:
    from mmeval.errors import MmevalError
    from mmeval.reporting.compare import compare as compare_reports
    from mmeval.reporting.compare import load_for_comparison, to_csv, to_json, to_markdown

    with _user_errors():
        if len(reports) < 2:
            raise MmevalError(f"compare needs at least two reports, got {len(reports)}")
        comparison = compare_reports(load_for_comparison(reports), force, resamples, seed)
    for line in comparison.warnings:
        stderr.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if output_format is CompareFormat.table:
        from mmeval.reporting.compare import notes
        from mmeval.reporting.console import compare_table, print_whole

        print_whole(compare_table(comparison))
        for line in notes(comparison):
            stdout.print(f"- {line}", markup=False, highlight=False, soft_wrap=True)
    else:
        render = {"markdown": to_markdown, "json": to_json, "csv": to_csv}[output_format.value]
        typer.echo(render(comparison), nl=False)


_GATE_HELP = """Check a candidate report against rules, and against a baseline report, for CI.

Rules (YAML; configs/gates.example.yaml documents every one) match metrics, latency passes or bias numbers
by glob: a minimum / maximum value, a maximum drop vs the baseline (absolute or relative), optionally only
when the drop is significant (one-sided paired permutation test at alpha), latency budgets (per-sample p95
<= X ms, or <= +Y% vs the baseline) and bias budgets (a gap <= X).

Prints a table; writes a Markdown summary to --markdown and, when set, to the file GITHUB_STEP_SUMMARY names
(appended); --junit writes JUnit XML (a test suite per rule, a test case per matched target).
Exit codes: 0 every check passed, 1 a check failed, 2 bad input (missing or malformed report or rules, a
rule matching nothing unless it is `optional: true`, a measurement a rule needs that a report lacks)."""


@app.command(help=_GATE_HELP)
def gate(
    candidate: Annotated[Path, typer.Option("--candidate", help="The report to check.", show_default=False)],
    rules: Annotated[Path, typer.Option("--rules", "-r", help="Rules file (YAML).", show_default=False)],
    baseline: Annotated[Optional[Path], typer.Option(
        "--baseline", help="The reference report (needed by drop and relative-latency rules).")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML here.")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write the Markdown summary here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Allow a baseline evaluated on different data "
                                        "(significance rules still refuse it).")] = False,
) -> None:
    import os

    from mmeval.config.gate import load_rules
    from mmeval.reporting.compare import load_for_comparison
    from mmeval.reporting.console import gate_table, print_whole
    from mmeval.reporting.gate import evaluate, to_markdown, write_junit

    with _user_errors():
        gate_rules = load_rules(rules)
        needs_samples = any(getattr(rule, "significant", False) for rule in gate_rules.rules)  # only paired tests read them
        loaded = load_for_comparison([p for p in (baseline, candidate) if p is not None], needs_samples)
        result = evaluate(gate_rules, loaded[-1], loaded[0] if baseline is not None else None, force)
        summary = to_markdown(result)
        if junit is not None:
            write_junit(result, junit)
        for target, mode in ((markdown, "w"), (os.environ.get("GITHUB_STEP_SUMMARY"), "a")):
            if target:
                _write_text(Path(target), summary, mode)
    for line in result.warnings:
        stderr.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    print_whole(gate_table(result))
    if not result.passed:
        raise typer.Exit(1)


def _write_text(path: Path, text: str, mode: str) -> None:
    from mmeval.errors import MmevalError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open(mode, encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise MmevalError(f"{path}: cannot write the gate summary ({exc.strerror or exc})") from None


def _unit(result: dict) -> str:
    """What the paired test resamples, e.g. '1000 images' (clustered) or 'rows'."""
    unit = result.get("unit") or "-"
    return f"{result['n_units']} {unit}" if unit not in ("rows", "-") and result.get("n_units") else unit


@app.command()
def power(
    baseline: Annotated[Path, typer.Argument(help="A report with per-sample output (output.per_sample: true).")],
    alpha: Annotated[float, typer.Option(help="Significance level of the one-sided paired test.",
                                         min=1e-6, max=0.5)] = 0.05,
    power_: Annotated[float, typer.Option("--power", help="Wanted probability of catching the effect.",
                                          min=0.05, max=0.999)] = 0.8,
    correlation: Annotated[float, typer.Option(help="Assumed correlation of per-sample values between the baseline "
                                               "and a candidate (0.6-0.9 for checkpoints of one model).",
                                               min=-1.0, max=0.99)] = 0.5,
    rules: Annotated[Optional[Path], typer.Option("--rules", help="Write a suggested gate rules file here.")] = None,
) -> None:
    """Minimum detectable effect of each headline metric for a paired test at --alpha and --power.

    Drops smaller than the MDE will usually pass a `significant: true` gate unnoticed: set thresholds at or above
    it, or evaluate on more data. --rules writes one such rule per metric (max_drop = the MDE, significant).
    """
    with _user_errors():
        from mmeval.reporting.power import power_rows, suggested_rules, write_rules

        rows = power_rows(baseline, alpha, power_, correlation)
        if rules is not None:
            write_rules(suggested_rules(rows, alpha), rules)
    from rich.table import Table

    table = Table(title=f"minimum detectable effect (one-sided alpha {alpha}, power {power_}, "
                        f"correlation {correlation})")
    for column in ("benchmark", "metric", "value", "n", "unit", "MDE", "note"):
        table.add_column(column)
    for row in rows:
        result = row.result or {}
        mde = result.get("mde")
        floor = result.get("min_p_possible")
        note = row.reason or ("" if mde is not None else f"cannot reach alpha (min p {floor:.3g})")
        table.add_row(row.benchmark, row.metric, "-" if row.value is None else f"{row.value:.4g}",
                      str(result.get("n", "-")), _unit(result), "-" if mde is None else f"{mde:.4g}", escape(note))
    stdout.print(table)
    if rules is not None:
        stderr.print(f"suggested gate rules: {rules}", markup=False, highlight=False)
