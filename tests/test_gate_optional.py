"""`mmeval gate`: `optional: true` rules, significance rules that cannot reach their alpha, and the shipped
configs/gates.example.yaml run as shipped on the demo's report and on a retrieval-only report.

Synthetic reports come from tests/test_compare.py (`retrieval_report`: a retrieval benchmark 'retr' plus the
golden's zero-shot benchmark 'zs' with its bias block).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from test_compare import retrieval_report, seeded_ranks
from test_gate import ROOT, gate, junit_cases, rules_file

EXAMPLE = ROOT / "configs" / "gates.example.yaml"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("pair")
    i2t = seeded_ranks(300, 0.7, 1, queries_seed=5)
    return (retrieval_report(tmp, "base", seeded_ranks(1500, 0.6, 1), i2t),
            retrieval_report(tmp, "cand", seeded_ranks(1500, 0.6, 1), i2t))


def test_an_optional_rule_that_matches_nothing_is_skipped_and_listed_everywhere(tmp_path, pair):
    rules = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "min": 0.5},
                       {"name": "captions", "metric": "*/CIDEr", "min": 1.0, "optional": True},
                       {"latency": "*/generate", "max_ms": 50, "optional": True})
    done = gate("--baseline", pair[0], "--candidate", pair[1], "--rules", rules, "--junit", tmp_path / "g.xml",
                "--markdown", tmp_path / "s.md")
    assert done.exit_code == 0, done.output
    cases = {case.get("name"): case for case in junit_cases(tmp_path / "g.xml")}
    assert set(cases) == {"retr/t2i_R@1 >= 0.5", "*/CIDEr >= 1", "*/generate p95 <= 50 ms"}
    for name in ("*/CIDEr >= 1", "*/generate p95 <= 50 ms"):
        skipped = cases[name].find("skipped")
        assert skipped is not None and "optional: matches no" in skipped.get("message")
    suites = {s.get("name"): s for s in ET.parse(tmp_path / "g.xml").getroot().iter("testsuite")}
    assert suites["rules[1] captions"].get("skipped") == "1"
    markdown = (tmp_path / "s.md").read_text()
    assert "| captions | */CIDEr |  |  | >= 1 |  | ⏭️ skip | optional: matches no benchmark/metric of the reports |" \
        in markdown
    assert "skip" in done.stdout and "*/CIDEr" in done.stdout


def test_a_required_rule_that_matches_nothing_still_exits_2(tmp_path, pair):
    rules = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "min": 0.5}, {"metric": "*/CIDEr", "min": 1.0})
    done = gate("--baseline", pair[0], "--candidate", pair[1], "--rules", rules)
    assert done.exit_code == 2
    assert "rules[1].metric: '*/CIDEr' matches no benchmark/metric" in done.stderr
    assert "optional: true" in done.stderr


def test_every_rule_skipped_is_not_a_pass(tmp_path, pair):
    rules = rules_file(tmp_path, {"metric": "*/CIDEr", "min": 1.0, "optional": True})
    done = gate("--candidate", pair[1], "--rules", rules)
    assert done.exit_code == 2 and "nothing was checked" in done.stderr


def test_optional_must_be_a_boolean(tmp_path, pair):
    rules = tmp_path / "gates.yaml"
    rules.write_text("rules:\n  - metric: '*/CIDEr'\n    min: 1\n    optional: maybe\n")
    done = gate("--candidate", pair[1], "--rules", rules)
    assert done.exit_code == 2 and f"{rules}: rules[0].optional: Input should be a valid boolean" in done.stderr


# --- significance rules that cannot fail ---------------------------------------------------------------------


@pytest.fixture()
def nine_images(tmp_path) -> tuple[Path, Path]:
    """The issue's runs: 9 images, i2t_R@5 from 7/9 = 0.78 to 3/9 = 0.33 (4 images lost their hit)."""
    t2i = np.tile(np.arange(1, 10), 5)
    return (retrieval_report(tmp_path, "base9", t2i, np.array([1, 1, 1, 1, 2, 3, 4, 9, 9])),
            retrieval_report(tmp_path, "cand9", t2i, np.array([1, 1, 1, 9, 9, 9, 9, 9, 9])))


def test_a_significance_rule_that_cannot_reach_alpha_says_so(tmp_path, nine_images):
    rules = rules_file(tmp_path, {"metric": "retr/i2t_R@5", "max_drop": 0.01, "significant": True, "alpha": 0.01})
    done = gate("--baseline", nine_images[0], "--candidate", nine_images[1], "--rules", rules, "--junit",
                tmp_path / "g.xml", "--markdown", tmp_path / "s.md")
    assert done.exit_code == 0, done.output  # the verdict is unchanged: the test has no evidence to fail on
    floor = stats.binomtest(0, 4, 0.5, alternative="less").pvalue  # exact McNemar, all 4 changes one way
    said = f"cannot reach alpha 0.01 with n = 9 (4 differing samples: the smallest possible one-sided p is {floor:.2g})"
    assert floor == 1 / 16 and said in (tmp_path / "s.md").read_text()
    [case] = junit_cases(tmp_path / "g.xml")
    assert said in case.find("system-out").text
    assert "passed only because the paired test cannot reach alpha 0.01" in done.stderr  # a warning
    assert "a drop of 0.4444 (allowed 0.01)" in done.stderr
    # at an alpha the test can reach, the same drop fails
    reachable = rules_file(tmp_path, {"metric": "retr/i2t_R@5", "max_drop": 0.01, "significant": True, "alpha": 0.1})
    failed = gate("--baseline", nine_images[0], "--candidate", nine_images[1], "--rules", reachable)
    assert failed.exit_code == 1 and "cannot reach" not in failed.output


def test_no_power_note_when_the_test_can_reach_alpha(tmp_path, pair):
    rules = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "significant": True, "alpha": 0.01})
    done = gate("--baseline", pair[0], "--candidate", pair[1], "--rules", rules, "--markdown", tmp_path / "s.md")
    assert done.exit_code == 0 and "cannot reach" not in (tmp_path / "s.md").read_text() + done.stderr


# --- the shipped example --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """configs/demo.yaml as shipped, on fewer scenes in smaller batches (so latency has batches after warm-up),
    with --no-cache (a module fixture runs before each test's own empty cache is set: latency must be measured)."""
    from typer.testing import CliRunner

    from mmeval.cli import app

    tmp = tmp_path_factory.mktemp("demo")
    config = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    config["benchmarks"] = config["benchmarks"][:3]  # the image benchmarks the example's rules name
    for bench, n_images in zip(config["benchmarks"], (256, 12, 12), strict=True):
        bench["data"]["n_images"] = n_images
    config["runtime"]["batch_size"] = 64
    (tmp / "demo.yaml").write_text(yaml.safe_dump(config))
    done = CliRunner().invoke(app, ["run", "--config", str(tmp / "demo.yaml"), "--output", str(tmp / "out"),
                                       "--no-cache"])
    assert done.exit_code == 0, done.output
    [report] = [p for p in (tmp / "out").glob("*.json") if p.name.count(".") == 1]
    return report


def test_shipped_example_runs_on_the_demo_report(tmp_path, demo_report):
    benches = json.loads(demo_report.read_text())["benchmarks"]
    assert {b["task"] for b in benches.values()} == {"retrieval", "coco_captions", "vqa"}
    done = gate("--baseline", demo_report, "--candidate", demo_report, "--rules", EXAMPLE, "--junit",
                tmp_path / "g.xml")
    assert done.exit_code == 0, done.output
    status = {case.get("name").split()[0]: ("skip" if case.find("skipped") is not None else "ran")
              for case in junit_cases(tmp_path / "g.xml")}
    assert status["*/background/sliced/top1/gap"] == "skip"  # the demo has no bias block
    assert status["shapes-captions/CIDEr"] == status["shapes-vqa/vqa_accuracy"] == "ran"
    assert status["shapes-retrieval/t2i_R@1"] == status["shapes-retrieval/images"] == "ran"


def test_shipped_example_runs_on_a_retrieval_only_report(tmp_path, demo_report):
    report = json.loads(demo_report.read_text())
    report["benchmarks"] = {"shapes-retrieval": report["benchmarks"]["shapes-retrieval"]}
    retrieval = demo_report.parent / "retrieval-only.json"  # beside the per-sample file it names
    retrieval.write_text(json.dumps(report))
    done = gate("--baseline", retrieval, "--candidate", retrieval, "--rules", EXAMPLE, "--junit", tmp_path / "g.xml")
    assert done.exit_code == 0, done.output
    skipped = {case.get("name").split()[0] for case in junit_cases(tmp_path / "g.xml")
               if case.find("skipped") is not None}
    assert skipped == {"*/CIDEr", "*/vqa_accuracy", "*/background/sliced/top1/gap",  # and, without a perturb section:
                       "*/t2i_R@1/relative/image:*@3", "*/t2i_R@1/mean_relative", "*/t2i_R@1/mce"}
