"""Caption gender bias on real COCO data: genders derived from the human references (Hendricks et al.'s
labelling), `mmeval score --gender-bias` on the official demo's results file, checked against a recount written
independently here; and the directional bias amplification a zero-shot benchmark reports, by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mmeval.config.bias import MAN_WORDS, WOMAN_WORDS, BiasConfig
from mmeval.metrics.bias import groups_from_references
from mmeval.tasks.coco_captions.score import score_results
from mmeval.tasks.bias_block import _directional


def test_groups_from_references_by_hand() -> None:
    words = {"man": ["man", "his"], "woman": ["woman", "her"]}
    references = [
        ["A man rides a horse.", "Someone on a horse."],  # man named, woman never: man
        ["A woman and her dog.", "A dog."],  # woman
        ["A man and a woman.", "Two people."],  # both named: unlabelled
        ["A dog on a beach."],  # neither
        ["The MAN'S hat", "a hat"],  # case-folded; "man's" splits into "man", "s"
        [],  # no references at all
        ["A human walks.", "Woman-made art."],  # "human" is not "man"; "woman" split from "-made"
    ]
    assert groups_from_references(references, words) == ["man", "woman", None, None, "man", None, "woman"]


def test_reference_attribute_must_be_listed() -> None:
    with pytest.raises(ValueError, match="reference_attribute 'gender' must also be one of"):
        BiasConfig(attributes=["skin_tone"], reference_attribute="gender")


def test_directional_amplification_of_a_zero_shot_benchmark_by_hand() -> None:
    # 4 labelled images (d, d, l, l) and one without the attribute; classes 0 = circle, 1 = square.
    # P(d, circle) = .5 > P(d) P(circle) = .375 and P(l, square) = .25 > .125: positively correlated pairs.
    # Deltas P(pred t | a) - P(true t | a): (d, circle) 0, (d, square) 0, (l, circle) -.5 (anti-correlated:
    # counts +.5), (l, square) +.5 (correlated: +.5). Mean over the 4 pairs: 1.0 / 4 = 0.25.
    values = ["d", "d", "l", "l", None]
    labels = np.array([0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 1, 1, 0])
    block = _directional(values, labels, predictions, 2)
    assert block["A->T"] == pytest.approx(0.25)
    assert block["groups"] == ["d", "l"] and block["n_images"] == 4
    assert _directional(values, labels, labels, 2)["A->T"] == 0.0  # predictions equal to the truth: none


def _recount(references: dict, captions: dict) -> dict[str, dict[str, int]]:
    """Hendricks et al.'s outcome counts, written without mmeval's code."""
    man, woman = set(MAN_WORDS), set(WOMAN_WORDS)

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z]+", text.lower()))

    def gender(named: set[str]) -> str:
        m, w = bool(named & man), bool(named & woman)
        return "man" if m and not w else "woman" if w and not m else "other"

    counts = {"man": {"man": 0, "woman": 0, "other": 0}, "woman": {"man": 0, "woman": 0, "other": 0}}
    for image_id, caption in captions.items():
        truth = gender(set().union(*(words(r) for r in references[image_id])))
        if truth != "other":
            counts[truth][gender(words(caption))] += 1
    return counts


def test_score_gender_bias_on_the_official_demo_results(shared_data: Path, tmp_path: Path) -> None:
    annotations = shared_data / "coco" / "captions_val2014_subset.json"
    results = shared_data / "coco" / "captions_val2014_fakecap_results.json"
    bias = BiasConfig(attributes=["gender"], reference_attribute="gender", caption_attribute="gender")
    outcome = score_results(annotations, results, tmp_path, metrics=("CIDEr",), tokenizer="python", bias=bias,
                            skip_unknown=True)  # fmt: skip
    bench = next(iter(outcome.report["benchmarks"].values()))
    assert bench["dataset"]["n_scored_images"] == 245 and bench["dataset"]["n_skipped_unknown_ids"] == 755
    lo, hi = bench["metrics"]["CIDEr"]["ci95"]  # the bootstrap interval over images, as in `mmeval run`
    assert lo < bench["metrics"]["CIDEr"]["value"] < hi and bench["bootstrap"]["n"] == 1000

    refs: dict = {}
    for ann in json.loads(annotations.read_text())["annotations"]:
        refs.setdefault(ann["image_id"], []).append(ann["caption"])
    captions = {r["image_id"]: r["caption"] for r in json.loads(results.read_text()) if r["image_id"] in refs}
    counts = _recount(refs, captions)
    got = bench["bias"]["attributes"]["gender"]
    for truth, other in (("man", "woman"), ("woman", "man")):
        n = sum(counts[truth].values())
        assert got["caption_groups"][truth]["n"] == n
        assert got["caption_groups"][truth]["correct"] == pytest.approx(counts[truth][truth] / n)
        assert got["caption_groups"][truth]["incorrect"] == pytest.approx(counts[truth][other] / n)
    wrong = counts["man"]["woman"] + counts["woman"]["man"]
    assert got["caption_groups"]["error"] == pytest.approx(wrong / (sum(counts["man"].values()) +
                                                                     sum(counts["woman"].values())))
    assert got["sliced"]["CIDEr"]["group_sizes"] == {g: sum(counts[g].values()) for g in ("man", "woman")}
    assert got["caption_groups"]["n_excluded"] == 245 - sum(sum(c.values()) for c in counts.values())
    # on this real file the classic finding shows: women are far more often captioned as men than the reverse
    assert got["caption_groups"]["woman"]["incorrect"] > 3 * got["caption_groups"]["man"]["incorrect"]


def test_score_refuses_unknown_ids_without_the_flag(shared_data: Path, tmp_path: Path) -> None:
    from mmeval.errors import DataError

    with pytest.raises(DataError, match="755 result image id.*pass --skip-unknown"):
        score_results(shared_data / "coco" / "captions_val2014_subset.json",
                      shared_data / "coco" / "captions_val2014_fakecap_results.json", tmp_path, metrics=("CIDEr",),
                      tokenizer="python")  # fmt: skip
