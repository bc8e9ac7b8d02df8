"""Cost of a benchmark's robustness grid (the 5 severities x every registered image corruption; with --text also
the text perturbations) relative to one clean run, on the demo's shapes-retrieval benchmark (configs/demo.yaml)
with the shapes reference model, CPU.

Measured in one process, cache off (so nothing comes from disk):
- clean: the benchmark's own seconds (report `timings.total_s`, model loading left out) in `mmeval run` without
  `perturb` (median of --repeats);
- grid: the same benchmark with the grid (median of --grid-repeats): the grid's own seconds and cell count from
  the report's robustness block; per-cell cost = grid seconds / cells, and its ratio to the clean run;
- naive cell (the peer path): a perturbed re-run without the output memo, so it encodes the clean captions
  again as a script re-running the benchmark per cell would, on --naive-cells cells spread over the grid; compared
  with the same cells' seconds in the grid (the block's `timings.cell_s`), since corruptions differ in cost.

The image corruptions are those registered under "image" (mmeval/perturb/image.py, the 15 ImageNet-C ones,
when installed). When none is registered the script says so and times three stand-in corruptions defined here
(brightness, gaussian noise, box blur) so that the plumbing's cost can still be measured.

    python scripts/bench_robustness.py --images 32 --repeats 3 [--text] [--workers 2]
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _stand_ins() -> list[str]:
    """Register three simple corruptions when no image corruption is registered (before mmeval/perturb/image.py)."""
    from mmeval.perturb import PERTURBATIONS, register

    def brightness(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        return np.clip(x.astype(np.float32) + 25.0 * s, 0, 255).astype(np.uint8)

    def noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        return np.clip(x + rng.normal(0, 12.0 * s, x.shape), 0, 255).astype(np.uint8)

    def blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image, ImageFilter

        return np.asarray(Image.fromarray(x).filter(ImageFilter.BoxBlur(s)))

    names = []
    for name, fn in (("bench_brightness", brightness), ("bench_gaussian_noise", noise), ("bench_box_blur", blur)):
        if name not in PERTURBATIONS.get("image", {}):
            register("image", name, fn)
        names.append(name)
    return names


def image_corruptions() -> tuple[list[str], bool]:
    """The registered image corruptions (importing mmeval.perturb.image when it exists), or stand-ins."""
    from mmeval.perturb import PERTURBATIONS

    try:
        import mmeval.perturb.image  # noqa: F401  registers the ImageNet-C corruptions when present
    except ImportError:
        pass
    names = sorted(PERTURBATIONS.get("image", {}))
    return (names, False) if names else (_stand_ins(), True)


def demo_benchmark(n_images: int) -> dict:
    """The demo's shapes-retrieval benchmark with `n_images` scenes."""
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    bench = copy.deepcopy(next(b for b in demo["benchmarks"] if b["task"] == "retrieval"))
    bench["data"]["n_images"] = n_images
    return bench


def config(bench: dict, workers: int, out: Path):
    from mmeval.config.run import validate_mapping

    return validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench], "bootstrap": {"n": 0},
                             "runtime": {"device": "cpu", "num_workers": workers, "cache": "off"},
                             "output": {"dir": str(out), "per_sample": False}})


def timed_run(cfg) -> tuple[float, dict]:
    import json

    from mmeval.engine.evaluate import run_config

    started = time.perf_counter()
    outcome = run_config(cfg)
    seconds = time.perf_counter() - started
    assert not outcome.errors, outcome.errors
    report = json.loads(outcome.report_path.read_text())
    return seconds, report["benchmarks"][cfg.benchmarks[0].name]


def naive_cells(cfg, n: int) -> dict[str, float]:
    """Seconds of `n` perturbed re-runs (cells spread over the grid) without the output memo (every pass
    recomputed, as a per-cell script would), by cell label."""
    from mmeval.engine.evaluate import load_model
    from mmeval.engine.runtime import place_model, resolve_runtime
    from mmeval.registry import task_spec
    from mmeval.tasks.base import RunContext

    bench = cfg.benchmarks[0]
    runtime = resolve_runtime(cfg.runtime)
    model = load_model(cfg.model)
    place_model(model, runtime)
    run = task_spec(bench.task).load("run")
    data_ctx = RunContext(runtime, bootstrap=cfg.bootstrap)
    run(model, bench, data_ctx)  # warm: imports, model, data generation
    seconds = {}
    cells = bench.perturb.cells()
    for cell in cells[:: max(1, len(cells) // n)][:n]:
        ctx = RunContext(runtime, bootstrap=cfg.bootstrap, perturbation=cell)
        began = time.perf_counter()
        run(model, bench, ctx)
        seconds[cell.label()] = time.perf_counter() - began
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="shapes scenes (the demo uses 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="clean runs timed (median)")
    parser.add_argument("--grid-repeats", type=int, default=1, help="runs with the grid timed (median)")
    parser.add_argument("--naive-cells", type=int, default=3, help="cells re-run without reuse (median)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the corruptions run there)")
    parser.add_argument("--text", action="store_true", help="add the text perturbations to the grid")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    names, stand_in = image_corruptions()
    perturb: dict = {"image": names, "severities": [1, 2, 3, 4, 5]}
    if args.text:
        from mmeval.perturb import PERTURBATIONS

        perturb["text"] = sorted(PERTURBATIONS["text"])
    bench = demo_benchmark(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        clean_cfg = config(bench, args.workers, Path(tmp))
        grid_cfg = config({**bench, "perturb": perturb}, args.workers, Path(tmp))
        timed_run(clean_cfg)  # warm-up: imports, model weights, scene generation
        clean = statistics.median(timed_run(clean_cfg)[1]["timings"]["total_s"] for _ in range(args.repeats))
        runs = [timed_run(grid_cfg) for _ in range(args.grid_repeats)]
        naive_by_cell = naive_cells(grid_cfg, args.naive_cells)
    block = runs[0][1]["robustness"]
    grid_s = statistics.median(b["robustness"]["timings"]["grid_s"] for _, b in runs)
    cells = block["timings"]["cells"]
    per_cell = grid_s / cells
    naive = statistics.median(naive_by_cell.values())
    shared_same = statistics.median(statistics.median(b["robustness"]["timings"]["cell_s"][label] for _, b in runs)
                                    for label in naive_by_cell)
    kinds = f"{len(names)} image corruptions" + (f" + {len(perturb['text'])} text perturbations" if args.text else "")
    print(f"shapes reference model (CPU, {args.workers} workers), demo shapes-retrieval at {args.images} scenes; "
          f"{cells} cells = {kinds} x 5 severities")
    if stand_in:
        print("NOTE: no image corruption is registered (mmeval/perturb/image.py not installed): timed the three "
              "stand-in corruptions of this script instead")
    rows = [(f"clean run (median of {args.repeats})", clean, ""),
            (f"grid, {cells} cells (median of {args.grid_repeats})", grid_s, f"= {grid_s / clean:7.2f} x clean"),
            ("per cell, clean outputs shared", per_cell, f"= {per_cell / clean:7.3f} x clean"),
            (f"same {len(naive_by_cell)} cells in the grid (median)", shared_same,
             f"= {shared_same / clean:7.3f} x clean"),
            (f"same {len(naive_by_cell)} cells, naive (no reuse; median)", naive, f"= {naive / clean:7.3f} x clean")]
    for label, seconds, ratio in rows:
        print(f"{label:<44} {seconds:9.3f} s  {ratio}")
    print(f"{'shared / naive on the same cells':<44} {shared_same / naive:9.3f}   ({', '.join(naive_by_cell)})")
    print(f"{'passes reused from the clean run':<44} {block['timings']['reused_passes']:9d}")


if __name__ == "__main__":
    main()
