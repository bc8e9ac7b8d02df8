"""Text perturbations of queries, prompts and questions (VHELM-style robustness): keyboard typos, character
drops, casing and punctuation. Severity s touches a share 0.05 x s of the eligible characters (at least one).
`template_variant` swaps a zero-shot prompt template for an alternative from a fixed list per severity.
Written by hand: the packages that do this (nlpaug, textattack) pull in torch-version-pinned NLP stacks."""

from __future__ import annotations

import string

import numpy as np

from mmeval.perturb import register

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
NEIGHBOURS = {}  # QWERTY neighbours on the same and adjacent rows
for r, row in enumerate(_ROWS):
    for c, key in enumerate(row):
        near = {row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)}
        for other in (r - 1, r + 1):
            if 0 <= other < len(_ROWS):
                near |= {_ROWS[other][i] for i in (c - 1, c, c + 1) if 0 <= i < len(_ROWS[other])}
        NEIGHBOURS[key] = "".join(sorted(near))


def _positions(text: str, eligible, severity: int, rng: np.random.Generator) -> list[int]:
    where = [i for i, ch in enumerate(text) if eligible(ch)]
    if not where:
        return []
    k = max(1, round(0.05 * severity * len(where)))
    return sorted(rng.choice(where, size=min(k, len(where)), replace=False).tolist())


def keyboard_typo(text: str, severity: int, rng: np.random.Generator) -> str:
    """Letters replaced by a QWERTY neighbour (case kept)."""
    chars = list(text)
    for i in _positions(text, lambda ch: ch.lower() in NEIGHBOURS, severity, rng):
        near = NEIGHBOURS[chars[i].lower()]
        new = near[int(rng.integers(len(near)))]
        chars[i] = new.upper() if chars[i].isupper() else new
    return "".join(chars)


def char_drop(text: str, severity: int, rng: np.random.Generator) -> str:
    """Letters and digits deleted."""
    drop = set(_positions(text, str.isalnum, severity, rng))
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def casing(text: str, severity: int, rng: np.random.Generator) -> str:
    """Letters with their case swapped."""
    chars = list(text)
    for i in _positions(text, str.isalpha, severity, rng):
        chars[i] = chars[i].swapcase()
    return "".join(chars)


def punctuation(text: str, severity: int, rng: np.random.Generator) -> str:
    """Punctuation deleted, and at higher severity spaces replaced by random punctuation marks."""
    out = "".join(ch for ch in text if ch not in string.punctuation)
    chars = list(out)
    if severity > 1:
        for i in _positions(out, str.isspace, severity - 1, rng):
            chars[i] = ",;:.!?"[int(rng.integers(6))]
    return "".join(chars)


# Prompt-template variants by severity: alternative CLIP-style templates drifting away from the photo framing the
# models saw most (paraphrases, other depictions, the bare class name, hedged phrasings, distracting context).
# Our own list (no package ships one); each template has exactly one {c}.
TEMPLATE_VARIANTS = (
    ("a photo of a {c}.", "a picture of a {c}.", "an image of a {c}.", "a photograph of the {c}."),
    ("a drawing of a {c}.", "a painting of the {c}.", "a sketch of a {c}.", "a cartoon of a {c}."),
    ("{c}", "{c}.", "the {c}", "a {c}"),
    ("something that may be a {c}.", "maybe a {c}?", "a thing a bit like a {c}.", "it could be a {c}, or not."),
    ("a {c} hidden among many other objects.", "a blurry corner of a room; somewhere a {c}.",
     "text reading 'not a {c}'.", "a screenshot mentioning a {c} in small print."),
)
TEMPLATE_PERTURBATIONS = frozenset({"template_variant"})  # act on a prompt template ({c} kept), not on a prompt


def template_variant(text: str, severity: int, rng: np.random.Generator) -> str:
    """A prompt template ("... {c} ...") swapped for one of the variants of `severity` (drawn per sample); a text
    without {c} is put in the variant's place of {c}."""
    pool = TEMPLATE_VARIANTS[severity - 1]
    variant = pool[int(rng.integers(len(pool)))]
    return variant if "{c}" in text else variant.replace("{c}", text)


for _name, _fn in (("keyboard_typo", keyboard_typo), ("char_drop", char_drop), ("casing", casing),
                   ("punctuation", punctuation), ("template_variant", template_variant)):
    register("text", _name, _fn)
