"""Text-video retrieval: recall@k, mean / median rank in both directions, rsum; optional dual-softmax re-ranking."""

from __future__ import annotations

import re

from mmeval.tasks.spec import TaskSpec
from mmeval.tasks.video_retrieval.config import VideoRetrievalConfig

METRICS = {
    "t2v_R@k": (True, "text -> video: fraction of captions whose video is in the top k"),
    "v2t_R@k": (True, "video -> text: fraction of videos with at least one own caption in the top k"),
    "t2v_mean_rank": (False, "mean 1-based rank of the caption's video"),
    "t2v_median_rank": (False, "median 1-based rank of the caption's video"),
    "v2t_mean_rank": (False, "mean 1-based rank of the video's best-ranked caption"),
    "v2t_median_rank": (False, "median 1-based rank of the video's best-ranked caption"),
    "rsum": (True, "sum of the six recall@k values (0-1 scale each, so at most 6)"),
    "dsl_t2v_R@k": (True, ("rerank: dual_softmax only: t2v R@k after dual-softmax re-ranking (uses the test set's "
                           "pairing: every query at once)")),
    "dsl_v2t_R@k": (True, "rerank: dual_softmax only: v2t R@k after dual-softmax re-ranking"),
    "dsl_rsum": (True, "rerank: dual_softmax only: rsum after re-ranking"),
    "isn_t2v_R@k": (True, ("rerank: inverted_softmax only: t2v R@k after inverted-softmax re-ranking (the test "
                           "queries as the query bank)")),
    "isn_v2t_R@k": (True, "rerank: inverted_softmax only: v2t R@k after inverted-softmax re-ranking"),
    "isn_rsum": (True, "rerank: inverted_softmax only: rsum after re-ranking"),
}


def headline(names: list[str]) -> list[str]:
    """R@ the smallest k, both directions, and rsum (never the re-ranked ones)."""
    ks = sorted(int(m.group(1)) for name in names if (m := re.fullmatch(r"t2v_R@(\d+)", name)))
    wanted = [f"t2v_R@{ks[0]}", f"v2t_R@{ks[0]}", "rsum"] if ks else ["rsum"]
    return [name for name in wanted if name in names]


TASK = TaskSpec(
    name="video_retrieval",
    summary="text-video retrieval: recall@k, mean / median rank both ways; optional dual-softmax re-ranking",
    needs="video_text_encoder",
    config=VideoRetrievalConfig,
    formats=("msrvtt", "msvd", "didemo", "video_manifest", "frame_folders", "hf_video", "shapes_video"),
    reads="video captions",
    metrics=METRICS,
    run="mmeval.tasks.video_retrieval.run:run",
    load_data="mmeval.tasks.video_block:load_captions",
    headline=headline,
    paired="mmeval.tasks.video_retrieval.samples:paired_values",
    html="mmeval.tasks.video_retrieval.html:section",
    perturbs=("video", "text"),  # robustness: video cells perturb the sampled frames, text cells the caption queries
)
