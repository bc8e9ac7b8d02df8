"""The typed run config: YAML in, validated, unknown keys rejected, every problem reported at once.

Relative paths are resolved against the current working directory (as with any command-line tool), and
problems are reported as `benchmarks[0].data.annotations: file not found: /abs/path`.

`benchmarks` is a list of task configs chosen by `task` (a discriminated union over every task the registry
knows, built-in or plugin): each task's fields come from its own folder, so a typo is reported with that task's
own field list. Checks that span several fields run on the raw mapping first (`mmeval.config.checks`).
"""

from __future__ import annotations

import functools
import re
import typing
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    SerializeAsAny,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from mmeval.config.base import _CROSS_CHECKED, Loc, _about, _raise_unless_checked, _Strict, format_loc
from mmeval.config.benchmark import BenchmarkConfig
from mmeval.config.checks import benchmark_problems, cross_problems, foreign_fields, spec_of
from mmeval.config.data import DataConfig
from mmeval.config.model import ModelConfig
from mmeval.config.model_list import expand, is_pattern
from mmeval.config.runtime import BootstrapConfig, OutputConfig, RuntimeConfig
from mmeval.errors import ConfigError, MmevalError
from mmeval.registry import TASKS, did_you_mean, task_spec

__all__ = ["BenchmarkConfig", "DataConfig", "ModelConfig", "RunConfig", "RuntimeConfig", "validate_mapping"]


def _one_or_list(value: Any) -> str:
    return "list" if isinstance(value, list) else "one"


# `model:` is one mapping or a list of them; the tag is dropped from error paths (model[1].checkpoint).
ModelField = Annotated[Annotated[ModelConfig, Tag("one")] | Annotated[list[ModelConfig], Tag("list")],
                       Discriminator(_one_or_list)]


class RunConfig(_Strict):
    model: ModelField
    benchmarks: list[SerializeAsAny[BenchmarkConfig]] = Field(min_length=1)  # each its task's class (run_config_class)
    runtime: RuntimeConfig = RuntimeConfig()
    output: OutputConfig = OutputConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> RunConfig:
        """Validate with each benchmark's config class chosen by its task (see `run_config_class`)."""
        if cls is RunConfig:
            return run_config_class(_tasks_in(obj)).model_validate(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @field_validator("model", mode="after")
    @classmethod
    def _expand_models(cls, value: ModelConfig | list[ModelConfig]) -> ModelConfig | list[ModelConfig]:
        """A list, or a checkpoint pattern, becomes a list of models with one checkpoint and a distinct name each."""
        if isinstance(value, ModelConfig) and not is_pattern(value.checkpoint):
            return value  # one model: kept exactly as written (its name derived by the adapter, as always)
        if not value:
            raise ValueError("an empty list; give one model mapping, or a list of one or more")
        return expand(value if isinstance(value, list) else [value])

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> RunConfig:
        models = [{"type": m.type} for m in self.models]
        raw = {"model": models if self.is_multi else models[0],
               "benchmarks": [{"name": b.name, "task": b.task, **({"model": {"type": b.model.type}} if b.model else {})}
                              for b in self.benchmarks]}
        _raise_unless_checked(info, benchmark_problems(raw))
        return self

    @property
    def is_multi(self) -> bool:
        """Several checkpoints (a list or a pattern): one report per model plus a leaderboard."""
        return isinstance(self.model, list)

    @property
    def models(self) -> list[ModelConfig]:
        return list(self.model) if isinstance(self.model, list) else [self.model]

    def for_model(self, model: ModelConfig) -> RunConfig:
        """This config with one of its models: what that model's report records (and reruns it alone)."""
        return self.model_copy(update={"model": model})


def _task_tag(value: Any) -> str | None:
    """The discriminator of a benchmark: its `task` as written (unknown tasks are reported by the checks)."""
    task = value.get("task") if isinstance(value, dict) else getattr(value, "task", None)
    return task if isinstance(task, str) else None


@functools.lru_cache(maxsize=None)
def run_config_class(tasks: tuple[str, ...]) -> type[RunConfig]:
    """RunConfig whose benchmarks are validated by the config class of their task (`tasks`: every task named)."""
    members = tuple(Annotated[task_spec(task).config, Tag(task)] for task in tasks)
    benchmark = Annotated[Union[members], Discriminator(_task_tag)]  # noqa: UP007 (a tuple of members)
    return create_model("RunConfig", __base__=RunConfig, __module__=__name__,
                        benchmarks=(list[benchmark], Field(min_length=1)))


def _tasks_in(raw: Any) -> tuple[str, ...]:
    """The built-in tasks and every other task the raw config names that resolves (plugins, module:attr)."""
    benchmarks = raw.get("benchmarks") if isinstance(raw, dict) else None
    named = [b["task"] for b in benchmarks if spec_of(b) is not None] if isinstance(benchmarks, list) else []
    return tuple(dict.fromkeys([*TASKS, *named]))


def _model_at(loc: Loc, raw: Any) -> type[BaseModel] | None:
    """The config class that owns the key at `loc`, to suggest its real field names (a benchmark: its task's)."""
    current: Any = RunConfig
    for n, part in enumerate(loc):
        if isinstance(part, int):
            if n == 1 and loc[0] == "benchmarks":
                spec = spec_of(_item(raw, "benchmarks", part))
                current = spec.config if spec is not None else BenchmarkConfig
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _config_class(current.model_fields[part].annotation) or current.model_fields[part].annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _item(raw: Any, key: str, index: int) -> Any:
    items = raw.get(key) if isinstance(raw, dict) else None
    return items[index] if isinstance(items, list) and 0 <= index < len(items) else None


def _config_class(annotation: Any) -> type[BaseModel] | None:
    """The config class inside an annotation (X, X | None, list[X], Annotated[...], unions of these)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in typing.get_args(annotation) if (found := _config_class(arg))), None)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(error: dict[str, Any], raw: Any) -> str:
    """One line for one pydantic error: where, what is wrong, what was expected."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1], raw)
        known = sorted(owner.model_fields) if owner else []
        hint = did_you_mean(str(loc[-1]), known)
        return f"{format_loc(loc)}: unknown key.{hint} Valid keys here: {', '.join(known)}"
    if kind == "missing":
        return f"{format_loc(loc)}: required key is missing{_about(_model_at(loc[:-1], raw), loc[-1])}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        owner = _model_at(loc, raw)
        keys = f" with keys: {', '.join(owner.model_fields)}" if owner else ""
        return f"{format_loc(loc)}: expected a mapping{keys} (got {_short_repr(error.get('input'))})"
    message = "expected a path" if kind == "path_type" else error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and "input" in error:
        value = error["input"]
        message += " (got a mapping)" if isinstance(value, dict) else f" (got {_short_repr(value)})"
    if kind == "literal_error" and isinstance(error.get("input"), str):
        hint = did_you_mean(error["input"], re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        message += f".{hint}" if hint else ""
    return f"{format_loc(loc)}: {message}"


_SECTIONS = {name: n for n, name in enumerate(("model", "benchmarks", "runtime", "output", "bootstrap"))}


def _order(item: tuple[Loc, str]) -> tuple[int, int]:
    """Problems in config order: section, then benchmark index (the sort is stable within a group)."""
    loc = item[0]
    section = _SECTIONS.get(loc[0], len(_SECTIONS)) if loc else -1
    index = loc[1] if len(loc) > 1 and loc[0] in ("benchmarks", "model") and isinstance(loc[1], int) else -1
    return section, index


def _untagged(error: dict[str, Any], tasks: tuple[str, ...]) -> dict[str, Any]:
    """Drop the tags pydantic puts in error paths: ('model', 'list', 1, 'x') -> model[1].x and
    ('benchmarks', 0, <task>, 'recall_k') -> benchmarks[0].recall_k."""
    loc = tuple(error["loc"])
    if len(loc) > 1 and loc[0] == "model" and loc[1] in ("one", "list"):
        loc = (loc[0], *loc[2:])
    if len(loc) > 2 and loc[0] == "benchmarks" and isinstance(loc[1], int) and loc[2] in tasks:
        loc = (*loc[:2], *loc[3:])
    return {**error, "loc": loc}


def _reported_by_checks(error: dict[str, Any], foreign: set[tuple[int, str]]) -> bool:
    """Errors the cross-field checks already reported in their own words: a benchmark without a known task
    (pydantic cannot pick its config class) and settings that belong to another task."""
    loc = error["loc"]
    if error["type"].startswith("union_tag") and len(loc) == 2 and loc[0] == "benchmarks":
        return True
    return error["type"] == "extra_forbidden" and len(loc) == 3 and loc[0] == "benchmarks" and (loc[1], loc[2]) in foreign


def validate_mapping(raw: dict[str, Any], source: str = "config", overridden: list[Loc] | None = None) -> RunConfig:
    """Validate a raw config mapping; raise ConfigError listing every problem, each with its path. A problem at
    or under one of the `overridden` paths (`--set`) is reported as coming from `--set`, not from `source`."""
    cross = cross_problems(raw) if isinstance(raw, dict) else []
    problems = [(loc, f"{format_loc(loc)}: {message}") for loc, message in cross]
    tasks = _tasks_in(raw)
    try:
        config = run_config_class(tasks).model_validate(raw, context={_CROSS_CHECKED: True})
    except ValidationError as exc:
        foreign = foreign_fields(raw) if isinstance(raw, dict) else set()
        errors = [e for e in (_untagged(e, tasks) for e in exc.errors()) if not _reported_by_checks(e, foreign)]
        problems = [(tuple(e["loc"]), _describe(e, raw)) for e in errors] + problems
    except MmevalError as exc:  # a task class that cannot be built (a plugin's config is not a BenchmarkConfig)
        raise ConfigError(source, [str(exc)]) from exc
    if problems:
        ordered = sorted(problems, key=_order)
        sources = ["--set" if _under_any(loc, overridden or []) else source for loc, _ in ordered]
        raise ConfigError(source, [line for _, line in ordered], sources)
    return config


def _under_any(loc: Loc, paths: list[Loc]) -> bool:
    """Whether `loc` is one of `paths` or inside one (`--set runtime={batchsize: 8}` covers runtime.batchsize)."""
    parts = tuple(str(part) for part in loc)
    return any(parts[:len(path)] == tuple(str(part) for part in path) for path in paths)
