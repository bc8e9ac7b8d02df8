"""How well an opt-in judge's verdicts agree with the rule-based score on the same items.

Binary verdicts against a binary rule (VQA accuracy > 0, video QA exact match): the share of items where both say
the same, and Cohen's kappa (sklearn.metrics.cohen_kappa_score), the agreement beyond what the two raters' own
rates of "correct" give by chance.

Graded verdicts (a caption judge's 1-5 score) against a continuous rule (per-caption CIDEr-D): the Spearman rank
correlation (scipy.stats.spearmanr; ties get average ranks, and a 5-level score has many), which asks only whether
the judge orders the captions as the rule does. Beside it, accuracy and kappa after a documented binarisation:
the judge says "acceptable" at a score >= `judge_threshold` (4 of 5: "accurate, at most minor details missing");
the rule says so at a per-caption value >= the median over the judged captions. The rule has no absolute cut-off
(CIDEr-D's scale depends on the reference set's idf weights), so the median split is the scale-free choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

CAPTION_JUDGE_THRESHOLD = 4  # a caption judged >= 4 of 5 counts as acceptable (see the caption prompt's scale)


def binary_agreement(judged: Sequence[bool], rule: Sequence[bool]) -> dict[str, Any]:
    """Share of items where judge and rule agree, and Cohen's kappa (None when undefined: both raters gave one
    and the same label to every item)."""
    from sklearn.metrics import cohen_kappa_score

    n = len(judged)
    if n != len(rule):
        raise ValueError(f"{n} verdicts but {len(rule)} rule-based values")
    if n == 0:
        return {"n": 0, "accuracy": None, "cohen_kappa": None}
    accuracy = sum(bool(a) == bool(b) for a, b in zip(judged, rule)) / n
    kappa = None
    if len({bool(v) for v in judged} | {bool(v) for v in rule}) > 1:
        value = float(cohen_kappa_score([bool(v) for v in rule], [bool(v) for v in judged]))
        kappa = value if math.isfinite(value) else None  # 0/0: the expected agreement is already 1
    return {"n": n, "accuracy": accuracy, "cohen_kappa": kappa}


def graded_agreement(scores: Sequence[float], rule: Sequence[float],
                     judge_threshold: float = CAPTION_JUDGE_THRESHOLD) -> dict[str, Any]:
    """Spearman correlation between judge scores and the rule's per-item values, and binary agreement after the
    binarisation of the module docstring (judge >= `judge_threshold`, rule >= its median)."""
    from scipy.stats import spearmanr

    n = len(scores)
    if n != len(rule):
        raise ValueError(f"{n} verdicts but {len(rule)} rule-based values")
    out: dict[str, Any] = {"n": n, "spearman": None}
    if n >= 2 and len(set(scores)) > 1 and len(set(rule)) > 1:  # a constant side leaves the correlation undefined
        value = float(spearmanr(scores, rule).statistic)
        out["spearman"] = value if math.isfinite(value) else None
    median = _median(rule) if n else None
    binary = binary_agreement([s >= judge_threshold for s in scores], [r >= median for r in rule] if n else [])
    out.update(judge_threshold=judge_threshold, rule_median=median, accuracy=binary["accuracy"],
               cohen_kappa=binary["cohen_kappa"])
    return out


def _median(values: Sequence[float]) -> float:
    ordered = sorted(float(v) for v in values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
