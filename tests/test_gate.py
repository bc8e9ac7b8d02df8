"""`mmeval gate`: exit code 0 when every check passes, 1 for each kind of failing rule, 2 for bad input (missing
files, malformed rules, what a rule needs and a report lacks), the JUnit file and the CI job summary.

The runs are synthetic retrieval reports (tests/test_compare.py: `retrieval_report`, `seeded_ranks`): a
baseline, a candidate that lost 5 points of R@1, and a candidate that differs only by training-seed noise.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_compare import GOLDENS, LATEST, retrieval_report, seeded_ranks
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.config.gate import BiasRule, GateRules, LatencyRule, MetricRule, RobustnessRule
from mmeval.metrics.stats.paired import paired_test

ROOT = Path(__file__).resolve().parents[1]
N = 5000


def gate(*args, summary: Path | None = None):
    env = {"GITHUB_STEP_SUMMARY": str(summary) if summary else None}  # never the real CI summary of this job
    return CliRunner(env=env).invoke(app, ["gate", *map(str, args)])


def rules_file(tmp_path: Path, *rules: dict, **top) -> Path:
    path = tmp_path / "gates.yaml"
    path.write_text(yaml.safe_dump({**top, "rules": list(rules)}))
    return path


def noise_seed() -> int:
    """The first training seed whose run of the same model shows a lower R@1 than the baseline's (seed 1):
    a drop that is only noise."""
    base = np.mean(seeded_ranks(N, 0.60, 1) <= 1)
    return next(s for s in range(2, 40) if np.mean(seeded_ranks(N, 0.60, s) <= 1) < base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    i2t = seeded_ranks(1000, 0.7, 1, queries_seed=5)
    return {
        "base": retrieval_report(tmp, "base", seeded_ranks(N, 0.60, 1), i2t, p95=10.0),
        "worse": retrieval_report(tmp, "worse", seeded_ranks(N, 0.55, 2), i2t, p95=10.5),
        "noise": retrieval_report(tmp, "noise", seeded_ranks(N, 0.60, noise_seed()), i2t, p95=10.2),
        "slow": retrieval_report(tmp, "slow", seeded_ranks(N, 0.60, 1), i2t, p95=25.0),
        "no_samples": retrieval_report(tmp, "no_samples", seeded_ranks(N, 0.60, 1), i2t, per_sample=False),
    }


def junit_cases(path: Path) -> list[ET.Element]:
    return list(ET.parse(path).getroot().iter("testcase"))


def test_passing_rules_exit_0_with_junit_and_job_summary(tmp_path, runs):
    rules = rules_file(tmp_path,
                       {"name": "floor", "metric": "retr/t2i_R@1", "min": 0.5},
                       {"metric": "retr/*_R@*", "max_drop": 0.01, "significant": True},
                       {"latency": "retr/images", "max_ms": 50, "max_increase_relative": 0.1},
                       {"bias": "zs/background/sliced/top1/gap", "max": 0.2})
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    done = gate("--baseline", runs["base"], "--candidate", runs["noise"], "--rules", rules, "--junit",
                tmp_path / "gate.xml", summary=summary)
    assert done.exit_code == 0, done.output
    assert "passed" in done.stdout
    cases = junit_cases(tmp_path / "gate.xml")
    assert len(cases) == 1 + 6 + 1 + 1  # one per rule and matched target: 6 recall metrics
    assert not any(case.find("failure") is not None for case in cases)
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## mmeval gate: passed" in text  # appended, as GitHub expects
    assert "| floor | retr/t2i_R@1 |" in text


def test_seed_noise_does_not_fail_a_significance_rule_but_fails_a_plain_one(tmp_path, runs):
    base, noise = (json.loads(runs[k].read_text())["benchmarks"]["retr"]["metrics"]["t2i_R@1"]["value"]
                   for k in ("base", "noise"))
    assert noise < base  # a drop, made only of seed noise
    hits = [(seeded_ranks(N, 0.60, s) <= 1).astype(float) for s in (1, noise_seed())]
    assert paired_test([tuple(hits)], n_resamples=10_000).p_less > 0.05  # independent of the gate
    significant = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "significant": True})
    assert gate("--baseline", runs["base"], "--candidate", runs["noise"], "--rules", significant).exit_code == 0
    plain = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "max_drop": 0.0})
    done = gate("--baseline", runs["base"], "--candidate", runs["noise"], "--rules", plain)
    assert done.exit_code == 1 and "FAIL" in done.stdout


@pytest.mark.parametrize("candidate, rule, detail", [
    ("base", {"metric": "retr/t2i_R@1", "min": 0.7}, "< min 0.7"),
    ("base", {"metric": "retr/t2i_mean_rank", "max": 2.0}, "> max 2"),
    ("worse", {"metric": "retr/t2i_R@1", "max_drop": 0.02}, "drop +0.0"),
    ("worse", {"metric": "retr/t2i_R@1", "max_drop_relative": 0.05}, "allowed 0.02994"),  # 5% of 0.5988
    ("worse", {"metric": "retr/t2i_R@1", "max_drop": 0.01, "significant": True, "alpha": 0.01}, "one-sided p ="),
    ("slow", {"latency": "retr/images", "max_ms": 20}, "p95 25 ms > 20 ms"),
    ("slow", {"latency": "retr/images", "max_increase_relative": 0.5}, "allowed 15"),
    ("base", {"bias": "zs/background/sliced/top1/gap", "max": 0.1}, "> max 0.1"),
    ("base", {"bias": "zs/background/sliced/top1/min_max_ratio", "min": 0.9}, "< min 0.9"),
], ids=["min", "max", "max_drop", "max_drop_relative", "significant", "latency_ms", "latency_relative", "bias_max",
        "bias_min"])
def test_each_failing_rule_kind_exits_1(tmp_path, runs, candidate, rule, detail):
    done = gate("--baseline", runs["base"], "--candidate", runs[candidate], "--rules", rules_file(tmp_path, rule),
                "--junit", tmp_path / "gate.xml")
    assert done.exit_code == 1, done.output
    [case] = junit_cases(tmp_path / "gate.xml")
    failure = case.find("failure")
    assert failure is not None and detail in failure.get("message"), failure.get("message")


def test_significant_drop_fails_with_its_p_value(tmp_path, runs):
    rules = rules_file(tmp_path, {"metric": "retr/t2i_R@1", "max_drop": 0.01, "significant": True})
    done = gate("--baseline", runs["base"], "--candidate", runs["worse"], "--rules", rules, "--markdown",
                tmp_path / "s.md")
    assert done.exit_code == 1
    row = next(line for line in (tmp_path / "s.md").read_text().splitlines() if "retr/t2i_R@1" in line)
    p = float(row.split("|")[6])
    assert p < 0.001 and "❌ fail" in row


@pytest.mark.parametrize("which", ["baseline", "candidate", "rules"])
def test_missing_file_exits_2(tmp_path, runs, which):
    files = {"baseline": runs["base"], "candidate": runs["worse"],
             "rules": rules_file(tmp_path, {"metric": "*/t2i_R@1", "min": 0.1})}
    files[which] = tmp_path / "absent.json"
    done = gate(*(x for key, path in files.items() for x in (f"--{key}", path)))
    assert done.exit_code == 2, done.output
    assert "absent.json" in done.stderr and "not found" in done.stderr and "Traceback" not in done.output


@pytest.mark.parametrize("text, fragment", [
    ("rules:\n  - metric: retr/t2i_R@1\n    max_dorp: 0.1\n",
     "rules[0].max_dorp: unknown key. Did you mean 'max_drop'?"),
    ("rules:\n  - metric: retr/t2i_R@1\n    min: [1\n", "not valid YAML: line 4, column 1: expected ',' or ']'"),
    ("rules:\n  - min: 0.3\n", "rules[0]: a rule has exactly one of the keys metric, latency, bias, robustness; got none"),
    ("rules:\n  - metric: t2i_R@1\n    min: 0.3\n", "rules[0].metric: expected 'benchmark/...'"),
    ("rules:\n  - latency: retr/images\n", "rules[0]: give max_ms, max_increase_relative or both"),
    ("rules:\n  - metric: retr/t2i_R@1\n    min: 0.3\n    alpha: 0.1\n",
     "rules[0]: alpha is only used with significant: true"),
    ("alpha: 1.5\nrules:\n  - bias: zs/x\n    max: 0.1\n", "alpha: Input should be less than 1"),
    ("rules: []\n", "rules: List should have at least 1 item"),
    ("- metric: retr/t2i_R@1\n", "expected a mapping with keys: alpha, resamples, seed, rules; got a list"),
])
def test_malformed_rules_exit_2_with_a_clear_line(tmp_path, runs, text, fragment):
    rules = tmp_path / "gates.yaml"
    rules.write_text(text)
    done = gate("--baseline", runs["base"], "--candidate", runs["worse"], "--rules", rules)
    assert done.exit_code == 2, done.output
    assert f"{rules}: {fragment}" in done.stderr, done.stderr


@pytest.mark.parametrize("args, rule, fragment", [
    ("base", {"metric": "retr/R@1", "min": 0.1}, "rules[0].metric: 'retr/R@1' matches no benchmark/metric"),
    ("none", {"metric": "retr/t2i_R@1", "max_drop": 0.1}, "compares with the baseline; pass --baseline"),
    ("no_samples", {"metric": "retr/t2i_R@1", "significant": True}, "needs per-sample output"),
    ("golden", {"latency": "*/images", "max_increase_relative": 0.1}, "has no p95 latency (report schema 1.0.0"),
])
def test_what_a_rule_cannot_judge_exits_2(tmp_path, runs, args, rule, fragment):
    baseline = {"base": runs["base"], "no_samples": runs["no_samples"], "golden": GOLDENS["1.0.0"]}.get(args)
    candidate = LATEST if args == "golden" else runs["worse"]
    done = gate(*(["--baseline", baseline] if baseline else []), "--candidate", candidate, "--rules",
                rules_file(tmp_path, rule))
    assert done.exit_code == 2, done.output
    assert fragment in done.stderr, done.stderr


def test_latency_from_the_cache_is_not_a_pass(tmp_path, runs):
    report = json.loads(runs["base"].read_text())
    report["benchmarks"]["retr"]["latency"]["passes"]["images"] = {"n_batches": 0, "cached": True}
    report["per_sample_file"] = None
    cached = tmp_path / "cached.json"
    cached.write_text(json.dumps(report))
    done = gate("--candidate", cached, "--rules", rules_file(tmp_path, {"latency": "retr/images", "max_ms": 1e9}))
    assert done.exit_code == 2 and "--no-cache" in done.stderr


def test_latency_on_other_hardware_warns(tmp_path, runs):
    ranks = seeded_ranks(N, 0.60, 1), seeded_ranks(1000, 0.7, 1, queries_seed=5)
    elsewhere = retrieval_report(tmp_path, "gpu", *ranks, p95=10.0, environment={"device_name": "NVIDIA H200"})
    done = gate("--baseline", runs["base"], "--candidate", elsewhere, "--rules",
                rules_file(tmp_path, {"latency": "retr/images", "max_increase_relative": 0.1}))
    assert done.exit_code == 0
    assert "different hardware" in done.stderr and "NVIDIA H200" in done.stderr


def test_example_rules_document_every_field_and_run(tmp_path):
    example = ROOT / "configs" / "gates.example.yaml"
    text = example.read_text()
    for model in (GateRules, MetricRule, LatencyRule, BiasRule, RobustnessRule):
        for field in model.model_fields:
            assert f"{field}:" in text, f"configs/gates.example.yaml does not document {model.__name__}.{field}"
    done = gate("--baseline", LATEST, "--candidate", LATEST, "--rules", example, "--junit", tmp_path / "g.xml")
    assert done.exit_code == 0, done.output
    assert {case.get("classname") for case in junit_cases(tmp_path / "g.xml")} == {
        "mmeval.reporting.gate.metric", "mmeval.reporting.gate.latency", "mmeval.reporting.gate.bias",
        "mmeval.reporting.gate.robustness"}  # skipped: the golden report has no robustness block


def test_a_failed_benchmark_fails_its_rules(tmp_path, runs):
    report = json.loads(runs["base"].read_text())
    report["benchmarks"]["retr"] = {"status": "failed", "task": "retrieval", "error": "data: images not found"}
    report["status"], report["per_sample_file"] = "partial", None
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps(report))
    done = gate("--baseline", runs["base"], "--candidate", failed, "--rules",
                rules_file(tmp_path, {"metric": "retr/t2i_R@1", "min": 0.1}), "--markdown", tmp_path / "s.md")
    assert done.exit_code == 1
    assert "benchmark 'retr' failed: data: images not found" in (tmp_path / "s.md").read_text()
