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

Clusters: when the samples share an independent unit (the five captions of an image, the questions about one
image, a video's captions, a clip's), the paired test the gate runs flips and draws whole clusters
(`paired.paired_test(clusters=...)`), so the MDE must use the same unit: sigma^2 / n is replaced by the
cluster-robust (sandwich) variance of the sum of stratum means, C / (C - 1) x sum_c u_c^2 with
u_c = sum_(i in c) (x_i - mean of i's stratum) / n_(i's stratum) over the C clusters (the Liang-Zeger estimator
with the usual small-sample factor; it equals var / n when every sample is its own cluster). Positively
correlated samples within a cluster make it larger than the per-row variance (by the design effect
1 + (m - 1) ICC for m samples per cluster). The floor then counts clusters: p >= 1 / 2^C.

A floor comes first: the sign-flip test on n samples cannot give p < 1 / 2^m with m differing samples
(`paired.smallest_p_value`); when even all n samples differing cannot reach alpha, no effect is detectable.
tests/test_power.py checks that at the MDE the permutation test rejects with about the asked power, and
tests/test_power_clusters.py that the clustered SE matches a brute-force simulation where the per-row one is
too small.
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


def clustered_se(strata: list[np.ndarray], clusters: list[np.ndarray]) -> tuple[float, int]:
    """(standard error, number of clusters) of the sum of stratum means when samples of one cluster are
    correlated: the cluster-robust variance C / (C - 1) x sum_c u_c^2 (module docstring). Written with numpy:
    statsmodels' cluster-robust covariance needs a regression model per call for what is one bincount here."""
    labels = np.concatenate([np.asarray(c, dtype=object) for c in clusters])
    centred = np.concatenate([(v - v.mean()) / len(v) for v in strata])
    if labels.shape != centred.shape:
        raise ValueError("clusters need one label per sample of every stratum")
    index: dict = {}
    codes = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    u = np.bincount(codes, weights=centred)
    n_clusters = len(u)
    if n_clusters < 2:
        return math.nan, n_clusters
    return math.sqrt(n_clusters / (n_clusters - 1) * float(np.sum(u**2))), n_clusters


def minimum_detectable_effect(strata: list[np.ndarray], statistic: Statistic = "mean", alpha: float = 0.05,
                              power: float = 0.8, correlation: float = 0.5,
                              clusters: list[np.ndarray] | None = None,
                              unit: str = "clusters") -> dict[str, float | int | str | None]:
    """The MDE (in the metric's units) of a one-sided paired test at `alpha` with `power`, given the baseline's
    per-sample values per stratum (the metric being the sum of the strata means, or one stratum's median).

    `clusters`: per stratum, each sample's cluster label (as `paired_test` takes them): a mean's MDE then uses
    the clustered variance and the cluster count's floor, like the clustered paired test; `unit` names the
    clusters in the output ("images", "videos"). The output's `unit` is "rows" otherwise."""
    if not 0 < alpha < 1 or not 0 < power < 1 or not -1 <= correlation < 1:
        raise ValueError(f"need 0 < alpha < 1, 0 < power < 1, -1 <= correlation < 1 "
                         f"(got {alpha}, {power}, {correlation})")
    keep = [len(v) > 0 for v in strata]
    strata = [np.asarray(v, dtype=np.float64) for v in strata if len(v)]
    by_cluster = clusters is not None and statistic == "mean" and bool(strata)
    if by_cluster:
        clusters = [c for c, kept in zip(clusters, keep, strict=True) if kept]
    n = sum(len(v) for v in strata)
    out: dict[str, float | int | str | None] = {"n": n, "alpha": alpha, "power": power, "correlation": correlation,
                                                "unit": unit if by_cluster else "rows", "n_units": n,
                                                "min_p_possible": 1.0, "mde": None, "se_difference": None}
    if not strata:
        return out
    se_one: float | None = None
    if by_cluster:
        se_one, n_clusters = clustered_se(strata, clusters)
        out["n_units"] = n_clusters
        # the clustered test flips whole clusters: at best every cluster moved the same way
        floor = smallest_p_value([(np.zeros(n_clusters), np.ones(n_clusters))])
    else:
        floor = smallest_p_value([(v, v + 1.0) for v in strata], statistic)  # all samples differ
    out["min_p_possible"] = floor
    if floor >= alpha:
        return out
    if se_one is None and statistic == "median":
        se_one = _median_se(strata[0])
    elif se_one is None:
        se_one = math.sqrt(sum(float(np.var(v, ddof=1)) / len(v) for v in strata if len(v) > 1))
    if not math.isfinite(se_one):
        return out
    se = math.sqrt(2.0 * (1.0 - correlation)) * se_one
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    out.update(mde=z * se, se_difference=se)
    return out
