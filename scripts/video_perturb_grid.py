"""The demo's video models under each temporal video perturbation: motion classification top-1 and t2v R@1.

Runs the video_zeroshot ("moving left / right / up / down") and video_retrieval tasks on the shapes_video test
split with `RunContext.perturbation` set to each (perturbation, severity) cell, for the temporal reference video
model and for the image reference model with frame-mean pooling, and prints one table (clean first). It calls
the tasks' own `run`, as the robustness driver does; the two tasks share each cell's video pass (output cache).

    python scripts/video_perturb_grid.py                       # 60 clips, severities 1 3 5
    python scripts/video_perturb_grid.py --videos 200 --severities 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeval.config.run import validate_mapping
from mmeval.engine.runtime import resolve_runtime
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder
from mmeval.models.reference_video import DEMO_VIDEO_CHECKPOINT, load_video_folder
from mmeval.perturb import Cell
from mmeval.perturb.video import TEMPORAL
from mmeval.tasks.base import RunContext
from mmeval.tasks.video_retrieval.run import run as run_retrieval
from mmeval.tasks.video_zeroshot.run import run as run_zeroshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the 4-class top5 note, once per run
    torch.set_num_threads(2)
    data = {"format": "shapes_video", "n_videos": args.videos, "split": "test"}
    with tempfile.TemporaryDirectory() as cache_dir:
        cfg = validate_mapping({"model": {"type": "reference_video"}, "benchmarks": [
            {"name": "zs", "task": "video_zeroshot", "data": data},
            {"name": "ret", "task": "video_retrieval", "data": data}],
            "runtime": {"device": "cpu", "num_workers": 1, "batch_size": 16, "cache_dir": cache_dir}})  # fmt: skip
        runtime = resolve_runtime(cfg.runtime)
        models = {"shapes-video (temporal)": load_video_folder(DEMO_VIDEO_CHECKPOINT),
                  "shapes-clip frame-mean": load_folder(DEMO_CHECKPOINT)}  # fmt: skip
        cells = [None] + [Cell("video", name, s, args.seed) for name in TEMPORAL for s in args.severities]
        print(f"shapes_video test, {args.videos} clips, 8 frames uniform, seed {args.seed}")
        print(f"| cell | {' | '.join(f'{m}: top1 / t2v R@1' for m in models)} |")
        print("| --- | " + " | ".join("---" for _ in models) + " |")
        for cell in cells:
            row = []
            for model in models.values():
                ctx = RunContext(runtime=runtime, perturbation=cell)
                top1 = run_zeroshot(model, cfg.benchmarks[0], ctx).metrics["top1"]["value"]
                r1 = run_retrieval(model, cfg.benchmarks[1], ctx).metrics["t2v_R@1"]["value"]
                row.append(f"{top1:.3f} / {r1:.3f}")
            print(f"| {cell.label() if cell else 'clean'} | {' | '.join(row)} |", flush=True)


if __name__ == "__main__":
    main()
