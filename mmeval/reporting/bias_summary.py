"""A one-paragraph terminal summary of a captioning benchmark's bias block (`mmeval score --gender-bias`).

The report holds every number; the terminal gets the headline ones, so a user sees the result without opening
the JSON: how often a caption names the wrong group (Hendricks et al. 2018's error), the predicted vs reference
ratio of the two groups, each group's correct rate, the headline caption metric per group and, when computed,
the LIC leakage (Hirota et al. 2022).
"""

from __future__ import annotations

import math
from typing import Any

# The caption metric whose per-group values the summary names: the first the block has.
_HEADLINE = ("CIDEr", "SPICE", "METEOR", "Bleu_4", "ROUGE_L")


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def caption_bias_summary(bench: dict[str, Any], attribute: str) -> str | None:
    """The headline bias numbers of `bench` (a report's benchmark entry) for `attribute`, as one paragraph;
    None when the benchmark has no caption group bias for it."""
    entry = ((bench.get("bias") or {}).get("attributes") or {}).get(attribute) or {}
    groups_block = entry.get("caption_groups")
    if not groups_block:
        return None
    a, b = groups_block["groups"]
    n = {g: groups_block[g]["n"] for g in (a, b)}
    parts = [f"{attribute} bias (Hendricks et al. 2018) over {n[a] + n[b]} images whose references name a "
             f"{attribute} ({n[a]} {a}, {n[b]} {b}; {groups_block.get('n_excluded', 0)} other images left out)",
             f"error {_num(groups_block.get('error'))} (share of these images whose caption names the other "
             f"{attribute})",
             f"{b}:{a} ratio {_num(groups_block.get('ratio_predicted'))} in the captions vs "
             f"{_num(groups_block.get('ratio_ground_truth'))} in the references",
             f"named correctly: {a} {_num(groups_block[a].get('correct'))}, {b} {_num(groups_block[b].get('correct'))}"]
    sliced = entry.get("sliced") or {}
    metric = next((m for m in _HEADLINE if m in sliced), next(iter(sliced), None))
    if metric is not None:
        per_group = sliced[metric].get("per_group") or {}
        shown = ", ".join(f"{g} {_num(v)}" for g, v in per_group.items())
        parts.append(f"{metric} {shown} (gap {_num(sliced[metric].get('gap'))})")
    leakage = entry.get("leakage") or {}
    if "lic" in leakage:
        parts.append(f"LIC leakage {_num(leakage['lic'])} (model {_num(leakage.get('lic_model'))} vs human "
                     f"{_num(leakage.get('lic_human'))})")
    return "; ".join(parts) + "."
