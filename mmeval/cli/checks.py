"""What `run` and `validate` check before any model is loaded, and `--limit`.

- `run_prechecks`: the cheap data checks of `validate` (annotations parse, image files exist) for every
  benchmark, before `run` loads the model: every problem at once, exit code 2, in a second rather than after a
  large checkpoint has loaded. The loaded data goes to the benchmarks through the run's `DataMemo`.
- `decode_problems`: `validate --decode`, every image decoded in DataLoader workers, the bad ones listed.
- `apply_limit`: `--limit N` sets `data.limit` of every benchmark (the report records it: it changes numbers).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Optional

import typer

from mmeval.reporting.console import stderr

log = logging.getLogger("mmeval")

LimitOption = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="Evaluate only the first N images of every benchmark (sets each benchmark's data.limit, "
    "overriding the config's). For quick runs and smoke tests: the numbers are not those of the full benchmark, "
    "and the report says a limit was applied.")]
DecodeOption = Annotated[bool, typer.Option(
    "--decode", help="Also decode every image (in DataLoader workers, runtime.num_workers or one per core) and list "
    "the ones that cannot be decoded (imports torch; slower).")]


def apply_limit(cfg, limit: int | None) -> None:
    """`--limit N`: every benchmark reads only its first N images."""
    if limit is None:
        return
    for bench in cfg.benchmarks:
        bench.data.limit = limit
    log.warning("--limit %d: every benchmark is evaluated on its first %d images only; its numbers are not those "
                "of the full benchmark", limit, limit)


def run_prechecks(cfg, config_path: str):
    """Check every benchmark's data before the model is loaded; raise ConfigError listing every problem.

    Returns the run's DataMemo holding the checked data, so each benchmark's annotations are read only once."""
    from mmeval.data.check import check_data
    from mmeval.errors import ConfigError

    found = check_data(cfg)
    if found.problems:
        raise ConfigError(config_path, found.problems)
    # Missing files a benchmark skips are not repeated here: the benchmark warns once (with any suggestion) as it starts.
    from mmeval.engine.data_memo import DataMemo  # torch: only once the data is known to be good

    return DataMemo(checked=found.loaded, seconds=found.seconds)


def data_problems(cfg, decode: bool = False) -> list[str]:
    """`validate`: the data checks (a summary line per benchmark on stderr), and with `decode` every image decoded."""
    from mmeval.data.check import bench_key, check_data

    found = check_data(cfg)
    for line in found.summaries:
        stderr.print(line, markup=False, highlight=False)
    problems = list(found.problems)
    if decode:
        for n, bench in enumerate(cfg.benchmarks):
            data = found.loaded.get(bench_key(bench))
            if data is not None:
                problems += decode_problems(n, bench, data, cfg.runtime.num_workers)
    return problems


def decode_problems(n: int, bench, data: Any, num_workers: int | None) -> list[str]:
    """Decode the benchmark's images; a problem line when some fail and the benchmark does not skip bad images,
    else a warning. The failures are listed (the first few, then a count)."""
    from mmeval.io.decode_check import decode_all, default_decode_workers
    from mmeval.reporting.console import make_progress

    source = getattr(data, "images", None)
    if source is None or not hasattr(source, "load"):
        stderr.print(f"benchmark '{bench.name}': no image files to decode", markup=False, highlight=False)
        return []
    workers = num_workers if num_workers is not None else default_decode_workers()
    with make_progress() as progress:
        bar = progress.add_task(f"{bench.name}: decoding", total=len(source))
        found = decode_all(source, workers, lambda k: progress.advance(bar, k))
    if not found.bad:
        stderr.print(f"benchmark '{bench.name}': all {found.n_images} images decode", markup=False, highlight=False)
        return []
    head = f"{len(found.bad)} of {found.n_images} image(s) cannot be decoded"
    if bench.data.on_bad_image == "skip":
        log.warning("benchmark '%s': %s; a run skips them (data.on_bad_image: skip):", bench.name, head)
        for line in found.listed():
            log.warning("  %s", line)
        return []
    return [f"benchmarks[{n}].data.images: {head} (set data.on_bad_image: skip to skip them): {line}"
            for line in found.listed()]
