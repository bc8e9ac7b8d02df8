"""Caption tokenization exactly as pycocoevalcap does it: the Stanford PTB tokenizer through Java, or a Python twin.

Why it matters: BLEU, METEOR, ROUGE_L, CIDEr and SPICE are all defined on PTB-tokenized, lower-cased captions with
punctuation tokens removed; another tokenizer changes the numbers.

What pycocoevalcap 1.2's `PTBTokenizer.tokenize` does, and we reproduce:
- all captions of one call go through one Java process, one caption per line (`-preserveLines -lowerCase`), then
  the tokens in `PUNCTUATIONS` are dropped and the rest joined with single spaces;
- that filter compares *lower-cased* tokens with *upper-case* bracket names, so brackets survive as "-lrb-",
  "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"; so do "!!", "?!", "&", "$", "%", ...;
- empty and whitespace-only captions become "";
- the lexer reads across captions: a one-letter abbreviation that ends a caption keeps its period ("b.") unless
  the next caption starts with a sentence starter ("A", "The", ...), so a caption's tokens can depend on its
  neighbour. Tokenize references and predictions as separate batches, in dict order, as COCOEvalCap does
  (`tokenize_batches` does that in a single Java process);
- deviation, on purpose: pycocoevalcap only replaces "\\n" inside captions, but the lexer also breaks lines at
  "\\r", "\\v", "\\f", U+2028 and U+2029, which shifts every later caption onto the wrong image; we replace all
  of them by spaces first;
- characters outside the Basic Multilingual Plane (emoji) and control characters are dropped by the lexer.

`python_tokenize` is a hand-written lexer that follows the PTB conventions (PTBLexer rules: clitics "n't" and
"'s", hyphenated and dotted words, abbreviation and acronym periods, numbers, brackets, ellipses). It is used
when Java or the jar is missing; it agrees token for token with the Java tokenizer on every one of the 48,037
captions of the COCO val2014 subset in ../shared/data (tests/test_caption_tokenizer.py measures it).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from mmeval.errors import MmevalError

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# pycocoevalcap's list, compared with the lower-cased tokens (so its bracket names never match).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
PTB_JAR_NAME = "stanford-corenlp-3.4.1.jar"
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\u2028\u2029]")
# A line that cannot change how its neighbours are lexed: it separates batches inside one Java run.
_BATCH_SEPARATOR = "x"


class JavaToolError(MmevalError):
    """A Java tool (PTB tokenizer, METEOR, SPICE) that crashed, hung or answered something unexpected."""


def find_java() -> str | None:
    """Path of the `java` executable, or None."""
    return shutil.which("java")


def pycocoevalcap_file(*parts: str) -> Path | None:
    """A file shipped inside the installed pycocoevalcap package (found without importing it), or None."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def ptb_jar() -> Path | None:
    """The Stanford CoreNLP 3.4.1 jar that pycocoevalcap ships for its PTB tokenizer, or None."""
    return pycocoevalcap_file("tokenizer", PTB_JAR_NAME)


def ptb_available() -> bool:
    """Whether the Java PTB tokenizer can run here (java on PATH and the jar installed)."""
    return find_java() is not None and ptb_jar() is not None


def _caption_lines(captions: Mapping[K, Sequence[str]]) -> list[str]:
    return [_LINE_BREAKS.sub(" ", caption) for captions_of_key in captions.values() for caption in captions_of_key]


def _regroup(captions: Mapping[K, Sequence[str]], token_lines: list[list[str]]) -> dict[K, list[str]]:
    """Lower-cased tokens back into {key: [caption, ...]}, without punctuation tokens, like pycocoevalcap."""
    out: dict[K, list[str]] = {}
    lines = iter(token_lines)
    for key, captions_of_key in captions.items():
        out[key] = [" ".join(w for w in next(lines) if w not in PUNCTUATIONS) for _ in captions_of_key]
    return out


def _run_ptb(batches: list[list[str]], timeout_s: float | None) -> list[list[list[str]]]:
    """Raw PTB tokens of each line of each batch, from one Java process."""
    java, jar = find_java(), ptb_jar()
    if java is None or jar is None:
        raise JavaToolError("the PTB tokenizer needs `java` on PATH and pycocoevalcap's " + PTB_JAR_NAME)
    text = f"\n{_BATCH_SEPARATOR}\n".join("\n".join(lines) for lines in batches)
    n_lines = sum(len(lines) for lines in batches) + len(batches) - 1
    cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"]
    timeout = timeout_s if timeout_s is not None else 120.0 + n_lines / 1000.0
    try:
        done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise JavaToolError(f"the PTB tokenizer did not finish within {timeout:.0f} s ({n_lines} captions)") from e
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise JavaToolError(f"the PTB tokenizer (java) exited with status {done.returncode}: {stderr[-2000:]}")
    log.debug("PTB tokenizer: %s", stderr.strip()[-500:])
    out_lines = done.stdout.decode("utf-8").split("\n")
    if len(out_lines) != n_lines:
        raise JavaToolError(f"the PTB tokenizer returned {len(out_lines)} lines for {n_lines} input lines")
    result, start = [], 0
    for lines in batches:
        result.append([line.rstrip().split(" ") for line in out_lines[start : start + len(lines)]])
        start += len(lines) + 1
    return result


def ptb_tokenize(captions: Mapping[K, Sequence[str]], timeout_s: float | None = None) -> dict[K, list[str]]:
    """pycocoevalcap's `PTBTokenizer().tokenize`, from plain strings: {key: [caption, ...]} -> same keys, tokenized."""
    return ptb_tokenize_batches([captions], timeout_s)[0]


def ptb_tokenize_batches(
    batches: Sequence[Mapping[K, Sequence[str]]], timeout_s: float | None = None
) -> list[dict[K, list[str]]]:
    """Each batch tokenized as if by its own `PTBTokenizer().tokenize` call, in a single Java process."""
    lines = [_caption_lines(batch) for batch in batches]
    busy = [i for i, batch_lines in enumerate(lines) if batch_lines]
    raw = dict(zip(busy, _run_ptb([lines[i] for i in busy], timeout_s))) if busy else {}
    return [_regroup(batch, raw.get(i, [])) for i, batch in enumerate(batches)]


def python_tokenize(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """Pure-Python twin of `ptb_tokenize` (same input, same output format), for machines without Java."""
    token_lines = _lex("\n".join(_caption_lines(captions)))
    return _regroup(captions, [[t.lower() for t in tokens] for tokens in token_lines])


def tokenize_batches(
    batches: Sequence[Mapping[K, Sequence[str]]], prefer: str = "ptb"
) -> tuple[list[dict[K, list[str]]], str]:
    """Tokenize batches separately; returns (tokenized batches, "ptb-java" or "python-fallback").

    prefer="ptb" uses Java when java and the jar are available and warns when it has to fall back;
    prefer="python" always uses the Python lexer.
    """
    if prefer not in ("ptb", "python"):
        raise ValueError(f"prefer must be 'ptb' or 'python', not {prefer!r}")
    if prefer == "ptb":
        if ptb_available():
            return ptb_tokenize_batches(batches), "ptb-java"
        log.warning(
            "Java PTB tokenizer unavailable (java: %s, %s: %s); using the Python fallback tokenizer",
            find_java() or "not on PATH", PTB_JAR_NAME, ptb_jar() or "not found",
        )
    return [python_tokenize(batch) for batch in batches], "python-fallback"


def tokenize(captions: Mapping[K, Sequence[str]], prefer: str = "ptb") -> tuple[dict[K, list[str]], str]:
    """Tokenize one batch; returns (tokenized, tokenizer name) - see `tokenize_batches`."""
    tokenized, name = tokenize_batches([captions], prefer)
    return tokenized[0], name


# ---------------------------------------------------------------------------------------------------------------
# The Python lexer. Like JFlex, at every position it takes the longest match over all rules (the first rule
# wins ties); rules with a lookahead part (`tok` group) emit only that part but compete with their full length.

def _words(text: str) -> list[str]:
    return text.split()


_NUMERIC_SYMBOLS = "\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff"
_LET = r"[^\W\d_" + _NUMERIC_SYMBOLS + "]"
_AN = r"[^\W_" + _NUMERIC_SYMBOLS + "]"
_APOS = "['\u2019\u0092]"
_APOSX = "['\u2019\u0092`\u2018\u201b]"
_ACRO = r"[A-Za-z](?:\.[A-Za-z])+"
_SINGLE_QUOTES = "\u2018\u201a\u201b\u2019`'\u2039\u203a"
_THING = r"(?:[dDoOlL]" + _APOSX + r")?" + _AN + r"+(?:[-_/](?:[dDoOlL]" + _APOSX + r")?" + _AN + r"+)*"

# Abbreviations that keep their period in any case; those that are also common words only when capitalised
# ("Mass." but "mass ."); a few only as written.
_ABBREV_ANY_CASE = _words(
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri "
    "calif conn fla mich va ariz tenn mo md wis minn ind okla kan ga colo ky ala nev neb vt wyo "
    "inc co cos corp ltd plc bancorp dept bhd assn univ intl sys tel est ext sq jr sr bros blvd rd esq "
    "etc al seq bldg mr mrs ms dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs "
    "adm rev maj sgt cpl pvt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det mt ft "
    "rt ct adj adv asst assoc ens insp mlle mme msgr sfc vs alex wm jos cie cf treas ph invt elec natl"
)
_ABBREV_CAPITALISED = _words("ark del ill la mass miss ore pa tex wash")
_ABBREV_EXACT = _words("Pty Pts Ptes Pte Mfg Mtg")
_ABBREV = (
    "(?:(?i:" + "|".join(_ABBREV_ANY_CASE) + ")|"
    + "|".join(w.capitalize() + "|" + w.upper() for w in _ABBREV_CAPITALISED) + "|"
    + "|".join(_ABBREV_EXACT) + ")"
)
# Words after which a one-letter abbreviation is taken to end a sentence ("saw b. The" -> "b" ".").
_STARTERS = _words(
    "A About According After An As At But He Her Here If In It Last Many More Now Once One Other Our She Since "
    "So Some Such That The Their Then There These They This We What When While Yet You"
)
_SENTENCE_START = re.compile(r"\s+(?:(?:" + "|".join(w + "|" + w.upper() for w in _STARTERS) + r")\s|M[rs]\.)")

_RULES = [
    ("newline", r"\r\n|[\n\r\u2028\u2029\x0b\x0c]"),
    ("space", r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\x85]+"),
    ("token", r"</?[A-Za-z!?][^>\r\n]*>"),  # SGML tag
    ("token", r"https?://[^\s\"<>|()]*[^\s\"<>|.!?(){},\-]"),
    ("token", (r"(?:www\.(?:[^\s\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}|(?:[^\s\"`'<>|.!?(){},\-_$]+\.)+(?:com|net|org|edu))"
               r"(?:/[^\s\"<>|()]*[^\s\"<>|.!?(){},\-])?")),
    ("token", r"[a-zA-Z0-9][^\s\"<>|(){}]*@(?:[^\s\"<>|(){}.]+\.)*[^\s\"<>|(){}.]+"),  # e-mail
    ("split", r"(?P<a>(?i:can))(?P<b>(?i:not))"),
    ("split", r"(?P<a>(?i:gon|wan))(?P<b>(?i:na))"),
    ("split", r"(?P<a>(?i:got))(?P<b>(?i:ta))"),
    ("split", r"(?P<a>(?i:gim|lem))(?P<b>(?i:me))"),
    ("split", r"(?P<a>'(?i:t))(?P<b>(?i:is|was))"),
    ("token", _ACRO + r"\."),
    ("token", _ABBREV + r"\."),
    ("letter", r"[A-Za-z]\."),
    ("keep", r"(?P<tok>(?i:no|nos|fig|pp|art|op|ca)\.)\s*\d"),  # abbreviations only before a number
    ("token", r"\d+\.[xX](?![^\W_])"),
    ("token", _LET + _AN + r"*(?:[.!?]" + _LET + _AN + r"*)*"),
    ("keep", r"(?P<tok>" + _LET + _AN + r"*)" + _APOS + r"(?i:[msd]|re|ve|ll)(?![A-Za-z])"),
    ("keep", r"(?P<tok>[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*)(?i:n" + _APOSX + "t)"),
    ("clitic", r"(?i:n" + _APOSX + "t)"),
    ("clitic", _APOS + r"(?i:[msd]|re|ve|ll)(?![A-Za-z])"),
    ("token", _APOS + "n" + _APOS + "?|[lLdDjJyY]" + _APOS + "|" + _APOS + "em|" + _APOS + "till?|"
     + _APOS + "cause|[A-HJ-XZn]" + _APOSX + _LET + "{2,}|" + _APOS + "[2-9]0s|"
     + _LET + "*[aeiouyAEIOUY]" + _APOSX + "[aeiouA-Z]" + _LET + "*"),
    ("token", _THING),
    ("token", _THING + r"\.(?=[,;:])"),
    ("token", _AN + "(?:" + _AN + r"|[.,\u00ad])*(?:-(?:" + _AN + r"+(?:\.\d+)?|" + _ACRO + r"\.))+"),
    ("token", r"[A-Z]+(?:[+&][A-Z]+)+"),
    ("token", "(?:\\d{1,4}[- \u00a0])?\\d{1,4}(?:\\\\?/|\u2044)\\d{1,4}"),  # fraction
    ("token", r"[-+]?(?:\d*(?:[.:,]\d+)+|\d+)"),
    ("token", r"@[a-zA-Z_][a-zA-Z_0-9]*|#" + _LET + _AN + "*"),
    ("as", r"\.\.\.+|\.(?: \.)+|\u2026"),  # -> "..."
    ("as", r"--+|[\u2013\u2014\u2015]"),  # -> "--"
    ("emoticon", r"[<>]?[:;=][\-o*']?[()\[\]DPdp]"),
    ("token", r"[?!]+|[A-Z]*\$"),
    ("as", "\"|``|''|[\u201c\u201d\u201e\u00ab\u00bb]"),  # -> "''"
    ("as", "[" + _SINGLE_QUOTES + "]"),  # -> "'"
    ("token", r"[.,;:\-&%#*+=@~^|\\<>/]|_+"),
    ("as", r"[()\[\]{}]"),  # -> -LRB- ...
    ("as", "[\u00a2\u00a3\u20ac]"),  # currency, normalised
    ("fraction", "[\u00bc-\u00be\u2150-\u215e]"),
    ("token", "[^\\s\\x00-\\x1f\\x7f-\\x9f\u200b-\u200f\ufeff\ud800-\udfff\U00010000-\U0010ffff]"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in _RULES]
_AS = {
    "(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-",
    "\u00a2": "cents", "\u00a3": "#", "\u20ac": "$",
}
# Fast path: plain words followed by a space or a line end, and runs of spaces.
_PLAIN = re.compile(r" +|[A-Za-z]+(?=[ \n]|$)")
_SPLIT_WORDS = re.compile(r"(?i)cannot|gonna|wanna|gotta|gimme|lemme")


def _emit(name: str, match: re.Match, text: str, out: list[str]) -> int:
    """Append the tokens of one rule match; returns how many characters it consumed."""
    tok = match.group()
    if name == "token":
        out.append(tok.replace(" ", "\u00a0"))  # as PTBTokenizer writes "1 1/2" and SGML tags with spaces
    elif name == "split":
        out += [match.group("a"), match.group("b")]
    elif name == "keep":
        out.append(match.group("tok"))
        return len(match.group("tok"))
    elif name == "letter":
        out += [tok[0], "."] if _SENTENCE_START.match(text, match.end()) else [tok]
    elif name == "clitic":
        out.append(tok.replace("\u2019", "'").replace("\u0092", "'"))
    elif name == "as":
        if tok[0] in ".\u2026":
            out.append("...")
        elif tok[0] in "-\u2013\u2014\u2015":
            out.append("--")
        else:  # brackets and currency by table; quotes become the PTB's '' or ' (pycocoevalcap drops both)
            out.append(_AS.get(tok, "'" if tok in _SINGLE_QUOTES else "''"))
    elif name == "emoticon":
        out.append(tok[:-1] + _AS.get(tok[-1], tok[-1]))
    elif name == "fraction":
        frac = Fraction(unicodedata.numeric(tok)).limit_denominator(16)
        out.append(f"{frac.numerator}/{frac.denominator}")
    return len(tok)


def _lex(text: str) -> list[list[str]]:
    """PTB tokens of text, one list per line."""
    lines: list[list[str]] = [[]]
    pos, end = 0, len(text)
    while pos < end:
        m = _PLAIN.match(text, pos)
        if m and not _SPLIT_WORDS.fullmatch(m.group()):
            if m.group()[0] != " ":
                lines[-1].append(m.group())
            pos = m.end()
            continue
        best, best_len = None, 0
        for name, rx in _COMPILED:
            m = rx.match(text, pos)
            if m and m.end() - pos > best_len:
                best, best_len = (name, m), m.end() - pos
        if best is None:  # untokenizable character: dropped, as the Java lexer does (with a warning)
            pos += 1
        elif best[0] == "newline":
            lines.append([])
            pos += best_len
        elif best[0] == "space":
            pos += best_len
        else:
            pos += _emit(best[0], best[1], text, lines[-1])
    return lines
