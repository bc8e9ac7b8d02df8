"""Bootstrap confidence intervals: coverage on a metric with a known true value, each task's replicate against
the metric recomputed from scratch on the explicitly resampled data (pycocoevalcap, sklearn, numpy loops),
determinism, the config, and an end-to-end run where every headline metric has its ci95."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from mmeval.config.run import BootstrapConfig, validate_mapping
from mmeval.errors import ConfigError
from mmeval.metrics.stats import bootstrap_metrics as bm
from mmeval.metrics.caption.bleu import bleu_from_stats, bleu_stats
from mmeval.metrics.caption.java_scorers import MeteorScorer, meteor_jar
from mmeval.metrics.caption.scores import score_tokenized
from mmeval.metrics.caption.tokenize import find_java
from mmeval.metrics.classification import mean_average_precision, single_label_metrics
from mmeval.metrics.multiple_choice import score_choices
from mmeval.metrics.retrieval import RetrievalRanks, metrics_from_ranks
from mmeval.metrics.stats.bootstrap import (
    GroupSums,
    add_intervals,
    mean,
    percentile_interval,
    replicates,
    resample_counts,
    weighted_median,
)
from mmeval.metrics.vqa import score_vqa
from mmeval.tasks.retrieval import run as retrieval_benchmark

WORDS = ("a", "man", "woman", "dog", "cat", "two", "three", "is", "are", "riding", "sitting", "on", "the", "beach",
         "grass", "horse", "red", "blue", "playing", "with", "ball", "table", "near", "of", "small", "large", "white",
         "black")


def counts_of(indices: np.ndarray, n: int) -> np.ndarray:
    """The (1, n) count row of one explicit resample."""
    return np.bincount(indices, minlength=n)[None, :].astype(np.float64)


def drawn(count_row: np.ndarray) -> np.ndarray:
    """The item indices of a resample from its count row (each item as often as it was drawn)."""
    return np.repeat(np.arange(len(count_row)), count_row.astype(np.int64))


def explicit_resamples(n: int, seed: int = 7, rows: int = 4) -> list[np.ndarray]:
    """Item indices of a few resamples drawn by the module itself, plus one with an item many times."""
    counts = resample_counts(np.random.default_rng(seed), n, rows)
    return [drawn(row) for row in counts] + [np.r_[np.zeros(n // 2, dtype=np.int64), np.arange(n - n // 2)]]


# --- the method ------------------------------------------------------------------------------------------------


def test_resample_counts_are_multinomial_draws_of_the_data_size() -> None:
    counts = resample_counts(np.random.default_rng(0), 50, 4000)
    assert counts.shape == (4000, 50) and (counts.sum(axis=1) == 50).all()
    assert counts.mean() == pytest.approx(1.0, abs=0.01)
    assert counts.var() == pytest.approx(1 - 1 / 50, abs=0.03)  # multinomial(n, 1/n): variance 1 - 1/n per item
    assert (counts[:, 0] == 0).mean() == pytest.approx((1 - 1 / 50) ** 50, abs=0.02)  # P(item not drawn) ~ 1/e


def test_95_percent_interval_covers_the_true_value_in_93_to_97_percent_of_400_repetitions() -> None:
    """A corpus-level ratio of sums, as corpus BLEU's precisions: per image g ~ 1 + Poisson(9) candidate
    n-grams, of which m ~ Binomial(g, 0.4) match; the metric sum(m) / sum(g) has true value 0.4."""
    truth, n_images, covered = 0.4, 500, 0
    for repetition in range(400):
        rng = np.random.default_rng(1000 + repetition)
        guess = (1 + rng.poisson(9, n_images)).astype(np.float64)
        matches = rng.binomial(guess.astype(np.int64), truth).astype(np.float64)

        def statistic(counts: np.ndarray, matches=matches, guess=guess) -> dict[str, np.ndarray]:
            return {"precision": (counts @ matches) / (counts @ guess)}

        lo, hi = percentile_interval(replicates((n_images,), statistic, 1000, seed=repetition)["precision"])
        covered += lo <= truth <= hi
    assert 0.93 <= covered / 400 <= 0.97, covered / 400


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    values = np.random.default_rng(3).random(300)

    def intervals(seed: int, n: int = 1000) -> dict:
        metrics = {"m": {"value": float(values.mean()), "higher_is_better": True}}
        block = add_intervals(metrics, (300,), lambda c: {"m": mean(c, values)}, BootstrapConfig(n=n, seed=seed), "x")
        assert block["n"] == n and block["seed"] == seed and block["method"] == "percentile"
        return metrics["m"]["ci95"]

    assert intervals(0) == intervals(0)
    assert intervals(0) != intervals(1)
    first = replicates((300, 20), lambda a, b: {"a": mean(a, values), "b": b[:, 0]}, 500, seed=5)
    again = replicates((300, 20), lambda a, b: {"a": mean(a, values), "b": b[:, 0]}, 500, seed=5)
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_n_zero_gives_no_interval_and_undefined_replicates_are_left_out() -> None:
    metrics = {"m": {"value": 0.5, "higher_is_better": True}}
    assert add_intervals(metrics, (10,), lambda c: {"m": c[:, 0]}, BootstrapConfig(n=0), "x") is None
    assert metrics == {"m": {"value": 0.5, "higher_is_better": True}}
    assert percentile_interval(np.array([np.nan, np.nan])) is None
    assert percentile_interval(np.array([np.nan, *range(101)])) == pytest.approx([2.5, 97.5])
    undefined = {"m": {"value": None, "higher_is_better": True}}  # e.g. no query: no interval either
    add_intervals(undefined, (10,), lambda c: {"m": c[:, 0]}, BootstrapConfig(n=100), "x")
    assert "ci95" not in undefined["m"]


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_weighted_median_and_group_sums_match_numpy_on_the_resampled_data(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(1, 5, n).astype(np.float64)  # many ties, as ranks have
    groups = rng.integers(0, 4, n)
    counts = resample_counts(rng, n, 50)
    medians = weighted_median(counts, values)
    sums = GroupSums(groups, 5)
    per_group = sums.sums(sums.sorted_counts(counts), values)
    for row, count_row in enumerate(counts):
        items = drawn(count_row)
        assert medians[row] == np.median(values[items])
        assert per_group[row].tolist() == [values[items][groups[items] == g].sum() for g in range(5)]


# --- each task's replicate equals the metric recomputed on the explicitly resampled data ---------------------


def random_corpus(n_images: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    refs = [[" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) for _ in range(5)] for _ in range(n_images)]
    cands = [" ".join(rng.sample(r[0].split(), k=min(len(r[0].split()), rng.randint(4, 10)))) for r in refs]
    cands[3] = refs[3][1]  # an exact match
    cands[5] = ""  # an empty caption
    return cands, refs


def as_coco(indices: np.ndarray, cands: list[str], refs: list[list[str]]) -> tuple[dict, dict]:
    """A resampled corpus in pycocoevalcap's form, each copy of an image under its own id."""
    keys = [f"{i}#{k}" for k, i in enumerate(indices)]
    return {key: refs[i] for key, i in zip(keys, indices)}, {key: [cands[i]] for key, i in zip(keys, indices)}


def test_bleu_rouge_and_cider_replicates_equal_the_metrics_on_the_resampled_corpus() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    cands, refs = random_corpus(60)
    scores = score_tokenized(list(range(60)), refs, cands, metrics=["Bleu", "ROUGE_L", "CIDEr"])
    statistic = bm.caption_statistic(scores)
    assert all(v[0] == pytest.approx(scores.scores[k], abs=1e-12) for k, v in statistic(np.ones((1, 60))).items())
    _, full_cider = Cider().compute_score(*as_coco(np.arange(60), cands, refs))
    for indices in explicit_resamples(60):
        replicate = {k: v[0] for k, v in statistic(counts_of(indices, 60)).items()}
        # BLEU: a real corpus BLEU of the resampled corpus, from its text, with the project's BLEU and pycocoevalcap's
        direct = bleu_from_stats(bleu_stats([cands[i] for i in indices], [refs[i] for i in indices]))
        assert [replicate[f"Bleu_{n}"] for n in range(1, 5)] == pytest.approx(direct, abs=1e-9)
        gts, res = as_coco(indices, cands, refs)
        reference, _ = Bleu(4).compute_score(gts, res, verbose=0)
        assert [replicate[f"Bleu_{n}"] for n in range(1, 5)] == pytest.approx(reference, abs=1e-9)
        assert replicate["ROUGE_L"] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
        # CIDEr-D: the whole set's idf, so each drawn image keeps its own score (module docs: the choice) ...
        assert replicate["CIDEr"] == pytest.approx(float(np.mean(full_cider[indices])), abs=1e-9)
        # ... which is not pycocoevalcap run on the resampled corpus, where each copy counts as another document
        assert abs(replicate["CIDEr"] - Cider().compute_score(gts, res)[0]) > 1e-6


@pytest.mark.slow
def test_meteor_replicate_equals_the_jar_on_the_resampled_corpus() -> None:
    require(find_java() is not None and meteor_jar() is not None, "Java and pycocoevalcap's METEOR jar")
    cands, refs = random_corpus(40, seed=1)
    with MeteorScorer() as scorer:
        full = scorer.score(cands, refs)
        stats = bm.meteor_stats_matrix(full.stats)
        assert bm.meteor_from_sums(stats, np.ones((1, 40)))[0] == pytest.approx(full.score, abs=1e-12)
        for indices in explicit_resamples(40) + [np.array([3]), np.array([3, 3])]:  # 3: a perfect match
            direct = scorer.score([cands[i] for i in indices], [refs[i] for i in indices]).score
            assert bm.meteor_from_sums(stats, counts_of(indices, 40))[0] == pytest.approx(direct, abs=1e-9)


def test_clipscore_replicate_is_the_mean_of_the_drawn_scored_images() -> None:
    cands, refs = random_corpus(20)
    scores = score_tokenized(list(range(20)), refs, cands, metrics=["ROUGE_L"])
    clip = np.linspace(0.1, 0.9, 20)
    clip[4] = np.nan
    statistic = bm.caption_statistic(scores, {"CLIPScore": clip})
    for indices in explicit_resamples(20):
        assert statistic(counts_of(indices, 20))["CLIPScore"][0] == pytest.approx(np.nanmean(clip[indices]))


def test_retrieval_replicate_equals_a_brute_force_recomputation_on_the_resampled_queries() -> None:
    rng = np.random.default_rng(0)
    ranks = RetrievalRanks(t2i=rng.geometric(0.3, 101), i2t=rng.geometric(0.5, 20))
    statistic = bm.retrieval_statistic(ranks, [1, 5, 10])
    assert {k: v[0] for k, v in statistic(np.ones((1, 101)), np.ones((1, 20))).items()} == \
        pytest.approx(metrics_from_ranks(ranks, [1, 5, 10]))
    text_counts = resample_counts(rng, 101, 6)
    image_counts = resample_counts(rng, 20, 6)
    replicate = statistic(text_counts, image_counts)
    for row in range(6):
        t2i, i2t = ranks.t2i[drawn(text_counts[row])], ranks.i2t[drawn(image_counts[row])]
        expected = {}
        for name, r in (("t2i", t2i), ("i2t", i2t)):  # recall@k as "a hit in the top k", by a loop
            for k in (1, 5, 10):
                expected[f"{name}_R@{k}"] = sum(1 for x in r if x <= k) / len(r)
            expected[f"{name}_mean_rank"] = sum(r) / len(r)
            s = sorted(r)
            expected[f"{name}_median_rank"] = (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2
        expected["rsum"] = sum(expected[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10))
        assert {k: v[row] for k, v in replicate.items()} == pytest.approx(expected, abs=1e-12)


def test_classification_replicates_recompute_per_class_metrics_on_the_resample() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, 80)
    labels[labels == 5] = 4  # class 5 has no image
    scores = rng.normal(size=(80, 6)) + 1.5 * np.eye(6)[labels]
    statistic = bm.single_label_statistic(scores, labels, temperature=3.0)
    for indices in [np.arange(80)] + explicit_resamples(80):
        expected = single_label_metrics(scores[indices], labels[indices], 3.0)  # sklearn F1, confusion, ECE loop
        assert {k: v[0] for k, v in statistic(counts_of(indices, 80)).items()} == pytest.approx(expected, abs=1e-12)


def test_multilabel_map_replicate_equals_sklearn_on_the_duplicated_rows() -> None:
    rng = np.random.default_rng(2)
    targets = (rng.random((50, 4)) < 0.3).astype(int)
    targets[:, 3] = 0
    targets[7, 3] = 1  # a class with a single positive: often not drawn, then left out of the mean
    scores = np.round(rng.random((50, 4)) + 0.5 * targets, 1)  # rounded: tied scores
    statistic = bm.multilabel_statistic(scores, targets)
    for indices in [np.arange(50)] + explicit_resamples(50, rows=8):
        expected = mean_average_precision(scores[indices], targets[indices])
        assert statistic(counts_of(indices, 50))["mAP"][0] == pytest.approx(expected, abs=1e-12)


def test_vqa_and_multiple_choice_replicates() -> None:
    rng = random.Random(0)
    answers = [[rng.choice(["yes", "no", "2", "red"]) for _ in range(10)] for _ in range(30)]
    predictions = [rng.choice(["yes", "no", "2", "red"]) for _ in range(30)]
    types = [rng.choice(["yes/no", "number", None]) for _ in range(30)]
    _, per_question = score_vqa(predictions, answers, types)
    vqa = bm.vqa_statistic(per_question, types)
    choices = [rng.choice(["A", "B", None]) for _ in range(30)]
    truth = [rng.choice(["A", "B"]) for _ in range(30)]
    mc = bm.choice_statistic(choices, truth)
    for indices in [np.arange(30)] + explicit_resamples(30):
        counts = counts_of(indices, 30)
        expected, _ = score_vqa([predictions[i] for i in indices], [answers[i] for i in indices],
                                [types[i] for i in indices])
        assert {k: v[0] for k, v in vqa(counts).items() if np.isfinite(v[0])} == pytest.approx(expected)
        expected = score_choices([choices[i] for i in indices], [truth[i] for i in indices])
        assert {k: v[0] for k, v in mc(counts).items()} == pytest.approx(expected)


# --- config and end to end -----------------------------------------------------------------------------------


def shapes_config(tmp_path: Path, bootstrap: dict | None = None, n_images: int = 24):
    shapes = {"format": "shapes", "n_images": n_images}
    return validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [
            {"name": "retrieval", "task": "retrieval", "data": shapes},
            {"name": "captions", "task": "coco_captions", "data": shapes, "tokenizer": "python",
             "metrics": ["Bleu", "ROUGE_L", "CIDEr"]},
            {"name": "zeroshot", "task": "zeroshot_classification", "data": shapes},
            {"name": "kinds", "task": "zeroshot_classification", "multilabel": True, "data": shapes},
            {"name": "vqa", "task": "vqa", "data": {"format": "shapes_vqa", "n_images": n_images // 2},
             "generation": {"max_new_tokens": 5}},
        ],
        "runtime": {"device": "cpu", "num_workers": 0},
        "output": {"dir": str(tmp_path / "reports")},
        **({"bootstrap": bootstrap} if bootstrap is not None else {}),
    })


def test_config_section_defaults_and_errors() -> None:
    assert shapes_config(Path("/tmp")).bootstrap == BootstrapConfig(n=1000, seed=0)
    for bad, message in [({"n": 50}, "bootstrap.n: expected 0 (off) or at least 100 resamples"),
                         ({"n": -1}, "bootstrap.n: Input should be greater than or equal to 0"),
                         ({"samples": 10}, "bootstrap.samples: unknown key. Valid keys here: n, seed, unit")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            shapes_config(Path("/tmp"), bad)


def test_every_headline_metric_of_a_shapes_run_has_its_ci95(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    outcome = run_config(shapes_config(tmp_path, {"n": 400, "seed": 3}))
    assert not outcome.errors and outcome.internal_error is None
    written = json.loads(outcome.report_path.read_text())  # validated against the schema before writing
    assert written["config"]["bootstrap"] == {"n": 400, "seed": 3, "unit": "cluster"}
    for name, bench in written["benchmarks"].items():
        assert bench["status"] == "complete", name
        assert bench["bootstrap"]["n"] == 400 and bench["bootstrap"]["seed"] == 3, name
        assert bench["metrics"], name
        for metric, entry in bench["metrics"].items():
            lo, hi = entry["ci95"]
            assert lo <= entry["value"] <= hi, (name, metric, entry)
    assert written["benchmarks"]["captions"]["bootstrap"]["unit"] == "images"
    assert written["benchmarks"]["vqa"]["bootstrap"]["resampled"] == "clusters"


def test_multiple_choice_benchmark_has_ci95(tmp_path: Path) -> None:
    from test_multiple_choice import ROWS, LetterAnswerer, make_images, mc_config
    from test_vqa import context

    from mmeval.tasks.multiple_choice import run as multiple_choice

    images = make_images(tmp_path / "images")
    rows = [{**row, "question_id": 10 * copy + row["question_id"]} for copy in range(5) for row in ROWS]
    (tmp_path / "mc.json").write_text(json.dumps({"questions": rows}))
    bench = mc_config(tmp_path, {"format": "mc", "annotations": str(tmp_path / "mc.json"), "images": str(images)})
    result = multiple_choice.run(LetterAnswerer(), bench, context(tmp_path, batch_size=8))
    assert result.extra["bootstrap"]["unit"] == "images, each with all of its items (questions)"
    for entry in result.metrics.values():
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]


def test_bootstrap_off_leaves_no_ci95(tmp_path: Path) -> None:
    from test_vqa import context

    from mmeval.engine.evaluate import load_model

    cfg = shapes_config(tmp_path, {"n": 0}, n_images=12)
    ctx = context(tmp_path)
    ctx.bootstrap = cfg.bootstrap
    result = retrieval_benchmark.run(load_model(cfg.model), cfg.benchmarks[0], ctx)
    assert "bootstrap" not in result.extra
    assert result.metrics and all("ci95" not in entry for entry in result.metrics.values())


def test_results_table_shows_the_larger_half_width_of_the_interval() -> None:
    from mmeval.reporting.console import _with_interval

    # value 0.40 in [0.37, 0.41]: the interval reaches 0.03 below and 0.01 above; the table shows the larger
    assert _with_interval("t2i_R@1", {"value": 0.40, "ci95": [0.37, 0.41]}) == "0.4000 [dim]±0.0300[/]"
    assert _with_interval("t2i_mean_rank", {"value": 3.3, "ci95": [3.1, 3.6]}) == "3.3 [dim]±0.3[/]"
    assert _with_interval("CIDEr", {"value": 1.5}) == "1.5000"  # no interval (bootstrap off)
    assert _with_interval("CIDEr", {"value": None, "ci95": None}) == "n/a"
