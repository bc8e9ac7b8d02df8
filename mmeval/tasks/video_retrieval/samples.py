"""Per-sample values of the video retrieval metrics, for paired tests (compare, gate).

Matched by (text_index, video_id) for t2v and video_id for v2t. R@k = hit (rank <= k); mean / median rank = rank;
rsum = each query's hits summed over k, two strata (t2v and v2t). Re-ranked dsl_ / isn_ metrics get no test (their
per-query ranks are not kept). Recall and rsum pair by video (a video's captions and its own v2t query flip and
are drawn together), as the bootstrap resamples videos; mean / median rank stay per row.
"""

from __future__ import annotations

from mmeval.reporting.sample_values import PairedValues, video_id
from mmeval.tasks.retrieval.samples import ranking_paired_values


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    return ranking_paired_values(metric, a, b, names, ("t2v", "v2t"), "video_id", cluster=video_id)
