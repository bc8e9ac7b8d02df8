"""The smallest p-value the paired test can give (`smallest_p_value`), and what compare says with it.

References: scipy's exact binomial test (the exact McNemar test, which the sign-flip test of 0/1 outcomes is)
and scipy's exact permutation test, each run on the most extreme arrangement of the data (every differing
sample moved the same way), whose p is by definition the smallest any outcome can give; and the hand count
1 / 2^m (only one of the 2^m sign patterns of m non-zero differences is that extreme).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from test_compare import cli, retrieval_report

from mmeval.metrics.stats.paired import paired_test, smallest_p_value


def extreme(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same pairs arranged so that B holds the smaller value of every pair: the most extreme outcome."""
    return np.maximum(a, b), np.minimum(a, b)


def test_nine_discordant_pairs_all_one_way():
    a, b = np.ones(9), np.zeros(9)  # 9 images: hit in A, miss in B
    assert smallest_p_value([(a, b)]) == 1 / 2**9 == stats.binomtest(0, 9, 0.5, alternative="less").pvalue
    assert smallest_p_value([(a, b)], two_sided=True) == 1 / 2**8 == stats.binomtest(0, 9, 0.5).pvalue
    result = paired_test([(a, b)], n_resamples=20_000, seed=3)
    assert (result.n, result.n_differing, result.min_p_one_sided) == (9, 9, 1 / 512)
    # these data are the extreme outcome, so the test's own Monte-Carlo p estimates the floor
    assert result.p_less == pytest.approx(1 / 512, abs=4 * np.sqrt(1 / 512 / 20_000) + 1 / 20_001)


def test_the_issues_case_nine_images_four_changed_cannot_reach_alpha_001():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0.0])  # i2t_R@5 = 7/9 = 0.78
    b = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0.0])  # 3/9 = 0.33: 4 images lost their hit
    result = paired_test([(a, b)], n_resamples=10_000, seed=0)
    assert result.n_differing == 4
    assert result.min_p_one_sided == 1 / 16 == stats.binomtest(0, 4, 0.5, alternative="less").pvalue
    assert result.cannot_reach(0.01) and result.cannot_reach(0.0625) and not result.cannot_reach(0.07)
    assert result.p_less >= 0.05  # what the gate saw: no outcome on 4 differing samples goes below 1/16


@pytest.mark.parametrize("two_sided", [False, True])
def test_mean_floor_is_scipys_exact_p_of_the_extreme_arrangement(two_sided):
    rng = np.random.default_rng(5)
    a = rng.normal(size=13)
    b = a + rng.normal(0.3, 1.0, size=13)
    b[[2, 7, 11]] = a[[2, 7, 11]]  # three samples the same in both runs: m = 10
    hi, lo = extreme(a, b)
    exact = stats.permutation_test((hi, lo), lambda x, y, axis: y.mean(axis=axis) - x.mean(axis=axis),
                                   permutation_type="samples", n_resamples=np.inf, vectorized=True,
                                   alternative="two-sided" if two_sided else "less")
    assert exact.null_distribution.size == 2**13
    assert smallest_p_value([(a, b)], two_sided=two_sided) == pytest.approx(exact.pvalue, rel=1e-12)
    assert smallest_p_value([(a, b)], two_sided=two_sided) == pytest.approx((2 if two_sided else 1) / 2**10)


def test_stratified_mean_counts_every_strata_differences():
    a1, b1 = np.array([1, 0, 1, 1.0]), np.array([0, 0, 1, 0.0])  # 2 differ
    a2, b2 = np.array([0, 1, 1.0]), np.array([1, 1, 0.0])  # 2 differ
    assert paired_test([(a1, b1), (a2, b2)], n_resamples=500).n_differing == 4
    assert smallest_p_value([(a1, b1), (a2, b2)]) == 1 / 16


def test_median_floor_matches_scipy_and_ties_lift_it_above_the_mean_floor():
    a = np.array([3, 5, 2, 8, 1, 4, 4, 9, 2, 6, 7.0])  # ranks: medians move only when the middle moves
    b = np.array([3, 5, 1, 8, 1, 3, 4, 12, 2, 5, 9.0])
    hi, lo = extreme(a, b)
    exact = stats.permutation_test((hi, lo), lambda x, y, axis: np.median(y, axis=axis) - np.median(x, axis=axis),
                                   permutation_type="samples", n_resamples=np.inf, vectorized=True,
                                   alternative="less").pvalue
    m = int(np.count_nonzero(a != b))
    assert exact > 4 / 2**m  # many sign patterns share the extreme median: far above 1 / 2^m
    floor = smallest_p_value([(a, b)], "median", n_resamples=40_000, seed=1)
    assert floor == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 40_000) + 1e-4)
    result = paired_test([(a, b)], "median", n_resamples=40_000, seed=1)
    assert result.min_p_one_sided == floor and result.n_differing == m  # the same draws: the same count


def test_floor_never_below_the_monte_carlo_resolution_and_one_when_nothing_differs():
    a, b = np.ones(40), np.zeros(40)
    assert smallest_p_value([(a, b)], n_resamples=999) == pytest.approx(1 / 1000)
    same = paired_test([(a, a)], n_resamples=999)
    assert (same.n_differing, same.min_p_one_sided, same.min_p_two_sided, same.p_value) == (0, 1.0, 1.0, 1.0)


# --- compare's notes ----------------------------------------------------------------------------------------


def test_compare_says_when_the_test_cannot_reach_alpha_and_why_the_interval_disagrees(tmp_path):
    i2t_base = np.array([1, 1, 1, 1, 1, 1, 1, 9, 9])  # i2t_R@5 7/9; the candidate loses 4 of those hits
    i2t_cand = np.array([1, 1, 1, 9, 9, 9, 9, 9, 9])
    t2i = np.tile(np.arange(1, 10), 5)  # 45 captions, the same ranks in both runs
    base = retrieval_report(tmp_path, "base", t2i, i2t_base)
    cand = retrieval_report(tmp_path, "cand", t2i, i2t_cand)
    done = cli("compare", base, cand, "-f", "json", "--resamples", "4000")
    assert done.exit_code == 0, done.output
    rows = {r["metric"]: r for r in json.loads(done.stdout)["rows"]}
    r5 = rows["i2t_R@5"]
    paired, note = r5["paired"][1], r5["notes"][1]
    assert paired["min_p_two_sided"] == stats.binomtest(0, 4, 0.5).pvalue == 0.125
    assert "cannot reach alpha 0.05 with n = 9 (4 differing samples: the smallest possible two-sided p is 0.12)" in note
    assert paired["ci95"][1] < 0 and paired["p_value"] >= 0.05  # the disagreement the note explains
    assert f"the bootstrap 95% interval excludes 0 but p = {paired['p_value']:.2g} >= 0.05" in note
    assert rows["t2i_R@1"]["notes"][1] is None  # identical t2i ranks: nothing to test, nothing to say
    table = cli("compare", base, cand, "--resamples", "4000")
    assert "cannot reach alpha 0.05 with n = 9" in table.stdout and "excludes 0 but p" in table.stdout


def test_compare_has_no_power_note_when_enough_samples_differ(tmp_path):
    rng = np.random.default_rng(0)
    i2t_base, i2t_cand = rng.integers(1, 12, size=300), rng.integers(1, 12, size=300)
    t2i = np.tile(np.arange(1, 10), 5)
    base = retrieval_report(tmp_path, "base", t2i, i2t_base)
    cand = retrieval_report(tmp_path, "cand", t2i, i2t_cand)
    rows = {r["metric"]: r for r in json.loads(cli("compare", base, cand, "-f", "json").stdout)["rows"]}
    assert rows["i2t_R@5"]["paired"][1]["n_differing"] > 100
    assert "cannot reach" not in (rows["i2t_R@5"]["notes"][1] or "")
