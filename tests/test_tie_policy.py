"""Retrieval tie policies: `topk` equals CLIP_benchmark's torch.topk recall on a fixture full of exact ties
(duplicate captions and images), `pessimistic` counts every tie against the model; both are in the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k  # the peer's own function

from mmeval.metrics.retrieval import compute_ranks, metrics_from_ranks

KS = [1, 2, 5]


def tie_fixture(seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """12 images, 30 captions, embeddings on a 0/1 grid of 3 dimensions: dot products tie exactly and often
    (duplicate captions of different images, duplicate images)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 2, size=(12, 3)).astype(np.float32))
    texts = torch.from_numpy(rng.integers(0, 2, size=(30, 3)).astype(np.float32))
    owner = np.concatenate([np.arange(12), rng.integers(0, 12, size=18)])
    return images, texts, owner


def clip_benchmark_recalls(images: torch.Tensor, texts: torch.Tensor, owner: np.ndarray) -> dict[str, float]:
    """CLIP_benchmark's zeroshot_retrieval.evaluate, from the score matrix on: (recall_at_k > 0).mean()."""
    scores = texts @ images.T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(owner)), torch.as_tensor(owner)] = True
    out = {}
    for k in KS:
        out[f"t2i_R@{k}"] = (recall_at_k(scores, positive, k) > 0).float().mean().item()
        out[f"i2t_R@{k}"] = (recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_topk_policy_equals_clip_benchmark_on_ties(seed: int) -> None:
    images, texts, owner = tie_fixture(seed)
    peer = clip_benchmark_recalls(images, texts, owner)
    for chunk in (None, 5):
        ours = metrics_from_ranks(compute_ranks(images, texts, owner, chunk_size=chunk, tie_policy="topk", ks=KS), KS)
        assert {name: ours[name] for name in peer} == pytest.approx(peer, abs=1e-7)


def test_pessimistic_policy_counts_ties_against_the_model_and_differs_from_topk() -> None:
    images, texts, owner = tie_fixture(0)
    scores = (texts @ images.T).numpy()
    # brute force: 1 + #negatives scoring >= the best positive
    t2i = [1 + sum(scores[t, j] >= scores[t, o] for j in range(12) if j != o) for t, o in enumerate(owner)]
    i2t = []
    for i in range(12):
        mine = owner == i
        best = scores[mine, i].max()
        i2t.append(1 + int((scores[~mine, i] >= best).sum()))
    ranks = compute_ranks(images, texts, owner)
    assert ranks.t2i.tolist() == t2i and ranks.i2t.tolist() == i2t
    pessimistic = metrics_from_ranks(ranks, KS)
    topk = metrics_from_ranks(compute_ranks(images, texts, owner, tie_policy="topk", ks=KS), KS)
    assert pessimistic["t2i_R@1"] == 0.0 and topk["t2i_R@1"] == pytest.approx(4 / 30)  # CLIP_benchmark's value
    assert pessimistic["rsum"] < topk["rsum"]
    assert all(pessimistic[n] <= topk[n] for n in pessimistic if "R@" in n)


def test_policies_agree_without_ties() -> None:
    rng = np.random.default_rng(1)
    images, texts = torch.from_numpy(rng.normal(size=(15, 8))), torch.from_numpy(rng.normal(size=(40, 8)))
    owner = np.concatenate([np.arange(15), rng.integers(0, 15, size=25)])
    a = compute_ranks(images, texts, owner)
    b = compute_ranks(images, texts, owner, tie_policy="topk", ks=[10])
    assert a.t2i.tolist() == b.t2i.tolist() and a.i2t.tolist() == b.i2t.tolist()


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="pessimistic"):
        compute_ranks(torch.zeros(2, 3), torch.zeros(2, 3), [0, 1], tie_policy="optimistic")
