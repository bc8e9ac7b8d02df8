"""Cost of a retrieval benchmark's text-perturbation grid relative to one clean run (shapes reference model, CPU).

The perturbed runs reuse the clean run's image embeddings and encode only the perturbed captions, so the grid
should cost far less than re-running the benchmark once per cell (the naive path, also timed here: a full
clean run per cell). Prints medians over --repeats runs and the ratios. Image corruptions (the 5 x 15
ImageNet-C grid) are not built yet, so they are not measured.

    python scripts/bench_robustness.py --images 200 --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config

PERTURBATIONS = ["keyboard_typo", "char_drop", "casing", "punctuation"]


def timed(n_images: int, perturb: dict | None, out: Path) -> float:
    bench = {"name": "retrieval", "task": "retrieval", "data": {"format": "shapes", "n_images": n_images}}
    if perturb:
        bench["perturb"] = perturb
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench], "bootstrap": {"n": 0},
                            "runtime": {"device": "cpu", "num_workers": 0, "cache": "off"},
                            "output": {"dir": str(out)}})
    started = time.perf_counter()
    outcome = run_config(cfg)
    assert not outcome.errors, outcome.errors
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    grid = {"text": PERTURBATIONS, "severities": [1, 2, 3, 4, 5]}
    cells = len(PERTURBATIONS) * 5
    with tempfile.TemporaryDirectory() as tmp:
        timed(args.images, None, Path(tmp))  # warm-up: imports, model weights
        clean = statistics.median(timed(args.images, None, Path(tmp)) for _ in range(args.repeats))
        with_grid = statistics.median(timed(args.images, grid, Path(tmp)) for _ in range(args.repeats))
    naive = clean * (1 + cells)  # one full clean run per cell, plus the clean run
    print(f"shapes reference model, {args.images} scenes, {cells} cells ({len(PERTURBATIONS)} text perturbations x 5), "
          f"median of {args.repeats}")
    print(f"clean run:                     {clean:8.2f} s")
    print(f"clean + grid (shared images):  {with_grid:8.2f} s   = {with_grid / clean:5.2f} x one clean run")
    print(f"naive (a full run per cell):   {naive:8.2f} s   = {naive / clean:5.2f} x one clean run (estimated "
          f"from the measured clean run)")
    print(f"shared / naive:                {with_grid / naive:8.3f}")


if __name__ == "__main__":
    main()
