"""Reading reports back: any schema version this project wrote, upgraded in memory to the current shape.

`load_report(path)` is what every reader (compare, gate, the HTML report) should use: it refuses a file that is
not an mmeval report, or one written by a newer mmeval, with one line naming the file and what is wrong; it
accepts every earlier schema version, upgrades it to the current one (minor versions only add fields, so an
upgrade fills what a reader may look up and never invents a measurement), and checks the result against the
published JSON Schema. `load_samples(path, report)` reads the per-sample file written next to it.

Schema history: 1.0.0 the first release; 1.1.0 added p95 and every call's time (`calls_ms`, `calls_rows`) to
the latency block. A 1.0.0 report has no p95 latency: a reader sees the key missing, never a made-up value.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from mmeval.errors import MmevalError

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# Every report schema version this project has written, oldest first; the last is mmeval.reporting.report.SCHEMA_VERSION
# (a test keeps them equal). Kept here so readers do not import mmeval.reporting.report, which imports torch (~6 s).
HISTORY = ("1.0.0", "1.1.0")
SCHEMA_VERSION = HISTORY[-1]
_ENVIRONMENT_KEYS = ("device_name", "cpu_name", "cpu_count", "torch_threads", "gpu_driver")


def _from_1_0_0(report: dict[str, Any]) -> None:
    """1.1.0 only added latency fields (p95, calls_ms, calls_rows) that 1.0.0 never measured: nothing to fill
    but the environment keys that early 1.0.0 reports lacked (readers compare hardware with them)."""
    environment = report.get("environment")
    if isinstance(environment, dict):
        for key in _ENVIRONMENT_KEYS:
            environment.setdefault(key, None)


# version -> in-place change to the next version's shape; a version missing here needs none (fields added only)
_UPGRADES: dict[str, Callable[[dict[str, Any]], None]] = {"1.0.0": _from_1_0_0}


def known_versions() -> list[str]:
    """The schema versions `load_report` reads, oldest first (the last is the current one)."""
    return list(HISTORY)


def _parse(version: str) -> tuple[int, ...] | None:
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    return tuple(int(part) for part in match.groups()) if match else None


def _read_json(path: Path, what: str) -> Any:
    if not path.exists():
        raise MmevalError(f"{path}: {what} not found")
    if path.is_dir():
        raise MmevalError(f"{path}: expected a {what} (JSON file), got a folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MmevalError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise MmevalError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise MmevalError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def _looks_like_samples(raw: Any) -> bool:
    return isinstance(raw, dict) and bool(raw) and all(
        isinstance(block, dict) and all(isinstance(rows, list) for rows in block.values()) for block in raw.values())


def load_report(path: str | Path) -> dict[str, Any]:
    """The report at `path` in the current schema's shape; MmevalError (one line) if it is not a usable report.

    The returned dict keeps `schema_version` as written and adds `loaded_schema_version` (the shape it now has).
    """
    path = Path(path)
    raw = _read_json(path, "report")
    if not isinstance(raw, dict) or "schema_version" not in raw:
        if _looks_like_samples(raw):
            raise MmevalError(f"{path}: this is a per-sample file, not a report; pass the report JSON it belongs to")
        got = "an object without 'schema_version'" if isinstance(raw, dict) else f"a JSON {type(raw).__name__}"
        raise MmevalError(f"{path}: not an mmeval report (expected the JSON `mmeval run` writes; got {got})")
    version = raw["schema_version"]
    if _parse(version) is None:
        raise MmevalError(f"{path}: schema_version {version!r} is not a version like {SCHEMA_VERSION}")
    if _parse(version) > _parse(SCHEMA_VERSION):
        raise MmevalError(f"{path}: written with report schema {version}, newer than this mmeval reads "
                          f"(up to {SCHEMA_VERSION}); upgrade mmeval")
    known = known_versions()
    if version not in known:
        raise MmevalError(f"{path}: unknown report schema version {version} (this mmeval reads {', '.join(known)})")
    report = raw
    for step in known[known.index(version):-1]:
        _UPGRADES.get(step, lambda _: None)(report)
    report["loaded_schema_version"] = SCHEMA_VERSION
    _check_schema(report, path)
    return report


def _check_schema(report: dict[str, Any], path: Path) -> None:
    import jsonschema

    schema = json.loads(files("mmeval.schemas").joinpath("report.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        raise MmevalError(f"{path}: not a valid mmeval report: {where or '(top level)'}: {message}")


def samples_path(path: str | Path, report: dict[str, Any]) -> Path | None:
    """Where the report's per-sample file is (next to the report), or None when it was not written."""
    name = report.get("per_sample_file")
    return Path(path).parent / name if name else None


def load_samples(path: str | Path, report: dict[str, Any] | None = None) -> dict[str, dict[str, list]] | None:
    """The per-sample rows of the report at `path` ({benchmark: {kind: [row, ...]}}), or None if it has none.

    MmevalError when the report names a per-sample file that is missing or malformed.
    """
    report = load_report(path) if report is None else report
    where = samples_path(path, report)
    if where is None:
        return None
    raw = _read_json(where, f"per-sample file of {path}")
    if not (isinstance(raw, dict) and all(isinstance(block, dict) for block in raw.values())):
        raise MmevalError(f"{where}: not a per-sample file (expected {{benchmark: {{kind: [rows]}}}})")
    return raw
