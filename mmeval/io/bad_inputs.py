"""Unreadable inputs of a pass, for every modality: a few warnings, one summary line, one threshold.

A dataset with thousands of missing files must not print thousands of lines: each loader records its bad items
with `record_bad` (the first `SHOWN` are logged one by one, then a single line says the rest are only counted);
once the pass is done the benchmark logs `skipped_line` ("skipped N of M images (x%)") and checks
`data.max_bad_fraction` with `check_bad_fraction`. The full list always goes into the report.
"""

from __future__ import annotations

import logging

from mmeval.errors import DataError

log = logging.getLogger(__name__)
SHOWN = 5  # unreadable items logged one by one per pass; the rest are counted (the report lists all of them)


def record_bad(bad: list[tuple[int, str]], index: int, reason: str, on_bad: str, what: str = "image") -> None:
    """Record item `index` of a pass as unreadable in `bad` (the pass's list), or raise DataError when the policy
    (`data.on_bad_image`) is fail. Logs the first `SHOWN` items, then once that the others are only counted."""
    if on_bad == "fail":
        raise DataError(f"{reason} (set data.on_bad_image: skip to skip such {what}s)")
    bad.append((index, reason))
    if len(bad) <= SHOWN:
        log.warning("skipping %s: %s", what, reason)
    elif len(bad) == SHOWN + 1:
        log.warning("more unreadable %ss: counted, not shown one by one (the report lists every one)", what)


def skipped_line(n_bad: int, n_total: int, what: str = "images") -> str:
    """'skipped 15 of 20 images (75.0%)': the one summary line of a pass's unreadable items."""
    return f"skipped {n_bad:,} of {n_total:,} {what} ({_percent(n_bad, n_total)})"


def bad_fraction_problem(n_bad: int, n_total: int, max_fraction: float | None, what: str = "images") -> str | None:
    """Why `n_bad` unreadable of `n_total` is too many for `data.max_bad_fraction` (None: within the limit, or
    no limit). The fraction must exceed the threshold to fail: 0.5 allows exactly half."""
    if not exceeds(n_bad, n_total, max_fraction):
        return None
    return (f"{n_bad:,} of {n_total:,} {what} unreadable ({_percent(n_bad, n_total)}): the fraction "
            f"{n_bad / n_total:.4g} is over data.max_bad_fraction {max_fraction:g}")


def exceeds(n_bad: int, n_total: int, max_fraction: float | None) -> bool:
    """Whether `n_bad` of `n_total` is more than `max_fraction` (None: no limit)."""
    return max_fraction is not None and n_total > 0 and n_bad / n_total > max_fraction


def _percent(n_bad: int, n_total: int) -> str:
    return f"{100 * n_bad / n_total:.1f}%" if n_total else "0.0%"
