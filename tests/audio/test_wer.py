"""WER / CER against jiwer 4 itself, an independent edit-distance loop and hand-computed examples."""

from __future__ import annotations

import random

import jiwer
import pytest

from mmeval.metrics.text_norm import basic, get_normaliser
from mmeval.metrics.wer import error_rate_summary, rtfx, utterance_errors


def levenshtein(a: list, b: list) -> int:
    """Plain dynamic-programming edit distance (the brute-force reference)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_hand_computed_example() -> None:
    refs = ["a b c d", "the quick brown fox"]
    hyps = ["a x c d e", "the brown fox"]
    # utterance 1: b -> x substituted, e inserted; utterance 2: quick deleted
    out = error_rate_summary(refs, hyps)
    assert (out["substitutions"], out["deletions"], out["insertions"], out["hits"]) == (1, 1, 1, 6)
    assert out["reference_length"] == 8 and out["rate"] == pytest.approx(3 / 8)
    assert out["per_utterance"] == [pytest.approx(0.5), pytest.approx(0.25)]
    assert out["distribution"]["mean"] == pytest.approx(0.375) and out["distribution"]["share_zero"] == 0


def _random_pairs(seed: int, n: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = ["red", "blue", "circle", "square", "the", "is", "a", "left", "of", "what"]
    refs, hyps = [], []
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 9))]
        hyp = [w for w in ref if rng.random() > 0.2]
        hyp = [rng.choice(vocab) if rng.random() < 0.2 else w for w in hyp]
        for _ in range(rng.randint(0, 2)):
            hyp.insert(rng.randint(0, len(hyp)), rng.choice(vocab))
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return refs, hyps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corpus_and_counts_equal_jiwer_and_a_brute_force_edit_distance(seed: int) -> None:
    refs, hyps = _random_pairs(seed, 60)
    out = error_rate_summary(refs, hyps)
    theirs = jiwer.process_words(refs, hyps)
    assert out["rate"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert (out["substitutions"], out["deletions"], out["insertions"], out["hits"]) == \
        (theirs.substitutions, theirs.deletions, theirs.insertions, theirs.hits)  # fmt: skip
    for ref, hyp, rate, counts in zip(refs, hyps, out["per_utterance"], utterance_errors(refs, hyps)):
        assert rate == pytest.approx(jiwer.wer(ref, hyp), abs=1e-12)
        assert counts.errors == levenshtein(ref.split(), hyp.split())
    chars = error_rate_summary(refs, hyps, unit="char")
    assert chars["rate"] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    for ref, hyp, counts in zip(refs[:15], hyps[:15], utterance_errors(refs[:15], hyps[:15], "char")):
        assert counts.errors == levenshtein(list(ref), list(hyp))


def test_empty_references_have_no_utterance_rate_and_their_words_count_as_insertions() -> None:
    out = error_rate_summary(["a b", "", "c"], ["a b", "x y", ""])
    assert out["per_utterance"] == [0.0, None, 1.0]
    assert out["empty_references"] == 1 and out["insertions"] == 2 and out["deletions"] == 1
    assert out["rate"] == pytest.approx(3 / 3)  # (0 + 2 insertions + 1 deletion) / 3 reference words
    assert out["rate"] == pytest.approx(jiwer.process_words(["a b", "", "c"], ["a b", "x y", ""]).wer)
    assert out["distribution"]["n"] == 2
    assert error_rate_summary([""], ["a"])["rate"] is None


def test_normalisers() -> None:
    assert basic("  Hello, World!  It's  RED-ish; 'quoted'  ") == "hello world it's red ish quoted"
    assert get_normaliser("none")("What  IS this?") == "What IS this?"
    whisper = get_normaliser("whisper_en")
    assert whisper("Mr. Smith has twenty-one red squares.") == "mister smith has 21 red squares"
    assert whisper("The colour grey") == "the color gray"  # British -> American spellings
    assert whisper.version.startswith("whisper-normalizer ")
    with pytest.raises(ValueError, match="unknown normaliser"):
        get_normaliser("lower")


def test_rtfx() -> None:
    assert rtfx(10.0, 2.0) == 5.0 and rtfx(10.0, 0.0) is None
