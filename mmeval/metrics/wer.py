"""Word and character error rates with their substitution / deletion / insertion counts, corpus and per utterance.

The alignment is jiwer's (`process_words` / `process_characters`, Levenshtein over words or characters); this
module adds per-utterance counts from its alignment chunks, the corpus aggregation and the distribution.

Corpus rate = (S + D + I) / N over all utterances (N: reference words or characters), as jiwer computes it for a
list of strings; it is not the mean of per-utterance rates.

Empty references (after normalisation): the rate of such an utterance is undefined, so it has no per-utterance
value (it is counted in `empty_references`); its hypothesis words all count as insertions in the corpus I, adding
to the numerator but nothing to N (as jiwer 4 does). If every reference is empty the corpus rate is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class ErrorCounts:
    """Edit counts of one utterance (or a corpus): hits, substitutions, deletions, insertions."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def reference_length(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        """(S + D + I) / N, or None when the reference is empty."""
        n = self.reference_length
        return self.errors / n if n else None

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.hits + other.hits, self.substitutions + other.substitutions,
                           self.deletions + other.deletions, self.insertions + other.insertions)  # fmt: skip


def _units(text: str, unit: str) -> int:
    return len(text.split()) if unit == "word" else len(text)


def utterance_errors(references: list[str], hypotheses: list[str],
                     unit: Literal["word", "char"] = "word") -> list[ErrorCounts]:  # fmt: skip
    """Per-utterance edit counts of already-normalised strings (words: split on whitespace; chars: every char)."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    out: list[ErrorCounts | None] = [None] * len(references)
    scored = [i for i, ref in enumerate(references) if ref.strip()]
    for i, ref in enumerate(references):
        if not ref.strip():  # jiwer needs a reference; every hypothesis unit is an insertion
            out[i] = ErrorCounts(insertions=_units(hypotheses[i], unit))
    if scored:
        refs, hyps = [references[i] for i in scored], [hypotheses[i] for i in scored]
        process = jiwer.process_words if unit == "word" else jiwer.process_characters
        result = process(refs, hyps)
        for i, chunks in zip(scored, result.alignments):
            counts = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
            for chunk in chunks:
                span = chunk.hyp_end_idx - chunk.hyp_start_idx if chunk.type == "insert" else \
                    chunk.ref_end_idx - chunk.ref_start_idx  # fmt: skip
                counts[chunk.type] += span
            out[i] = ErrorCounts(counts["equal"], counts["substitute"], counts["delete"], counts["insert"])
    return [c for c in out if c is not None]


def corpus_counts(per_utterance: list[ErrorCounts]) -> ErrorCounts:
    total = ErrorCounts()
    for counts in per_utterance:
        total = total + counts
    return total


def distribution(rates: list[float]) -> dict[str, Any]:
    """Summary of per-utterance rates: mean, median, 90th percentile, max, share of perfect utterances."""
    if not rates:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None, "share_zero": None}
    values = np.asarray(rates, dtype=np.float64)
    return {"n": len(rates), "mean": float(values.mean()), "median": float(np.median(values)),
            "p90": float(np.percentile(values, 90)), "max": float(values.max()),
            "share_zero": float((values == 0).mean())}  # fmt: skip


def error_rate_summary(references: list[str], hypotheses: list[str],
                       unit: Literal["word", "char"] = "word") -> dict[str, Any]:  # fmt: skip
    """Corpus rate with S / D / I / N counts, the per-utterance rates (None for empty references) and their
    distribution, for normalised strings."""
    return summarise(utterance_errors(references, hypotheses, unit))


def summarise(per: list[ErrorCounts]) -> dict[str, Any]:
    """`error_rate_summary` of per-utterance counts already computed."""
    total = corpus_counts(per)
    rates = [c.rate for c in per]
    return {"rate": total.rate, "substitutions": total.substitutions, "deletions": total.deletions,
            "insertions": total.insertions, "hits": total.hits, "reference_length": total.reference_length,
            "empty_references": sum(r is None for r in rates), "per_utterance": rates,
            "distribution": distribution([r for r in rates if r is not None])}  # fmt: skip


def rtfx(audio_seconds: float, model_seconds: float) -> float | None:
    """Inverse real-time factor: seconds of audio transcribed per second of model time (None if untimed)."""
    return audio_seconds / model_seconds if model_seconds > 0 and math.isfinite(model_seconds) else None
