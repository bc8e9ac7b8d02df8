"""SIGTERM during `mmeval run` (a CI job cancelled, a Slurm job pre-empted) is handled as Ctrl-C is.

The handler raises `Terminated`, a KeyboardInterrupt, so the same path runs: the finished batches are kept for
`--resume`, the benchmark in progress is marked interrupted, the report of what finished is written and the
resume command printed; the exit code is then 143 (128 + SIGTERM, what shells and schedulers expect of a
process ended by SIGTERM) instead of Ctrl-C's 130. Only the first SIGTERM raises: a scheduler that signals
again while the report is written (Slurm's KillWait, torchrun forwarding) must not cut that short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import typer

from mmeval.reporting.console import print_error

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143
SIGINT_EXIT = 128 + signal.SIGINT  # 130


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as after Ctrl-C."""

    def __str__(self) -> str:
        return "terminated (SIGTERM)"


class Signals:
    """Which stop signal the run received, for the exit code and the message."""

    def __init__(self) -> None:
        self.terminated = False

    def exit_code(self) -> int:
        return SIGTERM_EXIT if self.terminated else SIGINT_EXIT

    def what(self) -> str:
        return "terminated (SIGTERM)" if self.terminated else "interrupted"

    def _handler(self, signum: int, frame: Any) -> None:
        if not self.terminated:
            self.terminated = True
            raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[Signals]:
    """Within the block SIGTERM raises `Terminated` (once); the previous handler is restored afterwards. After a
    SIGTERM, an interrupt that escapes the block (no benchmark had started, e.g. the model was loading) ends the
    command with one line and exit code 143; a Ctrl-C escaping it is left to the CLI's own handling (exit 130)."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield signals
        return
    previous = signal.signal(signal.SIGTERM, signals._handler)
    try:
        yield signals
    except KeyboardInterrupt:
        if not signals.terminated:
            raise
        print_error("terminated (SIGTERM) before any benchmark finished; nothing was computed")
        raise typer.Exit(SIGTERM_EXIT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
