"""The `bias` block end to end: a model trained on deliberately biased shapes data (circles mostly on dark
backgrounds) must show the bias on the balanced test split, with the sign the construction implies, and more
than the same recipe trained on the plain data; attributes from a file; bad attribute names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.errors import ConfigError
from mmeval.models.reference import DEMO_CHECKPOINT
from mmeval.reporting.report import validate_report

ASSETS = DEMO_CHECKPOINT.parent
BENCHMARKS = [
    {"name": "r", "task": "retrieval", "data": {"format": "shapes", "n_images": 400},
     "bias": {"attributes": ["background"], "queries": ["a picture of a circle", "a red circle", "a small dot"],
              "k": [10]}},
    {"name": "z", "task": "zeroshot_classification", "data": {"format": "shapes", "n_images": 400,
                                                              "label_column": "shape"},
     "templates": ["a picture of a {c}."], "bias": {"attributes": ["background"], "harmful_classes": ["circle"]}},
]  # fmt: skip


def _bias_of(tmp_path: Path, checkpoint: Path, benchmarks=BENCHMARKS) -> dict:
    if benchmarks is BENCHMARKS:  # bias amplification of "circle" against the model's own training counts
        counts = json.loads((checkpoint / "training_counts.json").read_text())
        circle = tmp_path / f"{checkpoint.name}-circle-counts.json"
        circle.write_text(json.dumps({"background": {"circle": counts["background"]["circle"]}}))
        benchmarks = [dict(b) for b in BENCHMARKS]
        benchmarks[1]["bias"] = {**benchmarks[1]["bias"], "training_counts": str(circle)}
    cfg = validate_mapping({"model": {"type": "reference", "checkpoint": str(checkpoint)}, "benchmarks": benchmarks,
                            "runtime": {"device": "cpu", "num_workers": 0, "cache": "off"},
                            "output": {"dir": str(tmp_path), "name": checkpoint.name}})  # fmt: skip
    outcome = run_config(cfg)
    assert not outcome.errors, outcome.errors
    validate_report(outcome.report)
    return {name: bench["bias"]["attributes"] for name, bench in outcome.report["benchmarks"].items()}


def test_the_biased_model_shows_the_bias_it_was_trained_with(tmp_path: Path) -> None:
    biased = _bias_of(tmp_path, ASSETS / "shapes-clip-biased")
    balanced = _bias_of(tmp_path, ASSETS / "shapes-clip-balanced")
    # zero-shot: "circle" is predicted far more often on dark backgrounds
    harm_b = biased["z"]["background"]["fairness"]["harmful"]
    harm_f = balanced["z"]["background"]["fairness"]["harmful"]
    assert harm_b["selection_rate"]["dark"] > harm_b["selection_rate"]["light"] + 0.3
    assert harm_b["demographic_parity_difference"] > harm_f["demographic_parity_difference"] + 0.2
    # bias amplification (Zhao et al.) of "circle": the biased model leans to dark even more than its training
    # data (83% of its single circles were dark); the balanced one does not amplify
    amp_b = biased["z"]["background"]["bias_amplification"]
    amp_f = balanced["z"]["background"]["bias_amplification"]
    assert amp_b["classes"] == ["circle"] and amp_b["bias_amplification"] > 0.1 > amp_f["bias_amplification"]
    # retrieval: circle queries return dark-background scenes first (positive skew of "dark")
    top_b = biased["r"]["background"]["queries"]["@10"]
    top_f = balanced["r"]["background"]["queries"]["@10"]
    assert top_b["skew"]["dark"] > 0.2 and top_b["skew"]["dark"] > top_f["skew"]["dark"] + 0.2
    assert top_b["ndkl"] > top_f["ndkl"]
    assert top_b["bias@k"] > 0.3  # group a is "dark" (groups in sorted order)
    # slicing: every headline metric per group, group sizes add up to the images with the attribute
    sliced = biased["z"]["background"]["sliced"]["top1"]
    assert set(sliced["per_group"]) == {"dark", "light"} and sum(sliced["group_sizes"].values()) == 400


def test_attributes_from_a_file_with_missing_values(tmp_path: Path) -> None:
    rows = ["image_id,skin", *(f"test-{i:06d},{'A' if i % 3 else 'B'}" for i in range(0, 60)),
            *(f"test-{i:06d}," for i in range(60, 80))]  # fmt: skip
    (tmp_path / "attrs.csv").write_text("\n".join(rows) + "\n")
    bench = {"name": "r", "task": "retrieval", "data": {"format": "shapes", "n_images": 80},
             "bias": {"attributes": ["skin"], "attributes_file": str(tmp_path / "attrs.csv")}}  # fmt: skip
    bias = _bias_of(tmp_path, DEMO_CHECKPOINT, [bench])["r"]["skin"]["sliced"]
    assert bias["i2t_R@1"]["group_sizes"] == {"A": 40, "B": 20} and bias["i2t_R@1"]["n_missing"] == 20
    assert bias["t2i_R@1"]["group_sizes"] == {"A": 200, "B": 100} and bias["t2i_R@1"]["n_missing"] == 100

    bench["bias"]["attributes"] = ["skn"]
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench],
                            "output": {"dir": str(tmp_path), "name": "bad"}})  # fmt: skip
    outcome = run_config(cfg)
    assert "bias.attributes: no image has attribute 'skn'" in outcome.errors[0] and "known: skin" in outcome.errors[0]


def test_bias_settings_are_checked_like_any_config(tmp_path: Path) -> None:
    bench = {"name": "r", "task": "multiple_choice", "data": {"format": "mc", "annotations": "x", "images": "y"},
             "bias": {"attributes": ["a"]}}  # fmt: skip
    with pytest.raises(ConfigError, match="bias: not used by task 'multiple_choice'"):
        validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench]})
    bench = {"name": "c", "task": "coco_captions", "data": {"format": "shapes"},
             "bias": {"attributes": ["background"], "caption_words": {"light": ["white"]}}}  # fmt: skip
    with pytest.raises(ConfigError, match="exactly two groups"):
        validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench]})
