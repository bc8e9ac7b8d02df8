"""`mmeval validate --decode`: decode every image of a source in DataLoader workers and list the ones that fail.

Images are decoded exactly as a run decodes them on the CPU (`source.load`, i.e. `io.images.decode_image`:
header checks, truncation, decompression-bomb limit), so a file reported here is a file a run would skip or
fail on; nothing is resized and no pixels go back to the main process, only the failures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from torch.utils.data import DataLoader, Dataset

from mmeval.errors import DataError

LISTED = 10  # failures named one per line; the rest are counted (a broken folder must not flood the terminal)
_BATCH = 32  # images per worker task: large enough to amortise the hand-over, small enough for steady progress


@dataclass
class DecodeCheck:
    """The outcome of decoding a whole source."""

    n_images: int
    bad: list[tuple[int, str]] = field(default_factory=list)  # (source index, reason), in source order

    def listed(self) -> list[str]:
        """The first `LISTED` reasons, then how many more there are."""
        lines = [reason for _, reason in self.bad[:LISTED]]
        if len(self.bad) > LISTED:
            lines.append(f"... and {len(self.bad) - LISTED} more")
        return lines


class _Decodes(Dataset):
    """Item i -> (i, None) when image i decodes, else (i, the one-line reason); the pixels stay in the worker."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, str | None]:
        try:
            self.source.load(index)
        except DataError as exc:
            return index, str(exc)
        return index, None


def _as_list(items):
    return items


def default_decode_workers() -> int:
    """No model shares the cores during `validate`: every core decodes (up to 16)."""
    return max(1, min(16, os.cpu_count() or 1))


def decode_all(source, num_workers: int, advance: Callable[[int], None] = lambda n: None) -> DecodeCheck:
    """Decode every image of `source` (an image source with `load`) with `num_workers` DataLoader workers
    (0: in this process); report the ones that cannot be decoded."""
    loader = DataLoader(_Decodes(source), batch_size=_BATCH, num_workers=num_workers, collate_fn=_as_list)
    found = DecodeCheck(len(source))
    for items in loader:
        found.bad.extend((index, reason) for index, reason in items if reason is not None)
        advance(len(items))
    return found
