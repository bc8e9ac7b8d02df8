"""VQA accuracy as the official evaluation code computes it (PythonEvaluationTools/vqaEvaluation/vqaEval.py).

The accuracy is the mean over the ten leave-one-annotator-out subsets of min(1, #matching answers among the
other nine / 3), compared as exact strings: 0, 0.3, 0.6, 0.9, 1.0 for 0, 1, 2, 3, >= 4 agreeing annotators.
"Normalised" below means processPunctuation then processDigitArticle (lower case, number words to digits,
articles dropped, contractions restored). Which strings are normalised is the one choice that moves the
number; three versions of it are live, offered by name (`NORMALISATIONS`):

- `eval_server` (default): the challenge's evaluation server (Cloud-CV) and GT-Vision-Lab/VQA before its
  commit a013f00 of March 2021. The prediction is always stripped and normalised; the human answers are
  left as they are, and only when the ten differ are they stripped of punctuation (not lower-cased, not
  article-dropped): "two" matches ten "2"s, but "the dog" does not match ten "the dog"s.
- `gtvision_2021`: GT-Vision-Lab/VQA since that commit. Both sides are stripped; both are normalised, but
  only when the ten human answers differ: "two" does not match ten "2"s, nor "Yes." ten "yes"s.
- `normalise_both`: both sides always stripped and normalised (what several harnesses do).

Two more quirks of the official script are kept on purpose, so numbers match it:
- Its period regex `(?!<=\\d)(\\.)(?!\\d)` is a lookahead typo (not a lookbehind), and `re.UNICODE` is passed
  where `sub` takes its count: every period not followed by a digit goes, at most 32 of them.
The script leaves an annotator out by dict inequality, which is "by position" for VQAv2's distinct answer
dicts (each has its own answer_id); mmeval leaves out by position, so plain answer strings work too.

Values are fractions in [0, 1]; the official script prints percentages rounded to 2 decimals.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

N_ANSWERS = 10  # human answers per question in VQAv2 (and VizWiz, TextVQA, OK-VQA)


CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
              "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
PUNCTUATION = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: see the module docstring
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_OFFICIAL_PERIOD_COUNT = re.UNICODE.value  # 32: the official call passes re.UNICODE as sub's count
Normalisation = Literal["eval_server", "gtvision_2021", "normalise_both"]
NORMALISATIONS: tuple[str, ...] = ("eval_server", "gtvision_2021", "normalise_both")


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The official processPunctuation: a mark next to a space (or any text with a digit,digit comma) is
    deleted, otherwise it becomes a space; then periods not followed by a digit are removed."""
    out = text
    for mark in PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or _COMMA_BETWEEN_DIGITS.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """The official processDigitArticle: lower case, number words to digits, articles dropped, contractions."""
    words = [MANUAL_MAP.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str) -> str:
    """An answer as the official evaluation compares it when the human answers disagree."""
    return process_digit_article(process_punctuation(_clean(text)))


def compared_strings(prediction: str, answers: Sequence[str],
                     normalisation: Normalisation = "eval_server") -> tuple[str, list[str]]:
    """The prediction and the human answers as the chosen version of the official script compares them."""
    if normalisation == "eval_server":  # decides on the answers as stored: it never strips them
        humans = [process_punctuation(a) for a in answers] if len(set(answers)) > 1 else list(answers)
        return normalize_answer(prediction), humans
    if normalisation == "gtvision_2021":
        humans = [_clean(a) for a in answers]
        if len(set(humans)) > 1:  # since 2021 the answers are stripped before the check
            return normalize_answer(prediction), [process_digit_article(process_punctuation(a)) for a in humans]
        return _clean(prediction), humans
    if normalisation == "normalise_both":
        return normalize_answer(prediction), [normalize_answer(a) for a in answers]
    raise ValueError(f"unknown VQA answer normalisation {normalisation!r} (expected one of {NORMALISATIONS})")


def vqa_accuracy(prediction: str, answers: Sequence[str], normalisation: Normalisation = "eval_server") -> float:
    """Official accuracy of one prediction against the human answers (10 in VQAv2), as a fraction."""
    predicted, humans = compared_strings(prediction, answers, normalisation)
    same = [answer == predicted for answer in humans]
    total = sum(same)
    return sum(min(1.0, (total - hit) / 3) for hit in same) / len(same)


def score_vqa(predictions: Sequence[str], answers: Sequence[Sequence[str]], answer_types: Sequence[str | None],
              normalisation: Normalisation = "eval_server") -> tuple[dict[str, float], list[float]]:
    """Overall accuracy, one `vqa_accuracy_<answer type>` per type present, and per-question accuracies."""
    per_question = [vqa_accuracy(p, a, normalisation) for p, a in zip(predictions, answers, strict=True)]
    scores = {"vqa_accuracy": sum(per_question) / len(per_question) if per_question else float("nan")}
    by_type: dict[str, list[float]] = defaultdict(list)
    for kind, value in zip(answer_types, per_question, strict=True):
        if kind is not None:
            by_type[kind].append(value)
    for kind in sorted(by_type):
        scores[f"vqa_accuracy_{kind}"] = sum(by_type[kind]) / len(by_type[kind])
    return scores, per_question
