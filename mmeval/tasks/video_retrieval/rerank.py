"""Dual-softmax re-ranking (Cheng et al. 2021, "Improving video-text retrieval by multi-stream corpus alignment
and dual softmax loss"), inverted-softmax re-ranking (Bogolin et al. 2022, QB-Norm's inverted softmax, with the
test queries as the query bank) and ranks from a full score matrix.

Inverted softmax replaces each similarity by its softmax across the other side's queries:
s'[t, v] = softmax_t(T * s[:, v])[t] for text -> video (a video that every text likes, a "hub", is damped).

DSL multiplies each similarity by a softmax prior taken across the *other* side's queries: for text -> video,
s'[t, v] = s[t, v] * softmax_t(T * s[:, v]). The prior looks at every test query at once, so the re-ranked
numbers use the test set's pairing and are not comparable with plain retrieval; they are reported separately,
prefixed `dsl_`, and only when asked for. Written here because no maintained library ships it; the full
(n_texts, n_videos) matrix is built, which test sets of a few thousand captions afford.
"""

from __future__ import annotations

import numpy as np
import torch

from mmeval.metrics.retrieval import RetrievalRanks


def dual_softmax(scores: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """`scores` (n_texts, n_videos) times the softmax of `temperature * scores` along `dim` (0: over texts,
    the text -> video prior; 1: over videos, the video -> text prior)."""
    return scores * torch.softmax(temperature * scores, dim=dim)


def inverted_softmax(scores: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """The softmax of `temperature * scores` along `dim` (0: over texts, for text -> video; 1: over videos)."""
    return torch.softmax(temperature * scores, dim=dim)


RERANKERS = {"dual_softmax": (dual_softmax, "dsl_"), "inverted_softmax": (inverted_softmax, "isn_")}


def ranks_from_scores(t2v_scores: torch.Tensor, v2t_scores: torch.Tensor, owner: list[int]) -> RetrievalRanks:
    """1-based rank of each text's video in its row of `t2v_scores`, and of each video's best caption in its
    column of `v2t_scores`; ties count against the model, as `metrics.retrieval.compute_ranks`."""
    owner_t = torch.as_tensor(owner, dtype=torch.long)
    rows = torch.arange(len(owner))
    own = t2v_scores[rows, owner_t]
    t2v = (t2v_scores >= own[:, None]).sum(dim=1)
    n_videos = t2v_scores.shape[1]
    v2t = np.zeros(n_videos, dtype=np.int64)
    for video in range(n_videos):
        column = v2t_scores[:, video]
        mine = column[owner_t == video]
        if mine.numel() == 0:
            v2t[video] = len(owner) + 1
            continue
        best = mine.max()
        v2t[video] = int((column >= best).sum() - (mine == best).sum() + 1)
    return RetrievalRanks(t2i=t2v.numpy(), i2t=v2t)
