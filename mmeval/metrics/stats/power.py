"""Minimum detectable effect (MDE) of a paired test, from one baseline run's per-sample values.

Question answered: on this benchmark, how large a worsening of a metric would a one-sided paired test at
level alpha catch with probability `power`? Normal approximation (the paired permutation test of
`paired.py` is asymptotically the paired z-test): MDE = (z_(1-alpha) + z_power) x SE(B - A). The standard
error of the difference needs the spread of the per-sample differences, which one run cannot show; it is
modelled from the baseline's own spread and an assumed correlation rho between the two runs' per-sample
values: Var(b_i - a_i) = 2 sigma^2 (1 - rho) (equal spreads). rho is the knob the user sets: two checkpoints
of one model agree on most samples (rho 0.6-0.9), unrelated models less (0.2-0.5). For a mean over strata
the variances add (sum_s 2 sigma_s^2 (1 - rho) / n_s); for a median, sigma / sqrt(n) is replaced by the
bootstrap standard error of the baseline's median.

A floor comes first: the sign-flip test on n samples cannot give p < 1 / 2^m with m differing samples
(`paired.smallest_p_value`); when even all n samples differing cannot reach alpha, no effect is detectable.
tests/test_power.py checks that at the MDE the permutation test rejects with about the asked power.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from mmeval.metrics.stats.paired import Statistic, smallest_p_value


def _median_se(values: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(n_resamples, len(values)))
    return float(np.std(np.median(values[draws], axis=1), ddof=1))


def minimum_detectable_effect(strata: list[np.ndarray], statistic: Statistic = "mean", alpha: float = 0.05,
                              power: float = 0.8, correlation: float = 0.5) -> dict[str, float | int | None]:
    """The MDE (in the metric's units) of a one-sided paired test at `alpha` with `power`, given the baseline's
    per-sample values per stratum (the metric being the sum of the strata means, or one stratum's median)."""
    if not 0 < alpha < 1 or not 0 < power < 1 or not -1 <= correlation < 1:
        raise ValueError(f"need 0 < alpha < 1, 0 < power < 1, -1 <= correlation < 1 "
                         f"(got {alpha}, {power}, {correlation})")
    strata = [np.asarray(v, dtype=np.float64) for v in strata if len(v)]
    n = sum(len(v) for v in strata)
    floor = smallest_p_value([(v, v + 1.0) for v in strata], statistic) if strata else 1.0  # all samples differ
    out: dict[str, float | int | None] = {"n": n, "alpha": alpha, "power": power, "correlation": correlation,
                                          "min_p_possible": floor, "mde": None, "se_difference": None}
    if not strata or floor >= alpha:
        return out
    if statistic == "median":
        se_one = _median_se(strata[0])
    else:
        se_one = math.sqrt(sum(float(np.var(v, ddof=1)) / len(v) for v in strata if len(v) > 1))
    se = math.sqrt(2.0 * (1.0 - correlation)) * se_one
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    out.update(mde=z * se, se_difference=se)
    return out
