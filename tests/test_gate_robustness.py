"""Gate rules on robustness numbers (`robustness: 'benchmark/metric/number'`): bounds and drops against the
baseline on hand-built robustness blocks (both spellings of a perturbation's name, image and text grids, mCE),
exit 2 on reports without a robustness block, and the real block of a tiny run on the shapes reference model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_compare import retrieval_report, seeded_ranks
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.config.gate import GateRules, RobustnessRule, load_rules
from mmeval.errors import ConfigError, MmevalError
from mmeval.reporting.compare import load_for_comparison
from mmeval.reporting.gate import evaluate
from mmeval.reporting.robustness_numbers import robustness_numbers

CLEAN = {"t2i_R@1": 0.8, "t2i_mean_rank": 2.0}


def block(typo: list[float], fog: list[float], ranks: list[float], bare: bool = False, mce=None) -> dict:
    """A robustness block as the report writes it: severities 1 and 3, a text and an image perturbation."""
    text = "keyboard_typo" if bare else "text:keyboard_typo"
    out = {"severities": [1, 3], "seed": 0, "clean": dict(CLEAN),
           "grid": {text: {"t2i_R@1": typo, "t2i_mean_rank": ranks}, "image:fog": {"t2i_R@1": fog,
                                                                                  "t2i_mean_rank": [2.0, 2.0]}},
           "relative": {}, "worst": {}}
    if mce is not None:
        out["mce"] = mce
    return out


def report_with(tmp_path: Path, name: str, robustness: dict | None) -> Path:
    path = retrieval_report(tmp_path, name, seeded_ranks(500, 0.8, 1), seeded_ranks(100, 0.7, 1, queries_seed=5))
    report = json.loads(path.read_text())
    bench = report["benchmarks"]["retr"]
    for metric, value in CLEAN.items():
        bench["metrics"][metric]["value"] = value
    if robustness is not None:
        bench["robustness"] = robustness
    path.write_text(json.dumps(report))
    return path


def check(rules: list[dict], candidate: Path, baseline: Path | None = None) -> dict[str, tuple[str, float | None]]:
    """{target: (status, candidate value)} of every check."""
    loaded = load_for_comparison([p for p in (candidate, baseline) if p is not None])
    result = evaluate(GateRules.model_validate({"rules": rules}), loaded[0], loaded[1] if baseline else None)
    return {c.target: (c.status, c.candidate, "; ".join(c.messages)) for c in result.checks}


@pytest.fixture()
def reports(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": report_with(tmp_path, "base", block([0.6, 0.4], [0.8, 0.6], [3.0, 5.0], bare=True)),
        "cand": report_with(tmp_path, "cand", block([0.7, 0.2], [0.8, 0.4], [3.0, 9.0],
                                                    mce={"baseline": "b.json", "t2i_R@1": {
                                                        "ce": {"text:keyboard_typo": 1.1, "image:fog": 1.4},
                                                        "mce": 1.25, "relative_ce": {}, "relative_mce": 1.6}})),
        "none": report_with(tmp_path, "none", None),
        "broken_mce": report_with(tmp_path, "broken", block([0.7, 0.2], [0.8, 0.4], [3.0, 9.0],
                                                            mce={"baseline": "b.json", "error": "severities differ"})),
    }


def test_numbers_by_hand(reports) -> None:
    numbers = robustness_numbers(json.loads(reports["cand"].read_text()))
    value = lambda key: numbers[f"retr/{key}"].value
    assert value("t2i_R@1/grid/text:keyboard_typo@3") == 0.2
    assert value("t2i_R@1/relative/image:fog@3") == pytest.approx(0.5)
    assert value("t2i_R@1/worst") == 0.2 and value("t2i_R@1/worst_relative") == pytest.approx(0.25)
    # mean over the 4 cells: (0.875 + 0.25 + 1 + 0.5) / 4
    assert value("t2i_R@1/mean_relative") == pytest.approx((0.7 + 0.2 + 0.8 + 0.4) / 0.8 / 4)
    # lower-is-better metric: the worst is the largest rank
    assert value("t2i_mean_rank/worst") == 9.0 and not numbers["retr/t2i_mean_rank/worst"].higher_is_better
    assert value("t2i_R@1/mce") == 1.25 and value("t2i_R@1/ce/image:fog") == 1.4
    assert not numbers["retr/t2i_R@1/mce"].higher_is_better


def test_bounds_globs_and_both_spellings(reports) -> None:
    out = check([{"robustness": "*/t2i_R@1/relative/*@3", "min": 0.4},
                 {"robustness": "retr/t2i_R@1/mean_relative", "min": 0.6},
                 {"robustness": "retr/t2i_R@1/mce", "max": 1.2}], reports["cand"])
    assert out["retr/t2i_R@1/relative/text:keyboard_typo@3"][:2] == ("fail", pytest.approx(0.25))
    assert out["retr/t2i_R@1/relative/image:fog@3"][:2] == ("pass", pytest.approx(0.5))
    assert out["retr/t2i_R@1/mean_relative"][0] == "pass"
    assert out["retr/t2i_R@1/mce"][:2] == ("fail", 1.25) and "> max 1.2" in out["retr/t2i_R@1/mce"][2]
    assert len(out) == 4  # the @1 cells do not match
    # bare (first text-only blocks) and prefixed names match either spelling, the target as the report writes it
    for pattern in ("retr/t2i_R@1/grid/keyboard_typo@3", "retr/t2i_R@1/grid/text:keyboard_typo@3"):
        assert list(check([{"robustness": pattern, "min": 0}], reports["base"])) == [
            "retr/t2i_R@1/grid/keyboard_typo@3"]
        assert list(check([{"robustness": pattern, "min": 0}], reports["cand"])) == [
            "retr/t2i_R@1/grid/text:keyboard_typo@3"]
    assert list(check([{"robustness": "*/relative/image:*", "min": 0}], reports["cand"])) == [
        "retr/t2i_R@1/relative/image:fog@1", "retr/t2i_R@1/relative/image:fog@3",
        "retr/t2i_mean_rank/relative/image:fog@1", "retr/t2i_mean_rank/relative/image:fog@3"]


def test_drops_against_the_baseline_follow_the_direction(reports) -> None:
    out = check([{"robustness": "retr/t2i_R@1/worst", "max_drop": 0.1},
                 {"robustness": "retr/t2i_mean_rank/worst", "max_drop_relative": 0.5},
                 {"robustness": "retr/*/grid/image:fog@1", "max_drop": 0.0}], reports["cand"], reports["base"])
    # worst R@1 fell from 0.4 to 0.2: a drop of 0.2 > 0.1
    assert out["retr/t2i_R@1/worst"][0] == "fail" and "drop +0.2" in out["retr/t2i_R@1/worst"][2]
    # worst mean rank rose from 5 to 9 (lower is better): +4 > 50% of 5
    assert out["retr/t2i_mean_rank/worst"][0] == "fail" and "drop +4" in out["retr/t2i_mean_rank/worst"][2]
    assert out["retr/t2i_R@1/grid/image:fog@1"][0] == "pass"  # 0.8 -> 0.8
    # mCE is only in the candidate: a drop rule on it is skipped, a bound still applies
    skipped = check([{"robustness": "retr/t2i_R@1/mce", "max_drop": 0.1}], reports["cand"], reports["base"])
    assert skipped["retr/t2i_R@1/mce"][0] == "skip" and "no baseline value" in skipped["retr/t2i_R@1/mce"][2]


def test_reports_without_a_block_or_number_are_input_errors_unless_optional(reports) -> None:
    with pytest.raises(MmevalError, match=r"rules\[0\]\.robustness: '\*/t2i_R@1/worst': no benchmark of the "
                                          r"reports has a robustness block \(run it with a `perturb` section\)"):
        check([{"robustness": "*/t2i_R@1/worst", "min": 0.1}], reports["none"])
    with pytest.raises(MmevalError, match=r"matches no robustness number of the reports \(there are: retr/"):
        check([{"robustness": "*/t2i_R@1/relative/image:snow@*", "min": 0.1}], reports["cand"])
    out = check([{"robustness": "*/t2i_R@1/worst", "min": 0.1, "optional": True},
                 {"metric": "*/t2i_R@1", "min": 0.1}], reports["none"])
    assert out["*/t2i_R@1/worst"][0] == "skip"
    # the baseline has the block, the candidate lost it: a failure, not a pass
    lost = check([{"robustness": "retr/t2i_R@1/worst", "max_drop": 0.1}], reports["none"], reports["base"])
    assert lost["retr/t2i_R@1/worst"][0] == "fail" and "it has no robustness block" in lost["retr/t2i_R@1/worst"][2]
    # an mCE the run could not compute fails with the block's reason
    broken = check([{"robustness": "retr/t2i_R@1/mce", "max": 2}], reports["broken_mce"])
    assert broken["retr/t2i_R@1/mce"][0] == "fail" and "no mCE: severities differ" in broken["retr/t2i_R@1/mce"][2]


def test_rules_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(yaml.safe_dump({"rules": [{"robustness": "*/t2i_R@1/worst"},
                                              {"robustness": "retr/worst", "min": 0.5},
                                              {"robustness": "*/t2i_R@1/worst", "min": 0.5, "significant": True}]}))
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    problems = "\n".join(info.value.problems)
    assert "rules[0]: give at least one of min, max, max_drop, max_drop_relative" in problems
    assert "rules[1].robustness: expected 'benchmark/metric/number'" in problems
    assert "rules[2].significant: unknown key." in problems
    path.write_text(yaml.safe_dump({"rules": [{"robustness": "*/t2i_R@1/worst", "min": 0.5}]}))
    assert isinstance(load_rules(path).rules[0], RobustnessRule)


def test_cli_exit_codes(reports, tmp_path: Path) -> None:
    def gate(rule: dict, candidate: str) -> int:
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump({"rules": [rule]}))
        done = CliRunner(env={"GITHUB_STEP_SUMMARY": None}).invoke(
            app, ["gate", "--baseline", str(reports["base"]), "--candidate", str(reports[candidate]), "--rules",
                  str(path)])
        return done.exit_code

    assert gate({"robustness": "*/t2i_R@1/worst_relative", "min": 0.2}, "cand") == 0
    assert gate({"robustness": "*/t2i_R@1/worst_relative", "min": 0.3}, "cand") == 1
    assert gate({"robustness": "*/t2i_R@1/worst_relative", "min": 0.3}, "none") == 1  # lost its block
    assert gate({"robustness": "*/t2i_R@1/mce", "max": 2}, "none") == 2  # no mCE in either report


def test_the_real_block_of_a_tiny_run(tmp_path: Path) -> None:
    from test_text_robustness import config

    from mmeval.engine.evaluate import run_config

    outcome = run_config(config(tmp_path, {"text": ["keyboard_typo", "casing"], "severities": [1, 5]}, "real"))
    assert not outcome.errors and outcome.internal_error is None
    written = json.loads(outcome.report_path.read_text())["benchmarks"]["retrieval"]["robustness"]
    out = check([{"robustness": "retrieval/t2i_R@1/relative/text:*@5", "min": 0.9},
                 {"robustness": "retrieval/t2i_R@1/worst", "min": 0.0},
                 {"robustness": "retrieval/t2i_R@1/mean_relative", "max": 1.0}], outcome.report_path)
    typo, casing = (written["relative"]["t2i_R@1"]["text:keyboard_typo"][1],
                    written["relative"]["t2i_R@1"]["text:casing"][1])
    assert out["retrieval/t2i_R@1/relative/text:keyboard_typo@5"][:2] == ("fail", pytest.approx(typo))
    assert typo < 0.9  # typos in 25% of letters hurt the reference model; its tokenizer ignores case
    assert out["retrieval/t2i_R@1/relative/text:casing@5"][:2] == ("pass", pytest.approx(casing))
    assert out["retrieval/t2i_R@1/worst"][1] == written["worst"]["t2i_R@1"]["value"]
    every = [r for g in written["relative"]["t2i_R@1"].values() for r in g]
    assert out["retrieval/t2i_R@1/mean_relative"][1] == pytest.approx(sum(every) / len(every))
