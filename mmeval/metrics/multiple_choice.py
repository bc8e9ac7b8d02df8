"""Multiple choice: the options prompt, the rule that reads a chosen letter out of generated text, accuracy.

`extract_choice` tries these rules in order and returns the first letter that is one of the question's
options (a letter outside them, e.g. "E" with options A-D, falls through to the next rule):

1. the whole answer is a letter: "B", "b", "B.", "(B)", "B)", "B:"
2. the answer starts with a marked letter: "B) a dog", "B. a dog", "(B) a dog", "B: a dog"
3. an "answer"/"option"/"choice" phrase names a letter: "Answer: B", "The answer is B.", "the correct option
   is (B)", "choice: B" (the letter itself upper case, so "the answer is a dog" is not read as A)
4. exactly one distinct parenthesised letter anywhere: "I would pick (C) here"
5. option text, case-insensitive, punctuation ignored: the answer is one option's text, or exactly one
   option's text occurs in it as whole words ("It is a dog." with options "a cat" / "a dog")

Anything else is unparseable: counted in `unparseable_rate` and scored as wrong in `mc_accuracy`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence


_WHOLE = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
_LEADING = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.:)])\s")
_PHRASE = re.compile(r"\b(?:answer|option|choice)\b(?:\s+is)?\s*:?\s*\(?([A-Z])\)?(?![A-Za-z0-9'])", re.IGNORECASE)
_PARENTHESISED = re.compile(r"\(([A-Z])\)")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def letters(n: int) -> list[str]:
    """The first n option letters: A, B, C, ..."""
    return list(string.ascii_uppercase[:n])


def format_options(options: dict[str, str]) -> str:
    """The options as the prompt lists them, one per line: "A. a cat"."""
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())


def _words(text: str) -> str:
    return " ".join(text.lower().translate(_PUNCT).split())


def extract_choice(text: str, options: dict[str, str]) -> str | None:
    """The option letter a generated answer chooses, by the rules in the module docstring; None if none."""
    text = text.strip()
    whole = _WHOLE.fullmatch(text)
    if whole and whole.group(1).upper() in options:
        return whole.group(1).upper()
    leading = _LEADING.match(text + " ")
    if leading and (leading.group(1) or leading.group(2)) in options:
        return leading.group(1) or leading.group(2)
    for match in _PHRASE.finditer(text):
        if match.group(1) in options:
            return match.group(1)
    marked = {letter for letter in _PARENTHESISED.findall(text) if letter in options}
    if len(marked) == 1:
        return marked.pop()
    said = _words(text)
    texts = {letter: _words(option) for letter, option in options.items()}
    equal = [letter for letter, option in texts.items() if option and option == said]
    if len(equal) == 1:
        return equal[0]
    inside = [letter for letter, option in texts.items() if option and f" {option} " in f" {said} "]
    return inside[0] if len(inside) == 1 else None


def score_choices(choices: Sequence[str | None], answers: Sequence[str]) -> dict[str, float]:
    """mc_accuracy and unparseable_rate over the questions (None = unparseable)."""
    if not answers:
        return {"mc_accuracy": float("nan"), "unparseable_rate": float("nan")}
    correct = sum(choice == answer for choice, answer in zip(choices, answers, strict=True))
    return {"mc_accuracy": correct / len(answers), "unparseable_rate": sum(c is None for c in choices) / len(answers)}
