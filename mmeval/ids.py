"""Sample ids in messages, sorted as a person reads them: 2 before 10, img2 before img10.

`sorted(ids, key=str)` would list 10 before 2; ids may be ints, strings or a mix (COCO ids are ints, Karpathy
or HF ids are often strings), so a plain `sorted` can also fail on a mix. No library in our dependencies sorts
naturally (natsort would be a new dependency for ten lines), hence this helper.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

_DIGITS = re.compile(r"(\d+)")


def natural_key(value: Any) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders digit runs by their number: 'img2' < 'img10', 9 < 10; any mix of types sorts."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(str(value)) if part)


def natural_sorted(values: Iterable[Any]) -> list[Any]:
    """`values` in natural order: numerically when all are integers (negative ones too), else by natural_key."""
    values = list(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=natural_key)


def show_ids(values: Iterable[Any], limit: int = 10) -> str:
    """The first `limit` ids in natural order, comma-separated, with ' ...' when there are more."""
    ordered = natural_sorted(values)
    return ", ".join(map(str, ordered[:limit])) + (" ..." if len(ordered) > limit else "")
