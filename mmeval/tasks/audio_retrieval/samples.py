"""Per-sample values of the audio retrieval metrics, for paired tests (compare, gate).

Matched by (text_index, clip_id) for t2a and clip_id for a2t. R@k = hit (rank <= k); mean / median rank = rank;
t2a mAP@k = 1/rank if rank <= k else 0 per caption (its mean is the metric); rsum = each query's hits summed over
k, one stratum per direction. Recall, rsum and mAP pair by clip (a clip's captions and its own a2t query flip
and are drawn together), as the bootstrap resamples clips; mean / median rank stay per row.
"""

from __future__ import annotations

import re

from mmeval.reporting.sample_values import ClusterKey, PairedValues, no_test, rows_of, single
from mmeval.tasks.retrieval.samples import ranking_paired_values

_MAP = re.compile(r"t2a_mAP@(\d+)")
CLIP = ClusterKey("clip_id", "clips")


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    match = _MAP.fullmatch(metric)
    if match is None:
        return ranking_paired_values(metric, a, b, names, ("t2a", "a2t"), "clip_id", cluster=CLIP)
    ra, rb = rows_of(a, "t2a"), rows_of(b, "t2a")
    if ra is None or rb is None:
        return no_test("no per-sample t2a ranks")
    k = int(match.group(1))
    return single(ra, rb, lambda r: (r.get("text_index"), r.get("clip_id")),
                  lambda r: 1.0 / r["rank"] if r["rank"] <= k else 0.0, cluster=CLIP)
