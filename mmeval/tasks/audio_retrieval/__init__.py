"""Audio-text retrieval: recall@k, mean / median rank in both directions, rsum, and DCASE's t2a mAP@10."""

from __future__ import annotations

import re

from mmeval.tasks.audio_retrieval.config import AudioRetrievalConfig
from mmeval.tasks.spec import TaskSpec

METRICS = {
    "t2a_R@k": (True, "caption -> audio: fraction of captions whose clip is in the top k"),
    "a2t_R@k": (True, "audio -> caption: fraction of clips with at least one own caption in the top k"),
    "t2a_mAP@k": (True, "DCASE language-based audio retrieval: mean over captions of 1/rank if rank <= k else 0"),
    "t2a_mean_rank": (False, "mean 1-based rank of the caption's clip"),
    "t2a_median_rank": (False, "median 1-based rank of the caption's clip"),
    "a2t_mean_rank": (False, "mean 1-based rank of the clip's best-ranked caption"),
    "a2t_median_rank": (False, "median 1-based rank of the clip's best-ranked caption"),
    "rsum": (True, "sum of the recall@k values of both directions (0-1 scale each)"),
}


def headline(names: list[str]) -> list[str]:
    """mAP@10 (DCASE's headline), R@ the smallest k in both directions."""
    ks = sorted(int(m.group(1)) for name in names if (m := re.fullmatch(r"t2a_R@(\d+)", name)))
    maps = [name for name in names if name.startswith("t2a_mAP@")]
    wanted = [*maps[:1], *([f"t2a_R@{ks[0]}", f"a2t_R@{ks[0]}"] if ks else [])]
    return [name for name in wanted if name in names]


TASK = TaskSpec(
    name="audio_retrieval",
    summary="audio-text retrieval: recall@k, ranks, DCASE t2a mAP@10 (any number of captions per clip)",
    needs="audio_text_encoder",
    config=AudioRetrievalConfig,
    formats=("shapes_audio", "audiocaps", "clotho", "hf_audio"),
    reads="audio captions",
    metrics=METRICS,
    run="mmeval.tasks.audio_retrieval.run:run",
    load_data="mmeval.data.audio_formats:load_captioned_audio",
    headline=headline,
    paired="mmeval.tasks.audio_retrieval.samples:paired_values",
    html="mmeval.tasks.audio_retrieval.html:section",
    perturbs=("audio", "text"),
)
