"""The cheap data checks of a config, done before any model is loaded: each benchmark's annotations are read as
its task reads them (`TaskSpec.load_data`) and its image files are checked to exist.

`mmeval validate` prints what they find; `mmeval run` does the same checks first, so a bad annotation file or a
missing image fails in a second instead of after the checkpoint has loaded, and hands the loaded data on to the
benchmarks (`DataMemo(checked=...)`) so nothing is parsed twice. Torch-free: `validate` stays fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mmeval.errors import MmevalError


@dataclass
class DataCheck:
    """What the checks found: one problem line per bad benchmark, one summary line per good one, and the data."""

    problems: list[str] = field(default_factory=list)  # `benchmarks[n].data...: what is wrong` (exit code 2)
    summaries: list[str] = field(default_factory=list)  # `benchmark 'x': 5000 images, 25010 texts[, N missing]`
    skipped_missing: dict[str, str] = field(default_factory=dict)  # benchmark -> its missing-files warning
    loaded: dict[str, Any] = field(default_factory=dict)  # bench_key(bench) -> data as its task's load_data gave it
    seconds: dict[str, float] = field(default_factory=dict)  # bench_key(bench) -> time its load_data took


def bench_key(bench) -> str:
    """The key a benchmark's checked data is kept under: its whole resolved config."""
    return bench.model_dump_json()


def check_data(cfg) -> DataCheck:
    """Load every benchmark's annotations as its task does and check that its image files exist.

    Missing files are a problem unless the benchmark says `data.on_bad_image: skip` (then they are counted, and
    skipped as unreadable when the run reaches them)."""
    from mmeval.data.image_files import check_image_files
    from mmeval.registry import task_spec

    found = DataCheck()
    for n, bench in enumerate(cfg.benchmarks):
        started = time.perf_counter()
        try:
            data, summary = task_spec(bench.task).load("load_data")(bench)
        except MmevalError as exc:
            found.problems.append(f"benchmarks[{n}].data: {exc}")
            continue
        try:  # as `run` checks them: fails under on_bad_image: fail or past max_bad_fraction, with suggestions
            missing = check_image_files(data, bench.data, warn=False) or _missing_media(data, bench.data)
        except MmevalError as exc:
            found.problems.append(f"benchmarks[{n}].data: {exc}")
            continue
        note = f", {missing}" if missing else ""
        if missing:
            found.skipped_missing[bench.name] = missing
        found.summaries.append(f"benchmark '{bench.name}': {summary}{note}")
        found.loaded[bench_key(bench)] = data
        found.seconds[bench_key(bench)] = time.perf_counter() - started
    return found


def _missing_media(data, cfg) -> str | None:
    """Missing clip files of a non-image benchmark (audio, video): a DataError under `on_bad_input: fail`, else
    the one-line note; None when every file is there (or the data has no files)."""
    from mmeval.data.loaders import missing_images

    missing = missing_images(data)
    if not missing:
        return None
    message = f"{len(missing):,} clip file(s) missing, e.g. {missing[0]}"
    if getattr(cfg, "on_bad_input", "skip") == "fail":
        raise MmevalError(f"{message} (set data.on_bad_input: skip to skip them)")
    return message
