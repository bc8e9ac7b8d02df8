"""Writing files so that a reader never sees half of one (no torch here: the report commands import it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """`write(tmp)` to a temporary file beside `path`, then rename it to `path`: never a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# One wording wherever a folder is expected (output.dir, --output, the folder of --html) and a file is in the way.
FOLDER_EXPECTED = "expected a folder (created if missing), got a file"


def file_in_the_way(directory: Path) -> Path | None:
    """The first of `directory` and its parents that exists and is not a folder, as the user wrote it (so a
    message names it as given), or None when `directory` can be created or already is a folder."""
    for candidate in (directory, *directory.parents):
        try:
            expanded = candidate.expanduser()
        except RuntimeError:  # `~user` of no known user: nothing there can be in the way (the config check names it)
            return None
        if expanded.exists():
            return None if expanded.is_dir() else candidate
    return None


def check_folder(directory: Path, where: str) -> None:
    """Raise MmevalError `where: expected a folder (created if missing), got a file: PATH` when a file is where
    the folder `directory` (or one of its parents) must go."""
    from mmeval.errors import MmevalError

    blocker = file_in_the_way(directory)
    if blocker is not None:
        raise MmevalError(f"{where}: {FOLDER_EXPECTED}: {blocker}")
