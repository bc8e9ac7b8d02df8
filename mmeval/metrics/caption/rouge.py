"""ROUGE_L as pycocoevalcap 1.2's `Rouge` computes it, with a bit-parallel LCS vectorised over all caption pairs.

pycocoevalcap's definition: per image, the longest common subsequence (LCS) of tokens between the candidate and
each reference gives precision LCS / len(candidate) and recall LCS / len(reference); with P and R the *maxima* over
references (possibly from different references), the image scores (1 + b^2) P R / (R + b^2 P), b = 1.2, or 0 when
P or R is 0; the corpus score is the mean over images, so a subset's score is the mean of its images' scores.

Captions are split on single spaces (`str.split(" ")`, unlike BLEU and CIDEr): an empty caption is one empty
token, so an empty candidate scores 1 against an empty reference and 0 otherwise.

The LCS is Hyyro's bit-vector algorithm: with the candidate's token positions as bits of a 64-bit word, each
reference token updates every (candidate, reference) pair at once in numpy. Candidates longer than 64 tokens
and captions that are not single-spaced go through the same algorithm on Python integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmeval.metrics.caption.bleu import EncodedCaptions, encode_captions

BETA = 1.2
_WORD_BITS = 64


@dataclass
class RougeStats:
    """Per-image ROUGE_L (with the best precision and recall behind it); a subset's score is their mean."""

    per_image: np.ndarray  # (n_images,)
    precision: np.ndarray  # (n_images,) max over references of LCS / len(candidate)
    recall: np.ndarray  # (n_images,) max over references of LCS / len(reference)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, any length)."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for tok in a:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _f_score(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta**2
    ok = (precision != 0) & (recall != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = ((1 + b2) * precision * recall) / (recall + b2 * precision)
    return np.where(ok, score, 0.0)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat token positions of the sentences that start at `starts` and have `lengths` tokens."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)


def _lcs_vectorised(enc: EncodedCaptions, refs: np.ndarray) -> np.ndarray:
    """LCS of each listed reference with its image's candidate (candidates of <= 64 tokens)."""
    n_img, lengths = enc.n_images, enc.lengths
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    images = np.unique(enc.ref_image[refs])
    # bit masks of each (image, token) over the candidate's positions
    c_len = lengths[images]
    c_pos = _positions(starts[images], c_len)
    c_img = np.repeat(images, c_len)
    c_bit = np.left_shift(np.uint64(1), (c_pos - starts[c_img]).astype(np.uint64))
    key = c_img * enc.vocab_size + enc.ids[c_pos]
    order = np.argsort(key, kind="stable")
    key, c_bit = key[order], c_bit[order]
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    keys, masks = key[first], np.bitwise_or.reduceat(c_bit, first)
    # the mask of every reference position: its token's positions in the image's candidate
    r_len = lengths[n_img + refs]
    r_pos = _positions(starts[n_img + refs], r_len)
    k = np.repeat(enc.ref_image[refs], r_len) * enc.vocab_size + enc.ids[r_pos]
    at = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
    pos_mask = np.zeros(len(enc.ids), dtype=np.uint64)
    pos_mask[r_pos] = np.where(keys[at] == k, masks[at], np.uint64(0))
    # references longest first, so those still running at step j are a prefix
    by_len = np.argsort(-r_len, kind="stable")
    neg_len = -r_len[by_len]
    r_start = starts[n_img + refs[by_len]]
    v = np.full(len(refs), np.iinfo(np.uint64).max, dtype=np.uint64)
    for j in range(int(-neg_len[0]) if len(refs) else 0):
        active = int(np.searchsorted(neg_len, -j, side="left"))  # references longer than j
        va = v[:active]
        u = va & pos_mask[r_start[:active] + j]
        v[:active] = (va + u) | (va - u)
    lc = lengths[enc.ref_image[refs[by_len]]].astype(np.uint64)
    low = np.where(lc >= _WORD_BITS, np.iinfo(np.uint64).max, (np.uint64(1) << np.minimum(lc, 63)) - np.uint64(1))
    lcs = np.empty(len(refs), dtype=np.int64)
    lcs[by_len] = _popcount(~v & low)
    return lcs


def rouge_stats_from_encoded(
    enc: EncodedCaptions, candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = BETA
) -> RougeStats:
    """ROUGE_L statistics from captions already encoded for BLEU / CIDEr (the raw strings serve odd cases)."""
    n_img = enc.n_images
    lengths = enc.lengths
    ref_len = lengths[n_img:]
    cand_len = lengths[:n_img]
    # odd images: a candidate over 64 tokens, an empty caption, or text that is not single-spaced
    odd = (cand_len > _WORD_BITS) | (cand_len == 0)
    odd |= np.bincount(enc.ref_image, weights=(ref_len == 0), minlength=n_img) > 0
    if not enc.single_spaced:
        odd |= np.array([" ".join(c.split()) != c or any(" ".join(r.split()) != r for r in refs)
                         for c, refs in zip(candidates, references)], dtype=bool)
    fast_refs = np.flatnonzero(~odd[enc.ref_image])
    lcs = np.zeros(len(ref_len), dtype=np.int64)
    if len(fast_refs):
        lcs[fast_refs] = _lcs_vectorised(enc, fast_refs)
    c_tokens = np.asarray(cand_len, dtype=np.float64).copy()
    r_tokens = np.asarray(ref_len, dtype=np.float64).copy()
    for i in np.flatnonzero(odd):
        cand = candidates[i].split(" ")
        c_tokens[i] = len(cand)
        for r, ref in zip(range(enc.ref_offsets[i], enc.ref_offsets[i + 1]), references[i]):
            ref_tokens = ref.split(" ")
            lcs[r] = lcs_length(ref_tokens, cand)
            r_tokens[r] = len(ref_tokens)
    precision = lcs / c_tokens[enc.ref_image]
    recall = lcs / r_tokens
    p_max = np.maximum.reduceat(precision, enc.ref_offsets[:-1]) if n_img else precision[:0]
    r_max = np.maximum.reduceat(recall, enc.ref_offsets[:-1]) if n_img else recall[:0]
    return RougeStats(_f_score(p_max, r_max, beta), p_max, r_max)


def rouge_stats(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = BETA) -> RougeStats:
    """ROUGE_L statistics of tokenized candidates (one per image) against their tokenized references."""
    return rouge_stats_from_encoded(encode_captions(candidates, references), candidates, references, beta)


def rouge_from_stats(stats: RougeStats, indices: Sequence[int] | np.ndarray | None = None) -> float:
    """Corpus ROUGE_L (mean over images) of all images or of `indices` (repeats allowed)."""
    values = stats.per_image if indices is None else stats.per_image[np.asarray(indices, dtype=np.int64)]
    return float(np.mean(values))
