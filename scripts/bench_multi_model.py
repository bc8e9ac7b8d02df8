"""Several checkpoints: one `mmeval run` with a checkpoint glob vs one `mmeval run` per checkpoint.

Builds (once per --workdir) --models random reference checkpoints with the shipped model's architecture and
preprocessing (so they share decoded pixels), and a COCO-captions-format set of --images JPEGs at 640x480 with
5 captions each. Then, --repeats times, with `runtime.cache: off` (nothing reused between processes):
  * multi: `mmeval run` on a config whose checkpoint is `<workdir>/ckpt/step_*` (data read and decoded once);
  * separate: one `mmeval run` per checkpoint, one after the other (each reads and decodes everything).
Prints each wall time and the medians. Run from the repository root:

    python scripts/bench_multi_model.py --models 3 --images 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]


def make_data(folder: Path, n_images: int) -> Path:
    images = folder / "val2014"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries, annotations = [], []
    for i in range(n_images):
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((640, 480), Image.Resampling.BICUBIC)
        x, y = rng.integers(0, 500), rng.integers(0, 340)
        ImageDraw.Draw(image).ellipse([x, y, x + 120, y + 120], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        name = f"{i:06d}.jpg"
        image.save(images / name, quality=90)
        entries.append({"id": i, "file_name": name})
        annotations += [{"id": 5 * i + c, "image_id": i, "caption": f"a red circle on a blue background {c}"}
                        for c in range(5)]
    path = folder / "captions.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations}))
    return path


def make_checkpoints(folder: Path, n: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    from mmeval.models.reference import DEMO_CHECKPOINT, read_config, save_reference
    from mmeval.models.reference_arch import ReferenceCLIP

    for step in range(1, n + 1):
        torch.manual_seed(step)
        save_reference(ReferenceCLIP(read_config(DEMO_CHECKPOINT / "config.json")), folder / f"step_{step}")


def timed(config: Path, workdir: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", str(config)], cwd=workdir, check=False,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"mmeval failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmeval-bench-multi"))
    args = parser.parse_args()
    work = args.workdir.resolve()
    data = work / f"coco{args.images}"
    if not (data / "captions.json").is_file():
        make_data(data, args.images)
    ckpt = work / f"ckpt{args.models}"
    if not ckpt.is_dir():
        make_checkpoints(ckpt, args.models)

    def config(name: str, checkpoint: str) -> Path:
        path = work / f"{name}.yaml"
        path.write_text(json.dumps({
            "model": {"type": "reference", "checkpoint": checkpoint},
            "benchmarks": [{"name": "coco", "task": "retrieval", "data": {
                "format": "coco", "annotations": str(data / "captions.json"), "images": str(data / "val2014")}}],
            "runtime": {"device": "cpu", "cache": "off"}, "output": {"dir": str(work / "reports")}}))
        return path

    multi = config("multi", str(ckpt / "step_*"))
    singles = [config(f"single{s}", str(ckpt / f"step_{s}")) for s in range(1, args.models + 1)]
    times: dict[str, list[float]] = {"multi": [], "separate": []}
    for repeat in range(args.repeats):
        times["multi"].append(timed(multi, work))
        times["separate"].append(sum(timed(single, work) for single in singles))
        print(f"repeat {repeat + 1}: multi {times['multi'][-1]:.1f} s, separate {times['separate'][-1]:.1f} s")
    m, s = statistics.median(times["multi"]), statistics.median(times["separate"])
    print(f"median over {args.repeats}: {args.models} models x {args.images} images: one run {m:.1f} s, "
          f"{args.models} runs {s:.1f} s ({s / m:.2f}x)")


if __name__ == "__main__":
    main()
