"""The `mmeval` command: parse, call, render. Bad input exits 2 with one clear line; --debug shows tracebacks.

`app.py` holds the Typer app and shared options; each command module registers its commands on it when imported.
Heavy libraries (torch, matplotlib, transformers) are imported inside commands, once the input is known to be valid.
"""

from __future__ import annotations

# isort: off
# Importing a command module registers its commands, in this order in --help.
from mmeval.cli import run as _run_commands  # noqa: F401  run, bench, validate, score, list
from mmeval.cli import reports as _report_commands  # noqa: F401  report, compare, gate
# isort: on
from mmeval.cli.app import app


def main() -> None:
    app()
