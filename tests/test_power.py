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
    weak = [paired_test([(a, correlated_candidate(rng, a, keep, p - mde / 2 / (1 - keep)))], n_resamples=1000,
                        seed=s).p_less < 0.05 for s, a in enumerate((rng.random(n) < p).astype(float) for _ in range(80))]
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
