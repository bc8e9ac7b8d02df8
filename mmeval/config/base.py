"""What every config section shares: strict models (unknown keys rejected), path and name checks, and how a
problem's place in the config is written (`benchmarks[0].data.images`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo

Loc = tuple[Any, ...]
_CROSS_CHECKED = "mmeval_cross_checked"  # validation context flag: validate_mapping did the cross-field checks
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _expand(path: Path | str) -> Path:
    """`~` and `~user` expanded; an unknown user is a ValueError (a problem with the value), not pathlib's
    RuntimeError (a crash)."""
    try:
        return Path(path).expanduser()
    except RuntimeError as exc:
        raise ValueError(f"cannot expand {str(path).split('/')[0]!r} in {str(path)!r} ({exc})") from exc


def _existing(path: Path | None, kind: str) -> Path | None:
    if path is None:
        return None
    given = path  # messages show the path as the user wrote it; the config keeps it resolved
    path = _expand(path).resolve()
    if not path.exists():
        raise ValueError(f"{kind} not found: {given}")
    if kind == "folder" and not path.is_dir():
        raise ValueError(f"expected a folder, got a file: {given}")
    if kind == "file" and not path.is_file():
        raise ValueError(f"expected a file, got a folder: {given}")
    return path


def _valid_name(value: str | None) -> str | None:
    if value is not None and not _NAME.fullmatch(value):
        raise ValueError(f"use letters, digits, '_', '.' and '-', starting with a letter or digit (got {value!r})")
    return value


def _known(value: Any, table: dict[str, Any]) -> bool:
    return isinstance(value, str) and value in table


def _raise_unless_checked(info: ValidationInfo, problems: list[tuple[Loc, str]]) -> None:
    if problems and not (info.context or {}).get(_CROSS_CHECKED):
        raise ValueError("; ".join(f"{format_loc(loc)}: {message}" for loc, message in problems))


def _set_fields(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}


def format_loc(loc: Loc) -> str:
    """('benchmarks', 0, 'data', 'images') -> 'benchmarks[0].data.images'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"

def _field_problems(raw: dict[str, Any], owner: type[BaseModel], what: str, required: set[str],
                    optional: set[str]) -> list[tuple[Loc, str]]:
    """Required fields that are absent and known fields that `what` would silently ignore."""
    problems = [((key,), f"required for {what}{_about(owner, key)}") for key in sorted(required)
                if raw.get(key) is None]
    reads = ", ".join(sorted(required | optional - {"type", "format"}))
    unused = sorted(k for k in raw if isinstance(k, str) and k in owner.model_fields
                    and k not in required | optional and raw[k] is not None)
    problems += [((key,), f"not used by {what} (it reads: {reads}); remove it") for key in unused]
    return problems


def _about(owner: type[BaseModel] | None, key: Any) -> str:
    field = owner.model_fields.get(key) if owner and isinstance(key, str) else None
    return f" ({field.description})" if field and field.description else ""
