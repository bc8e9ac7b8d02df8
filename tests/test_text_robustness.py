"""Retrieval under text perturbations of its captions (`perturb` section) on the shapes reference model: the
grid, relative robustness and worst case in the report, images encoded once, mCE against a baseline report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.config.run import validate_mapping
from mmeval.errors import ConfigError


def config(tmp_path: Path, perturb: dict, name: str = "run"):
    return validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [{"name": "retrieval", "task": "retrieval", "data": {"format": "shapes", "n_images": 40},
                        "perturb": perturb}],
        "runtime": {"device": "cpu", "num_workers": 0},
        "bootstrap": {"n": 0},
        "output": {"dir": str(tmp_path / "reports"), "name": name},
    })


def test_text_perturbation_grid_and_mce(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    outcome = run_config(config(tmp_path, {"text": ["keyboard_typo", "char_drop"], "severities": [1, 5]}, "base"))
    assert not outcome.errors and outcome.internal_error is None
    bench = json.loads(outcome.report_path.read_text())["benchmarks"]["retrieval"]
    block = bench["robustness"]
    assert block["severities"] == [1, 5] and set(block["grid"]) == {"text:keyboard_typo", "text:char_drop"}
    clean = bench["metrics"]["t2i_R@1"]["value"]
    assert block["clean"]["t2i_R@1"] == clean
    typo = block["grid"]["text:keyboard_typo"]["t2i_R@1"]
    assert typo[1] < clean and typo[1] <= typo[0] + 0.05  # typos in 25% of letters hurt the reference model
    assert block["relative"]["t2i_R@1"]["text:keyboard_typo"] == pytest.approx([v / clean for v in typo])
    worst = block["worst"]["t2i_R@1"]
    all_values = [v for g in block["grid"].values() for v in g["t2i_R@1"]]
    assert worst["value"] == min(all_values)
    # against itself as the baseline every corruption error is exactly 1, and relative mCE too
    again = run_config(config(tmp_path, {"text": ["keyboard_typo", "char_drop"], "severities": [1, 5],
                                         "baseline": str(outcome.report_path)}, "same"))
    mce = json.loads(again.report_path.read_text())["benchmarks"]["retrieval"]["robustness"]["mce"]
    assert mce["t2i_R@1"]["ce"] == pytest.approx({"text:keyboard_typo": 1.0, "text:char_drop": 1.0})  # seeded: same grid
    assert mce["t2i_R@1"]["mce"] == pytest.approx(1.0) and mce["baseline"] == str(outcome.report_path)


def test_perturb_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown text perturbation"):
        config(tmp_path, {"text": ["typos"]})
    with pytest.raises(ConfigError, match="severity must be 1 to 5"):
        config(tmp_path, {"text": ["casing"], "severities": [0, 6]})
    with pytest.raises(ConfigError, match="perturb.baseline: .*file not found"):
        config(tmp_path, {"text": ["casing"], "baseline": str(tmp_path / "nope.json")})


def test_a_bad_baseline_keeps_the_grid_and_says_why(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    (tmp_path / "other.json").write_text("{}")
    outcome = run_config(config(tmp_path, {"text": ["char_drop"], "severities": [2],
                                           "baseline": str(tmp_path / "other.json")}))
    block = json.loads(outcome.report_path.read_text())["benchmarks"]["retrieval"]["robustness"]
    assert len(block["grid"]["text:char_drop"]["t2i_R@1"]) == 1
    assert "expected a report with a robustness block for benchmark 'retrieval'" in block["mce"]["error"]
