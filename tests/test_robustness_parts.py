"""Robustness building blocks: mCE / relative robustness / worst case against hand-computed values, and the
text perturbations (deterministic per sample, severity-monotone, registry by modality)."""

from __future__ import annotations

import pytest

from mmeval.metrics.robustness import corruption_errors, relative_robustness, worst_case
from mmeval.perturb import PERTURBATIONS, apply, register


def test_mce_by_hand() -> None:
    # Hendrycks & Dietterich: CE_c = sum_s E / sum_s E_baseline; two corruptions, three severities
    errors = {"gaussian_noise": [0.2, 0.3, 0.5], "fog": [0.1, 0.1, 0.2]}
    baseline = {"gaussian_noise": [0.4, 0.6, 0.8], "fog": [0.2, 0.3, 0.3]}
    out = corruption_errors(errors, baseline, clean=0.05, baseline_clean=0.1)
    assert out["ce"] == pytest.approx({"gaussian_noise": 1.0 / 1.8, "fog": 0.4 / 0.8})
    assert out["mce"] == pytest.approx((1.0 / 1.8 + 0.5) / 2)
    # relative: sum (E - E_clean) / sum (E_base - E_base_clean) = (1.0 - 0.15) / (1.8 - 0.3), (0.4 - 0.15) / (0.8 - 0.3)
    assert out["relative_ce"] == pytest.approx({"gaussian_noise": 0.85 / 1.5, "fog": 0.25 / 0.5})
    with pytest.raises(ValueError, match="fog"):
        corruption_errors(errors, {"gaussian_noise": [1, 1, 1]})


def test_relative_robustness_and_worst_case() -> None:
    grid = {"blur": [0.8, 0.6], "noise": [0.7, 0.4]}
    relative = relative_robustness(0.8, grid)
    assert relative["blur"] == pytest.approx([1.0, 0.75]) and relative["noise"] == pytest.approx([0.875, 0.5])
    assert worst_case(grid) == {"value": 0.4, "perturbation": "noise", "severity": 2}
    # severities [1, 5]: the second value is severity 5, not position 2
    assert worst_case(grid, severities=[1, 5]) == {"value": 0.4, "perturbation": "noise", "severity": 5}
    assert worst_case({"blur": [3.0, 9.0]}, higher_is_better=False) == {"value": 9.0, "perturbation": "blur",
                                                                       "severity": 2}


TEXT = "A man riding a red bicycle down the street, next to a parked car."


@pytest.mark.parametrize("name", ["keyboard_typo", "char_drop", "casing", "punctuation"])
def test_text_perturbations_are_deterministic_per_sample_and_grow_with_severity(name: str) -> None:
    once = apply("text", name, TEXT, 3, seed=0, sample_id=17)
    assert once == apply("text", name, TEXT, 3, seed=0, sample_id=17) and once != TEXT
    assert apply("text", name, TEXT, 3, seed=0, sample_id=18) != once or name == "punctuation"
    changed = [sum(a != b for a, b in zip(apply("text", name, TEXT, s, 0, 1), TEXT)) + abs(
        len(apply("text", name, TEXT, s, 0, 1)) - len(TEXT)) for s in (1, 5)]
    assert changed[0] < changed[1]


def test_specific_text_rules() -> None:
    assert apply("text", "punctuation", "Hi, there.", 1, 0, 0) == "Hi there"
    assert apply("text", "casing", "abcdefghijklmnopqrst", 1, 0, 0).lower() == "abcdefghijklmnopqrst"
    dropped = apply("text", "char_drop", "abcdefghijklmnopqrst", 1, 0, 0)
    assert len(dropped) == 19  # 5% of 20 letters
    with pytest.raises(ValueError, match="severity"):
        apply("text", "casing", TEXT, 6, 0, 0)
    with pytest.raises(ValueError, match="keyboard_typo"):
        apply("text", "typo", TEXT, 1, 0, 0)


def test_a_modality_registers_its_own() -> None:
    register("waveform", "silence", lambda x, s, rng: [0.0] * len(x))
    try:
        assert apply("waveform", "silence", [1.0, 2.0], 2, 0, "clip-1") == [0.0, 0.0]
        with pytest.raises(ValueError, match="already registered"):
            register("waveform", "silence", lambda x, s, rng: x)
    finally:
        del PERTURBATIONS["waveform"]
