"""Image-text retrieval metrics as pure functions over embeddings.

Conventions (those of the CLIP paper and CLIP_benchmark):
- Every caption of an image is a positive for it; an image query has several positives, a text query one.
- recall@k is the fraction of queries with *at least one* positive among the top k candidates
  ("hit rate"), not the fraction of all positives retrieved.
- The rank of a query is the 1-based position of its best-ranked positive. Ties are counted against the
  model: a negative scoring exactly as high as the best positive ranks above it. A model that gives every
  candidate the same score therefore gets the worst rank, not a perfect one.

Ranking is done in chunks of queries, so memory is O(chunk x N) and never N x N x k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

HIGHER_IS_BETTER = {"R@": True, "mean_rank": False, "median_rank": False, "rsum": True}


@dataclass
class RetrievalRanks:
    """Per-query ranks (1-based) of the best positive: one per text (t2i) and one per image (i2t)."""

    t2i: np.ndarray  # shape (n_texts,)
    i2t: np.ndarray  # shape (n_images,)


def _default_chunk(n_candidates: int) -> int:
    # About 64 MB of float32 scores per chunk, whatever the gallery size.
    return int(max(1, min(4096, (16 * 1024 * 1024) // max(1, n_candidates))))


def compute_ranks(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_image_index: torch.Tensor | np.ndarray | list[int],
    chunk_size: int | None = None,
) -> RetrievalRanks:
    """Rank of the best positive for every text query (over images) and every image query (over texts).

    Embeddings are compared by dot product; pass L2-normalised embeddings for cosine similarity.
    """
    device = image_emb.device
    owner = torch.as_tensor(np.asarray(text_image_index), dtype=torch.long, device=device)
    n_images, n_texts = image_emb.shape[0], text_emb.shape[0]
    if owner.shape[0] != n_texts:
        raise ValueError(f"text_image_index has {owner.shape[0]} entries for {n_texts} texts")
    if n_texts and (owner.min() < 0 or owner.max() >= n_images):
        raise ValueError("text_image_index points outside the image list")

    t2i = torch.empty(n_texts, dtype=torch.long)
    step = chunk_size or _default_chunk(n_images)
    for start in range(0, n_texts, step):
        scores = text_emb[start : start + step] @ image_emb.T  # (chunk, n_images)
        positive = scores.gather(1, owner[start : start + step, None])
        # >= counts the positive itself once, and every tied negative against the model.
        t2i[start : start + step] = (scores >= positive).sum(1).cpu()

    i2t = torch.empty(n_images, dtype=torch.long)
    step = chunk_size or _default_chunk(n_texts)
    for start in range(0, n_images, step):
        stop = min(start + step, n_images)
        scores = image_emb[start:stop] @ text_emb.T  # (chunk, n_texts)
        is_positive = owner[None, :] == torch.arange(start, stop, device=device)[:, None]
        best_positive = scores.masked_fill(~is_positive, -torch.inf).amax(1, keepdim=True)
        negatives_above = (scores.masked_fill(is_positive, -torch.inf) >= best_positive).sum(1)
        i2t[start:stop] = (negatives_above + 1).cpu()
    return RetrievalRanks(t2i=t2i.numpy(), i2t=i2t.numpy())


def metrics_from_ranks(ranks: RetrievalRanks, ks: list[int] | tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """recall@k, mean and median rank in each direction, and rsum (the sum of all recall@k, 0-1 scale).

    An image with no caption has no positive: its i2t rank is undefined, so such queries must be
    removed before ranking (the benchmark does this).
    """
    out: dict[str, float] = {}
    for direction in ("t2i", "i2t"):
        r = getattr(ranks, direction)
        for k in ks:
            out[f"{direction}_R@{k}"] = float(np.mean(r <= k)) if r.size else float("nan")
        out[f"{direction}_mean_rank"] = float(np.mean(r)) if r.size else float("nan")
        out[f"{direction}_median_rank"] = float(np.median(r)) if r.size else float("nan")
    out["rsum"] = float(sum(out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks))
    return out


def higher_is_better(metric: str) -> bool:
    for marker, better in HIGHER_IS_BETTER.items():
        if marker in metric:
            return better
    raise KeyError(metric)


METRIC_DOCS: dict[str, tuple[bool, str]] = {
    "t2i_R@k": (True, "text -> image: fraction of captions whose image is in the top k"),
    "i2t_R@k": (True, "image -> text: fraction of images with at least one own caption in the top k"),
    "t2i_mean_rank": (False, "mean 1-based rank of the caption's image"),
    "t2i_median_rank": (False, "median 1-based rank of the caption's image"),
    "i2t_mean_rank": (False, "mean 1-based rank of the image's best-ranked caption"),
    "i2t_median_rank": (False, "median 1-based rank of the image's best-ranked caption"),
    "rsum": (True, "sum of the six recall@k values (0-1 scale each, so at most 6)"),
}
