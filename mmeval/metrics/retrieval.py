"""Image-text retrieval metrics as pure functions over embeddings.

Conventions (those of the CLIP paper and CLIP_benchmark):
- Every caption of an image is a positive for it; an image query has several positives, a text query one.
- recall@k is the fraction of queries with *at least one* positive among the top k candidates
  ("hit rate"), not the fraction of all positives retrieved.
- The rank of a query is the 1-based position of its best-ranked positive. How exact ties between a
  positive and negatives count is a named policy (`TIE_POLICIES`), recorded in the report:
  - `pessimistic` (default): ties count against the model: a negative scoring exactly as high as the best
    positive ranks above it. A model that gives every candidate the same score gets the worst rank.
  - `topk`: CLIP_benchmark's rule for recall@k: a hit when a positive is among the indices that
    `torch.topk(scores, k)` returns, one call per k as CLIP_benchmark makes them, ties broken the way torch
    breaks them (duplicate captions tie exactly). torch may pick different tied items for different k, so
    these hits are kept per k (`RetrievalRanks.hits`) rather than read off a rank. CLIP_benchmark defines
    no rank: mean and median ranks keep the pessimistic rule under both policies.

Ranking runs in chunks of queries against the whole gallery. Each chunk's scores go into one preallocated
buffer whose size comes from a byte budget (`max_chunk_bytes`), so memory is bounded by that budget plus
O(n_queries + n_candidates) bookkeeping, whatever the gallery size: never N x N, never N x N x k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

HIGHER_IS_BETTER = {"R@": True, "mean_rank": False, "median_rank": False, "rsum": True}

# Upper bound on the score buffer of one chunk of queries (the memory bound; a single query always fits).
DEFAULT_MAX_CHUNK_BYTES = 256 * 2**20
# On CPU, a chunk that stays in cache makes the compare-and-count pass over the scores nearly free: with
# 16-d embeddings, 4-8 MiB chunks rank 50k x 50k about 1.9x faster than 256 MiB ones (scripts/bench_ranking.py).
CPU_CACHE_CHUNK_BYTES = 8 * 2**20

TIE_POLICIES = ("pessimistic", "topk")

# Counts are summed in the score dtype; float32 holds every integer up to 2**24 exactly.
_EXACT_FLOAT32_COUNT = 2**24


@dataclass
class RetrievalRanks:
    """Per-query ranks (1-based) of the best positive: one per text (t2i) and one per image (i2t)."""

    t2i: np.ndarray  # shape (n_texts,)
    i2t: np.ndarray  # shape (n_images,)
    # `topk` tie policy only: {"t2i": (n_texts, len(ks)) bool, "i2t": ...} and the ks; else recall@k = rank <= k
    hits: dict[str, np.ndarray] | None = None
    hit_ks: tuple[int, ...] = ()

    def hit(self, direction: str, k: int) -> np.ndarray:
        """Per-query recall@k hits of one direction, under the policy the ranks were computed with."""
        if self.hits is not None and k in self.hit_ks:
            return self.hits[direction][:, self.hit_ks.index(k)]
        return getattr(self, direction) <= k


@dataclass(frozen=True)
class _Positives:
    """Every query's positive candidates, grouped by query (CSR): query q owns pairs ptr[q]:ptr[q + 1].

    `ptr` stays on the CPU so that slicing a chunk needs no device synchronisation; `rows` and `cols`
    live on the scoring device. `one_each` marks the common case of exactly one positive per query
    (every text; every image when each has one caption), which needs no per-query reduction.
    """

    ptr: np.ndarray  # (n_queries + 1,) int64
    rows: torch.Tensor  # (n_pairs,) query of each pair, non-decreasing
    cols: torch.Tensor  # (n_pairs,) candidate of each pair
    one_each: bool


def _positives_of_texts(owner: np.ndarray, device: torch.device) -> _Positives:
    """Text queries: the one positive of text t is image owner[t]."""
    n_texts = len(owner)
    return _Positives(
        ptr=np.arange(n_texts + 1, dtype=np.int64),
        rows=torch.arange(n_texts, device=device),
        cols=torch.as_tensor(owner, dtype=torch.long, device=device),
        one_each=True,
    )


def _positives_of_images(owner: np.ndarray, n_images: int, device: torch.device) -> _Positives:
    """Image queries: the positives of image i are all texts t with owner[t] == i (possibly none)."""
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=n_images)
    ptr = np.zeros(n_images + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return _Positives(
        ptr=ptr,
        rows=torch.as_tensor(owner[order], dtype=torch.long, device=device),
        cols=torch.as_tensor(order, dtype=torch.long, device=device),
        one_each=bool((counts == 1).all()),
    )


def rows_per_chunk(
    n_candidates: int,
    bytes_per_score: int = 4,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    dim: int = 0,
    device: torch.device | str = "cpu",
) -> int:
    """How many queries to score at once against `n_candidates`: never more than fit in `max_chunk_bytes`.

    On an accelerator, as many as fit (fewer, larger kernels). On CPU, a cache-sized block of
    CPU_CACHE_CHUNK_BYTES, but at least `dim` queries, because the matmul re-reads the whole gallery for
    every chunk and needs enough query rows to amortise that when embeddings are wide. At least one query
    per chunk: when a single gallery row exceeds the budget, that row is the memory bound.
    """
    if max_chunk_bytes <= 0:
        raise ValueError(f"max_chunk_bytes must be positive, got {max_chunk_bytes}")
    row_bytes = bytes_per_score * max(1, n_candidates)
    budget_rows = max(1, max_chunk_bytes // row_bytes)
    if torch.device(device).type != "cpu":
        return budget_rows
    return max(1, min(budget_rows, max(CPU_CACHE_CHUNK_BYTES // row_bytes, dim)))


def _score_dtype(*embeddings: torch.Tensor) -> torch.dtype:
    """float32, or float64 if an input is float64: half/bf16 scores would create ties that are not in the model."""
    dtype = torch.float32
    for emb in embeddings:
        dtype = torch.promote_types(dtype, emb.dtype)
    return dtype


def _best_positive(
    scores: torch.Tensor, positives: _Positives, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Score of the best positive of queries start..stop, as a column (chunk, 1), read from `scores` itself
    so that ties are exact; and how many positives tie with it (None when each query has exactly one)."""
    if positives.one_each:
        return scores.gather(1, positives.cols[start:stop, None]), None
    lo, hi = int(positives.ptr[start]), int(positives.ptr[stop])
    rows = positives.rows[lo:hi] - start
    values = scores[rows, positives.cols[lo:hi]]
    best = torch.full((stop - start,), -torch.inf, dtype=scores.dtype, device=scores.device)
    best.scatter_reduce_(0, rows, values, reduce="amax")  # -inf stays for a query without positives
    tied = torch.zeros_like(best).index_add_(0, rows, (values == best[rows]).to(scores.dtype))
    return best[:, None], tied


def _rank_chunk(scores: torch.Tensor, positives: _Positives, start: int, stop: int) -> torch.Tensor:
    """1-based rank of the best positive of queries start..stop, given their scores (chunk, n_candidates).

    rank = 1 + #negatives scoring >= the best positive, computed as #candidates >= best minus the
    positives tied with best (best itself among them), so no mask of positives is ever built.
    `scores` is overwritten in place, to keep memory at one buffer.
    """
    best, tied = _best_positive(scores, positives, start, stop)
    at_or_above = torch.ge(scores, best, out=scores)  # 1.0 at or above the best positive, else 0.0
    exact = torch.float64 if scores.shape[1] >= _EXACT_FLOAT32_COUNT else scores.dtype
    count = at_or_above.sum(1, dtype=exact)
    if tied is None:  # the positive itself is among the counted: it is the "+ 1"
        return count.long()
    return (count - tied).long() + 1


def _topk_hits(scores: torch.Tensor, positives: _Positives, start: int, stop: int, ks: Sequence[int]) -> torch.Tensor:
    """(chunk, len(ks)) whether a positive is among torch.topk(scores, k)'s indices, one call per k (CLIP_benchmark)."""
    if positives.one_each:
        rows, cols = torch.arange(stop - start, device=scores.device), positives.cols[start:stop]
    else:
        lo, hi = int(positives.ptr[start]), int(positives.ptr[stop])
        rows, cols = positives.rows[lo:hi] - start, positives.cols[lo:hi]
    out = torch.zeros(stop - start, len(ks), dtype=torch.bool, device=scores.device)
    for j, k in enumerate(ks):
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1).indices
        found = (top[rows] == cols[:, None]).any(1)  # per positive pair: among its query's top k
        out[:, j].index_put_((rows,), found, accumulate=True)
    return out


def _rank_direction(queries: torch.Tensor, gallery: torch.Tensor, positives: _Positives, chunk: int,
                    ks: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ranks of every query over the gallery, `chunk` queries at a time, on the device of the inputs; and
    with `ks` (the `topk` tie policy) the torch.topk hits at each k."""
    n_queries, n_candidates = queries.shape[0], gallery.shape[0]
    ranks = torch.empty(n_queries, dtype=torch.long, device=queries.device)
    hits = None if ks is None else torch.zeros(n_queries, len(ks), dtype=torch.bool, device=queries.device)
    buffer = torch.empty(min(chunk, n_queries), n_candidates, dtype=queries.dtype, device=queries.device)
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        scores = torch.mm(queries[start:stop], gallery.T, out=buffer[: stop - start])
        if hits is not None:  # before _rank_chunk overwrites the scores
            hits[start:stop] = _topk_hits(scores, positives, start, stop, ks)
        ranks[start:stop] = _rank_chunk(scores, positives, start, stop)
    return ranks, hits


def compute_ranks(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_image_index: torch.Tensor | np.ndarray | list[int],
    chunk_size: int | None = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    tie_policy: str = "pessimistic",
    ks: Sequence[int] = (1, 5, 10),
) -> RetrievalRanks:
    """Rank of the best positive for every text query (over images) and every image query (over texts).

    Embeddings are compared by dot product; pass L2-normalised embeddings for cosine similarity.
    Scores are computed in float32 (float64 if an input is float64), also for half/bf16 embeddings,
    which are converted once: low-precision scores would invent ties. Everything runs on the device of
    `image_emb` (CUDA included); the ranks come back to the CPU once, at the end.

    Memory: each direction allocates one score buffer of `chunk_size` queries x the gallery, never more
    than `max_chunk_bytes` unless `chunk_size` is given (see `rows_per_chunk` for the default, which
    is smaller on CPU, for speed), plus O(n_images + n_texts) of indices and ranks and the matmul's own
    workspace. No n_images x n_texts matrix is ever formed.
    An image without a caption gets rank n_texts + 1 (it has no positive); drop it before averaging.
    `tie_policy` is one of TIE_POLICIES (module docstring); `topk` also keeps torch.topk's hits at each k of `ks`.
    """
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"unknown tie policy {tie_policy!r} (expected one of {TIE_POLICIES})")
    hit_ks = tuple(ks) if tie_policy == "topk" else None
    device = image_emb.device
    owner = np.asarray(torch.as_tensor(text_image_index).cpu(), dtype=np.int64).reshape(-1)
    n_images, n_texts = image_emb.shape[0], text_emb.shape[0]
    if owner.shape[0] != n_texts:
        raise ValueError(f"text_image_index has {owner.shape[0]} entries for {n_texts} texts")
    if n_texts and (owner.min() < 0 or owner.max() >= n_images):
        raise ValueError("text_image_index points outside the image list")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")

    dtype = _score_dtype(image_emb, text_emb)
    images = image_emb.to(dtype)
    texts = text_emb.to(device=device, dtype=dtype)
    bytes_per_score = torch.finfo(dtype).bits // 8

    dim = images.shape[1]
    t2i, t2i_hits = _rank_direction(
        texts, images, _positives_of_texts(owner, device),
        chunk_size or rows_per_chunk(n_images, bytes_per_score, max_chunk_bytes, dim, device), hit_ks,
    )
    i2t, i2t_hits = _rank_direction(
        images, texts, _positives_of_images(owner, n_images, device),
        chunk_size or rows_per_chunk(n_texts, bytes_per_score, max_chunk_bytes, dim, device), hit_ks,
    )
    both = torch.cat([t2i, i2t]).cpu().numpy()  # one device-to-host copy
    ranks = RetrievalRanks(t2i=both[:n_texts], i2t=both[n_texts:])
    if hit_ks is not None:
        ranks.hits, ranks.hit_ks = {"t2i": t2i_hits.cpu().numpy(), "i2t": i2t_hits.cpu().numpy()}, hit_ks
    return ranks


def metrics_from_ranks(ranks: RetrievalRanks, ks: list[int] | tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """recall@k, mean and median rank in each direction, and rsum (the sum of all recall@k, 0-1 scale).

    An image with no caption has no positive: its i2t rank is undefined, so such queries must be
    removed before ranking (the benchmark does this).
    """
    out: dict[str, float] = {}
    for direction in ("t2i", "i2t"):
        r = getattr(ranks, direction)
        for k in ks:
            out[f"{direction}_R@{k}"] = float(np.mean(ranks.hit(direction, k))) if r.size else float("nan")
        out[f"{direction}_mean_rank"] = float(np.mean(r)) if r.size else float("nan")
        out[f"{direction}_median_rank"] = float(np.median(r)) if r.size else float("nan")
    out["rsum"] = float(sum(out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks))
    return out


def saturated_recall_warnings(ks: list[int] | tuple[int, ...], n_images: int, n_texts: int) -> list[str]:
    """One warning per recall@k that is 1.0 whatever the model: k at least the gallery size (t2i ranks the
    n_images images, i2t the n_texts texts; a rank is never above its gallery size). Worded as zero-shot's
    top-5 warning with 5 classes or fewer."""
    out = []
    for direction, gallery, what, within in (("t2i", n_images, "images", "every caption's image is"),
                                             ("i2t", n_texts, "texts", "every image has a caption")):
        out += [f"{direction}_R@{k}: only {gallery} {what}, so {within} within the top {k} ({direction}_R@{k} = 1.0)"
                for k in ks if k >= gallery]
    return out


def higher_is_better(metric: str) -> bool:
    for marker, better in HIGHER_IS_BETTER.items():
        if marker in metric:
            return better
    raise KeyError(metric)


