"""CIDEr-D as pycocoevalcap 1.2's `Cider` computes it, vectorised over n-gram tables.

pycocoevalcap's definition (n = 1..4, sigma = 6):
- document frequency df(g): the number of images of the *evaluated set* whose references contain n-gram g;
  idf(g) = log(N) - log(max(1, df(g))) with N the number of images in the set (candidate n-grams absent from every
  reference get idf = log(N));
- every caption is a tf-idf vector per order n; similarity to one reference = sum over the candidate's n-grams of
  min(w_cand, w_ref) * w_ref (the candidate weight is clipped by the reference's), divided by both norms (when
  both are non-zero), times a Gaussian length penalty exp(-delta^2 / (2 sigma^2)), where delta is the difference
  of the two captions' *bigram counts* (pycocoevalcap counts lengths that way: len - 1, or 0 for < 2 words);
- per image: the mean over n of the similarities summed over references, divided by the number of references,
  times 10; the corpus score is the mean over images.

Consequences worth knowing: a set of one image scores 0 (idf = log 1 - log 1 = 0 for every n-gram), small sets
are dominated by idf noise, and an image's score changes with the other images in the set.

Subsets (`cider_from_stats(stats, indices)`): with idf="subset" (default) df and N are recomputed over the
subset, as pycocoevalcap run on just those images would (a repeated index counts as another image, so a
bootstrap resample behaves like a corpus holding copies); idf="corpus" keeps the full set's idf and averages
the stored per-image scores, which is cheaper but is not what pycocoevalcap would report for the subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmeval.metrics.caption.bleu import MAX_N, EncodedCaptions, OrderTable, encode_captions, ngram_tables

SIGMA = 6.0


@dataclass
class CiderStats:
    """N-gram tables of a set of images, and their per-image CIDEr-D with the whole set's idf."""

    n_images: int
    cand_len: np.ndarray  # (n_images,) words per candidate
    ref_len: np.ndarray  # (n_refs,) words per reference
    ref_image: np.ndarray  # (n_refs,) image of each reference
    n_refs: np.ndarray  # (n_images,) references per image
    tables: list[OrderTable]
    per_image: np.ndarray  # (n_images,) CIDEr-D of each image with the idf of the whole set
    sigma: float = SIGMA


def _order_similarity(stats: CiderStats, t: OrderTable, weight: np.ndarray, log_n: float) -> np.ndarray:
    """(n_refs,) cosine similarity of one order's tf-idf vectors, candidate weights clipped by the reference's."""
    g_keep = weight[t.g_image] > 0
    df = np.bincount(t.g_gram[g_keep], weights=weight[t.g_image[g_keep]], minlength=int(t.g_gram.max(initial=-1)) + 1)
    idf = log_n - np.log(np.maximum(1.0, df))
    c_keep = weight[t.c_image] > 0
    c_gram = t.c_gram[c_keep]
    w_cand = t.c_count[c_keep] * np.where(c_gram >= 0, idf[c_gram], log_n)  # unseen n-gram: df 0, idf log(N)
    norm_cand = np.sqrt(np.bincount(t.c_image[c_keep], weights=w_cand * w_cand, minlength=stats.n_images))
    r_keep = weight[t.r_image] > 0
    r_ref, r_count, r_idf = t.r_ref[r_keep], t.r_count[r_keep], idf[t.r_gram[r_keep]]
    w_ref = r_count * r_idf
    n_refs = len(stats.ref_image)
    norm_ref = np.sqrt(np.bincount(r_ref, weights=w_ref * w_ref, minlength=n_refs))
    num = np.bincount(r_ref, weights=(np.minimum(t.r_cand[r_keep], r_count) * r_idf) * w_ref, minlength=n_refs)
    denom = norm_cand[stats.ref_image] * norm_ref
    return np.where(denom != 0, num / np.where(denom != 0, denom, 1.0), num)


def _per_image(stats: CiderStats, weight: np.ndarray) -> np.ndarray:
    """Per-image CIDEr-D over the images with weight > 0, each counted `weight` times as a document."""
    log_n = np.log(float(weight.sum()))
    sims = np.stack([_order_similarity(stats, t, weight, log_n) for t in stats.tables], axis=1)
    # pycocoevalcap's "length" of a caption is its number of bigrams
    delta = np.maximum(stats.cand_len - 1, 0)[stats.ref_image] - np.maximum(stats.ref_len - 1, 0)
    sims *= (np.e ** (-(delta.astype(np.float64) ** 2) / (2 * stats.sigma**2)))[:, None]
    per_order = np.stack(
        [np.bincount(stats.ref_image, weights=sims[:, k], minlength=stats.n_images) for k in range(sims.shape[1])], 1
    )
    return per_order.mean(axis=1) / stats.n_refs * 10.0


def cider_stats_from_tables(enc: EncodedCaptions, tables: list[OrderTable], sigma: float = SIGMA) -> CiderStats:
    """CIDEr-D statistics (and per-image scores over the whole set) from n-gram tables shared with BLEU."""
    stats = CiderStats(
        n_images=enc.n_images, cand_len=enc.cand_len, ref_len=enc.ref_len, ref_image=enc.ref_image,
        n_refs=np.diff(enc.ref_offsets), tables=tables, per_image=np.zeros(enc.n_images), sigma=sigma,
    )
    if enc.n_images:
        stats.per_image = _per_image(stats, np.ones(enc.n_images))
    return stats


def cider_stats(candidates: Sequence[str], references: Sequence[Sequence[str]], sigma: float = SIGMA) -> CiderStats:
    """CIDEr-D statistics of tokenized candidates (one per image) against their tokenized references."""
    enc = encode_captions(candidates, references)
    return cider_stats_from_tables(enc, ngram_tables(enc, MAX_N), sigma)


def _weights(n_images: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("CIDEr of an empty set of images is undefined")
    return np.bincount(idx, minlength=n_images).astype(np.float64)


def cider_per_image(stats: CiderStats, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Per-image CIDEr-D; with `indices`, of those images (in that order) with idf recomputed over them."""
    if indices is None:
        return stats.per_image
    return _per_image(stats, _weights(stats.n_images, indices))[np.asarray(indices, dtype=np.int64)]


def cider_from_stats(
    stats: CiderStats, indices: Sequence[int] | np.ndarray | None = None, idf: str = "subset"
) -> float:
    """Corpus CIDEr-D of all images or of `indices` (repeats allowed); idf: "subset" or "corpus" (module docs)."""
    if idf not in ("subset", "corpus"):
        raise ValueError(f"idf must be 'subset' or 'corpus', not {idf!r}")
    if indices is None:
        return float(np.mean(stats.per_image))
    if idf == "corpus":
        return float(np.mean(stats.per_image[np.asarray(indices, dtype=np.int64)]))
    weight = _weights(stats.n_images, indices)
    per_image = _per_image(stats, weight)
    return float(np.sum(per_image * weight) / weight.sum())
