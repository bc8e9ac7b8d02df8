"""Audio-text retrieval metrics: recall@k and ranks in both directions (from `metrics.retrieval`) and mAP@10.

mAP@10 is the headline metric of the DCASE language-based audio retrieval task (2022 onwards, task 6b / 8):
every caption is a query with exactly one relevant clip (its own), so average precision at 10 reduces to
1/rank when the clip is in the top 10 and 0 otherwise, averaged over caption queries. Clips may have any number
of captions (AudioCaps has 1 or 5, Clotho 5); each caption counts once.

Ranks follow `metrics.retrieval`: 1-based, ties counted against the model (a clip scoring exactly as high as
the relevant one ranks above it). Directions are named t2a (caption -> audio) and a2t (audio -> caption; the
rank of the clip's best-ranked caption, CLIP convention).
"""

from __future__ import annotations

import numpy as np
import torch

from mmeval.metrics.retrieval import RetrievalRanks, compute_ranks, metrics_from_ranks

_DIRECTIONS = {"t2i": "t2a", "i2t": "a2t"}


def map_at_k(t2a_ranks: np.ndarray, k: int = 10) -> float:
    """DCASE mAP@k over caption queries with one relevant clip each: mean of (1/rank if rank <= k else 0)."""
    ranks = np.asarray(t2a_ranks, dtype=np.float64)
    if ranks.size == 0:
        return float("nan")
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def audio_ranks(audio_emb: torch.Tensor, text_emb: torch.Tensor, owner: list[int]) -> RetrievalRanks:
    """t2a ranks (as `t2i`) of every caption and a2t ranks (as `i2t`) of every clip, chunked (no N x N)."""
    return compute_ranks(audio_emb, text_emb, owner)


def audio_retrieval_metrics(ranks: RetrievalRanks, ks: list[int], map_k: int = 10) -> dict[str, float]:
    """t2a_R@k, a2t_R@k, mean / median ranks, rsum and t2a_mAP@{map_k}; pass a2t ranks of captioned clips only."""
    out = {}
    for name, value in metrics_from_ranks(ranks, ks).items():
        for old, new in _DIRECTIONS.items():
            name = name.replace(old, new)
        out[name] = value
    out[f"t2a_mAP@{map_k}"] = map_at_k(ranks.t2i, map_k)
    return out


def higher_is_better(metric: str) -> bool:
    """Direction of an audio retrieval metric."""
    return not metric.endswith("_rank")
