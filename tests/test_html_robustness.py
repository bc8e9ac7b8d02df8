"""The HTML report's robustness part: a metric-vs-severity figure and a worst-case / mCE table for a benchmark
whose report has a robustness block, nothing for one without. The figure's lines are read back from the
matplotlib figure and compared with the block's numbers; the table against values worked out by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_html_report import Page, decode, make_report, write_run

from mmeval.reporting.html import plots
from mmeval.reporting.html.report import load_runs, render_html
from mmeval.reporting.report import validate_report

SEVERITIES = [1, 3, 5]
GRID = {"t2i_R@1": {"text:keyboard_typo": [0.5, 0.3, 0.1], "image:fog": [0.55, 0.45, 0.2]},
        "i2t_R@1": {"text:keyboard_typo": [0.6, 0.5, 0.4], "image:fog": [0.7, 0.6, 0.35]}}


def with_block(report: dict[str, Any], mce: dict[str, Any] | None = None, shift: float = 0.0) -> dict[str, Any]:
    report = copy.deepcopy(report)
    bench = report["benchmarks"]["ret"]
    clean = {m: bench["metrics"][m]["value"] for m in GRID}
    grid = {p: {m: [v + shift for v in GRID[m][p]] for m in GRID} for p in GRID["t2i_R@1"]}
    bench["robustness"] = {"severities": SEVERITIES, "seed": 7, "clean": clean, "grid": grid, "relative": {},
                           "worst": {}, **({"mce": mce} if mce else {})}
    validate_report(report)  # a block the report schema accepts
    return report


@pytest.fixture()
def captured(monkeypatch) -> list:
    """The matplotlib figures the severity plot draws, kept for inspection."""
    figures: list = []
    original = plots.to_data_uri

    def keep(fig):
        figures.append(fig)
        return original(fig)

    monkeypatch.setattr(plots, "to_data_uri", keep)
    return figures


def severity_figure(figures: list):
    (figure,) = [f for f in figures if any(ax.get_xlabel() == "severity" for ax in f.axes)]
    return figure


def test_severity_plot_and_table_for_a_report_with_a_block(tmp_path, captured) -> None:
    report, samples = make_report()
    mce = {"baseline": "alexnet.json", "t2i_R@1": {"ce": {"text:keyboard_typo": 0.9, "image:fog": 1.1}, "mce": 1.0,
                                                   "relative_mce": 1.3}}
    text = render_html(load_runs([write_run(tmp_path, with_block(report, mce), samples)]))
    page = Page(text)
    assert page.plots["ret"].count("robustness") == 1 and "robustness" not in page.plots.get("cap", [])
    uri = next(a["src"] for t, a in page.tags if a.get("data-plot") == "robustness")
    assert decode(uri).size[0] == 1000
    figure = severity_figure(captured)
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["t2i_R@1 (grey: clean)", "i2t_R@1 (grey: clean)"]  # the headline
    for ax, metric in zip(axes, ("t2i_R@1", "i2t_R@1")):
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(SEVERITIES)]
        assert sorted(tuple(line.get_ydata()) for line in lines) == sorted(tuple(v) for v in GRID[metric].values())
        assert all(list(line.get_xdata()) == SEVERITIES for line in lines)
        clean = report["benchmarks"]["ret"]["metrics"][metric]["value"]
        assert any(list(line.get_ydata()) == [clean, clean] for line in ax.get_lines())  # the reference line
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["text:keyboard_typo", "image:fog"]
    section = " ".join(page.text["ret"].split())
    # worst t2i cell: 0.1 under typos at severity 5; worst / clean and the mean of the six ratios by hand
    clean = report["benchmarks"]["ret"]["metrics"]["t2i_R@1"]["value"]
    assert "0.1000 (text:keyboard_typo @ 5)" in section
    assert f"{0.1 / clean:.4f}" in section
    assert f"{(0.5 + 0.3 + 0.1 + 0.55 + 0.45 + 0.2) / clean / 6:.4f}" in section
    assert "1.0000 / 1.3000" in section  # mCE / relative mCE
    assert "0.3500 (image:fog @ 5)" in section and "not computed for this metric" in section  # i2t: no mCE
    assert "2 perturbation(s), seed 7" in section


def test_nothing_for_a_report_without_a_block(tmp_path) -> None:
    report, samples = make_report()
    page = Page(render_html(load_runs([write_run(tmp_path, report, samples)])))
    assert all("robustness" not in kinds for kinds in page.plots.values())
    assert "Robustness" not in " ".join(page.text.values())


def test_two_checkpoints_share_colours_and_differ_by_line_style(tmp_path, captured) -> None:
    first, samples = make_report("ckpt-a")
    second, _ = make_report("ckpt-b", shift=0.01)
    broken = {"baseline": "other.json", "error": "severities [1, 2] differ from [1, 3, 5]"}
    paths = [write_run(tmp_path / "a", with_block(first), samples, "a"),
             write_run(tmp_path / "b", with_block(second, broken, shift=-0.05), None, "b")]
    page = Page(render_html(load_runs(paths)))
    assert page.plots["ret"].count("robustness") == 1
    figure = severity_figure(captured)
    ax = figure.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == len(SEVERITIES)]
    assert len(lines) == 4 and {line.get_linestyle() for line in lines} == {"-", "--"}
    fog = [line for line in lines if round(float(line.get_ydata()[1]), 2) in (0.45, 0.4)]  # fog at severity 3
    assert len(fog) == 2
    assert len({line.get_color() for line in fog}) == 1  # one colour per perturbation across checkpoints
    section = " ".join(page.text["ret"].split())
    assert "no baseline" in section and "severities [1, 2] differ from [1, 3, 5]" in section
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[-2:] == ["ckpt-a", "ckpt-b"]
