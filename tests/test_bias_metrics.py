"""Bias and fairness metrics against the worked examples of the issue (4 decimals), hand-computed cases and
brute-force loops, plus the edge cases: missing group labels, absent groups, k beyond the gallery, empty input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmeval.metrics import bias as B

TOL = 1e-4


# ------------------------------------------------------------------------------------------ subgroups


def test_subgroups_recompute_corpus_metrics_and_count_missing() -> None:
    # a corpus-level metric: total hits / total trials, which is not the mean of per-sample ratios
    hits = np.array([1, 0, 3, 2, 0, 5])
    trials = np.array([1, 4, 3, 2, 1, 5])
    groups = ["a", "a", "b", None, float("nan"), "b"]

    def metric(idx: np.ndarray) -> dict[str, float]:
        return {"rate": hits[idx].sum() / trials[idx].sum(), "misses": float((trials - hits)[idx].sum())}

    out = B.subgroup_metrics(groups, metric, higher_is_better={"rate": True, "misses": False})
    rate = out["rate"]
    assert rate["per_group"] == {"a": pytest.approx(0.2), "b": pytest.approx(1.0)}  # 1/5, not mean(1, 0)
    assert rate["group_sizes"] == {"a": 2, "b": 2}
    assert rate["n_missing"] == 2
    assert rate["worst_group"] == "a" and rate["worst_value"] == pytest.approx(0.2)
    assert rate["gap"] == pytest.approx(0.8) and rate["min_max_ratio"] == pytest.approx(0.2)
    misses = out["misses"]
    assert misses["per_group"] == {"a": 4.0, "b": 0.0}
    assert misses["worst_group"] == "a"  # lower is better: the worst is the largest
    assert misses["min_max_ratio"] == 0.0
    json.dumps(out)


def test_subgroups_higher_is_better_callable_nan_values_and_empty() -> None:
    out = B.subgroup_metrics([2, 10, 10, 2.0], lambda idx: {"err": float(len(idx)) if idx[0] else float("nan")},
                             higher_is_better=lambda name: False)
    err = out["err"]
    assert list(err["per_group"]) == ["2", "10"]  # numeric order, 2.0 is the group "2"
    assert math.isnan(err["per_group"]["2"]) and err["worst_group"] == "10" and err["gap"] == 0.0
    assert B.subgroup_metrics([], lambda idx: {"x": 1.0}) == {}
    assert B.subgroup_metrics([None, None], lambda idx: {"x": 1.0}) == {}
    summary = B.summarise_groups({"a": -1.0, "b": 2.0})
    assert summary["worst_group"] == "a" and math.isnan(summary["min_max_ratio"])  # ratio needs values >= 0
    assert B.summarise_groups({})["worst_group"] is None


# ------------------------------------------------------------------------------- caption gender bias


def test_caption_gender_classification() -> None:
    assert B.caption_gender("A man riding a wave.") == "man"
    assert B.caption_gender("A WOMAN holding her umbrella") == "woman"
    assert B.caption_gender("A man and a woman at a table") == "other"
    assert B.caption_gender("A person on a skateboard") == "other"
    assert B.caption_gender("the man's dog") == "man"  # "man's" -> "man", "s"
    assert B.caption_gender("a manager at work") == "other"  # whole words only
    assert B.caption_gender("a person", man_words={"person"}) == "man"


def test_caption_gender_worked_example() -> None:
    caption = {"m": "a man riding a bike", "w": "a woman riding a bike", "o": "a person riding a bike"}
    men, women = "mmmmwo", "wwmo"
    out = B.caption_gender_bias(["man"] * 6 + ["woman"] * 4 + [None, "child"],
                                [caption[c] for c in men + women] + ["a man", "a woman"])
    assert out["man"]["n"] == 6 and out["woman"]["n"] == 4 and out["n_excluded"] == 2
    assert out["man"]["correct"] == pytest.approx(0.6667, abs=TOL)
    assert out["man"]["incorrect"] == pytest.approx(0.1667, abs=TOL)
    assert out["man"]["other"] == pytest.approx(0.1667, abs=TOL)
    assert (out["woman"]["correct"], out["woman"]["incorrect"], out["woman"]["other"]) == (0.5, 0.25, 0.25)
    assert out["error"] == pytest.approx(0.20, abs=TOL)
    assert out["ratio_predicted"] == pytest.approx(0.6, abs=TOL)  # 3 woman captions / 5 man captions
    assert out["ratio_ground_truth"] == pytest.approx(0.6667, abs=TOL)  # 4 women / 6 men
    assert out["outcome_divergence"] == pytest.approx(0.0207, abs=TOL)
    json.dumps(out)


def test_caption_gender_edge_cases() -> None:
    empty = B.caption_gender_bias([], [])
    assert empty["man"]["n"] == 0 and math.isnan(empty["man"]["correct"]) and math.isnan(empty["error"])
    assert math.isnan(empty["outcome_divergence"]) and math.isnan(empty["ratio_predicted"])
    only_men = B.caption_gender_bias(["man", "man"], ["a man", "a dog"])
    assert only_men["error"] == 0.0 and math.isnan(only_men["outcome_divergence"])
    assert only_men["ratio_predicted"] == 0.0 and only_men["ratio_ground_truth"] == 0.0
    same = B.caption_gender_bias(["man", "woman"], ["a man", "a woman"])
    assert same["outcome_divergence"] == 0.0
    with pytest.raises(ValueError):
        B.caption_gender_bias(["man"], [])


def test_js_divergence_is_bounded_and_handles_zeros() -> None:
    assert B.js_divergence(np.array([1.0, 0, 0]), np.array([0, 1.0, 0])) == pytest.approx(1.0)
    assert B.kl_divergence(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == math.inf
    assert B.kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


# -------------------------------------------------------------------------------- bias amplification


def test_bias_amplification_worked_example() -> None:
    train = np.array([[30, 10], [10, 30]])  # objects A, B x groups (m, f)
    pred = np.array([[40, 10], [5, 15]])
    # A favours m in training (.75): .80 - .75 = .05; B favours f (.75): .75 - .75 = 0; mean = .025
    out = B.bias_amplification(train, pred)
    assert out["bias_amplification"] == pytest.approx(0.025, abs=TOL)
    assert out["n_objects"] == 2 and out["n_objects_skipped"] == 0


def test_bias_amplification_skips_objects_without_counts_and_empty() -> None:
    train = np.array([[30, 10], [0, 0], [5, 5], [1, 3]])
    pred = np.array([[40, 10], [1, 1], [9, 1], [0, 0]])
    out = B.bias_amplification(train, pred)
    # object 3 (50/50 in training) favours no group and counts as 0 in the mean over objects 0 and 2
    assert out["bias_amplification"] == pytest.approx(0.05 / 2) and out["n_objects_skipped"] == 2
    assert math.isnan(B.bias_amplification(np.zeros((0, 2)), np.zeros((0, 2)))["bias_amplification"])
    with pytest.raises(ValueError):
        B.bias_amplification(np.zeros((2, 2)), np.zeros((3, 2)))


# Hand-computed: columns A = (man, woman), T = (cook, ski). P(man) = P(woman) = P(cook) = .5, P(ski) = .25.
# Joint: man&cook .25 (= .5 x .5, not >: y 0), man&ski .25 > .125 (y 1), woman&cook .25 (y 0), woman&ski 0 (y 0).
A = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
T = np.array([[1, 0], [0, 0], [0, 1], [1, 0]])


def test_directional_bias_amplification_by_hand() -> None:
    # A->T with T^: women cook, men ski. delta: man-cook 0 - .5 (y 0: +.5), man-ski 1 - .5 (y 1: +.5),
    # woman-cook 1 - .5 (y 0: -.5), woman-ski 0 - 0 (0). Sum .5 / 4 = .125
    t_hat = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    assert B.directional_bias_amplification(A, T, t_hat, "A->T") == pytest.approx(0.125)
    # T->A with everyone predicted a woman. cook (samples 1, 4): man 0 - .5 (y 0: +.5), woman 1 - .5 (y 0: -.5);
    # ski (sample 3): man 0 - 1 (y 1: -1), woman 1 - 0 (y 0: -1). Sum -2 / 4 = -.5
    a_hat = np.array([[0, 1]] * 4)
    assert B.directional_bias_amplification(A, T, a_hat, "T->A") == pytest.approx(-0.5)
    # perfect predictions amplify nothing
    assert B.directional_bias_amplification(A, T, T, "A->T") == 0.0
    assert B.directional_bias_amplification(A, T, A, "T->A") == 0.0


def _directional_loop(a: np.ndarray, t: np.ndarray, hat: np.ndarray, direction: str) -> float:
    n = len(a)
    terms = []
    for i in range(a.shape[1]):
        for j in range(t.shape[1]):
            p_a, p_t = a[:, i].sum() / n, t[:, j].sum() / n
            y = (a[:, i] & t[:, j]).sum() / n > p_a * p_t
            if direction == "A->T":
                cond = a[:, i] == 1
                delta = hat[cond, j].mean() - t[cond, j].mean()
            else:
                cond = t[:, j] == 1
                delta = hat[cond, i].mean() - a[cond, i].mean()
            terms.append(delta if y else -delta)
    return float(np.mean(terms))


@pytest.mark.parametrize("seed", [0, 1])
def test_directional_bias_amplification_matches_a_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, (60, 3))
    t = (rng.random((60, 4)) < 0.3 + 0.4 * a[:, :1]).astype(int)
    t_hat, a_hat = rng.integers(0, 2, t.shape), rng.integers(0, 2, a.shape)
    for direction, hat in (("A->T", t_hat), ("T->A", a_hat)):
        expected = _directional_loop(a, t, hat, direction)
        assert B.directional_bias_amplification(a, t, hat, direction) == pytest.approx(expected, abs=1e-12)


def test_directional_bias_amplification_edge_cases() -> None:
    assert math.isnan(B.directional_bias_amplification(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, 3))))
    # attribute 1 never occurs: its pairs have no conditional and are left out
    a = np.array([[1, 0], [1, 0]])
    t = np.array([[1], [0]])
    assert B.directional_bias_amplification(a, t, np.array([[1], [1]])) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        B.directional_bias_amplification(a, t, np.array([[1, 0], [1, 0]]), "A->T")
    with pytest.raises(ValueError):
        B.directional_bias_amplification(a, t, t, "both")


# ------------------------------------------------------------------------------- leakage in captions


def _leaky_captions(n: int = 60) -> tuple[list[str], list[str], list[str]]:
    """Model captions name a tie (men) or a purse (women), which are not masked; human captions mention objects
    independent of the attribute. Both use explicit gender words, which are masked."""
    rng = np.random.default_rng(123)
    objects = ["dog", "bike", "kite", "phone", "cake", "bench"]
    genders, model, human = [], [], []
    for i in range(n):
        gender = "man" if i % 2 else "woman"
        genders.append(gender)
        accessory = "tie" if gender == "man" else "purse"
        model.append(f"A {gender} with a {rng.choice(objects)} and a {accessory}.")
        human.append(f"A {gender} standing next to a {rng.choice(objects)} near a {rng.choice(objects)}.")
    return model, human, genders


def test_leakage_in_captions_detects_a_correlated_word() -> None:
    model, human, genders = _leaky_captions()
    assert B.mask_caption(model[0], B.WOMAN_WORDS | B.MAN_WORDS).startswith("a <mask> with a ")
    out = B.leakage_in_captions(model, human, genders, B.MAN_WORDS | B.WOMAN_WORDS, seeds=(0, 1, 2))
    assert out["lic_model"] > 0.6 and out["lic_human"] < 0.45
    assert out["lic"] == pytest.approx(out["lic_model"] - out["lic_human"]) and out["lic"] > 0.3
    assert out["n_per_group"] == 30 and out["n_test"] == 12 and out["n_seeds"] == 3
    assert out["lic_std"] >= 0 and "LogisticRegression" in out["classifier"]
    json.dumps(out)
    # without masking, the gender word itself gives human captions away too
    unmasked = B.leakage_in_captions(model, human, genders, [], seeds=(0,))
    assert unmasked["lic_human"] > 0.6


def test_leakage_in_captions_is_deterministic_and_balanced() -> None:
    model, human, genders = _leaky_captions()
    genders = genders[:50] + [None] * 10  # 25 / 25 labelled, 10 missing
    words = B.MAN_WORDS | B.WOMAN_WORDS
    first = B.leakage_in_captions(model, human, genders, words, seeds=(7,))
    assert first == B.leakage_in_captions(model, human, genders, words, seeds=(7,))
    assert first["n_missing"] == 10 and first["n_per_group"] == 25 and first["lic_std"] == 0.0
    skewed = ["man"] * 56 + ["woman"] * 4  # balanced to 4 per group: 8 images, 2 test
    small = B.leakage_in_captions(model, human, skewed, words, seeds=(0,))
    assert small["n_per_group"] == 4 and math.isfinite(small["lic"])


def test_leakage_in_captions_infeasible_is_nan() -> None:
    model, human, genders = _leaky_captions(6)
    one_group = B.leakage_in_captions(model, human, ["man"] * 6, ["man"])
    assert math.isnan(one_group["lic"]) and math.isnan(one_group["lic_human_std"])
    empty = B.leakage_in_captions([], [], [], ["man"])
    assert math.isnan(empty["lic_model"]) and empty["n_per_group"] == 0
    tiny = B.leakage_in_captions(model[:2], human[:2], genders[:2], ["man"])  # 1 per group: no split possible
    assert math.isnan(tiny["lic"])


# ------------------------------------------------------------------------------------- retrieval bias

RANKED = [0, 0, 0, 1, 0, 1, 1, 0, 1, 1]


def test_skew_and_ndkl_worked_example() -> None:
    skew = B.skew_at_k(RANKED, 4)
    assert skew["0"] == pytest.approx(0.4055, abs=TOL)  # ln(.75 / .5)
    assert skew["1"] == pytest.approx(-0.6931, abs=TOL)  # ln(.25 / .5)
    assert B.max_skew_at_k(RANKED, 4) == pytest.approx(0.4055, abs=TOL)
    assert B.min_skew_at_k(RANKED, 4) == pytest.approx(-0.6931, abs=TOL)
    # NDKL@4 by hand, natural log: the top 1, 2, 3 are all group 0, KL((1, 0) || (.5, .5)) = ln 2 = .6931;
    # the top 4 is (.75, .25), KL = .75 ln 1.5 + .25 ln .5 = .1308. Weights 1/log2(i + 1) = 1, .6309, .5, .4307,
    # Z = 2.5616: (.6931 x 2.1309 + .1308 x .4307) / 2.5616 = (1.4770 + .0563) / 2.5616 = .5986.
    # (A log2 KL would give .8636: the definition uses the natural log.)
    assert B.ndkl_at_k(RANKED, 4) == pytest.approx(0.5986, abs=TOL)


def test_all_one_group_and_absent_group() -> None:
    ranked = [0, 0, 0, 0, 1, 1]
    assert B.max_skew_at_k(ranked, 4) == pytest.approx(0.6931, abs=TOL)
    assert B.ndkl_at_k(ranked, 4) == pytest.approx(0.6931, abs=TOL)
    # group 1 absent from the top 4: ln 0, as Geyik et al. define skew from counts (no smoothing constant)
    assert B.min_skew_at_k(ranked, 4) == -math.inf and B.skew_at_k(ranked, 6)["1"] == pytest.approx(math.log(2 / 3))
    # a group absent from the whole list counts only when named
    assert B.skew_at_k([0, 0], 2) == {"0": 0.0}
    assert B.skew_at_k([0, 0], 2, groups=[0, 1])["0"] == pytest.approx(math.log(2))


def test_k_beyond_the_list_unlabelled_items_and_empty() -> None:
    assert B.skew_at_k(RANKED, 50) == B.skew_at_k(RANKED, 10) == {"0": 0.0, "1": 0.0}
    assert B.ndkl_at_k(RANKED, 50) == pytest.approx(B.ndkl_at_k(RANKED, 10))
    # unlabelled items are dropped from the ranking before the cut
    assert B.skew_at_k([None, 0, float("nan"), 1], 2) == {"0": 0.0, "1": 0.0}
    assert math.isnan(B.ndkl_at_k([], 3)) and math.isnan(B.max_skew_at_k([], 3))
    assert all(math.isnan(v) for v in B.skew_at_k([None], 3, groups=["a", "b"]).values())
    with pytest.raises(ValueError):
        B.skew_at_k(RANKED, 0)
    with pytest.raises(ValueError):
        B.skew_at_k([0, 2], 2, groups=[0, 1])


def test_given_target_distribution() -> None:
    # target (.75, .25) equals the top-4 proportions of RANKED: no skew at 4
    skew = B.skew_at_k(RANKED, 4, groups=[0, 1], target={0: 0.75, 1: 0.25})
    assert skew["0"] == pytest.approx(0.0) and skew["1"] == pytest.approx(0.0)
    assert B.skew_at_k(RANKED, 4, groups=[0, 1], target=[0.75, 0.25]) == skew
    with pytest.raises(ValueError):
        B.skew_at_k(RANKED, 4, target=[0.5, 0.6])
    with pytest.raises(ValueError):
        B.skew_at_k(RANKED, 4, target=[1.0, 0.0])


def _ndkl_loop(ranked: list[int], k: int, q: np.ndarray) -> float:
    total = z = 0.0
    for i in range(1, min(k, len(ranked)) + 1):
        p = np.bincount(ranked[:i], minlength=len(q)) / i
        kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)
        total += kl / math.log2(i + 1)
        z += 1 / math.log2(i + 1)
    return total / z


def test_ndkl_matches_a_loop() -> None:
    rng = np.random.default_rng(5)
    q = np.array([0.2, 0.3, 0.5])
    for _ in range(5):
        ranked = rng.integers(0, 3, 30).tolist()
        for k in (1, 7, 30):
            assert B.ndkl_at_k(ranked, k, groups=[0, 1, 2], target=q) == pytest.approx(_ndkl_loop(ranked, k, q))


def test_bias_at_k() -> None:
    ranked = ["a", "a", None, "b", "a", "a", float("nan"), "b", "a", "a", "b", "b"]
    assert B.bias_at_k(ranked, 10, "a", "b") == pytest.approx(0.5)  # 6 a, 2 b, 2 unlabelled: 4 / 8
    assert B.bias_at_k(ranked, 10, "b", "a") == pytest.approx(-0.5)
    assert B.bias_at_k(ranked, 100, "a", "b") == pytest.approx(2 / 10)  # k capped: 6 a, 4 b
    assert math.isnan(B.bias_at_k([None, None], 2, "a", "b")) and math.isnan(B.bias_at_k([], 5, "a", "b"))


def test_retrieval_bias_averages_rankings_over_queries() -> None:
    labels = [0, 1, None, 0, 1, 1]
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 6))
    scores[0] = [5, 4, 3, 3, 1, 0]  # a tie between items 2 and 3: the lower index ranks first
    out = B.retrieval_bias(scores, labels, k=3)
    assert out["groups"] == ["0", "1"] and out["target"] == {"0": 0.5, "1": 0.5}
    assert out["n_queries"] == 4 and out["n_unlabelled_gallery"] == 1
    expected: dict[str, list[float]] = {"max": [], "ndkl": [], "bias": [], "skew1": []}
    for row in scores:
        order = sorted(range(6), key=lambda i: (-row[i], i))
        labelled = [labels[i] for i in order if labels[i] is not None]
        expected["max"].append(B.max_skew_at_k(labelled, 3, [0, 1]))
        expected["ndkl"].append(B.ndkl_at_k(labelled, 3, [0, 1]))
        expected["skew1"].append(B.skew_at_k(labelled, 3, [0, 1])["1"])
        expected["bias"].append(B.bias_at_k([labels[i] for i in order], 3, 0, 1))
    # query 0 by hand: items 2 and 3 tie, item 2 (unlabelled) first. Bias@3 ranks the whole gallery: top 3 =
    # items 0, 1, 2 = (0, 1, None) -> 0 (the other tie order would give (0, 1, 0) -> 1/3). Skew ranks the
    # labelled items 0, 1, 3, 4, 5: top 3 = (0, 1, 0), Skew@3 of group 0 = ln((2/3) / .5).
    first = B.retrieval_bias(scores[:1], labels, k=3)
    assert first["bias@k"] == 0.0 and first["skew"]["0"] == pytest.approx(math.log(4 / 3))
    assert out["max_skew"] == pytest.approx(np.mean(expected["max"]))
    assert out["ndkl"] == pytest.approx(np.mean(expected["ndkl"]))
    present = [v for v in expected["skew1"] if v != -math.inf]  # absent from a top 3: excluded and counted
    assert out["skew"]["1"] == pytest.approx(np.mean(present))
    assert out["absent_share"]["1"] == pytest.approx(1 - len(present) / 4)
    assert out["bias@k"] == pytest.approx(np.mean(expected["bias"]))
    assert out["bias@k_abs"] == pytest.approx(np.mean(np.abs(expected["bias"])))
    json.dumps(out)


def test_skew_with_an_absent_group_stays_finite_and_absence_is_reported() -> None:
    """Hand-computed: 3 queries over a gallery of groups a, a, a, b, b, b, k = 2, target uniform (.5, .5).
    q0 ranks a, a first (b absent: skew_a = ln(1 / .5)); q1 ranks a, b (both ln(.5 / .5) = 0); q2 ranks b, b."""
    labels = ["a", "a", "a", "b", "b", "b"]
    scores = np.array([[6, 5, 4, 3, 2, 1], [6, 1, 1, 5, 1, 1], [1, 2, 3, 6, 5, 4]], dtype=float)
    out = B.retrieval_bias(scores, labels, k=2)
    assert out["skew"] == pytest.approx({"a": (math.log(2) + 0) / 2, "b": (0 + math.log(2)) / 2})
    assert out["absent_share"] == pytest.approx({"a": 1 / 3, "b": 1 / 3}) and out["any_absent_share"] == pytest.approx(2 / 3)
    assert out["min_skew"] == pytest.approx((math.log(2) + 0 + math.log(2)) / 3)  # over the groups present
    assert out["max_skew"] == pytest.approx((math.log(2) + 0 + math.log(2)) / 3)
    assert all(math.isfinite(v) for v in out["skew"].values())
    json.dumps(out)


def test_retrieval_bias_edge_cases() -> None:
    empty = B.retrieval_bias(np.zeros((0, 3)), [0, 1, 1], k=2)
    assert empty["n_queries"] == 0 and math.isnan(empty["ndkl"]) and math.isnan(empty["bias@k"])
    unlabelled = B.retrieval_bias(np.ones((2, 2)), [None, None], k=2)
    assert unlabelled["groups"] == [] and math.isnan(unlabelled["max_skew"]) and "bias@k" not in unlabelled
    three = B.retrieval_bias(np.eye(3), ["x", "y", "z"], k=5)  # k beyond the gallery, no Bias@k for 3 groups
    assert "bias@k" not in three and three["max_skew"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        B.retrieval_bias(np.zeros((2, 4)), [0, 1, 1], k=2)


# ---------------------------------------------------------------------------- classification fairness


def test_classification_fairness_worked_example() -> None:
    y = [1, 1, 0, 0, 1, 1, 0, 0]
    y_hat = [1, 0, 1, 0, 1, 1, 1, 0]
    groups = ["g1"] * 4 + ["g2"] * 4
    out = B.classification_fairness(y, y_hat, groups, classes=[1], harmful_classes=[1])
    assert out["accuracy"]["per_group"] == {"g1": 0.5, "g2": 0.75}
    assert out["accuracy"]["worst_group"] == "g1" and out["accuracy"]["worst_value"] == 0.5
    for block in (out["per_class"]["1"], out["harmful"]):
        assert block["selection_rate"] == {"g1": 0.5, "g2": 0.75}
        assert block["demographic_parity_difference"] == pytest.approx(0.25, abs=TOL)
        assert block["demographic_parity_ratio"] == pytest.approx(0.6667, abs=TOL)
        # TPR .5 vs 1 (gap .5), FPR .5 vs .5 (gap 0)
        assert block["equalized_odds_difference"] == pytest.approx(0.5, abs=TOL)
    assert out["harmful"]["harmful_rate"] == {"g1": 0.5, "g2": 0.75} and out["harmful"]["classes"] == ["1"]
    assert out["group_sizes"] == {"g1": 4, "g2": 4} and out["n_missing"] == 0
    json.dumps(out)


def test_classification_fairness_multiclass_missing_and_absent() -> None:
    y = ["cat", "dog", "cat", "ape", "dog", "cat"]
    y_hat = ["cat", "cat", "ape", "ape", "dog", "cat"]
    groups = [0, 0, 1, 1, None, 1]
    out = B.classification_fairness(y, y_hat, groups, harmful_classes=["ape"])
    assert out["n_missing"] == 1 and out["group_sizes"] == {"0": 2, "1": 3}
    assert sorted(out["per_class"]) == ["ape", "cat", "dog"]
    dog = out["per_class"]["dog"]  # group 1 has no dog: TPR undefined there, left out of the gap
    assert math.isnan(dog["tpr"]["1"]) and dog["tpr"]["0"] == 0.0
    assert dog["selection_rate"] == {"0": 0.0, "1": 0.0} and math.isnan(dog["demographic_parity_ratio"])
    ape = out["harmful"]
    assert ape["harmful_rate"] == {"0": 0.0, "1": pytest.approx(2 / 3)}
    assert ape["demographic_parity_ratio"] == 0.0
    # FPR: group 0 never predicts ape (0/2), group 1 predicts it for 1 of its 2 non-apes (.5); TPR only in group 1
    assert ape["equalized_odds_difference"] == pytest.approx(0.5)


def test_classification_fairness_empty() -> None:
    out = B.classification_fairness([], [], [])
    assert out["accuracy"]["per_group"] == {} and math.isnan(out["accuracy"]["worst_value"])
    assert out["per_class"] == {}
    block = B.binary_fairness(np.array([], dtype=bool), np.array([], dtype=bool), [])
    assert math.isnan(block["demographic_parity_difference"]) and math.isnan(block["equalized_odds_difference"])
    with pytest.raises(ValueError):
        B.classification_fairness([1], [1, 0], [0])
