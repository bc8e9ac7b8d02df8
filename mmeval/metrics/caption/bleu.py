"""BLEU-1..4 as pycocoevalcap 1.2 computes it, plus the integer n-gram tables that CIDEr-D shares.

pycocoevalcap's `Bleu(4)` (David Chiang's scorer) with the "closest" reference length:
- per image: clipped n-gram matches (candidate count capped by the largest count in any one reference),
  candidate n-gram count ("guess"), candidate length, and the reference length closest to it (ties -> shorter);
- corpus BLEU-n sums those over images, then (correct + 1e-15) / (guess + 1e-9) per order, geometric mean, and a
  brevity penalty exp(1 - reflen / testlen) when testlen < reflen (with the same tiny constants);
- per-image BLEU-n applies the same formula to one image's numbers: it is *not* what the corpus score averages.
Captions are split on whitespace (`str.split()`), so an empty caption has no n-grams.

The per-image numbers are kept in `BleuStats`, so the corpus score of any subset (or bootstrap resample, with
repeated indices) is a sum and a formula away: `bleu_from_stats(stats, indices)`.

The integer encoding of tokenized captions (`encode_captions`) and the n-gram tables (`ngram_tables`) live here
because BLEU is their first user; CIDEr-D and ROUGE_L reuse them, so `score_captions` builds them once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_N = 4
_SMALL = 1e-9  # pycocoevalcap's constants, kept so values match to the last digits
_TINY = 1e-15
_OTHER_SPACE = re.compile(r"[^\S \n]")  # whitespace other than " " and "\n"


@dataclass
class EncodedCaptions:
    """Tokenized captions of a set of images as integer token ids: one candidate and >= 1 references per image."""

    n_images: int
    ids: np.ndarray  # token ids of all sentences, candidates first (image order), then references (image order)
    lengths: np.ndarray  # (n_images + n_refs,) tokens per sentence
    ref_image: np.ndarray  # (n_refs,) image index of each reference
    ref_offsets: np.ndarray  # (n_images + 1,) the references of image i are ref_offsets[i]:ref_offsets[i + 1]
    vocab_size: int
    single_spaced: bool  # every sentence is its words joined by single spaces (split(" ") == split())

    @property
    def cand_len(self) -> np.ndarray:
        return self.lengths[: self.n_images]

    @property
    def ref_len(self) -> np.ndarray:
        return self.lengths[self.n_images :]


def encode_captions(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> EncodedCaptions:
    """Token ids of tokenized captions (whitespace-split, as pycocoevalcap's BLEU and CIDEr split them)."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    n_refs = np.fromiter(map(len, references), dtype=np.int64, count=len(references))
    if len(n_refs) and n_refs.min() < 1:
        raise ValueError(f"image #{int(np.argmin(n_refs))} has no reference caption")
    sentences = list(candidates)
    for refs in references:
        sentences.extend(refs)
    text = "\n".join(sentences)
    words = text.split()
    lengths = np.fromiter((s.count(" ") + 1 if s else 0 for s in sentences), dtype=np.int64, count=len(sentences))
    # Tokenized text is single-spaced: then lengths come from counting spaces. Otherwise split each sentence.
    regular = text.count("\n") == len(sentences) - 1 and not _OTHER_SPACE.search(text)
    regular = regular and int(lengths.sum()) == len(words)
    if not regular:
        lengths = np.fromiter((len(s.split()) for s in sentences), dtype=np.int64, count=len(sentences))
    vocab = dict(zip(dict.fromkeys(words), itertools.count()))
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    ref_offsets = np.zeros(len(references) + 1, dtype=np.int64)
    np.cumsum(n_refs, out=ref_offsets[1:])
    ref_image = np.repeat(np.arange(len(references)), n_refs)
    return EncodedCaptions(len(references), ids, lengths, ref_image, ref_offsets, max(1, len(vocab)), regular)


@dataclass
class OrderTable:
    """Distinct n-grams of one order n, as rows of integer arrays.

    Reference side, sorted by (n-gram, image, reference): `r_*` rows are (n-gram, image, reference) with the
    n-gram's count in that reference; `g_*` rows are the distinct (n-gram, image) pairs ("groups") with the largest
    count over the image's references and the count in the image's candidate. N-gram ids are dense over the
    n-grams found in references. Candidate side: `c_*` rows are distinct (n-gram, image) pairs of candidates;
    `c_gram` is -1 for an n-gram no reference has, `c_group` -1 when no reference *of that image* has it.
    """

    r_gram: np.ndarray
    r_image: np.ndarray
    r_ref: np.ndarray
    r_count: np.ndarray
    r_cand: np.ndarray
    g_gram: np.ndarray
    g_image: np.ndarray
    g_refmax: np.ndarray
    c_gram: np.ndarray
    c_image: np.ndarray
    c_count: np.ndarray
    c_group: np.ndarray


def _ngram_codes(enc: EncodedCaptions, max_n: int):
    """For n = 1..max_n: (code of every n-gram that fits in its sentence, its sentence index)."""
    n_sent = len(enc.lengths)
    starts = np.zeros(n_sent, dtype=np.int64)
    np.cumsum(enc.lengths[:-1], out=starts[1:])
    sent = np.repeat(np.arange(n_sent), enc.lengths)
    pos_in_sent = np.arange(len(enc.ids)) - starts[sent]
    remaining = enc.lengths[sent] - pos_in_sent  # tokens from this position to the end of the sentence
    codes = enc.ids.copy()
    v = enc.vocab_size
    for n in range(1, max_n + 1):
        if n > 1:
            # code of the n-gram starting here = code of its (n-1)-gram prefix * V + id of its last token;
            # exact integers, re-numbered densely before they could overflow int64 (vocabularies over ~55k words)
            if codes.size and int(codes.max()) >= (2**62) // v:
                codes = np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64)
            last = np.zeros_like(codes)
            last[: len(codes) - n + 1] = enc.ids[n - 1 :]
            codes = codes * v + last
        valid = remaining >= n
        yield n, codes[valid], sent[valid]


def _sorted_runs(codes: np.ndarray, *keys: np.ndarray):
    """Stable sort by code; returns the sorted arrays and run starts for (code,), (code, keys[0]), ..."""
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    sk = [k[order] for k in keys]
    flags = []
    change = np.empty(len(sc), dtype=bool)
    if len(sc):
        change[0] = True
        np.not_equal(sc[1:], sc[:-1], out=change[1:])
    flags.append(change.copy())
    for k in sk:
        if len(sc):
            change[1:] |= k[1:] != k[:-1]
        flags.append(change.copy())
    return sc, sk, flags


def ngram_tables(enc: EncodedCaptions, max_n: int = MAX_N) -> list[OrderTable]:
    """The n-gram tables of every order 1..max_n (see `OrderTable`)."""
    n_img = enc.n_images
    tables = []
    for _, codes, sent in _ngram_codes(enc, max_n):
        is_ref = sent >= n_img
        # reference side
        ref = sent[is_ref] - n_img
        sc, (si, sr), (new_code, new_group, new_row) = _sorted_runs(codes[is_ref], enc.ref_image[ref], ref)
        row_start = np.flatnonzero(new_row)
        r_count = np.diff(np.append(row_start, len(sc)))
        g_flag = new_group[row_start]
        r_group = np.cumsum(g_flag) - 1
        group_start = np.flatnonzero(g_flag)
        g_code = sc[row_start][group_start]
        code_flag = new_code[row_start][group_start]
        g_gram = np.cumsum(code_flag) - 1
        unique_codes = g_code[code_flag]
        g_image = si[row_start][group_start]
        g_refmax = np.maximum.reduceat(r_count, group_start) if len(group_start) else r_count[:0]
        # candidate side
        cs, (ci,), (_, new_cand) = _sorted_runs(codes[~is_ref], sent[~is_ref])
        c_start = np.flatnonzero(new_cand)
        c_count = np.diff(np.append(c_start, len(cs)))
        c_code, c_image = cs[c_start], ci[c_start]
        c_gram = np.searchsorted(unique_codes, c_code)
        found = c_gram < len(unique_codes)
        found[found] = unique_codes[c_gram[found]] == c_code[found]
        c_gram = np.where(found, c_gram, -1)
        g_key = g_gram * n_img + g_image  # ascending: groups are sorted by n-gram, then image
        c_key = c_gram * n_img + c_image
        c_group = np.searchsorted(g_key, c_key)
        hit = found & (c_group < len(g_key))
        hit[hit] = g_key[c_group[hit]] == c_key[hit]
        c_group = np.where(hit, c_group, -1)
        g_cand = np.zeros(len(g_key), dtype=np.int64)
        g_cand[c_group[hit]] = c_count[hit]
        tables.append(OrderTable(
            r_gram=g_gram[r_group], r_image=si[row_start], r_ref=sr[row_start], r_count=r_count,
            r_cand=g_cand[r_group], g_gram=g_gram, g_image=g_image, g_refmax=g_refmax,
            c_gram=c_gram, c_image=c_image, c_count=c_count, c_group=c_group,
        ))
    return tables


@dataclass
class BleuStats:
    """Per-image sufficient statistics of BLEU: enough to recompute the corpus score on any subset of images."""

    correct: np.ndarray  # (n_images, n) clipped n-gram matches
    guess: np.ndarray  # (n_images, n) candidate n-grams
    testlen: np.ndarray  # (n_images,) candidate length
    reflen: np.ndarray  # (n_images,) length of the closest reference (ties: the shorter)


def bleu_stats_from_tables(enc: EncodedCaptions, tables: list[OrderTable]) -> BleuStats:
    """BLEU statistics from n-gram tables already computed (shared with CIDEr)."""
    n_img = enc.n_images
    correct = np.zeros((n_img, len(tables)), dtype=np.int64)
    for k, t in enumerate(tables):
        hit = t.c_group >= 0
        clipped = np.minimum(t.c_count[hit], t.g_refmax[t.c_group[hit]])
        correct[:, k] = np.bincount(t.c_image[hit], weights=clipped, minlength=n_img).astype(np.int64)
    testlen = enc.cand_len.astype(np.int64)
    guess = np.maximum(0, testlen[:, None] - np.arange(len(tables))[None, :])
    ref_len = enc.ref_len.astype(np.int64)
    big = int(ref_len.max(initial=0)) + 1
    key = np.abs(ref_len - testlen[enc.ref_image]) * big + ref_len
    reflen = np.minimum.reduceat(key, enc.ref_offsets[:-1]) % big if n_img else ref_len[:0]
    return BleuStats(correct, guess, testlen, reflen)


def bleu_stats(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = MAX_N) -> BleuStats:
    """BLEU statistics of tokenized candidates (one per image) against their tokenized references."""
    enc = encode_captions(candidates, references)
    return bleu_stats_from_tables(enc, ngram_tables(enc, n))


def _bleu(correct: np.ndarray, guess: np.ndarray, testlen: np.ndarray, reflen: np.ndarray) -> np.ndarray:
    """pycocoevalcap's formula on (..., n) counts; works for one corpus (1-D) or per image (2-D)."""
    n = correct.shape[-1]
    ratios = (correct.astype(np.float64) + _TINY) / (guess.astype(np.float64) + _SMALL)
    scores = np.cumprod(ratios, axis=-1) ** (1.0 / np.arange(1, n + 1))
    ratio = (np.asarray(testlen, dtype=np.float64) + _TINY) / (np.asarray(reflen, dtype=np.float64) + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * np.asarray(penalty)[..., None]


def _select(values: np.ndarray, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
    return values if indices is None else values[np.asarray(indices, dtype=np.int64)]


def bleu_from_stats(stats: BleuStats, indices: Sequence[int] | np.ndarray | None = None) -> list[float]:
    """Corpus Bleu_1..Bleu_n over all images, or over `indices` (repeats allowed, e.g. a bootstrap resample)."""
    correct = _select(stats.correct, indices).sum(axis=0)
    guess = _select(stats.guess, indices).sum(axis=0)
    testlen = _select(stats.testlen, indices).sum()
    reflen = _select(stats.reflen, indices).sum()
    return [float(x) for x in _bleu(correct, guess, testlen, reflen)]


def bleu_per_image(stats: BleuStats) -> np.ndarray:
    """(n_images, n) per-image BLEU, pycocoevalcap's second return value transposed."""
    return _bleu(stats.correct, stats.guess, stats.testlen, stats.reflen)
