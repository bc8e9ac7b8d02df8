"""Reading a run config file: YAML with repeated keys rejected, `--set` overrides, then validation.

Kept apart from config.py (the schema) so each stays small; both report problems as ConfigError lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mmeval.config.run import RunConfig, format_loc, validate_mapping
from mmeval.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a repeated key instead of silently keeping the last value."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may legitimately be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: let SafeLoader report it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; each key may appear once", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = f" ({exc.context})" if getattr(exc, "context", None) else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"


def _parse_override(item: str) -> tuple[list[str | int], Any]:
    key, sep, raw = item.partition("=")
    parts: list[str | int] = [int(t) if t.isdigit() else t for t in re.split(r"\.|\[(\d+)\]", key.strip()) if t]
    if not sep or not parts:
        raise ValueError("expected key.path=value, e.g. runtime.batch_size=8 or benchmarks[0].data.limit=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"the value is not valid YAML ({_yaml_problem(exc)})") from exc
    return parts, value


def _set_path(raw: dict[str, Any], parts: list[str | int], value: Any) -> None:
    node: Any = raw
    for depth, part in enumerate(parts):
        where = format_loc(tuple(parts[:depth])) if depth else "the config"
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(part, int):
                raise ValueError(f"{where} is a list; expected an index like {where}[0], got '{part}'")
            if part >= len(node):
                raise ValueError(f"index {part} is out of range: {where} has {len(node)} item(s)")
        elif isinstance(node, dict):
            part = str(part)
            if not last and node.get(part) is None:
                node[part] = {}
        else:
            raise ValueError(f"{where} is a {type(node).__name__}, not a mapping or a list")
        if last:
            node[part] = value
        else:
            node = node[part]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set a.b[0].c=value` (or `a.b.0.c=value`) overrides, values parsed as YAML, to the raw mapping."""
    problems = []
    for item in overrides:
        try:
            parts, value = _parse_override(item)
            _set_path(raw, parts, value)
        except ValueError as exc:
            problems.append(f"{item}: {exc}")
    if problems:
        raise ConfigError("--set", problems)
    return raw


def _describe_type(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run config; raise ConfigError listing every problem."""
    source = str(path)
    if not path.is_file():
        what = "expected a YAML file, got a folder" if path.is_dir() else "config file not found"
        raise ConfigError(source, [f"{what}: {path}"])
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {_yaml_problem(exc)}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not a UTF-8 text file ({exc.reason})"]) from exc
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the config ({exc.strerror or exc})"]) from exc
    keys = ", ".join(RunConfig.model_fields)
    if raw is None:
        raise ConfigError(source, [f"the config is empty; expected a mapping with keys: {keys}"])
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"expected a mapping with keys: {keys}; got a {_describe_type(raw)}"])
    raw = apply_overrides(raw, overrides or [])
    overridden = [tuple(_parse_override(item)[0]) for item in overrides or []]  # all parse: applied above
    return validate_mapping(raw, source, overridden)
