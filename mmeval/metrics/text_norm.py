"""Transcript normalisers for WER / CER: `none`, `basic` (case, punctuation, whitespace), `whisper_en`.

Each normaliser has a name and a version, recorded in the report: WER moves with the normaliser (Whisper's
English normaliser alone can halve a model's WER on read speech), so numbers are only comparable under the same one.
`whisper_en` is Whisper's English normaliser as packaged by `whisper-normalizer` (spellings, numbers, contractions),
used as is, never re-implemented.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

NORMALISERS = ("none", "basic", "whisper_en")
_BASIC_VERSION = "1"  # bump whenever `basic` changes what it outputs
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


@dataclass(frozen=True)
class Normaliser:
    """A named, versioned text -> text function."""

    name: str
    version: str
    apply: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.apply(text)

    def describe(self) -> str:
        return f"{self.name} ({self.version})"


def collapse_whitespace(text: str) -> str:
    """Words separated by single spaces, no leading or trailing space (what `none` still does: WER counts words)."""
    return " ".join(text.split())


def basic(text: str) -> str:
    """NFKC, case-folded; punctuation and symbols become spaces (an apostrophe inside a word stays: don't)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" and c != "'" else c for c in text)
    return collapse_whitespace(_STRAY_APOSTROPHE.sub(" ", text))


def _whisper_en() -> Normaliser:
    from importlib.metadata import version

    from whisper_normalizer.english import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    return Normaliser("whisper_en", f"whisper-normalizer {version('whisper-normalizer')} EnglishTextNormalizer",
                      lambda text: collapse_whitespace(normalise(text)))  # fmt: skip


def get_normaliser(name: str) -> Normaliser:
    """The normaliser called `name` (one of NORMALISERS)."""
    if name == "none":
        return Normaliser("none", "whitespace only", collapse_whitespace)
    if name == "basic":
        return Normaliser("basic", f"mmeval basic v{_BASIC_VERSION}: NFKC, casefold, punctuation", basic)
    if name == "whisper_en":
        return _whisper_en()
    raise ValueError(f"unknown normaliser {name!r}; expected one of {', '.join(NORMALISERS)}")
