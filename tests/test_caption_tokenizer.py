"""Caption tokenizers against the independent reference: pycocoevalcap 1.2's PTBTokenizer (Stanford PTB via Java)."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import require

from mmeval.metrics.caption import tokenize as caption_tokenize
from mmeval.metrics.caption.tokenize import (
    ptb_available,
    ptb_tokenize,
    ptb_tokenize_batches,
    python_tokenize,
    tokenize,
)

# Agreement of python_tokenize with the Java PTB tokenizer, token for token after pycocoevalcap's punctuation
# filter, on all 48,037 captions of captions_val2014_subset.json (grouped per image, as COCOEvalCap batches them).
# Measured: 48,037 / 48,037 = 1.0000. Required: >= 0.999.
MIN_AGREEMENT = 0.999

# Conventions of the PTB lexer that a plain regex gets wrong (the fallback must agree with Java on all of them).
TRICKY = [
    "He lives on St. Louis St. near the T.V. station.",
    "A U.S. flag. The U.S. Mr. Smith and Dr. Who vs. Mrs. X etc. and so on.",
    "Wow!!! What?? Hmm... ok.... yes . . . no",
    "\"quoted\" 'single' `back` ''double''",
    "(paren) [square] {curly} <angle> :) :-(",
    "can't cannot won't don't I'm we're they've she'd you'll let's gonna gotta wanna",
    "dogs' toys and the 1970's and '90s at 10 o'clock and rock'n'roll",
    "6:18 3/4 1,000 3.5 $5 5% 10-15 #1 @home a+b a=b x*y a&b AT&T",
    "black-and-white e-mail x-ray well--known --dash - hyphen -5 co-op a_b bathtub/shower",
    "surfboard.while end.Then U.S.A. A.B e.g., i.e., a.m. 5 p.m. No. 5 no. five",
    "the kitchen.; the truck., the truck.! a-b., 5.,",
    "Café naïve über ÉTÉ straße “curly” ‘single’ – en — em … ½ £5 €5 ¥5 ¢",
    "I'm at Joe's Bar & Grill (2nd St.) with 2 1/2 dogs.",
    "Saw Newton N. Minow and Michael L. Baird. I saw b. Then a man.",
]


@pytest.fixture(scope="module")
def java():
    """The Java PTB tokenizer is the reference here."""
    require(ptb_available(), "java with pycocoevalcap's stanford-corenlp-3.4.1.jar (PTB tokenizer)")


@pytest.fixture(scope="module")
def reference_tokenizer(java):
    """pycocoevalcap's own PTBTokenizer, fed plain strings."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()

    def run(captions: dict) -> dict:
        return tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})

    return run


@pytest.fixture(scope="module")
def coco_captions(shared_data) -> dict[int, list[str]]:
    ann = json.loads((shared_data / "coco" / "captions_val2014_subset.json").read_text())
    captions: dict[int, list[str]] = {}
    for a in ann["annotations"]:
        captions.setdefault(a["image_id"], []).append(a["caption"])
    assert sum(map(len, captions.values())) == 48037
    return captions


@pytest.fixture(scope="module")
def coco_reference(coco_captions, reference_tokenizer) -> dict[int, list[str]]:
    return reference_tokenizer(coco_captions)


def test_ptb_wrapper_equals_pycocoevalcap_on_all_coco_captions(coco_captions, coco_reference):
    assert ptb_tokenize(coco_captions) == coco_reference


def test_python_fallback_agrees_with_ptb_on_all_coco_captions(coco_captions, coco_reference):
    ours = python_tokenize(coco_captions)
    pairs = [(a, b) for k in coco_captions for a, b in zip(ours[k], coco_reference[k], strict=True)]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    examples = [(a, b) for a, b in pairs if a != b][:5]
    assert agreement >= MIN_AGREEMENT, f"agreement {agreement:.5f} on {len(pairs)} captions; e.g. {examples}"


def test_python_fallback_follows_ptb_conventions(reference_tokenizer):
    captions = {i: [text] for i, text in enumerate(TRICKY)}
    expected = reference_tokenizer(captions)
    assert python_tokenize(captions) == expected
    assert ptb_tokenize(captions) == expected
    # pycocoevalcap's filter compares lower-cased tokens with "-LRB-": brackets survive, so do "!!!" and "??"
    assert "-lrb- paren -rrb- -lsb- square -rsb- -lcb- curly -rcb-" in expected[4][0]
    assert expected[2][0].split()[:3] == ["wow", "!!!", "what"]


def test_empty_whitespace_and_non_ascii_captions(reference_tokenizer):
    captions = {1: ["", "   ", "\t"], 2: ["A dog 😀 on a mat."], 3: ["..."], 4: ["Ünïcödé — “x”"]}
    expected = reference_tokenizer(captions)
    assert expected == {1: ["", "", ""], 2: ["a dog on a mat"], 3: [""], 4: ["ünïcödé x"]}
    assert ptb_tokenize(captions) == expected
    assert python_tokenize(captions) == expected


def test_next_caption_decides_a_final_one_letter_abbreviation(reference_tokenizer):
    # The PTB lexer reads on into the next caption: "b." ends a sentence only before a starter such as "A".
    captions = {1: ["I saw b."], 2: ["A man."], 3: ["I saw b."], 4: ["a man."]}
    expected = reference_tokenizer(captions)
    assert [expected[k][0] for k in (1, 3)] == ["i saw b", "i saw b."]
    assert ptb_tokenize(captions) == expected == python_tokenize(captions)


def test_batches_in_one_jvm_equal_separate_calls(reference_tokenizer):
    first = {1: ["The end of it all b."], 2: ["x"]}
    second = {7: ["A cat."], 8: ["I saw b."]}
    assert ptb_tokenize_batches([first, second]) == [reference_tokenizer(first), reference_tokenizer(second)]


def test_line_breaks_inside_captions_do_not_shift_later_captions(reference_tokenizer):
    captions = {1: ["The end\rnow"], 2: ["a cat\u2028sat"], 3: ["last one"]}
    # pycocoevalcap only replaces "\n": the lexer breaks the line at "\r" and every later caption moves up
    assert reference_tokenizer(captions)[1] == ["the end"]
    expected = {1: ["the end now"], 2: ["a cat sat"], 3: ["last one"]}
    assert ptb_tokenize(captions) == expected
    assert python_tokenize(captions) == expected


def test_tokenize_prefers_java_and_falls_back_with_a_warning(java, monkeypatch, caplog):
    captions = {1: ["A dog's T.V."]}
    tokenized, name = tokenize(captions)
    assert (tokenized, name) == ({1: ["a dog 's t.v."]}, "ptb-java")
    monkeypatch.setattr(caption_tokenize, "find_java", lambda: None)
    with caplog.at_level(logging.WARNING, logger="mmeval.metrics.caption.tokenize"):
        tokenized, name = tokenize(captions)
    assert (tokenized, name) == ({1: ["a dog 's t.v."]}, "python-fallback")
    assert "Python fallback" in caplog.text
    assert tokenize(captions, prefer="python")[1] == "python-fallback"
    with pytest.raises(ValueError, match="prefer"):
        tokenize(captions, prefer="spacy")


def test_python_fallback_needs_no_java(monkeypatch):
    monkeypatch.setattr(caption_tokenize, "find_java", lambda: None)
    assert not ptb_available()
    tokenized = python_tokenize({"a": ["Two dogs can't play (outside)!"]})
    assert tokenized == {"a": ["two dogs ca n't play -lrb- outside -rrb-"]}
