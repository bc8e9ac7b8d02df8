"""METEOR 1.5 and SPICE 1.0 through the jars that pycocoevalcap 1.2 ships, driven the way pycocoevalcap drives them.

METEOR: one `java -jar meteor-1.5.jar - - -stdio -l en -norm` process; per image a "SCORE ||| ref ||| ... ||| hyp"
line answers a line of sufficient statistics, then one "EVAL ||| stats ||| ..." line answers every image's score
and the corpus score. The corpus METEOR is computed by the jar from the *summed* statistics, so it is not the mean
of the per-image scores; `MeteorScorer.score_from_stats` recomputes it for any subset from the stored statistics.
As in pycocoevalcap, "|||" and double spaces are removed from the hypothesis only; line breaks (which would
desynchronise the protocol) are replaced by spaces in every caption.

SPICE needs Stanford CoreNLP 3.6.0 (`stanford-corenlp-3.6.0.jar` and `stanford-corenlp-3.6.0-models.jar`), which
pycocoevalcap downloads on first use. We never download: give a folder that holds them (or put them in
pycocoevalcap's spice/lib), otherwise `spice_score` returns a skipped result that says why. SPICE 1.0 also
pretty-prints its output with the Nashorn JavaScript engine, which Java 15+ no longer ships: on such a Java it is
skipped too unless a nashorn jar sits in that folder (pycocoevalcap would fail after parsing every caption).
SPICE runs without its LMDB cache.

Both fail with `JavaToolError` (crash, unexpected output, or no answer within the timeout), never hang.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np

from mmeval.metrics.caption.tokenize import JavaToolError, find_java, pycocoevalcap_file

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
_EOF = object()


def meteor_jar() -> Path | None:
    """pycocoevalcap's meteor-1.5.jar (its paraphrase table sits beside it in data/), or None."""
    return pycocoevalcap_file("meteor", "meteor-1.5.jar")


def spice_jar() -> Path | None:
    """pycocoevalcap's spice-1.0.jar (its other dependencies sit beside it in lib/), or None."""
    return pycocoevalcap_file("spice", "spice-1.0.jar")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


@dataclass
class MeteorResult:
    """Corpus METEOR, per-image METEOR, and the per-image statistics lines the jar computed them from."""

    score: float
    per_image: np.ndarray
    stats: list[str]


class MeteorScorer:
    """A running METEOR 1.5 process; use as a context manager (or call close()) to stop it.

    Reading and writing go through threads, so a crashed or stuck JVM turns into a `JavaToolError` after at most
    `timeout_s` seconds per call; after any failure the process is stopped and the scorer cannot be used again.
    """

    def __init__(self, jar: Path | None = None, java: str | None = None, timeout_s: float = 600.0, memory: str = "2G"):
        java = java or find_java()
        jar = Path(jar) if jar else meteor_jar()
        if java is None or jar is None or not jar.is_file():
            raise JavaToolError(f"METEOR needs `java` on PATH and meteor-1.5.jar (java: {java}, jar: {jar})")
        self.timeout_s = timeout_s
        cmd = [java, "-jar", f"-Xmx{memory}", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"]
        self._proc = subprocess.Popen(
            cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._stop = weakref.finalize(self, _kill, self._proc)
        self._lines: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=40)
        self._lock = threading.Lock()
        threading.Thread(target=_pump, args=(self._proc.stdout, self._lines.put, True), daemon=True).start()
        threading.Thread(target=_pump, args=(self._proc.stderr, self._stderr.append, False), daemon=True).start()

    def _failure(self, what: str) -> JavaToolError:
        time.sleep(0.2)  # let the stderr pump catch the last words of a dying JVM
        status = self._proc.poll()
        tail = "\n".join(line.rstrip() for line in self._stderr)[-2000:]
        state = f"exited with status {status}" if status is not None else "was still running and is stopped"
        self.close()
        return JavaToolError(f"METEOR (java) {what}; the process {state}. stderr: {tail or '(empty)'}")

    def _send(self, lines: list[str]) -> None:
        if not self._stop.alive:
            raise JavaToolError("this MeteorScorer is closed (or failed before); start a new one")
        data = "".join(f"{line}\n" for line in lines).encode("utf-8")
        threading.Thread(target=_write, args=(self._proc.stdin, data), daemon=True).start()

    def _read(self, n: int, deadline: float) -> list[str]:
        out = []
        for _ in range(n):
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._failure(f"gave no answer within {self.timeout_s:.0f} s") from None
            if line is _EOF:
                raise self._failure("closed its output")
            out.append(line.strip())
        return out

    def _floats(self, lines: list[str]) -> list[float]:
        try:
            return [float(x) for x in lines]
        except ValueError:
            raise self._failure(f"answered something that is not a score: {lines[:3]!r}") from None

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> MeteorResult:
        """METEOR of tokenized candidates (one per image) against their tokenized references."""
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
        lines = []
        for hyp, refs in zip(candidates, references):
            hyp = _one_line(hyp).replace("|||", "").replace("  ", " ")
            lines.append(" ||| ".join(("SCORE", " ||| ".join(_one_line(r) for r in refs), hyp)))
        with self._lock:
            deadline = time.monotonic() + self.timeout_s
            self._send(lines)
            stats = self._read(len(lines), deadline)
        return self.score_from_stats(stats)

    def score_from_stats(self, stats: Sequence[str]) -> MeteorResult:
        """Corpus and per-image METEOR from statistics lines (e.g. a subset of `MeteorResult.stats`)."""
        if not stats:
            raise ValueError("METEOR of an empty set of images is undefined")
        with self._lock:
            deadline = time.monotonic() + self.timeout_s
            self._send(["EVAL" + "".join(f" ||| {s}" for s in stats)])
            values = self._floats(self._read(len(stats) + 1, deadline))
        return MeteorResult(values[-1], np.array(values[:-1]), list(stats))

    def close(self) -> None:
        """Stop the Java process."""
        self._stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pump(stream, sink, eof_marker: bool) -> None:
    """Forward the lines of a process stream to sink (then _EOF, if asked) until the stream ends; then close it."""
    try:
        for raw in iter(stream.readline, b""):
            sink(raw.decode("utf-8", "replace"))
    except (OSError, ValueError):
        pass
    finally:
        if eof_marker:
            sink(_EOF)
        stream.close()


def _write(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.flush()
    except (OSError, ValueError):  # the process died or was stopped: the reading side reports it
        pass


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    try:
        proc.stdin.close()
    except (OSError, ValueError):
        pass


def meteor_score(candidates: Sequence[str], references: Sequence[Sequence[str]], **kwargs) -> MeteorResult:
    """METEOR with a METEOR process started and stopped for this call (see `MeteorScorer` for kwargs)."""
    with MeteorScorer(**kwargs) as scorer:
        return scorer.score(candidates, references)


@dataclass
class SpiceResult:
    """SPICE corpus score (mean of per-image F, NaN if any image has none, as pycocoevalcap) or why it was skipped."""

    score: float | None = None
    per_image: np.ndarray | None = None  # (n_images,) the "All" F-score of each image
    details: list[dict] = field(default_factory=list)  # per image: category -> {"pr", "re", "f", ...}
    skipped: str | None = None


def find_corenlp(folder: Path | None = None) -> Path | None:
    """The folder holding both Stanford CoreNLP 3.6.0 jars: `folder` if given, else pycocoevalcap's spice/lib."""
    candidates = [Path(folder)] if folder is not None else []
    jar = spice_jar()
    if folder is None and jar is not None:
        candidates.append(jar.parent / "lib")
    for place in candidates:
        if all((place / name).is_file() for name in CORENLP_JARS):
            return place
    return None


def spice_score(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    corenlp_dir: Path | None = None,
    java: str | None = None,
    timeout_s: float = 3600.0,
    memory: str = "8G",
) -> SpiceResult:
    """SPICE of tokenized candidates against their references, or a skipped result when it cannot run here."""
    java = java or find_java()
    jar = spice_jar()
    corenlp = find_corenlp(corenlp_dir)
    if java is None:
        return SpiceResult(skipped="SPICE needs `java` on PATH")
    if jar is None:
        return SpiceResult(skipped="SPICE needs pycocoevalcap's spice-1.0.jar (pip install pycocoevalcap)")
    if corenlp is None:
        where = corenlp_dir if corenlp_dir is not None else jar.parent / "lib"
        return SpiceResult(skipped=f"SPICE needs {' and '.join(CORENLP_JARS)} in {where} (never downloaded here)")
    version = java_major_version(java)
    if (version is None or version >= 15) and not list(corenlp.glob("nashorn*.jar")):
        return SpiceResult(skipped=(
            f"SPICE 1.0 writes its results through the Nashorn JavaScript engine, which Java 15+ lacks (java major "
            f"version: {version}); add nashorn-core and its asm jars to {corenlp}, or use Java 8-14"
        ))
    payload = [{"image_id": i, "test": _one_line(c), "refs": [_one_line(r) for r in refs]}
               for i, (c, refs) in enumerate(zip(candidates, references))]
    with tempfile.TemporaryDirectory(prefix="mmeval-spice-") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(payload))
        classpath = os.pathsep.join([str(jar), str(jar.parent / "lib" / "*"), str(corenlp / "*")])
        cmd = [java, f"-Xmx{memory}", "-cp", classpath, "edu.anu.spice.SpiceScorer", str(src),
               "-out", str(dst), "-subset", "-silent"]
        try:
            done = subprocess.run(cmd, cwd=jar.parent, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise JavaToolError(f"SPICE (java) gave no result within {timeout_s:.0f} s") from e
        if done.returncode != 0 or not dst.is_file():
            tail = done.stderr.decode("utf-8", "replace")[-2000:]
            raise JavaToolError(f"SPICE (java) exited with status {done.returncode}: {tail or '(no stderr)'}")
        results = json.loads(dst.read_text())
    by_image = {item["image_id"]: item["scores"] for item in results}
    details = [{cat: {k: _float(v) for k, v in vals.items()} for cat, vals in by_image[i].items()}
               for i in range(len(payload))]
    per_image = np.array([d["All"]["f"] for d in details], dtype=np.float64)
    return SpiceResult(score=float(np.mean(per_image)), per_image=per_image, details=details)


def java_major_version(java: str) -> int | None:
    """Major version of a Java runtime (8 for "1.8.0_292", 17 for "17.0.15"), or None if it cannot tell."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr.decode("utf-8", "replace"))
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
