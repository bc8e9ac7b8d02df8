"""The terminal's robustness summary (reporting/console.py `robustness_table`): per benchmark and headline metric
the clean value, the mean of perturbed / clean over the grid, the worst cell and mCE; nothing without a grid."""

from __future__ import annotations

from rich.console import Console

from mmeval.reporting.console import robustness_table


def _report(block: dict | None) -> dict:
    bench = {"task": "retrieval", "status": "complete",
             "metrics": {"t2i_R@1": {"value": 0.8, "higher_is_better": True}}}
    if block is not None:
        bench["robustness"] = block
    return {"benchmarks": {"retr": bench}}


def _text(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_summary_row_by_hand() -> None:
    block = {"severities": [1, 3], "clean": {"t2i_R@1": 0.8},
             "grid": {"image:fog": {"t2i_R@1": [0.6, 0.4]}, "text:casing": {"t2i_R@1": [0.8, 0.8]}},
             "worst": {"t2i_R@1": {"value": 0.4, "perturbation": "image:fog", "severity": 3}},
             "mce": {"baseline": "b.json", "t2i_R@1": {"ce": {"image:fog": 1.2}, "mce": 1.2}}}
    text = _text(robustness_table(_report(block)))
    mean_relative = (0.6 / 0.8 + 0.4 / 0.8 + 1.0 + 1.0) / 4  # 0.8125
    assert "retr" in text and "t2i_R@1" in text
    assert "0.8000" in text and f"{mean_relative:.4f}" in text
    assert "0.4000" in text and "image:fog@3" in text and "1.2000" in text  # worst value, its cell, mCE


def test_no_grid_no_table() -> None:
    assert robustness_table(_report(None)) is None
