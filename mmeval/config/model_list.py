"""Several models in one config: `model:` as a list, or a checkpoint glob, expanded to one model per file.

    model:                                   model:
      - {type: reference, checkpoint: a}       type: open_clip
      - {type: reference, checkpoint: b}       arch: ViT-B-32
                                               checkpoint: runs/epoch_*.pt

A pattern (a checkpoint path with `*`, `?` or `[...]` that does not exist as written; `**` spans folders)
expands to its matches in natural order (epoch_2 before epoch_10), one model each. Every model of a list
gets a distinct name, fixed here so that each model's report carries it in its own config: the given `name`
(with a pattern: the name, '-', then the match), else the shortest tail of the checkpoint path that tells
the models apart (`epoch_3`, or `run_a-last` for runs/run_a/last.pt and runs/run_b/last.pt).
No torch here: this runs while the config is validated.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_DEMO_NAME = "shapes-clip"  # the reference adapter's default checkpoint folder (mmeval/assets/shapes-clip)


def is_pattern(path: Path | str | None) -> bool:
    """A checkpoint given as a glob pattern (magic characters, and no file or folder of that exact name). A path
    whose `~user` cannot be expanded is not a pattern: the path check then reports it as a config problem."""
    if path is None or not glob.has_magic(str(path)):
        return False
    try:
        return not Path(path).expanduser().exists()
    except RuntimeError:
        return False


def _natural(path: str) -> list[Any]:
    """Sort key: digit runs compare as numbers, so epoch_2 comes before epoch_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def matches(pattern: Path | str) -> list[Path]:
    """The files and folders matching a checkpoint pattern, in natural order (hidden names are not matched)."""
    found = glob.glob(str(Path(pattern).expanduser()), recursive=True)
    return [Path(p) for p in sorted(found, key=_natural)]


def _static_root(pattern: Path) -> Path:
    """The pattern's leading folders without magic characters: match names are read relative to it."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _label(path: Path, depth: int) -> str:
    """The last `depth` parts of a checkpoint path, suffix of a file dropped, joined with '-'."""
    parts = list(path.parts)
    if path.suffix and not path.is_dir():
        parts[-1] = path.stem
    return _UNSAFE.sub("_", "-".join(parts[-depth:])).strip("_") or "model"


def _fallback_name(model) -> str:
    """The name of a model without a checkpoint file: its pretrained tag, architecture or plugin entry."""
    if model.pretrained:
        return _UNSAFE.sub("_", f"{model.arch}-{model.pretrained}")
    if model.type == "reference":
        return _DEMO_NAME
    return _UNSAFE.sub("_", str(model.arch or model.entry or model.type))


def expand(models: list) -> list:
    """One ModelConfig per checkpoint (patterns expanded), each with a distinct `name`.

    Raises ValueError (one line) when two models would share a name: the same checkpoint listed twice, or
    the same `name` given twice.
    """
    expanded: list[tuple[Any, Path | None, str | None]] = []  # (model, path to name it by, fixed name)
    for model in models:
        if is_pattern(model.checkpoint):
            root = _static_root(Path(model.checkpoint))
            for match in matches(model.checkpoint):
                relative = match.relative_to(root) if match.is_relative_to(root) else Path(match.name)
                name = f"{model.name}-{_label(relative, len(relative.parts))}" if model.name else None
                expanded.append((model.model_copy(update={"checkpoint": match.resolve()}), relative, name))
        else:
            expanded.append((model, model.checkpoint, model.name))
    names = _distinct_names([(path, name, model) for model, path, name in expanded])
    return [model.model_copy(update={"name": name}) for (model, _, _), name in zip(expanded, names)]


def _distinct_names(items: list[tuple[Path | None, str | None, Any]]) -> list[str]:
    """Fixed names as given; the others from their path, with as many trailing parts as it takes to differ."""
    depth = [1] * len(items)
    while True:
        names = [fixed or (_label(Path(path), depth[n]) if path is not None else _fallback_name(model))
                 for n, (path, fixed, model) in enumerate(items)]
        first: dict[str, int] = {}
        grew = False
        for n, name in enumerate(names):
            if name not in first:
                first[name] = n
                continue
            for m in (first[name], n):
                path, fixed = items[m][0], items[m][1]
                if fixed is None and path is not None and depth[m] < len(Path(path).parts):
                    depth[m] += 1
                    grew = True
            if not grew:
                raise ValueError(f"model[{first[name]}] and model[{n}] (counted after expanding patterns) are both "
                                 f"named '{name}'; give each a distinct 'name'")
        if not grew:
            return names
