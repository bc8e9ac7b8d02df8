"""Per-sample values of the video retrieval metrics, for paired tests (compare, gate).

Matched by (text_index, video_id) for t2v and video_id for v2t. R@k = hit (rank <= k); mean / median rank = rank;
rsum = each query's hits summed over k, two strata (t2v and v2t). Re-ranked dsl_ / isn_ metrics get no test (their
per-query ranks are not kept).
"""

from __future__ import annotations

import re

from mmeval.metrics.stats.paired import Statistic
from mmeval.reporting.sample_values import PairedValues, no_test, rows_of, single

_RECALL = re.compile(r"(t2v|v2t)_R@(\d+)")
_RANK = re.compile(r"(t2v|v2t)_(mean|median)_rank")
_KEYS = {"t2v": lambda r: (r.get("text_index"), r.get("video_id")), "v2t": lambda r: r.get("video_id")}


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    if metric == "rsum":
        out = PairedValues()
        for direction in ("t2v", "v2t"):
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
    match = _RECALL.fullmatch(metric) or _RANK.fullmatch(metric)
    if not match:
        return no_test("no per-sample values for this metric")
    direction = match.group(1)
    ra, rb = rows_of(a, direction), rows_of(b, direction)
    if ra is None or rb is None:
        return no_test(f"no per-sample {direction} ranks")
    if metric.endswith("_rank"):
        stat: Statistic = "median" if match.group(2) == "median" else "mean"
        return single(ra, rb, _KEYS[direction], lambda r: r["rank"], statistic=stat)
    k = int(match.group(2))
    return single(ra, rb, _KEYS[direction], lambda r: float(r["rank"] <= k))
