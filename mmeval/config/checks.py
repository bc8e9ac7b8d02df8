"""Checks that span several fields of the raw config mapping, run before pydantic so every problem is reported at once.

Pydantic skips a model's "after" validators as soon as one of its fields fails, so problems such as "this model type
cannot run that task" would surface one run at a time; these checks read the raw mapping instead. Everything a
check needs to know about a task comes from its TaskSpec (mmeval.tasks.spec), never from its name.
"""

from __future__ import annotations

from typing import Any

from mmeval.config.base import Loc, _known, format_loc
from mmeval.config.data import _data_problems
from mmeval.config.model import _model_entries, _model_problems, entry_capability_problem
from mmeval.config.perturb import perturb_problems
from mmeval.errors import MmevalError
from mmeval.registry import DATA_FORMATS, MODELS, can_serve, task_names, task_spec


def cross_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Every cross-field problem of a raw run config, each with its place."""
    problems: list[tuple[Loc, str]] = []
    for where, entry in _model_entries(raw):
        problems += [((*where, *loc), message) for loc, message in _model_problems(entry)]
    for n, bench in enumerate(_benchmarks(raw)):
        if isinstance(bench, dict) and isinstance(bench.get("data"), dict):
            problems += [(("benchmarks", n, "data", *loc), message) for loc, message in _data_problems(bench["data"])]
        if isinstance(bench, dict) and isinstance(bench.get("model"), dict):  # the benchmark's own model
            problems += [(("benchmarks", n, "model", *loc), message) for loc, message in _model_problems(bench["model"])]
    return problems + benchmark_problems(raw)


def _benchmarks(raw: dict[str, Any]) -> list[Any]:
    return raw.get("benchmarks") if isinstance(raw.get("benchmarks"), list) else []


def spec_of(bench: Any) -> Any:
    """The TaskSpec a raw benchmark mapping names, or None (no task, or one that is not known)."""
    task = bench.get("task") if isinstance(bench, dict) else None
    if not isinstance(task, str):
        return None
    try:
        return task_spec(task)
    except MmevalError:
        return None


def benchmark_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Unique benchmark names, known tasks that the model types can do, data and settings the task reads."""
    kinds = [(loc, entry.get("type"), entry) for loc, entry in _model_entries(raw) if _known(entry.get("type"), MODELS)]
    problems: list[tuple[Loc, str]] = []
    first: dict[str, tuple[int, str]] = {}  # file key -> (index, name): report keys and output file names
    for n, bench in enumerate(_benchmarks(raw)):
        if not isinstance(bench, dict):
            problems.append((("benchmarks", n), f"expected a mapping with keys: name, task, data and the task's "
                                                f"settings (got {bench!r:.60})"))
            continue
        name = bench.get("name")
        # Names become file names (<stem>.<name>.captions.json): two names equal but for case would write the
        # same files on case-insensitive file systems (macOS, Windows), so they collide too.
        key = name.casefold() if isinstance(name, str) else None
        if key in first and first[key][1] == name:
            problems.append((("benchmarks", n, "name"), f"duplicate benchmark name '{name}' (also used by "
                                                        f"benchmarks[{first[key][0]}]); names must be unique"))
        elif key in first:
            problems.append((("benchmarks", n, "name"), f"benchmark name '{name}' differs from benchmarks"
                             f"[{first[key][0]}].name '{first[key][1]}' only in case; their output files would "
                             "collide on case-insensitive file systems; names must be unique ignoring case"))
        elif key is not None:
            first[key] = (n, name)
        problems += [(("benchmarks", n, *loc), message) for loc, message in _task_problems(bench, kinds)]
    return problems


def _task_problems(bench: dict[str, Any], kinds: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    """The task itself, then what it needs of the models, its data and its settings."""
    task = bench.get("task")
    if "task" not in bench or task is None:
        return [(("task",), f"required key is missing (one of {', '.join(task_names())}; or "
                            "'package.module:attr' naming a TaskSpec)")]
    if not isinstance(task, str):
        return [(("task",), f"expected a task name, got {type(task).__name__} {task!r}")]
    try:
        spec = task_spec(task)
    except MmevalError as exc:
        return [(("task",), str(exc))]
    problems: list[tuple[Loc, str]] = []
    own = bench.get("model")
    if isinstance(own, dict):  # a benchmark with its own model runs on it only (the run's models are not used)
        kinds = [(("model",), own["type"], own)] if _known(own.get("type"), MODELS) else []
    needs = spec.needs_for(bench)
    for loc, kind, entry in kinds:
        can = MODELS[kind].capabilities
        which = f"{format_loc(loc)} type" if len(loc) > 1 else "model type"
        where = ("model", "type") if isinstance(own, dict) else ("task",)
        whose = "this benchmark's model type" if isinstance(own, dict) else which
        if not can_serve(can, needs):
            problems.append((where, f"task '{task}' needs a model with capability '{needs}', but {whose} "
                                    f"'{kind}' provides: {', '.join(can)}"))
        elif (why := entry_capability_problem(entry, needs)) is not None:  # settings of the entry rule it out
            problems.append((where, f"task '{task}' {why} ({whose} '{kind}')"))
    problems += _data_for_task(task, spec, bench.get("data") if isinstance(bench.get("data"), dict) else {})
    problems += spec.config.cross_problems(bench)
    problems += perturb_problems(task, spec.perturbs, bench)
    return problems + _fields_of_other_tasks(task, spec, bench)


def _data_for_task(task: str, spec: Any, data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """A data format the task cannot read, and data fields only other tasks read."""
    problems: list[tuple[Loc, str]] = []
    fmt = data.get("format")
    if _known(fmt, DATA_FORMATS) and fmt not in spec.formats:
        holds = DATA_FORMATS[fmt].holds
        if "questions" in holds:
            what = holds
        elif "questions" in spec.reads:
            what = "no questions"
        else:
            what = f"{holds}, not {spec.reads}"
        problems.append((("data", "format"), f"format '{fmt}' holds {what}; task '{task}' reads: "
                                             f"{', '.join(sorted(spec.formats))}"))
    for field in sorted(_other_data_fields(spec)):
        if data.get(field) is not None:
            readers = [other.name for other in known_specs() if field in other.data_fields]
            problems.append((("data", field), f"not used by task '{task}' (read by task {', '.join(readers)}); "
                                              "remove it"))
    return problems


def known_specs() -> list[Any]:
    """The TaskSpec of every task a config may name (an installed plugin that fails to import is left out)."""
    specs = []
    for name in task_names():
        try:
            specs.append(task_spec(name))
        except MmevalError:
            continue
    return specs


def _other_data_fields(spec: Any) -> set[str]:
    """Data fields that some task reads on top of its format's and that `spec`'s task does not."""
    every = {field for other in known_specs() for field in other.data_fields}
    return every - set(spec.data_fields)


def _fields_of_other_tasks(task: str, spec: Any, bench: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Settings that belong to another task: named as such, not as typos (pydantic reports real typos)."""
    own = set(spec.config.model_fields)
    others = {field for other in known_specs() for field in other.config.model_fields}
    reads = ", ".join(sorted(own - {"name", "task", "data", "model"}))
    return [((key,), f"not used by task '{task}' (it reads: {reads}); remove it")
            for key in sorted(k for k in bench if isinstance(k, str) and k in others and k not in own)]


def foreign_fields(raw: dict[str, Any]) -> set[tuple[int, str]]:
    """(benchmark index, key) of the settings `_fields_of_other_tasks` reports, so pydantic's 'unknown key' for
    them is not reported twice."""
    out = set()
    for n, bench in enumerate(_benchmarks(raw)):
        spec = spec_of(bench)
        if spec is not None:
            out |= {(n, loc[0]) for loc, _ in _fields_of_other_tasks(bench["task"], spec, bench)}
    return out
