"""Per-sample values of the audio retrieval metrics, for paired tests (compare, gate).

Matched by (text_index, clip_id) for t2a and clip_id for a2t. R@k = hit (rank <= k); mean / median rank = rank;
t2a mAP@k = 1/rank if rank <= k else 0 per caption (its mean is the metric); rsum = each query's hits summed over
k, one stratum per direction.
"""

from __future__ import annotations

import re

from mmeval.metrics.stats.paired import Statistic
from mmeval.reporting.sample_values import PairedValues, no_test, rows_of, single

_RECALL = re.compile(r"(t2a|a2t)_R@(\d+)")
_RANK = re.compile(r"(t2a|a2t)_(mean|median)_rank")
_MAP = re.compile(r"t2a_mAP@(\d+)")
_KEYS = {"t2a": lambda r: (r.get("text_index"), r.get("clip_id")), "a2t": lambda r: r.get("clip_id")}


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    if metric == "rsum":
        out = PairedValues()
        for direction in ("t2a", "a2t"):
            ks = [int(m.group(2)) for n in names if (m := _RECALL.fullmatch(n)) and m.group(1) == direction]
            ra, rb = rows_of(a, direction), rows_of(b, direction)
            if ra is None or rb is None:
                return no_test(f"no per-sample {direction} ranks")
            part = single(ra, rb, _KEYS[direction], lambda r, ks=ks: sum(r["rank"] <= k for k in ks))
            if part.reason:
                return part
            out.strata += part.strata
            out.n_a, out.n_b = out.n_a + part.n_a, out.n_b + part.n_b
        return out
    match = _RECALL.fullmatch(metric) or _RANK.fullmatch(metric) or _MAP.fullmatch(metric)
    if not match:
        return no_test("no per-sample values for this metric")
    direction = "t2a" if metric.startswith("t2a") else "a2t"
    ra, rb = rows_of(a, direction), rows_of(b, direction)
    if ra is None or rb is None:
        return no_test(f"no per-sample {direction} ranks")
    if _MAP.fullmatch(metric):
        k = int(match.group(1))
        return single(ra, rb, _KEYS["t2a"], lambda r: 1.0 / r["rank"] if r["rank"] <= k else 0.0)
    if metric.endswith("_rank"):
        stat: Statistic = "median" if match.group(2) == "median" else "mean"
        return single(ra, rb, _KEYS[direction], lambda r: r["rank"], statistic=stat)
    k = int(match.group(2))
    return single(ra, rb, _KEYS[direction], lambda r: float(r["rank"] <= k))
