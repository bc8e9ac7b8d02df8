"""Bias and fairness metrics as pure NumPy / scikit-learn functions.

Why hand-written: the classification parity metrics are fairlearn's, but fairlearn is not a dependency (and
would be one for four subtractions), and the captioning and ranking bias metrics (Hendricks et al., Zhao et
al., Wang & Russakovsky, Hirota et al., Geyik et al., Wang et al.) have no maintained packaged implementation.
Each is a few lines of arithmetic, written here from the definition in the cited paper and pinned by worked
examples in tests/test_bias_metrics.py.

Conventions, everywhere in this module:
- Results are floats or plain dicts of floats, ints, strings and lists, so a JSON report can hold them.
  Group labels become dict keys as strings (`label_key`: 1.0 -> "1", None / NaN -> missing).
- A value that is undefined (empty input, a group without samples, a zero denominator) is NaN, never an
  exception; each docstring says when. Aggregates over groups or queries skip NaN members.
- A missing group label (None or a float NaN) excludes the sample; the number excluded is reported as
  `n_missing`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

NAN = float("nan")

# A group absent from a query's top k: Geyik et al. (2019) define Skew@k from counts, ln(p_observed / p_target),
# which is ln 0 = -inf for a count of 0. mmeval keeps that (no smoothing constant: ln(1e-12) ~ -27.6 used to
# enter the mean and swamp it) and, when averaging over queries (`retrieval_bias`), excludes and reports: a
# group's mean skew is over the queries whose top k hold it, MaxSkew / MinSkew are over the groups present,
# and the share of queries where each group is absent is reported next to them (`absent_share`).


# ----------------------------------------------------------------------------------------------- groups


def label_key(label: Any) -> str | None:
    """The dict key of a group label: None for a missing label (None or float NaN), integral floats as ints
    (so a float array [0., 1., nan] gives the keys "0" and "1"), everything else `str(label)`."""
    if label is None:
        return None
    if isinstance(label, np.generic):
        label = label.item()
    if isinstance(label, float):
        if math.isnan(label):
            return None
        if label.is_integer():
            label = int(label)
    return str(label)


def _sort_key(key: str) -> tuple[int, float, str]:
    """Numeric keys in numeric order ("2" before "10"), then the others alphabetically."""
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def group_codes(labels: Iterable[Any]) -> tuple[list[str], np.ndarray, int]:
    """Group names (sorted, see `_sort_key`), each sample's index into them (-1 when missing), and the number
    of samples with a missing label."""
    keys = [label_key(label) for label in labels]
    names = sorted({k for k in keys if k is not None}, key=_sort_key)
    index = {name: i for i, name in enumerate(names)}
    codes = np.array([-1 if k is None else index[k] for k in keys], dtype=np.int64)
    return names, codes, int((codes < 0).sum())


def _nanmean(values: Iterable[float]) -> float:
    """Mean of the finite values; NaN (without a warning) when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else NAN


def summarise_groups(per_group: Mapping[str, float], higher_is_better: bool = True) -> dict[str, Any]:
    """Worst group and spread of a metric's per-group values, over the groups where it is not NaN.

    worst_group: the group with the lowest value (highest when lower is better); ties go to the first group
    in `per_group` order; None when no value is defined. gap: max - min. min_max_ratio: min / max, defined for
    non-negative values only (NaN when max <= 0 or min < 0).
    """
    defined = {g: v for g, v in per_group.items() if math.isfinite(v)}
    if not defined:
        return {"worst_group": None, "worst_value": NAN, "gap": NAN, "min_max_ratio": NAN}
    pick = min if higher_is_better else max
    worst = pick(defined, key=lambda g: defined[g])
    lo, hi = min(defined.values()), max(defined.values())
    ratio = lo / hi if hi > 0 and lo >= 0 else NAN
    return {"worst_group": worst, "worst_value": defined[worst], "gap": hi - lo, "min_max_ratio": ratio}


def subgroup_metrics(
    groups: Sequence[Any],
    metric: Callable[[np.ndarray], Mapping[str, float]],
    higher_is_better: bool | Mapping[str, bool] | Callable[[str], bool] = True,
) -> dict[str, dict[str, Any]]:
    """Recompute a metric on each group's samples and summarise the spread, per metric name.

    `groups` holds one label per sample (None / NaN = missing: excluded and counted). `metric(indices)`
    recomputes every metric on the samples at `indices` (a sorted int array) and returns {name: value}, so
    that corpus-level metrics (CIDEr, recall@k, mAP) are computed on each group from scratch, never averaged
    from per-sample values. `higher_is_better` is one bool for all metrics, a {name: bool} mapping, or a
    function of the name (e.g. `classification.higher_is_better`).

    Returns {name: {"per_group": {group: value}, "group_sizes": {group: n}, "n_missing": n, "worst_group",
    "worst_value", "gap", "min_max_ratio"}} (see `summarise_groups`). A metric that a group's call does not
    return is NaN for that group. No labelled sample at all: {} (the metric is never called).
    """
    names, codes, n_missing = group_codes(groups)
    sizes = {name: int((codes == i).sum()) for i, name in enumerate(names)}
    results = {name: dict(metric(np.flatnonzero(codes == i))) for i, name in enumerate(names)}
    metric_names = list(dict.fromkeys(m for result in results.values() for m in result))
    out: dict[str, dict[str, Any]] = {}
    for m in metric_names:
        per_group = {g: float(results[g].get(m, NAN)) for g in names}
        if isinstance(higher_is_better, bool):
            better = higher_is_better
        elif isinstance(higher_is_better, Mapping):
            better = higher_is_better[m]
        else:
            better = higher_is_better(m)
        out[m] = {"per_group": per_group, "group_sizes": sizes, "n_missing": n_missing,
                  **summarise_groups(per_group, better)}
    return out


# ------------------------------------------------------------------------------------------ divergences


def kl_divergence(p: np.ndarray, q: np.ndarray, base: float = math.e) -> float:
    """KL(p || q) = sum_i p_i log(p_i / q_i), with 0 log 0 = 0 (terms with p_i = 0 are dropped); +inf when
    some p_i > 0 has q_i = 0. Natural log unless `base` is given."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    support = p > 0
    if np.any(q[support] == 0):
        return math.inf
    return float(np.sum(p[support] * np.log(p[support] / q[support])) / math.log(base))


def js_divergence(p: np.ndarray, q: np.ndarray, base: float = 2.0) -> float:
    """Jensen-Shannon divergence (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2; log base 2 by default,
    so it lies in [0, 1]."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2
    return (kl_divergence(p, m, base) + kl_divergence(q, m, base)) / 2


# ------------------------------------------------------------------------------- caption gender bias

# Hendricks et al. 2018 ("Women also Snowboard: Overcoming Bias in Captioning Models", ECCV), their word lists
# in the paper code's order (reports list them so); the sets are for lookups.
MAN_WORD_LIST = ("boy", "brother", "dad", "husband", "man", "groom", "male", "guy", "men", "males", "boys", "guys",
                 "dads", "dude", "policeman", "policemen", "father", "son", "fireman", "actor", "gentleman",
                 "boyfriend", "mans", "his", "obama", "actors")  # fmt: skip
WOMAN_WORD_LIST = ("girl", "sister", "mom", "wife", "woman", "bride", "female", "lady", "women", "girls", "ladies",
                   "females", "moms", "actress", "nun", "girlfriend", "her", "she")  # fmt: skip
MAN_WORDS = frozenset(MAN_WORD_LIST)
WOMAN_WORDS = frozenset(WOMAN_WORD_LIST)
GENDERS = ("man", "woman")
_WORD = re.compile(r"[a-z]+")


def caption_words(caption: str) -> list[str]:
    """Lower-cased words: the maximal runs of letters a-z. Punctuation and digits split words, so "man's"
    gives "man" and "s", and accented letters are separators."""
    return _WORD.findall(caption.lower())


def caption_gender(
    caption: str, man_words: Iterable[str] = MAN_WORDS, woman_words: Iterable[str] = WOMAN_WORDS
) -> str:
    """A caption's gender (Hendricks et al. 2018): "man" if it has a man word and no woman word, "woman" the
    other way round, else "other" (neither, or both)."""
    words = set(caption_words(caption))
    has_man, has_woman = bool(words & set(man_words)), bool(words & set(woman_words))
    if has_man and not has_woman:
        return "man"
    if has_woman and not has_man:
        return "woman"
    return "other"


def groups_from_references(references: Sequence[Sequence[str]], words: Mapping[str, Iterable[str]]) -> list[str | None]:
    """Each image's group from its human reference captions, as Hendricks et al. (2018) labelled COCO: the
    group whose words (`words`: exactly two groups) appear in at least one reference while the other group's
    words appear in none; None (unlabelled) when neither or both are named."""
    (group_a, words_a), (group_b, words_b) = ((g, frozenset(w)) for g, w in words.items())
    groups: list[str | None] = []
    for refs in references:
        named = set().union(*(caption_words(r) for r in refs)) if refs else set()
        a, b = bool(named & words_a), bool(named & words_b)
        groups.append(group_a if a and not b else group_b if b and not a else None)
    return groups


def caption_gender_bias(
    true_genders: Sequence[Any],
    captions: Sequence[str],
    man_words: Iterable[str] = MAN_WORDS,
    woman_words: Iterable[str] = WOMAN_WORDS,
) -> dict[str, Any]:
    """Gender bias of captions (Hendricks et al. 2018, "Women also Snowboard", ECCV).

    Each caption's predicted gender comes from `caption_gender`; each image's true gender is "man" or
    "woman" (anything else, None included, is excluded and counted in `n_excluded`).
    - per true gender g: the rates of captions predicted g ("correct"), the other gender ("incorrect") and
      neither ("other"), and the count n; NaN rates when n = 0.
    - error = (#man predicted woman + #woman predicted man) / (n_man + n_woman): "other" is not an error.
    - ratio_predicted = #captions predicted woman / #captions predicted man, over all captions counted;
      ratio_ground_truth = n_woman / n_man. The bias shows as the gap between the two; NaN on a 0 denominator.
    - outcome_divergence = Jensen-Shannon divergence (log base 2, 0 log 0 = 0) between the (correct,
      incorrect, other) distributions of men's and women's images: 0 when both are treated alike.
    """
    if len(true_genders) != len(captions):
        raise ValueError(f"{len(true_genders)} genders for {len(captions)} captions")
    man_words, woman_words = frozenset(man_words), frozenset(woman_words)
    counts = {g: {"man": 0, "woman": 0, "other": 0} for g in GENDERS}
    n_excluded = 0
    for truth, caption in zip(true_genders, captions):
        if truth not in GENDERS:
            n_excluded += 1
            continue
        counts[truth][caption_gender(caption, man_words, woman_words)] += 1

    out: dict[str, Any] = {}
    outcomes: dict[str, np.ndarray] = {}
    for g, other_gender in zip(GENDERS, reversed(GENDERS)):
        n = sum(counts[g].values())
        outcome = np.array([counts[g][g], counts[g][other_gender], counts[g]["other"]], dtype=np.float64)
        rates = outcome / n if n else np.full(3, NAN)
        outcomes[g] = rates
        out[g] = {"n": n, "correct": float(rates[0]), "incorrect": float(rates[1]), "other": float(rates[2])}
    n_man, n_woman = out["man"]["n"], out["woman"]["n"]
    wrong = counts["man"]["woman"] + counts["woman"]["man"]
    predicted_man = counts["man"]["man"] + counts["woman"]["man"]
    predicted_woman = counts["man"]["woman"] + counts["woman"]["woman"]
    out["error"] = wrong / (n_man + n_woman) if n_man + n_woman else NAN
    out["ratio_predicted"] = predicted_woman / predicted_man if predicted_man else NAN
    out["ratio_ground_truth"] = n_woman / n_man if n_man else NAN
    out["outcome_divergence"] = js_divergence(outcomes["man"], outcomes["woman"]) if n_man and n_woman else NAN
    out["n_excluded"] = n_excluded
    return out


# --------------------------------------------------------------------------------- bias amplification


def bias_amplification(train_counts: np.ndarray, pred_counts: np.ndarray) -> dict[str, float]:
    """Mean bias amplification (Zhao et al. 2017, "Men Also Like Shopping", EMNLP), from co-occurrence counts
    shaped (n_objects, n_groups): training labels in `train_counts`, the model's predictions on the test set
    in `pred_counts`.

        b(o, g) = c(o, g) / sum_g' c(o, g')                       (bias of object o towards group g)
        BA = 1/|O| sum_o sum_{g : b_train(o, g) > 1/|G|} (b_pred(o, g) - b_train(o, g))

    i.e. how much further the predictions lean towards the group that the training data already favours.
    The sum runs over every group that training favours; with two groups that is exactly one per object
    (none on a 50/50 tie), so BA is the mean over those (object, group) pairs. Objects with no training
    co-occurrence or no prediction have no b and are skipped (`n_objects_skipped`); none left: NaN.
    """
    train = np.asarray(train_counts, dtype=np.float64)
    pred = np.asarray(pred_counts, dtype=np.float64)
    if train.shape != pred.shape or train.ndim != 2:
        raise ValueError(f"count matrices must share a 2-d shape, got {train.shape} and {pred.shape}")
    usable = (train.sum(axis=1) > 0) & (pred.sum(axis=1) > 0)
    train, pred = train[usable], pred[usable]
    n_objects = int(usable.sum())
    if n_objects == 0:
        return {"bias_amplification": NAN, "n_objects": 0, "n_objects_skipped": int((~usable).sum())}
    b_train = train / train.sum(axis=1, keepdims=True)
    b_pred = pred / pred.sum(axis=1, keepdims=True)
    favoured = b_train > 1 / train.shape[1]
    value = float(((b_pred - b_train) * favoured).sum() / n_objects)
    return {"bias_amplification": value, "n_objects": n_objects, "n_objects_skipped": int((~usable).sum())}


def directional_bias_amplification(
    attributes: np.ndarray, tasks: np.ndarray, predictions: np.ndarray, direction: str = "A->T"
) -> float:
    """Directional bias amplification (Wang & Russakovsky 2021, "Directional Bias Amplification", ICML).

    `attributes` (n, |A|) and `tasks` (n, |T|) are the ground-truth binary matrices of the test set;
    `predictions` are the model's binary predictions of the tasks (n, |T|) for direction "A->T", of the
    attributes (n, |A|) for "T->A". With probabilities estimated by frequencies over the n samples:

        y_at = 1[P(A_a = 1, T_t = 1) > P(A_a = 1) P(T_t = 1)]    (a and t positively correlated)
        A->T: delta_at = P(T^_t = 1 | A_a = 1) - P(T_t = 1 | A_a = 1)
        T->A: delta_at = P(A^_a = 1 | T_t = 1) - P(A_a = 1 | T_t = 1)
        BiasAmp = 1/(|A||T|) sum_{a,t} [y_at delta_at + (1 - y_at)(-delta_at)]

    Positive: the predictions strengthen the correlations of the data (and weaken anti-correlations).
    A pair whose conditioning event never occurs (no sample with A_a = 1 for A->T, T_t = 1 for T->A) has no
    delta and is left out of the mean; NaN when no pair is left (empty input included).
    """
    a = np.asarray(attributes, dtype=bool)
    t = np.asarray(tasks, dtype=bool)
    hat = np.asarray(predictions, dtype=bool)
    if direction not in ("A->T", "T->A"):
        raise ValueError(f"direction must be 'A->T' or 'T->A', got {direction!r}")
    if a.ndim != 2 or t.ndim != 2 or len(a) != len(t):
        raise ValueError(f"attributes {a.shape} and tasks {t.shape} must be (n, |A|) and (n, |T|)")
    expected = t.shape if direction == "A->T" else a.shape
    if hat.shape != expected:
        raise ValueError(f"predictions must have shape {expected} for {direction}, got {hat.shape}")
    n = len(a)
    if n == 0:
        return NAN
    af, tf = a.astype(np.float64), t.astype(np.float64)
    joint = af.T @ tf / n  # (|A|, |T|): P(A_a = 1, T_t = 1)
    y = joint > np.outer(af.mean(axis=0), tf.mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        if direction == "A->T":
            n_a = af.sum(axis=0)[:, None]  # condition on A_a = 1
            delta = (af.T @ hat.astype(np.float64) - af.T @ tf) / n_a
        else:
            n_t = tf.sum(axis=0)[None, :]  # condition on T_t = 1
            delta = (hat.astype(np.float64).T @ tf - af.T @ tf) / n_t
    terms = np.where(y, delta, -delta)
    return _nanmean(terms.ravel().tolist())


# ------------------------------------------------------------------------------- leakage in captions

LIC_CLASSIFIER = (
    "scikit-learn TfidfVectorizer (whitespace tokens of the masked caption, fitted on the training split) + "
    "LogisticRegression(C=1.0, lbfgs, max_iter=1000)"
)


def mask_caption(caption: str, words: Iterable[str], mask_token: str = "<mask>") -> str:
    """The caption's words (`caption_words`) joined by spaces, each word of `words` replaced by `mask_token`."""
    masked = set(words)
    return " ".join(mask_token if w in masked else w for w in caption_words(caption))


def _lic_score(train_text: list[str], train_y: np.ndarray, test_text: list[str], test_y: np.ndarray,
               seed: int) -> float:
    """Confidence-weighted accuracy of a TF-IDF + logistic-regression attribute classifier on the test split."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # imported here: ~1 s that only LIC needs
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(token_pattern=r"\S+", lowercase=False)
    classifier = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    classifier.fit(vectoriser.fit_transform(train_text), train_y)
    proba = classifier.predict_proba(vectoriser.transform(test_text))
    truth = np.searchsorted(classifier.classes_, test_y)
    right = proba.argmax(axis=1) == truth
    return float(np.mean(np.where(right, proba[np.arange(len(truth)), truth], 0.0)))


def leakage_in_captions(
    model_captions: Sequence[str],
    human_captions: Sequence[str],
    attributes: Sequence[Any],
    mask_words: Iterable[str],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    test_fraction: float = 0.2,
    mask_token: str = "<mask>",
) -> dict[str, Any]:
    """Leakage in captions, LIC (Hirota et al. 2022, "Quantifying Societal Bias Amplification in Image
    Captioning", CVPR): how well a classifier recovers a protected attribute from captions whose explicit
    attribute words are masked, for model captions compared with human captions of the same images.

    Sample i is one image: its attribute, one model caption and one human caption; a missing attribute
    (None / NaN) excludes the image (`n_missing`). Per seed: every attribute group is subsampled (without
    replacement) to the size of the smallest, the balanced images are split train / test (stratified,
    `test_fraction` held out), and two classifiers (`LIC_CLASSIFIER`; Hirota et al. use LSTM and BERT
    classifiers, this is the light-weight stand-in) are trained on the same split, one on the masked model
    captions, one on the masked human captions. Each is scored on its test captions by

        LIC_score = mean over test captions of [p(true attribute | caption) if the prediction is right else 0]

    and LIC = LIC_model - LIC_human: positive when the model's captions leak the attribute more than people's.
    Scores are on a 0-1 scale (the paper reports x100). Reported: the mean and the population std (ddof 0)
    over seeds of LIC, LIC_model and LIC_human. All NaN when fewer than two groups remain, or the balanced
    set is too small to put every group in both splits.
    """
    from sklearn.model_selection import train_test_split

    if not (len(model_captions) == len(human_captions) == len(attributes)):
        raise ValueError("model_captions, human_captions and attributes must have one entry per image")
    names, codes, n_missing = group_codes(attributes)
    mask_words = frozenset(mask_words)
    model_text = [mask_caption(c, mask_words, mask_token) for c in model_captions]
    human_text = [mask_caption(c, mask_words, mask_token) for c in human_captions]
    per_group = min((int((codes == g).sum()) for g in range(len(names))), default=0)
    n_balanced = per_group * len(names)
    n_test = math.ceil(test_fraction * n_balanced)
    out: dict[str, Any] = {
        "classifier": LIC_CLASSIFIER, "n_seeds": len(seeds), "n_per_group": per_group, "n_test": n_test,
        "n_missing": n_missing, "groups": names,
    }
    feasible = len(names) >= 2 and len(seeds) > 0 and n_test >= len(names) and n_balanced - n_test >= len(names)
    if not feasible:
        return {**out, **{f"{k}{s}": NAN for k in ("lic", "lic_model", "lic_human") for s in ("", "_std")}}

    scores = {"lic_model": [], "lic_human": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([rng.choice(np.flatnonzero(codes == g), per_group, replace=False)
                                 for g in range(len(names))])
        train, test = train_test_split(chosen, test_size=n_test, stratify=codes[chosen], random_state=seed)
        for key, text in (("lic_model", model_text), ("lic_human", human_text)):
            scores[key].append(_lic_score([text[i] for i in train], codes[train],
                                          [text[i] for i in test], codes[test], seed))
    lic = np.array(scores["lic_model"]) - np.array(scores["lic_human"])
    for key, values in (("lic", lic), ("lic_model", scores["lic_model"]), ("lic_human", scores["lic_human"])):
        out[key] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values))
    return out


# ------------------------------------------------------------------------------------- retrieval bias


def _ranked_codes(ranked_labels: Sequence[Any], groups: Sequence[Any] | None) -> tuple[list[str], np.ndarray]:
    """Group names and the group index of each labelled item, in rank order (unlabelled items dropped)."""
    keys = [k for k in (label_key(label) for label in ranked_labels) if k is not None]
    if groups is None:
        names = sorted(set(keys), key=_sort_key)
    else:
        names = [label_key(g) for g in groups]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f"groups must be distinct, non-missing labels, got {list(groups)}")
    index = {name: i for i, name in enumerate(names)}
    unknown = set(keys) - set(index)
    if unknown:
        raise ValueError(f"ranked labels {sorted(unknown)} are not among the groups {names}")
    return names, np.array([index[k] for k in keys], dtype=np.int64)


def _target(names: list[str], target: Mapping[Any, float] | Sequence[float] | None) -> np.ndarray:
    """The target distribution over `names`: uniform by default; else given per group (a mapping keyed by
    label, or a sequence in `names` order), every entry > 0 and summing to 1."""
    if not names:
        return np.zeros(0)
    if target is None:
        return np.full(len(names), 1 / len(names))
    if isinstance(target, Mapping):
        by_key = {label_key(g): float(p) for g, p in target.items()}
        if set(by_key) != set(names):
            raise ValueError(f"target groups {sorted(by_key)} differ from the groups {names}")
        q = np.array([by_key[n] for n in names])
    else:
        q = np.asarray(target, dtype=np.float64)
        if q.shape != (len(names),):
            raise ValueError(f"target has {q.size} entries for {len(names)} groups")
    if np.any(q <= 0) or abs(q.sum() - 1) > 1e-6:
        raise ValueError(f"target must be positive and sum to 1, got {q.tolist()}")
    return q


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def skew_at_k(
    ranked_labels: Sequence[Any],
    k: int,
    groups: Sequence[Any] | None = None,
    target: Mapping[Any, float] | Sequence[float] | None = None,
) -> dict[str, float]:
    """Skew@k of each group (Geyik et al. 2019, "Fairness-Aware Ranking in Search & Recommendation Systems",
    KDD): ln(observed proportion of the group in the top k / its target proportion).

    `ranked_labels` holds the group label of each item, best first; unlabelled items (None / NaN) are dropped
    from the ranking first. `groups` defaults to the labels present (pass it, so that a group absent from
    the list still counts); `target` defaults to uniform over `groups`. k larger than the list: the whole
    list. A group absent from the top k has skew -inf (ln 0, as defined; see the note at the top of the
    module for how `retrieval_bias` averages it). Empty list: NaN.
    """
    _check_k(k)
    names, codes = _ranked_codes(ranked_labels, groups)
    q = _target(names, target)
    top = codes[:k]
    if len(top) == 0:
        return {name: NAN for name in names}
    observed = np.bincount(top, minlength=len(names)) / len(top)
    return {name: float(np.log(p / q_g)) if p > 0 else -math.inf for name, p, q_g in zip(names, observed, q)}


def max_skew_at_k(ranked_labels: Sequence[Any], k: int, groups: Sequence[Any] | None = None,
                  target: Mapping[Any, float] | Sequence[float] | None = None) -> float:
    """MaxSkew@k (Geyik et al. 2019): the largest Skew@k over groups, the most over-represented group."""
    return max(skew_at_k(ranked_labels, k, groups, target).values(), default=NAN)


def min_skew_at_k(ranked_labels: Sequence[Any], k: int, groups: Sequence[Any] | None = None,
                  target: Mapping[Any, float] | Sequence[float] | None = None) -> float:
    """MinSkew@k (Geyik et al. 2019): the smallest Skew@k over groups, the most under-represented group
    (-inf when a group is absent from the top k)."""
    return min(skew_at_k(ranked_labels, k, groups, target).values(), default=NAN)


def ndkl_at_k(
    ranked_labels: Sequence[Any],
    k: int,
    groups: Sequence[Any] | None = None,
    target: Mapping[Any, float] | Sequence[float] | None = None,
) -> float:
    """Normalised discounted KL divergence, NDKL@k (Geyik et al. 2019):

        NDKL@k = 1/Z sum_{i=1..k} KL(D_i || D_target) / log2(i + 1),   Z = sum_{i=1..k} 1 / log2(i + 1)

    where D_i is the distribution of groups in the top i and KL uses the natural log with 0 log 0 = 0 (the
    target is strictly positive, so KL is finite). 0 when every prefix matches the target; >= 0 always.
    Labels, groups, target and k as in `skew_at_k`. Empty list: NaN.
    """
    _check_k(k)
    names, codes = _ranked_codes(ranked_labels, groups)
    q = _target(names, target)
    top = codes[:k]
    if len(top) == 0:
        return NAN
    counts = np.cumsum(np.eye(len(names))[top], axis=0)  # (k, n_groups): group counts of each prefix
    prefixes = counts / np.arange(1, len(top) + 1)[:, None]
    weights = 1 / np.log2(np.arange(2, len(top) + 2))
    with np.errstate(divide="ignore", invalid="ignore"):  # the 0 log 0 terms, replaced by 0
        divergences = np.where(prefixes > 0, prefixes * np.log(prefixes / q), 0.0).sum(axis=1)
    return float(np.sum(weights * divergences) / np.sum(weights))


def bias_at_k(ranked_labels: Sequence[Any], k: int, group_a: Any, group_b: Any) -> float:
    """Bias@K (Wang et al. 2021, "Are Gender-Neutral Queries Really Gender-Neutral? Mitigating Gender Bias in
    Image Search", EMNLP): (N_a - N_b) / (N_a + N_b) over the top K of the ranking, where N_g counts the
    items of group g; items of neither group (unlabelled included) take a place in the top K but are not
    counted. In [-1, 1], positive when group a dominates. No item of either group in the top K: NaN."""
    _check_k(k)
    a, b = label_key(group_a), label_key(group_b)
    top = [label_key(label) for label in list(ranked_labels)[:k]]
    n_a, n_b = top.count(a), top.count(b)
    return (n_a - n_b) / (n_a + n_b) if n_a + n_b else NAN


def retrieval_bias(
    scores: np.ndarray,
    gallery_labels: Sequence[Any],
    k: int,
    groups: Sequence[Any] | None = None,
    target: Mapping[Any, float] | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Ranking bias of a retrieval model, averaged over queries: Skew@k per group, MaxSkew@k, MinSkew@k and
    NDKL@k (Geyik et al. 2019), and with exactly two groups Bias@k (Wang et al. 2021, a = the first group).

    `scores` is (n_queries, n_gallery), higher = ranked first, ties broken towards the lower gallery index;
    `gallery_labels` gives each gallery item's protected-attribute group (None / NaN = unlabelled). Skew and
    NDKL rank only the labelled items (unlabelled ones are removed from the gallery); Bias@k, as defined,
    ranks the whole gallery and ignores unlabelled items inside the top k. `groups` defaults to the labels
    in the gallery; `target` to uniform. Each value is the mean over queries where it is defined
    ("bias@k_abs" is the mean of |Bias@k|, since signed values of opposite queries cancel). A group absent
    from a query's top k (skew -inf) is left out of that query's skew, MaxSkew and MinSkew, and counted in
    `absent_share` (per group: the share of queries, among those with a labelled top k, where it is absent)
    and `any_absent_share` (some group absent). No query or no labelled item: NaN values. Cost: one stable
    sort of the gallery per query.
    """
    _check_k(k)
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(gallery_labels):
        raise ValueError(f"scores {scores.shape} must be (n_queries, {len(gallery_labels)})")
    keys = [label_key(label) for label in gallery_labels]
    labelled = np.array([key is not None for key in keys], dtype=bool)
    names, _ = _ranked_codes(keys, groups)
    q = _target(names, target)
    per_query: dict[str, list[float]] = {"max_skew": [], "min_skew": [], "ndkl": [], "bias@k": [], "any_absent": []}
    skews: dict[str, list[float]] = {name: [] for name in names}
    absent: dict[str, list[float]] = {name: [] for name in names}
    for row in scores:
        order = np.argsort(-row, kind="stable")
        ranked = [keys[i] for i in order[labelled[order]][:k]]
        skew = skew_at_k(ranked, k, names, q)
        present = {name: value for name, value in skew.items() if value != -math.inf}  # NaN: nothing labelled
        for name, value in skew.items():
            skews[name].append(present.get(name, NAN))
            if ranked:
                absent[name].append(float(value == -math.inf))
        if ranked:
            per_query["any_absent"].append(float(len(present) < len(skew)))
        per_query["max_skew"].append(max(present.values(), default=NAN))
        per_query["min_skew"].append(min(present.values(), default=NAN))
        per_query["ndkl"].append(ndkl_at_k(ranked, k, names, q))
        if len(names) == 2:
            per_query["bias@k"].append(bias_at_k([keys[i] for i in order[:k]], k, names[0], names[1]))
    out: dict[str, Any] = {
        "k": k, "groups": names, "target": dict(zip(names, q.tolist())), "n_queries": int(scores.shape[0]),
        "n_unlabelled_gallery": int((~labelled).sum()),
        "skew": {name: _nanmean(values) for name, values in skews.items()},
        "max_skew": _nanmean(per_query["max_skew"]), "min_skew": _nanmean(per_query["min_skew"]),
        "ndkl": _nanmean(per_query["ndkl"]),
        "absent_share": {name: _nanmean(values) for name, values in absent.items()},
        "any_absent_share": _nanmean(per_query["any_absent"]),
    }
    if len(names) == 2:
        out["bias@k"] = _nanmean(per_query["bias@k"])
        out["bias@k_abs"] = _nanmean(abs(v) for v in per_query["bias@k"])
    return out


# --------------------------------------------------------------------------- classification fairness


def _rate(mask: np.ndarray, members: np.ndarray) -> float:
    """Fraction of `members` where `mask` holds; NaN without members."""
    return float(mask[members].mean()) if members.any() else NAN


def _spread(per_group: Mapping[str, float]) -> float:
    defined = [v for v in per_group.values() if math.isfinite(v)]
    return max(defined) - min(defined) if defined else NAN


def binary_fairness(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[Any]) -> dict[str, Any]:
    """fairlearn's parity metrics for a binary outcome (True = positive), defined as in fairlearn
    (Agarwal et al. 2018; Hardt et al. 2016 for equalized odds), per group of `groups` (missing excluded):

    - selection_rate = P(y_pred = 1 | group); demographic_parity_difference = max - min over groups,
      demographic_parity_ratio = min / max (NaN when max is 0).
    - tpr = P(y_pred = 1 | y_true = 1, group), fpr = P(y_pred = 1 | y_true = 0, group);
      equalized_odds_difference = max(max - min of tpr, max - min of fpr) over groups.

    A group's rate is NaN when it has no sample to condition on, and is then left out of the max and min;
    every aggregate is NaN when no group has it.
    """
    return _binary_fairness(y_true, y_pred, *group_codes(groups))


def _binary_fairness(y_true: np.ndarray, y_pred: np.ndarray, names: list[str], codes: np.ndarray,
                     n_missing: int) -> dict[str, Any]:
    """`binary_fairness` on groups already coded (`group_codes`), so a caller looping over classes codes once."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    if not (len(y_true) == len(y_pred) == len(codes)):
        raise ValueError(f"{len(y_true)} labels, {len(y_pred)} predictions and {len(codes)} group labels")
    members = {name: codes == i for i, name in enumerate(names)}
    selection = {g: _rate(y_pred, m) for g, m in members.items()}
    tpr = {g: _rate(y_pred, m & y_true) for g, m in members.items()}
    fpr = {g: _rate(y_pred, m & ~y_true) for g, m in members.items()}
    defined = [v for v in selection.values() if math.isfinite(v)]
    ratio = min(defined) / max(defined) if defined and max(defined) > 0 else NAN
    tpr_gap, fpr_gap = _spread(tpr), _spread(fpr)
    eo = NAN if math.isnan(tpr_gap) and math.isnan(fpr_gap) else float(np.nanmax([tpr_gap, fpr_gap]))
    return {
        "selection_rate": selection, "tpr": tpr, "fpr": fpr,
        "demographic_parity_difference": _spread(selection), "demographic_parity_ratio": ratio,
        "equalized_odds_difference": eo, "n_missing": n_missing,
    }


def classification_fairness(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    groups: Sequence[Any],
    classes: Sequence[Any] | None = None,
    harmful_classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Group fairness of a (multi-class) classifier: per-group accuracy and its worst group, and fairlearn's
    parity metrics (`binary_fairness`) one-vs-rest.

    - "accuracy": {"per_group", "worst_group", "worst_value", "gap", "min_max_ratio"} (`summarise_groups`).
    - "per_class": for each class c of `classes` (default: every class in y_true or y_pred), the binary
      metrics with positive = (label == c) and (prediction == c).
    - "harmful" (when `harmful_classes` is given): the binary metrics with positive = the label / prediction
      is in the harmful set; its "harmful_rate" per group is the rate of predictions into the set (the
      selection rate), and "classes" lists the set.
    Plus "group_sizes" and "n_missing" (samples without a group label, excluded).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    names, codes, n_missing = group_codes(groups)
    if not (len(y_true) == len(y_pred) == len(codes)):
        raise ValueError(f"{len(y_true)} labels, {len(y_pred)} predictions and {len(codes)} group labels")
    correct = y_true == y_pred
    accuracy = {name: _rate(correct, codes == i) for i, name in enumerate(names)}
    out: dict[str, Any] = {
        "accuracy": {"per_group": accuracy, **summarise_groups(accuracy, higher_is_better=True)},
        "group_sizes": {name: int((codes == i).sum()) for i, name in enumerate(names)},
        "n_missing": n_missing,
    }
    if classes is None:
        classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=lambda c: _sort_key(str(c)))
    out["per_class"] = {
        str(label_key(c)): _binary_fairness(y_true == c, y_pred == c, names, codes, n_missing) for c in classes
    }
    if harmful_classes is not None:
        harmful = list(harmful_classes)
        block = _binary_fairness(np.isin(y_true, harmful), np.isin(y_pred, harmful), names, codes, n_missing)
        out["harmful"] = {**block, "harmful_rate": block["selection_rate"], "classes": [str(c) for c in harmful]}
    return out
