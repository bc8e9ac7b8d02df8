"""`minimum_detectable_effect`: at the MDE the paired permutation test rejects with about the asked power
(simulated), below the floor nothing is detectable, and `mmeval power` writes a gate rules file that loads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmeval.metrics.stats.paired import paired_test
from mmeval.metrics.stats.power import minimum_detectable_effect


def correlated_candidate(rng: np.random.Generator, a: np.ndarray, keep: float, p_new: float) -> np.ndarray:
    """A second run: each sample keeps the baseline's 0/1 outcome with probability `keep` (the correlation of
    the two runs), else is redrawn at rate p_new."""
    redraw = rng.random(a.size) >= keep
    return np.where(redraw, (rng.random(a.size) < p_new).astype(float), a)


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_the_permutation_test_rejects_at_the_mde_with_about_the_asked_power(keep: float) -> None:
    rng = np.random.default_rng(5)
    n, p = 1500, 0.7
    baseline = (rng.random(n) < p).astype(float)
    mde = minimum_detectable_effect([baseline], alpha=0.05, power=0.8, correlation=keep)["mde"]
    # hand check of the formula: (1.645 + 0.842) x sqrt(2 (1 - rho) p (1 - p) / n)
    assert mde == pytest.approx(2.4865 * math.sqrt(2 * (1 - keep) * baseline.var(ddof=1) / n), rel=1e-3)
    rejected = []
    for _ in range(150):
        a = (rng.random(n) < p).astype(float)
        b = correlated_candidate(rng, a, keep, p - mde / (1 - keep))  # mean drop = mde
        rejected.append(paired_test([(a, b)], n_resamples=1000, seed=int(rng.integers(1 << 30))).p_less < 0.05)
    assert 0.68 <= np.mean(rejected) <= 0.92, np.mean(rejected)
    # half the MDE is caught far less often
    baselines = [(rng.random(n) < p).astype(float) for _ in range(80)]
    weak = [paired_test([(a, correlated_candidate(rng, a, keep, p - mde / 2 / (1 - keep)))], n_resamples=1000,
                        seed=s).p_less < 0.05 for s, a in enumerate(baselines)]
    assert np.mean(weak) < 0.55


def test_too_few_samples_cannot_detect_anything() -> None:
    out = minimum_detectable_effect([np.array([1.0, 0.0, 1.0, 1.0])], alpha=0.05)
    assert out["min_p_possible"] == pytest.approx(1 / 16) and out["mde"] is None


def test_strata_add_and_medians_use_the_bootstrap_se() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(400), rng.random(900)
    both = minimum_detectable_effect([a, b], correlation=0.0)["se_difference"]
    assert both == pytest.approx(math.sqrt(2 * (a.var(ddof=1) / 400 + b.var(ddof=1) / 900)))
    ranks = rng.integers(1, 50, size=500).astype(float)
    median = minimum_detectable_effect([ranks], "median", correlation=0.0)
    assert 0 < median["se_difference"] < 10 and median["mde"] > 0


def test_power_command_prints_mdes_and_writes_rules_the_gate_uses(tmp_path) -> None:
    from test_compare import retrieval_report, seeded_ranks
    from typer.testing import CliRunner

    from mmeval.cli import app
    from mmeval.config.gate import load_rules

    i2t = seeded_ranks(1000, 0.7, 1, queries_seed=5)
    base = retrieval_report(tmp_path, "base", seeded_ranks(5000, 0.60, 1), i2t)
    worse = retrieval_report(tmp_path, "worse", seeded_ranks(5000, 0.55, 2), i2t)
    rules = tmp_path / "suggested.yaml"
    done = CliRunner().invoke(app, ["power", str(base), "--correlation", "0.7", "--rules", str(rules)])
    assert done.exit_code == 0, done.output
    assert "minimum detectable effect" in done.output and "t2i_R@1" in done.output and "1000 images" in done.output
    loaded = load_rules(rules)
    by_metric = {rule.metric: rule for rule in loaded.rules}
    hits = (seeded_ranks(5000, 0.60, 1) <= 1).astype(float)
    images = np.array([f"img-{i % 1000}" for i in range(5000)], dtype=object)  # the gate's paired test draws images
    expected = minimum_detectable_effect([hits], alpha=0.05, power=0.8, correlation=0.7, clusters=[images])["mde"]
    rule = by_metric["retr/t2i_R@1"]
    assert rule.max_drop == pytest.approx(expected, rel=1e-3) and rule.significant
    # a 5-point drop is far beyond the ~1.4-point MDE: the suggested rules fail it
    gated = CliRunner(env={"GITHUB_STEP_SUMMARY": None}).invoke(
        app, ["gate", "--baseline", str(base), "--candidate", str(worse), "--rules", str(rules)])
    assert gated.exit_code == 1, gated.output
    missing = CliRunner().invoke(app, ["power", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "nope.json" in missing.output
