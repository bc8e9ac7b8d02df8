"""`TaskSpec`: everything mmeval's shared code needs to know about one task, declared in the task's own folder.

A task folder (`mmeval/tasks/<task>/`, or a package of your own) exposes one `TaskSpec`. The registry
(`mmeval.registry`) is the only place that lists tasks; the CLI, the config, the run loop, the leaderboard,
compare / gate and the HTML report ask the spec instead of switching on task names.

Light facts (names, config class, metric directions, headline choice) are plain values, so `mmeval list` and
`mmeval validate` stay fast; heavy code (the run function, data loading, paired values, HTML parts) is named as
"package.module:attribute" and imported only when it is called (`TaskSpec.load`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MetricDocs = Mapping[str, tuple[bool, str]]  # metric (or pattern such as t2i_R@k) -> (higher is better, meaning)


def first_present(wanted: tuple[str, ...]) -> Callable[[list[str]], list[str]]:
    """A headline chooser: the `wanted` metrics that a benchmark reported, in that order."""
    return lambda names: [name for name in wanted if name in names]


@dataclass(frozen=True)
class TaskSpec:
    """One task: its config, its data, what it needs from a model, how it runs and how its results read.

    The "module:attr" fields name functions with these signatures:
    - run(model, bench, ctx: RunContext) -> BenchmarkResult | None (None on data-parallel ranks other than 0)
    - load_data(bench) -> (data, one-line summary): the data exactly as `run` reads it (validate and the cheap
      pre-run check call it before any model is loaded; `run`'s first `ctx.load_data(...)` then returns that data
      instead of reading the files again)
    - paired(metric, samples_a, samples_b, metric_names) -> PairedValues: per-sample values for compare / gate
    - html(name, done) -> str: the task's own HTML report parts (curves, galleries); `done` lists (Run, bench)
    """

    name: str  # what `task:` says in a config
    summary: str  # one line for `mmeval list`
    needs: str  # the model capability the task calls (a Protocol in mmeval.models.base)
    config: type  # the benchmark's pydantic model: mmeval.config.benchmark.BenchmarkConfig plus the task's fields
    formats: tuple[str, ...]  # data formats it reads (mmeval.registry.DATA_FORMATS)
    reads: str  # what its data must hold, for error messages: "captions", "class labels", ...
    metrics: MetricDocs  # the metrics it reports, with their direction; `mmeval list` prints them
    run: str
    load_data: str
    headline: Callable[[list[str]], list[str]] = field(default=lambda names: names[:3])  # leaderboard columns
    paired: str | None = None
    html: str | None = None
    # a task whose needed capability depends on a benchmark's settings (spoken_vqa: pipeline or one model):
    # bench (raw mapping or config object) -> capability; None: always `needs`
    needs_of: Callable[[Any], str] | None = None
    data_fields: tuple[str, ...] = ()  # data fields only this task reads, beyond its format's (e.g. label_column)
    answers: str | None = None  # answering tasks: the form of answer the prompt asks for ("short", "letter")
    source: str = "mmeval"  # where the spec came from: mmeval, an entry point, or a module:attr reference
    # The input modalities a `perturb` section may perturb ("text", "image", "video", "audio"): the task's readers
    # of those inputs apply `RunContext.perturbation` (engine/robustness.py re-runs the task once per grid cell)
    perturbs: tuple[str, ...] = ()

    def load(self, attribute: str) -> Any:
        """Import the function that the "module:attr" field `attribute` names (None when the task has none)."""
        target = getattr(self, attribute)
        if target is None:
            return None
        module_name, _, name = target.partition(":")
        return getattr(importlib.import_module(module_name), name)

    def higher_is_better(self, metric: str) -> bool | None:
        """The metric's direction from `metrics` (patterns such as t2i_R@k match t2i_R@5); None if unknown."""
        if metric in self.metrics:
            return self.metrics[metric][0]
        for pattern, (better, _) in self.metrics.items():
            head, sep, _tail = pattern.partition("@")
            if sep and metric.startswith(head + "@"):
                return better
        return None

    def needs_for(self, bench: Any) -> str:
        """The capability this benchmark (a raw config mapping or its config object) needs of the run's model."""
        return self.needs_of(bench) if self.needs_of is not None else self.needs
