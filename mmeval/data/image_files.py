"""Image files named by annotations: `image_pattern`, the check for missing files, and near-miss suggestions.

Before any model pass, a benchmark's image files are checked once (`check_image_files`; `mmeval validate` runs
the same check): missing files fail the benchmark at once when `on_bad_image` is fail or more of them are
missing than `max_bad_fraction` allows, else one warning says how many. Both messages say what is in the folder
instead when that looks like the files under other names (`suggest`): the same number with another prefix or
zero padding (`COCO_val2014_000000318219.jpg` in the annotations, `000000318219.jpg` on disk), another extension
or case, or the same names one sub-folder down (`val2014/`). For formats with `data.image_pattern` the
suggestion is a pattern, checked against every image id before it is offered ("finds 9 of 9,600").
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.config.data import format_reads
from mmeval.errors import DataError
from mmeval.io.bad_inputs import exceeds

log = logging.getLogger(__name__)
_DIGITS = re.compile(r"\d+")
_SAMPLE = 200  # missing names looked for in each sub-folder (a stat each; renamed files are matched on all names)
_SUBFOLDERS = 50  # sub-folders searched for the missing names


def fill_pattern(pattern: str, image_id: Any, example: str) -> str:
    """The file name `pattern` gives `image_id` (`str.format` with `{image_id}`); a DataError naming
    data.image_pattern when the pattern has no placeholder or cannot take this id."""
    if "{image_id" not in pattern:
        raise DataError(f"data.image_pattern: {pattern!r} has no {{image_id}} placeholder, e.g. {example}")
    try:
        return pattern.format(image_id=image_id)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"data.image_pattern: {pattern!r} cannot be filled in with image id {image_id!r} "
                        f"({type(exc).__name__}: {exc}); use {{image_id}}, e.g. {example}") from exc


def file_images(data) -> tuple[list[Any], list[Path]] | None:
    """(image id, path) of each image of a file-based source, in order; None for other sources (datasets,
    generated scenes), which have no files to check."""
    from mmeval.io.images import FileImages, SubsetImages

    source = getattr(data, "images", None)  # audio / video data have clips instead
    if source is None:
        return None
    indices = range(len(source))
    if isinstance(source, SubsetImages):
        source, indices = source.source, source.indices
    if not isinstance(source, FileImages):
        return None
    return list(data.image_ids), [source.paths[i] for i in indices]


def check_image_files(data, cfg, warn: bool = True) -> str | None:
    """Check that the image files of `data` (loaded from the data config `cfg`) exist, before any model pass.

    Raises DataError when some are missing and `cfg.on_bad_image` is fail, or when more are missing than
    `cfg.max_bad_fraction` allows; otherwise returns the one-line warning about the missing files (logged when
    `warn`), or None when every file is there."""
    found = file_images(data)
    if found is None:
        return None
    ids, paths = found
    missing = [(image_id, path) for image_id, path in zip(ids, paths) if not path.is_file()]
    if not missing:
        return None
    n, total, first = len(missing), len(paths), missing[0][1]
    message = f"{n:,} of {total:,} image file(s) missing ({100 * n / total:.1f}%), e.g. {first}"
    if cfg.on_bad_image != "fail" and exceeds(n, total, cfg.max_bad_fraction):
        message += f": the fraction {n / total:.4g} is over data.max_bad_fraction {cfg.max_bad_fraction:g}"
    hint = suggest(missing, ids, format_reads(cfg.format, "image_pattern"))
    message += f"; {hint}" if hint else ""
    if cfg.on_bad_image == "fail":
        why = "Is a directory" if first.is_dir() else "No such file or directory"
        raise DataError(f"{first}: cannot read image ({why}); {message} "
                        "(set data.on_bad_image: skip to skip such images)")
    if exceeds(n, total, cfg.max_bad_fraction):
        raise DataError(message)
    if warn:
        log.warning("%s", message)
    return message


def suggest(missing: Sequence[tuple[Any, Path]], ids: Sequence[Any], pattern_option: bool) -> str | None:
    """What the image folder holds instead of the missing files, and the setting that would find them; None
    when nothing there looks like them. Searches the folder of most missing files: a sub-folder holding the same
    names, then the same number under another name (prefix, padding, extension), then another extension or case."""
    folder = Counter(path.parent for _, path in missing).most_common(1)[0][0]
    in_folder = [(image_id, path) for image_id, path in missing if path.parent == folder]
    try:
        entries = list(os.scandir(folder))
        names = {entry.name for entry in entries if not entry.is_dir()}
        subfolders = sorted(entry.name for entry in entries if entry.is_dir())[:_SUBFOLDERS]
    except OSError:  # an unreadable folder: the missing-file message stands without a suggestion
        return None
    return (_in_subfolder(folder, in_folder[:_SAMPLE], subfolders)
            or _renamed(folder, in_folder, names, ids, pattern_option))


def _in_subfolder(folder: Path, sample: Sequence[tuple[Any, Path]], subfolders: list[str]) -> str | None:
    """The sub-folder (e.g. val2014/) holding most of the sampled missing names, as a data.images suggestion."""
    best, best_hits = None, 0
    for name in subfolders:
        sub = folder / name
        hits = sum((sub / path.name).is_file() for _, path in sample)
        if hits > best_hits:
            best, best_hits = sub, hits
    if best is None:
        return None
    return f"{best_hits} of {len(sample)} missing names checked are in {best}: set data.images: {best}"


def _renamed(folder: Path, missing: Sequence[tuple[Any, Path]], names: set[str], ids: Sequence[Any],
             pattern_option: bool) -> str | None:  # fmt: skip
    """A file of the folder that is a missing file under another name: same number (other prefix, padding or
    extension) or same name in another case or extension. Every missing name is looked at (string work only):
    a folder may hold a few of thousands of images."""
    by_number: dict[int, str] = {}
    by_stem: dict[str, str] = {}
    for name in sorted(names):
        stem = name.rsplit(".", 1)[0]
        digits = _DIGITS.findall(stem)
        if digits:
            by_number.setdefault(int(digits[-1]), name)
        by_stem.setdefault(stem.lower(), name)
    pairs = []  # (missing path, the folder's file with its number or stem)
    for _, path in missing:
        digits = _DIGITS.findall(path.stem)
        near = by_number.get(int(digits[-1])) if digits else None
        near = near or by_stem.get(path.stem.lower())
        if near is not None and near != path.name:
            pairs.append((path, near))
    if not pairs:
        return None
    path, near = pairs[0]
    advice = _pattern_advice(near, names, ids) if pattern_option else None
    if advice is None:  # a coincidence is possible: say how many names have such a file
        advice = (f"{len(pairs):,} of {len(missing):,} missing names have a file with the same number or stem; "
                  + ("no {image_id} pattern finds them by image id: rename the files" if pattern_option
                     else "rename the files or the annotations' file names"))
    return f"{folder} holds {near} for {path.name}: {advice}"


def _pattern_advice(near: str, names: set[str], ids: Sequence[Any]) -> str | None:
    """'set data.image_pattern: ...' with a pattern made from the file `near` (its last number as the image id),
    offered only if it finds at least one image by id; None otherwise."""
    stem, dot, extension = near.rpartition(".") if "." in near else (near, "", "")
    matches = list(_DIGITS.finditer(stem))
    if not matches:
        return None
    number = matches[-1]
    digits = number.group()
    head, tail = stem[: number.start()], stem[number.end():] + dot + extension
    integers = all(isinstance(i, int) for i in ids)
    width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
    field = (f"{{image_id:0{width}d}}" if integers else f"{{image_id:0>{width}}}") if width else "{image_id}"
    pattern = _escape(head) + field + _escape(tail)
    found = 0
    for image_id in ids:
        try:
            found += pattern.format(image_id=image_id) in names
        except (ValueError, TypeError):
            return None
    if not found:
        return None
    return f"set data.image_pattern: '{pattern}' (it finds {found:,} of {len(ids):,} images)"


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
