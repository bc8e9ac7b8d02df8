"""COCO caption metrics (BLEU-1..4, METEOR, ROUGE_L, CIDEr-D, SPICE) with pycocoevalcap 1.2's values, fast.

`score_captions(references, predictions)` tokenizes both sides as COCOEvalCap does (PTB tokenizer through Java,
references and predictions as separate batches; a Python twin when Java is missing), then computes BLEU,
ROUGE_L and CIDEr natively (numpy; equal to pycocoevalcap's to ~1e-12) and METEOR / SPICE through their jars.
Scores are named as pycocoevalcap names them; every metric is higher-is-better.

Traps, reported in `CaptionScores.warnings`:
- CIDEr's idf comes from the evaluated set itself: one image always scores 0 (log 1 - log 1 = 0 for every n-gram),
  a handful of images gives noisy values, and an image's CIDEr changes with the other images in the set. Subset
  scores (`CaptionScores.subset`) recompute the idf on the subset, as pycocoevalcap run on it would.
- Empty or whitespace-only predictions (and predictions that are only punctuation) tokenize to "". pycocoevalcap
  scores them 0 on BLEU, METEOR and CIDEr, and on ROUGE_L too, unless a reference is also empty: ROUGE_L splits
  on " " so "" is one empty token, which matches an empty reference (score 1). They are counted, not dropped:
  dropping them would inflate the scores.
- Non-ASCII text: the PTB tokenizer normalises curly quotes, dashes and some currency signs, and drops characters
  outside the Basic Multilingual Plane (emoji) and control characters; METEOR's -norm lowercases and normalises
  punctuation again. Values stay comparable with pycocoevalcap, but such characters do not count as words.
- Per-image BLEU is not what corpus BLEU averages (corpus BLEU pools the n-gram counts), and corpus METEOR is
  computed by the jar from pooled statistics; use the corpus numbers for reporting.
- SPICE needs Stanford CoreNLP 3.6.0 (and, on Java 15+, a Nashorn jar); without them it is listed in
  `CaptionScores.skipped` with the reason. Nothing is ever downloaded. Without Java, METEOR is skipped too.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmeval.metrics.caption.bleu import (
    BleuStats,
    bleu_from_stats,
    bleu_per_image,
    bleu_stats_from_tables,
    encode_captions,
    ngram_tables,
)
from mmeval.metrics.caption.cider import CiderStats, cider_from_stats, cider_stats_from_tables
from mmeval.metrics.caption.java_scorers import MeteorResult, MeteorScorer, meteor_jar, spice_score
from mmeval.metrics.caption.rouge import RougeStats, rouge_from_stats, rouge_stats_from_encoded
from mmeval.metrics.caption.tokenize import find_java, tokenize_batches

log = logging.getLogger(__name__)

METRICS = ("Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
SCORE_NAMES = {
    "Bleu": ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"), "METEOR": ("METEOR",), "ROUGE_L": ("ROUGE_L",),
    "CIDEr": ("CIDEr",), "SPICE": ("SPICE",),
}
HIGHER_IS_BETTER = {name: True for names in SCORE_NAMES.values() for name in names}
MIN_CIDER_IMAGES = 10


@dataclass
class CaptionScores:
    """Corpus and per-image caption scores, the statistics behind them, and what to know about them."""

    image_ids: list[Hashable]
    scores: dict[str, float]  # "Bleu_1".."Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE" (those computed)
    per_image: dict[str, np.ndarray]  # same names, each (n_images,) in image_ids order
    tokenizer: str  # "ptb-java", "python-fallback" or "pre-tokenized"
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    warnings: list[str] = field(default_factory=list)
    n_empty_predictions: int = 0  # predictions that are empty (after tokenization, if score_captions tokenized)
    bleu: BleuStats | None = None
    rouge: RougeStats | None = None
    cider: CiderStats | None = None
    meteor: MeteorResult | None = None
    higher_is_better: dict[str, bool] = field(default_factory=lambda: dict(HIGHER_IS_BETTER))

    def subset(self, indices: Sequence[int] | np.ndarray, cider_idf: str = "subset") -> dict[str, float]:
        """BLEU, ROUGE_L and CIDEr of a subset of images (positions in image_ids; repeats allowed).

        Equal to pycocoevalcap run on just those images (CIDEr's idf is recomputed on them unless
        cider_idf="corpus"). METEOR and SPICE need their jars, so they are left out.
        """
        out: dict[str, float] = {}
        if self.bleu is not None:
            out.update(zip(SCORE_NAMES["Bleu"], bleu_from_stats(self.bleu, indices)))
        if self.rouge is not None:
            out["ROUGE_L"] = rouge_from_stats(self.rouge, indices)
        if self.cider is not None:
            out["CIDEr"] = cider_from_stats(self.cider, indices, idf=cider_idf)
        return out


def _check_metrics(metrics: Sequence[str]) -> list[str]:
    """The requested metrics in canonical order; unknown names are an error with a did-you-mean hint."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        lower = {m.lower(): m for m in METRICS}
        hints = []
        for m in unknown:
            close = difflib.get_close_matches(m.lower(), list(lower), 1)
            hints.append(f"{m!r} (did you mean {lower[close[0]]!r}?)" if close else repr(m))
        raise ValueError(f"unknown caption metric {', '.join(hints)}; available: {', '.join(METRICS)}")
    return [m for m in METRICS if m in metrics]


def _align(
    references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str | Sequence[str]]
) -> tuple[list[Hashable], dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """Image ids in the references' order, and both sides as {id: [caption, ...]} (one prediction per id)."""
    missing = [k for k in references if k not in predictions]
    extra = [k for k in predictions if k not in references]
    if missing or extra:
        raise ValueError(
            f"references and predictions must cover the same images: {len(missing)} without a prediction "
            f"(e.g. {missing[:3]}), {len(extra)} without references (e.g. {extra[:3]})"
        )
    ids = list(references)
    refs, preds = {}, {}
    for k in ids:
        rs, p = references[k], predictions[k]
        if isinstance(rs, str) or len(rs) == 0:
            raise ValueError(f"image {k!r}: references must be a non-empty list of captions")
        if not isinstance(p, str):
            if len(p) != 1:
                raise ValueError(f"image {k!r}: expected one predicted caption, got {len(p)}")
            p = p[0]
        refs[k], preds[k] = list(rs), [p]
    return ids, refs, preds


def score_captions(
    references: Mapping[Hashable, Sequence[str]],
    predictions: Mapping[Hashable, str | Sequence[str]],
    metrics: Sequence[str] = METRICS,
    spice_jars: Path | None = None,
    tokenizer: str = "ptb",
    meteor_scorer: MeteorScorer | None = None,
) -> CaptionScores:
    """Score predicted captions (one per image) against reference captions, as pycocoevalcap 1.2 would.

    tokenizer: "ptb" (Java, falling back to Python with a warning), "python", or "none" for text that is already
    tokenized. spice_jars: a folder holding the Stanford CoreNLP 3.6.0 jars that SPICE needs (never downloaded).
    meteor_scorer: a running `MeteorScorer` to reuse (METEOR's JVM takes seconds to start); else one is started.
    """
    wanted = _check_metrics(metrics)
    if tokenizer not in ("ptb", "python", "none"):
        raise ValueError(f"tokenizer must be 'ptb', 'python' or 'none', not {tokenizer!r}")
    ids, refs, preds = _align(references, predictions)
    warnings = []
    if tokenizer == "none":
        refs_tok, preds_tok, tokenizer_name = refs, preds, "pre-tokenized"
    else:
        (refs_tok, preds_tok), tokenizer_name = tokenize_batches([refs, preds], prefer=tokenizer)
        if tokenizer_name == "python-fallback" and tokenizer == "ptb":
            warnings.append("Java PTB tokenizer unavailable: used the Python fallback tokenizer, which can differ "
                            "from it on rare captions")
    non_ascii = sum(1 for k in ids if not preds[k][0].isascii() or not all(r.isascii() for r in refs[k]))
    if non_ascii:
        warnings.append(f"{non_ascii} images have non-ASCII captions: the PTB tokenizer normalises or drops some "
                        "such characters (emoji, control characters)")
    result = score_tokenized(
        ids, [refs_tok[k] for k in ids], [preds_tok[k][0] for k in ids], wanted, spice_jars, meteor_scorer
    )
    result.tokenizer = tokenizer_name
    result.warnings = warnings + result.warnings
    return result


def score_tokenized(
    image_ids: Sequence[Hashable],
    references: Sequence[Sequence[str]],
    candidates: Sequence[str],
    metrics: Sequence[str] = METRICS,
    spice_jars: Path | None = None,
    meteor_scorer: MeteorScorer | None = None,
) -> CaptionScores:
    """Scores of already tokenized captions, given as parallel lists (one candidate, >= 1 references per image)."""
    wanted = _check_metrics(metrics)
    if not (len(image_ids) == len(references) == len(candidates)):
        raise ValueError(f"{len(image_ids)} ids, {len(references)} reference lists, {len(candidates)} candidates")
    if not image_ids:
        raise ValueError("no images to score")
    out = CaptionScores(list(image_ids), {}, {}, tokenizer="pre-tokenized")
    out.n_empty_predictions = sum(1 for c in candidates if not c.strip())
    if out.n_empty_predictions:
        out.warnings.append(
            f"{out.n_empty_predictions} of {len(candidates)} predictions are empty (after tokenization, which also "
            "empties punctuation-only captions): they are kept and score 0 (ROUGE_L 1 where a reference is empty)"
        )
    empty_refs = sum(1 for refs in references for r in refs if not r.strip())
    if empty_refs:
        out.warnings.append(f"{empty_refs} reference captions are empty: they still count as references")
    enc = encode_captions(candidates, references)
    tables = ngram_tables(enc) if ("Bleu" in wanted or "CIDEr" in wanted) else []
    if "Bleu" in wanted:
        out.bleu = bleu_stats_from_tables(enc, tables)
        out.scores.update(zip(SCORE_NAMES["Bleu"], bleu_from_stats(out.bleu)))
        out.per_image.update(zip(SCORE_NAMES["Bleu"], bleu_per_image(out.bleu).T))
    if "METEOR" in wanted:
        if meteor_scorer is not None:
            out.meteor = meteor_scorer.score(candidates, references)
        elif find_java() is None or meteor_jar() is None:
            out.skipped["METEOR"] = f"METEOR needs `java` on PATH and meteor-1.5.jar (jar: {meteor_jar()})"
        else:
            with MeteorScorer() as scorer:
                out.meteor = scorer.score(candidates, references)
        if out.meteor is not None:
            out.scores["METEOR"], out.per_image["METEOR"] = out.meteor.score, out.meteor.per_image
    if "ROUGE_L" in wanted:
        out.rouge = rouge_stats_from_encoded(enc, candidates, references)
        out.scores["ROUGE_L"], out.per_image["ROUGE_L"] = rouge_from_stats(out.rouge), out.rouge.per_image
    if "CIDEr" in wanted:
        out.cider = cider_stats_from_tables(enc, tables)
        out.scores["CIDEr"], out.per_image["CIDEr"] = cider_from_stats(out.cider), out.cider.per_image
        if len(image_ids) < MIN_CIDER_IMAGES:
            out.warnings.append(
                f"CIDEr over {len(image_ids)} images: its idf comes from the evaluated set, so tiny sets give "
                "unreliable values (a single image always scores 0)"
            )
    if "SPICE" in wanted:
        spice = spice_score(candidates, references, corenlp_dir=spice_jars)
        if spice.skipped:
            out.skipped["SPICE"] = spice.skipped
        else:
            out.scores["SPICE"], out.per_image["SPICE"] = spice.score, spice.per_image
    for metric, reason in out.skipped.items():
        log.warning("%s skipped: %s", metric, reason)
    return out
