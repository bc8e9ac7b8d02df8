"""Start-up: `mmeval --help` and `mmeval list` load no heavy library (torch, transformers, matplotlib, open_clip).

Measured with `python -X importtime`, whose report names every module a process imports; the import time of
each command is printed (run pytest with -s to see it) and written in the README (Tests).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("torch", "transformers", "matplotlib", "open_clip")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$")


def imported(args: list[str]) -> tuple[set[str], float]:
    """The top-level packages `python -X importtime -m mmeval ARGS` imports, and its total import time (s)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mmeval", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    packages, total_us = set(), 0
    for line in done.stderr.splitlines():
        found = IMPORT_LINE.match(line)
        if found:
            packages.add(found.group(3).split(".")[0])
            if len(found.group(2)) <= 1:  # a top-level import: its cumulative time counts once
                total_us += int(found.group(1))
    assert "mmeval" in packages, "no -X importtime report: the parser no longer matches Python's format"
    return packages, total_us / 1e6


def test_importtime_report_is_parsed() -> None:
    # The parser sees a heavy import when there is one (a check of the check below).
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import json"], capture_output=True, text=True)
    names = {IMPORT_LINE.match(line).group(3) for line in done.stderr.splitlines() if IMPORT_LINE.match(line)}
    assert "json" in names and "json.decoder" in names


@pytest.mark.parametrize("args", [
    ["--help"],
    ["list"],
], ids=lambda args: " ".join(args))
def test_command_imports_no_heavy_library(args: list[str]) -> None:
    packages, seconds = imported(args)
    print(f"mmeval {' '.join(args)}: {seconds:.3f} s of imports, {len(packages)} top-level packages")
    assert packages.isdisjoint(HEAVY), sorted(packages & set(HEAVY))
