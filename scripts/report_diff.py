#!/usr/bin/env python
"""Compare two mmeval reports and print every difference that is not volatile; exit 0 when they are equal.

    python scripts/report_diff.py A.json B.json [--limit N]

Checks that a change kept behaviour: run one config before and after, then compare. Beside the report
itself it compares the per-sample file (`per_sample_file`) and each benchmark's predictions file
(`predictions_file`) when both reports have them next to them. Numbers are compared exactly.

Volatile, so ignored: timestamps, timings and latency blocks, bootstrap and load seconds, the git commit,
the command line, hostnames, cache hit/miss facts, absolute paths (any string starting with "/") and the
run stamp in file names (`shapes-clip-20260101-120000.json`). Stand-alone on purpose (json only, no mmeval
import), so it reads reports of any mmeval commit.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

# Keys dropped wherever they appear (they change from run to run, not with behaviour)
VOLATILE_KEYS = frozenset({
    "created_at", "git_commit", "command", "hostname", "host",
    "timings", "latency", "seconds", "load_s", "cached", "cache_hits", "cache_misses",
})
STAMP = re.compile(r"\d{8}-\d{6}")


def normalize(value: Any) -> Any:
    """The report without its volatile fields: paths and run stamps replaced by placeholders."""
    if isinstance(value, dict):
        return {key: normalize(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, str):
        return "<path>" if value.startswith("/") else STAMP.sub("<stamp>", value)
    return value


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """One line per leaf that differs between two normalized JSON values (exact, also for floats)."""
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for key in list(a) + [key for key in b if key not in a]:
            path = f"{where}.{key}" if where else str(key)
            if key not in b:
                lines.append(f"{path}: only in A ({_short(a[key])})")
            elif key not in a:
                lines.append(f"{path}: only in B ({_short(b[key])})")
            else:
                lines.extend(differences(a[key], b[key], path))
        return lines
    if isinstance(a, list) and isinstance(b, list):
        lines = [f"{where}: length {len(a)} != {len(b)}"] if len(a) != len(b) else []
        for index, (left, right) in enumerate(zip(a, b)):
            lines.extend(differences(left, right, f"{where}[{index}]"))
        return lines
    # type and value: 1 == 1.0 == True in Python, not in a report
    if type(a) is not type(b) or a != b:
        return [f"{where}: {_short(a)} != {_short(b)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _load(path: Path) -> Any:
    with path.open() as handle:
        return json.load(handle)


def side_files(report: dict, folder: Path) -> dict[str, Path]:
    """The files a report names that hold results: its per-sample file and each benchmark's predictions."""
    named = {"per-sample file": report.get("per_sample_file")}
    for name, benchmark in (report.get("benchmarks") or {}).items():
        if isinstance(benchmark, dict):
            named[f"{name} predictions"] = benchmark.get("predictions_file")
    return {label: folder / file for label, file in named.items() if isinstance(file, str)}


def compare(a_path: Path, b_path: Path) -> list[str]:
    """Every non-volatile difference between two reports and the result files both of them name."""
    a, b = _load(a_path), _load(b_path)
    lines = [f"report: {line}" for line in differences(normalize(a), normalize(b))]
    a_files, b_files = side_files(a, a_path.parent), side_files(b, b_path.parent)
    for label in sorted(set(a_files) | set(b_files)):
        left, right = a_files.get(label), b_files.get(label)
        if left is None or right is None or not (left.is_file() and right.is_file()):
            print(f"note: {label} not compared (in A: {left and left.is_file()}, in B: {right and right.is_file()})")
            continue
        found = differences(normalize(_load(left)), normalize(_load(right)))
        lines.extend(f"{label}: {line}" for line in found)
        print(f"compared {label}: {left.name} vs {right.name}: {len(found)} differences")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="first report (.json)")
    parser.add_argument("b", type=Path, help="second report (.json)")
    parser.add_argument("--limit", type=int, default=0, help="print at most this many differences (0: all)")
    args = parser.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"error: {path}: no such report", file=sys.stderr)
            return 2
    lines = compare(args.a, args.b)
    for line in lines[: args.limit or None]:
        print(line)
    if args.limit and len(lines) > args.limit:
        print(f"... and {len(lines) - args.limit} more")
    print(f"{len(lines)} differences" if lines else "equal (volatile fields ignored)")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
