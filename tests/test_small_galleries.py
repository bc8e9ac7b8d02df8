"""Small data made visible: recall@k that is 1.0 by construction warns (k >= the gallery size, as zero-shot
top-5 does with 5 classes or fewer), and the terminal shows a lopsided 95% interval as [lo, hi], not `±`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_coco_dataset
from rich.console import Console
from test_runner import CountingEncoder, bench_config, runtime

from mmeval.metrics.retrieval import compute_ranks, metrics_from_ranks, saturated_recall_warnings
from mmeval.reporting.console import _with_interval
from mmeval.tasks.retrieval import run as retrieval


@pytest.mark.parametrize("n_images, n_texts, ks", [(9, 45, (1, 5, 10)), (3, 2, (1, 2, 5)), (50, 250, (1, 5, 10)),
                                                   (5, 5, (5,))])
def test_warnings_name_exactly_the_recalls_that_are_one_whatever_the_model(n_images, n_texts, ks):
    """Brute force: over many random embeddings, the recalls that always came out 1.0 are the ones warned of."""
    rng = np.random.default_rng(n_images)
    owner = np.concatenate([np.arange(n_images), rng.integers(0, n_images, max(0, n_texts - n_images))])[:n_texts]
    always_one = None
    for _ in range(30):
        ranks = compute_ranks(torch.from_numpy(rng.normal(size=(n_images, 4))),
                              torch.from_numpy(rng.normal(size=(n_texts, 4))), owner)
        ranks.i2t = ranks.i2t[np.bincount(owner, minlength=n_images) > 0]
        values = metrics_from_ranks(ranks, ks)
        ones = {name for name, value in values.items() if "_R@" in name and value == 1.0}
        always_one = ones if always_one is None else always_one & ones
    warned = {line.split(":")[0] for line in saturated_recall_warnings(ks, n_images, n_texts)}
    assert warned == always_one


def test_wording_mirrors_the_zero_shot_top5_warning():
    assert saturated_recall_warnings([1, 5, 10], 9, 45) == [
        "t2i_R@10: only 9 images, so every caption's image is within the top 10 (t2i_R@10 = 1.0)"]
    assert saturated_recall_warnings([1, 10], 20, 8) == [
        "i2t_R@10: only 8 texts, so every image has a caption within the top 10 (i2t_R@10 = 1.0)"]
    assert saturated_recall_warnings([1, 5, 10], 1000, 5000) == []


def test_a_retrieval_run_on_six_images_warns_in_the_log_and_the_report(tmp_path: Path, caplog) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=6)  # 21 captions: only t2i R@10 is saturated
    with caplog.at_level(logging.WARNING, logger="mmeval"):
        result = retrieval.run(CountingEncoder(), bench_config(annotations), runtime())
    assert result.metrics["t2i_R@10"]["value"] == 1.0 and result.metrics["i2t_R@10"]["value"] < 1.0
    expected = "t2i_R@10: only 6 images, so every caption's image is within the top 10 (t2i_R@10 = 1.0)"
    assert result.extra["warnings"] == [expected]
    assert f"b: {expected}" in caplog.messages


def test_no_warning_key_when_the_gallery_is_large_enough(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=6)
    bench = bench_config(annotations).model_copy(update={"recall_k": [1, 5]})
    result = retrieval.run(CountingEncoder(), bench, runtime())
    assert "warnings" not in result.extra and set(result.metrics) >= {"t2i_R@5", "i2t_R@5"}


# --- intervals in the terminal ------------------------------------------------------------------------------


def rendered(markup: str) -> str:
    console = Console(width=200, no_color=True)
    with console.capture() as capture:
        console.print(markup)
    return capture.get().strip()


def test_a_lopsided_interval_is_shown_by_its_ends():
    # the median rank: 3.0 in [2, 12] is not "± 9.0"
    text = _with_interval("t2i_median_rank", {"value": 3.0, "ci95": [2.0, 12.0]})
    assert rendered(text) == "3.0 [2.0, 12.0]"
    assert rendered(_with_interval("i2t_R@10", {"value": 1.0, "ci95": [0.94, 1.0]})) == "1.0000 [0.9400, 1.0000]"
    # a value outside its percentile interval (possible for a median) is lopsided too
    assert rendered(_with_interval("t2i_median_rank", {"value": 2.0, "ci95": [2.5, 4.0]})) == "2.0 [2.5, 4.0]"


@pytest.mark.parametrize("value, ci, shown", [
    (0.40, [0.37, 0.41], "0.4000 ±0.0300"),  # halves 0.03 / 0.01: 3x, at the limit (as displayed), still ±
    (0.50, [0.45, 0.55], "0.5000 ±0.0500"),  # symmetric
    (0.50, [0.4501, 0.5167], "0.5000 ±0.0499"),  # 0.0499 / 0.0167: 2.99x
    (0.50, [0.4501, 0.5166], "0.5000 [0.4501, 0.5166]"),  # 0.0499 / 0.0166: 3.01x
])
def test_the_threshold_between_the_two_shapes(value, ci, shown):
    """± is kept while it overstates the interval's width by at most half: larger half <= 3x the smaller."""
    assert rendered(_with_interval("t2i_R@1", {"value": value, "ci95": ci})) == shown
