"""Retrieval wall time: mmeval vs CLIP_benchmark, same checkpoint, same data, same machine, one run.

What it measures: the end-to-end wall time of each tool's command-line run (process start, imports, model
load, JPEG decoding and preprocessing, image and text encoding, recall@k, writing its output) on a synthetic
COCO-captions-format set, and whether both tools report the same recall@1/5/10 in both directions.

The set, built once per --workdir and reused while its size and seed match:
  * N JPEGs at 640x480 (quality 90; smooth colour fields, a few shapes and grain, seeded per image) with
    5 varied captions each, in COCO captions format: <workdir>/coco/val2014/*.jpg and
    <workdir>/coco/captions.json (the layout CLIP_benchmark's `mscoco_captions` reads);
  * an open_clip ViT-B-32 with random weights (torch seed fixed), saved as a plain state-dict
    <workdir>/vit-b-32-random-seed<S>.pt and handed to both tools as a local file (no hub access).

The runs, each --repeats times (the medians are quoted), as subprocesses timed from the outside:
  * CLIP_benchmark 1.6.2: `clip_benchmark eval --dataset mscoco_captions --task zeroshot_retrieval` with
    --cb-batch-size / --cb-workers (its defaults: 64 and 4); fp32 (--no_amp) on CPU, its amp on CUDA;
  * mmeval cold: `python -m mmeval run -c <generated yaml>` (open_clip adapter, retrieval task, coco format),
    batch size and workers from --batch-size / --workers or mmeval's own defaults, plus --mmeval-extra-args.
    Its cache folder is <workdir>/runs/mmeval-cache (never ~/.cache/mmeval), emptied before every cold run,
    so this is a first run: decoding, the model, and writing the caches (runtime.cache: on, the default);
  * mmeval warm: right after, with `--set runtime.cache=pixels`: the preprocessed images come from the pixel
    cache the cold run wrote and the model runs again (plus --mmeval-warm-args);
  * with --rerun, mmeval rerun: the cold command again, which reuses the cached embeddings (no model pass):
    what repeating an evaluation costs, not a like-for-like comparison with CLIP_benchmark.
Recalls must agree: CLIP_benchmark's image_retrieval_recall@k is mmeval's t2i_R@k and text_retrieval_recall@k
is i2t_R@k. The script exits 1 if they differ by more than --tolerance (default 1e-6 in fp32 on CPU, 0.02 with
mixed precision on CUDA, where the two tools use different half types: fp16 autocast vs bf16).

Run from the repository root; mmeval need not be installed (it is run with PYTHONPATH=<repo root>), but torch,
open_clip_torch, clip-benchmark, pillow, pyyaml and rich must be importable:

    # CPU: both tools at their defaults (CLIP_benchmark: batch 64, 4 workers, --no_amp)
    python scripts/bench_retrieval.py --images 200

    # GPU box (16 cores): 5000 images, CLIP_benchmark at batch 256 / 16 workers, 3 repeats, JSON for later
    python scripts/bench_retrieval.py --images 5000 --device cuda --cb-batch-size 256 --cb-workers 16 \\
        --repeats 3 --workdir /tmp/bench5k --json bench5k.json
    # ... more mmeval settings for every run, or for the warm run only, as `mmeval run` arguments:
    #   --mmeval-extra-args "--set runtime.precision=fp32" --mmeval-warm-args "--set benchmarks.0.data.decode=cpu"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCH = "ViT-B-32"
KS = (1, 5, 10)
WIDTH, HEIGHT = 640, 480
CAPTIONS_PER_IMAGE = 5
DATASET_VERSION = 2  # bump when the generator changes, so old work dirs are rebuilt
CPU_TOLERANCE, AMP_TOLERANCE = 1e-6, 0.02

# CLIP_benchmark is started through this bootstrap rather than its console script, so that this interpreter is
# used. Its CLI imports pycocoevalcap (for captioning only; a 104 MB wheel); where that is not installed, e.g. on
# a GPU box set up from scripts/device_wheels.sh, imports of it get placeholders that fail only if called.
CLIP_BENCHMARK_BOOTSTRAP = """
import importlib.abc, importlib.machinery, importlib.util, sys

class CaptioningOnly(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pycocoevalcap":
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        def placeholder(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            def missing(*args, **kwargs):
                raise ImportError("pycocoevalcap is not installed (CLIP_benchmark needs it for captioning only)")
            return missing
        module.__getattr__ = placeholder

if importlib.util.find_spec("pycocoevalcap") is None:
    sys.meta_path.append(CaptioningOnly())
from clip_benchmark.cli import main
sys.argv = ["clip_benchmark"] + sys.argv[1:]
main()
"""

COLOURS = {
    "red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (230, 210, 50),
    "purple": (130, 50, 160), "orange": (240, 140, 30), "white": (240, 240, 240), "black": (20, 20, 20),
    "pink": (240, 150, 190), "brown": (120, 80, 40), "grey": (128, 128, 128), "teal": (30, 140, 140),
}
SHAPES = ("circle", "square", "triangle", "rectangle", "ellipse", "diamond")
SIZES = ((0.10, "small"), (0.22, "medium-sized"), (0.38, "large"))


# --------------------------------------------------------------------------------------------- the data set


@dataclass
class Dataset:
    """Where the synthetic COCO-format set lives."""

    root: Path  # CLIP_benchmark's --dataset_root (it reads root/val2014)
    images: Path  # root/val2014
    annotations: Path  # COCO captions JSON
    n_images: int
    n_texts: int


def _place(cx: float, cy: float) -> str:
    """Where a point (fractions of width and height) lies in the frame, in words."""
    if 0.33 < cx < 0.67 and 0.33 < cy < 0.67:
        return "centre"
    return f"{'top' if cy < 0.5 else 'bottom'} {'left' if cx < 0.5 else 'right'}"


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float],
                colour: tuple[int, int, int]) -> None:
    """Draw one filled shape inside `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle" or shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape in ("square", "rectangle"):
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    else:  # diamond
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)


def render_image(seed: int, index: int) -> tuple[Image.Image, list[str]]:
    """One 640x480 picture (colour field, 1-4 shapes, grain) and 5 different captions of it; seeded per image."""
    rng = np.random.default_rng([seed, index])
    names = list(COLOURS)
    background = names[rng.integers(len(names))]
    base = np.array(COLOURS[background], dtype=np.float32)
    field_ = rng.normal(0, 35, size=(6, 8, 3)).astype(np.float32)  # a coarse colour field, upsampled smoothly
    smooth = Image.fromarray(np.clip(base + field_, 0, 255).astype(np.uint8)).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    image = smooth.copy()
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 5))):
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = names[rng.integers(len(names))]
        while colour == background:
            colour = names[rng.integers(len(names))]
        scale, size_word = SIZES[rng.integers(len(SIZES))]
        w = scale * WIDTH * (1.0 if shape in ("circle", "square") else rng.uniform(0.6, 1.4))
        h = scale * WIDTH if shape in ("circle", "square") else scale * WIDTH * rng.uniform(0.5, 1.0)
        h = min(h, HEIGHT * 0.9)
        x0, y0 = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        _draw_shape(draw, shape, (x0, y0, x0 + w, y0 + h), COLOURS[colour])
        objects.append((colour, shape, size_word, _place((x0 + w / 2) / WIDTH, (y0 + h / 2) / HEIGHT)))
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.0))))
    grain = rng.normal(0, rng.uniform(3, 9), size=(HEIGHT, WIDTH, 1)).astype(np.float32)
    pixels = np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), describe(rng, background, objects)


def _a(word: str) -> str:
    """The word with its indefinite article."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def describe(rng: np.random.Generator, background: str, objects: list[tuple[str, str, str, str]]) -> list[str]:
    """Five distinct captions of a picture: a shuffled pick of phrasings, some naming every object."""
    colour, shape, size, place = objects[0]
    things = [_a(f"{c} {s}") for c, s, _, _ in objects]
    listing = things[0] if len(things) == 1 else ", ".join(things[:-1]) + f" and {things[-1]}"
    count = ["one", "two", "three", "four"][len(objects) - 1]
    plural = "s" if len(objects) > 1 else ""
    phrasings = [
        f"{things[0]} on {_a(background)} background",
        f"{listing} over {_a(background)} backdrop",
        f"an abstract picture with {count} shape{plural} on {background}",
        f"{_a(size)} {colour} {shape} near the {place} of the frame",
        f"a grainy {background} texture behind {listing}",
        f"{count} coloured shape{plural}, the first {things[0]}",
        f"there is {_a(shape)} in the {place}, painted {colour}",
        f"a blurry photo of {listing}",
    ]
    order = rng.permutation(len(phrasings))[:CAPTIONS_PER_IMAGE]
    return [phrasings[i] for i in order]


def _write_image(job: tuple[int, int, str]) -> list[str]:
    """Render image `index` and save it as a quality-90 JPEG; return its captions (a worker task)."""
    seed, index, path = job
    image, captions = render_image(seed, index)
    image.save(path, format="JPEG", quality=90)
    return captions


def unique_captions(captions: list[list[str]]) -> list[list[str]]:
    """Captions with repeats across pictures made distinct by appending the picture number.

    Two identical texts embed identically, so their scores tie exactly, and the tools break exact ties
    differently (CLIP_benchmark: whichever comes first in torch.topk; mmeval: against the model). Unique
    texts keep the recall comparison about the computation, not about the tie convention.
    """
    seen: set[str] = set()
    result = []
    for index, texts in enumerate(captions):
        result.append([text if text not in seen else f"{text}, picture {index + 1}" for text in texts])
        seen.update(result[-1])
    return result


def file_name(index: int) -> str:
    return f"COCO_val2014_{index + 1:012d}.jpg"


def build_dataset(workdir: Path, n_images: int, seed: int, jobs: int) -> Dataset:
    """Write (or reuse, if the same size, seed and generator) the synthetic COCO-captions set under workdir/coco."""
    root = workdir / "coco"
    images, annotations, stamp = root / "val2014", root / "captions.json", root / "built.json"
    wanted = {"n_images": n_images, "seed": seed, "version": DATASET_VERSION, "size": [WIDTH, HEIGHT]}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted and annotations.is_file() \
            and all((images / file_name(i)).is_file() for i in range(n_images)):
        n_texts = len(json.loads(annotations.read_text())["annotations"])
        log(f"reusing the data set in {root} ({n_images} images, {n_texts} captions)")
        return Dataset(root, images, annotations, n_images, n_texts)
    shutil.rmtree(root, ignore_errors=True)
    images.mkdir(parents=True)
    began = time.perf_counter()
    work = [(seed, i, str(images / file_name(i))) for i in range(n_images)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        captions = list(pool.map(_write_image, work, chunksize=max(1, n_images // (8 * jobs))))
    coco: dict[str, Any] = {"info": {"description": f"synthetic retrieval benchmark, seed {seed}"}, "licenses": [],
                            "images": [], "annotations": []}
    for i, texts in enumerate(unique_captions(captions)):
        coco["images"].append({"id": i + 1, "file_name": file_name(i), "width": WIDTH, "height": HEIGHT})
        for text in texts:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "caption": text})
    annotations.write_text(json.dumps(coco))
    stamp.write_text(json.dumps(wanted))
    megabytes = sum(p.stat().st_size for p in images.iterdir()) / 1e6
    log(f"built {n_images} JPEGs ({megabytes:.0f} MB) and {len(coco['annotations'])} captions in {root} "
        f"in {time.perf_counter() - began:.1f} s")
    return Dataset(root, images, annotations, n_images, len(coco["annotations"]))


def build_checkpoint(workdir: Path, seed: int) -> Path:
    """An open_clip ViT-B-32 with random weights (seeded) saved as a state dict; reused if already there."""
    path = workdir / f"vit-b-32-random-seed{seed}.pt"
    if path.is_file():
        return path
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    partial = path.with_suffix(".pt.partial")
    torch.save(model.state_dict(), partial)
    partial.replace(path)
    log(f"saved a random-init {ARCH} to {path}")
    return path


def read_through(folder: Path) -> None:
    """Read every file once so that neither tool pays for a cold page cache on the first run."""
    for path in folder.iterdir():
        path.read_bytes()


# --------------------------------------------------------------------------------------------- the runs


@dataclass
class ToolRun:
    """One timed run of one tool: wall seconds, its recalls in mmeval's naming, and extra detail."""

    tool: str
    configuration: str
    wall_s: float
    recalls: dict[str, float]  # t2i_R@k / i2t_R@k, 0-1
    detail: dict[str, Any] = field(default_factory=dict)


def timed_subprocess(command: list[str], env: dict[str, str], what: str) -> float:
    """Run `command`, return its wall seconds; on failure print the tail of its output and exit."""
    began = time.perf_counter()
    done = subprocess.run(command, check=False, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        log(f"{what} failed (exit {done.returncode}): {shlex.join(command)}")
        sys.stderr.write((done.stdout[-2000:] + "\n" + done.stderr[-4000:]).strip() + "\n")
        sys.exit(2)
    return wall


def run_clip_benchmark(data: Dataset, checkpoint: Path, device: str, batch_size: int, workers: int,
                       out: Path) -> ToolRun:
    """CLIP_benchmark's zero-shot retrieval CLI on the set; fp32 on CPU, its default amp on CUDA."""
    out.unlink(missing_ok=True)
    command = [
        sys.executable, "-c", CLIP_BENCHMARK_BOOTSTRAP, "eval",
        "--dataset", "mscoco_captions", "--dataset_root", str(data.root), "--annotation_file", str(data.annotations),
        "--task", "zeroshot_retrieval", "--model", ARCH, "--pretrained", str(checkpoint),
        "--recall_k", *map(str, KS), "--batch_size", str(batch_size), "--num_workers", str(workers),
        "--output", str(out), "--quiet",
    ]
    env = dict(os.environ)
    if device == "cpu":
        command.append("--no_amp")
        env["CUDA_VISIBLE_DEVICES"] = ""  # it has no --device option: it takes CUDA whenever it sees one
    wall = timed_subprocess(command, env, "CLIP_benchmark")
    metrics = json.loads(out.read_text())["metrics"]
    recalls = {}
    for k in KS:
        recalls[f"t2i_R@{k}"] = float(metrics[f"image_retrieval_recall@{k}"])
        recalls[f"i2t_R@{k}"] = float(metrics[f"text_retrieval_recall@{k}"])
    amp = "amp (fp16)" if device == "cuda" else "fp32"
    return ToolRun("CLIP_benchmark 1.6.2", f"batch {batch_size}, {workers} workers, {amp}", wall, recalls)


def write_mmeval_config(path: Path, data: Dataset, checkpoint: Path, device: str, batch_size: int | None,
                        workers: int | None, report_dir: Path, cache_dir: Path) -> Path:
    """The mmeval run config: open_clip ViT-B-32 from the local checkpoint, retrieval on the coco set."""
    runtime: dict[str, Any] = {"device": device, "cache_dir": str(cache_dir)}
    if batch_size is not None:
        runtime["batch_size"] = batch_size
    if workers is not None:
        runtime["num_workers"] = workers
    config = {
        "model": {"type": "open_clip", "arch": ARCH, "checkpoint": str(checkpoint)},
        "benchmarks": [{
            "name": "synthetic", "task": "retrieval", "recall_k": list(KS),
            "data": {"format": "coco", "annotations": str(data.annotations), "images": str(data.images)},
        }],
        "runtime": runtime,
        "output": {"dir": str(report_dir), "name": "report"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_mmeval(config: Path, report_dir: Path, label: str, extra_args: list[str]) -> ToolRun:
    """`python -m mmeval run -c config [extra args]` from the repository root; recalls from its report."""
    shutil.rmtree(report_dir, ignore_errors=True)  # a report never overwrites: start from an empty folder
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "mmeval", "run", "-c", str(config), *extra_args]
    wall = timed_subprocess(command, env, f"mmeval ({label})")
    report = json.loads((report_dir / "report.json").read_text())
    bench = report["benchmarks"]["synthetic"]
    recalls = {f"{d}_R@{k}": float(bench["metrics"][f"{d}_R@{k}"]["value"]) for k in KS for d in ("t2i", "i2t")}
    runtime = report.get("runtime", {})
    settings = ", ".join(f"{key} {runtime[key]}" for key in ("batch_size", "num_workers", "precision") if key in runtime)
    configuration = f"{label}: {settings or 'defaults'}" + (f", {shlex.join(extra_args)}" if extra_args else "")
    detail = {"model_load_s": report.get("model", {}).get("load_s"), "timings": bench.get("timings", {}),
              "pixels_from": bench.get("dataset", {}).get("pixels_from"), "runtime": runtime}
    return ToolRun("mmeval", configuration, wall, recalls, detail)


# --------------------------------------------------------------------------------------------- the summary


def median_run(runs: list[ToolRun]) -> ToolRun:
    """The median wall time of repeated runs of one configuration (recalls and detail of the last run; the
    recalls of every run are compared in `benchmark`)."""
    last = runs[-1]
    detail = {**last.detail, "wall_s_all": [r.wall_s for r in runs]}
    return ToolRun(last.tool, last.configuration, statistics.median(r.wall_s for r in runs), last.recalls, detail)


def paired_ratio(peer: list[ToolRun], ours: list[ToolRun]) -> float:
    """Median over repeats of CLIP_benchmark's wall time / mmeval's in the same repeat: steadier than the
    ratio of medians when the machine's load drifts during a long benchmark."""
    return statistics.median(p.wall_s / o.wall_s for p, o in zip(peer, ours))


def max_difference(a: dict[str, float], b: dict[str, float]) -> tuple[float, str]:
    """The largest absolute recall difference between two runs, and the metric where it occurs."""
    return max((abs(a[name] - b[name]), name) for name in a)


def print_tables(rows: list[ToolRun], reference: ToolRun) -> None:
    """Wall times with the CLIP_benchmark / tool ratio, then every recall side by side with the largest gap."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    times = Table(title="retrieval, whole runs: median wall seconds")
    for column in ("tool", "configuration", "wall s", "runs", "CLIP_benchmark / this"):
        times.add_column(column, justify="left" if column in ("tool", "configuration") else "right")
    for row in rows:
        times.add_row(row.tool, row.configuration, f"{row.wall_s:.2f}", str(len(row.detail["wall_s_all"])),
                      f"{reference.wall_s / row.wall_s:.2f}x")
    console.print(times)

    recalls = Table(title="recall@k (CLIP_benchmark image_retrieval = t2i, text_retrieval = i2t)")
    recalls.add_column("metric")
    for row in rows:
        recalls.add_column(row.tool if row is reference else row.configuration.split(":")[0], justify="right")
    recalls.add_column("max |diff|", justify="right")
    for name in reference.recalls:
        values = [row.recalls[name] for row in rows]
        recalls.add_row(name, *(f"{v:.6f}" for v in values), f"{max(abs(v - values[0]) for v in values):.1e}")
    console.print(recalls)


def describe_mmeval_time(row: ToolRun) -> str:
    """Where an mmeval run's wall time went, from its report: load, images, texts, metrics, the rest."""
    timings = row.detail.get("timings", {})
    load = row.detail.get("model_load_s") or 0.0
    images = sum(timings.get(f"images_{part}_s", 0.0) for part in ("data", "h2d", "model"))
    texts = sum(timings.get(f"texts_{part}_s", 0.0) for part in ("data", "h2d", "model"))
    rest = row.wall_s - load - timings.get("total_s", 0.0)
    pixels = f", pixels from {row.detail['pixels_from']}" if row.detail.get("pixels_from") else ""
    return (f"model load {load:.2f} s, images {images:.2f} s (waiting for data {timings.get('images_data_s', 0):.2f} s"
            f"{pixels}),"
            f" texts {texts:.2f} s, metrics {timings.get('metrics_s', 0):.2f} s, process start/imports/report "
            f"{rest:.2f} s")


def hardware() -> dict[str, Any]:
    """CPU model and cores, GPU name, library versions: what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("open_clip_torch", "clip-benchmark", "torchvision", "numpy", "pillow", "mmeval"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda, "python": platform.python_version(), "platform": platform.platform(),
        "versions": versions,
    }


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (head -40 of this file) for examples.")
    parser.add_argument("--images", type=int, default=200, help="number of images (5 captions each); default 200")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the data set, checkpoint and outputs go; reused when the size matches "
                             "(default: a fresh temporary folder, deleted at the end)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images, captions and random weights")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = cuda if available; both tools run on it")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration; medians are quoted")
    parser.add_argument("--cb-batch-size", type=int, default=64, help="CLIP_benchmark --batch_size (its default 64)")
    parser.add_argument("--cb-workers", type=int, default=4, help="CLIP_benchmark --num_workers (its default 4)")
    parser.add_argument("--batch-size", type=int, default=None, help="mmeval runtime.batch_size (default: mmeval's)")
    parser.add_argument("--workers", type=int, default=None, help="mmeval runtime.num_workers (default: mmeval's)")
    parser.add_argument("--mmeval-extra-args", default="",
                        help="extra arguments for every `mmeval run`, e.g. \"--set runtime.precision=fp32\"")
    parser.add_argument("--mmeval-warm-args", default="",
                        help="extra arguments for the warm mmeval run only (it already gets --set runtime.cache=pixels)")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm mmeval run (pixel cache)")
    parser.add_argument("--rerun", action="store_true",
                        help="also time a plain rerun, which reuses mmeval's cached embeddings (no model pass)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help=f"largest allowed recall difference (default {CPU_TOLERANCE:g} on CPU, "
                             f"{AMP_TOLERANCE:g} on CUDA where the tools use different half types)")
    parser.add_argument("--build-jobs", type=int, default=os.cpu_count() or 1,
                        help="processes rendering the JPEGs (default: all cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures and hardware to this file")
    args = parser.parse_args(argv)
    if args.images < 10:
        parser.error("--images must be at least 10 (recall@10 needs 10 images)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def resolve_device(spec: str) -> str:
    """'auto' -> 'cuda' if torch sees a GPU, else 'cpu'; an unavailable 'cuda' is an error."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda, but torch sees no CUDA device")
    return spec


def benchmark(args: argparse.Namespace, workdir: Path) -> int:
    """Build the set, run every configuration --repeats times, compare, print, write JSON; the exit code."""
    data = build_dataset(workdir, args.images, args.seed, max(1, args.build_jobs))  # forks: before torch.cuda
    device = resolve_device(args.device)
    tolerance = args.tolerance if args.tolerance is not None else (AMP_TOLERANCE if device == "cuda" else CPU_TOLERANCE)
    checkpoint = build_checkpoint(workdir, args.seed)
    read_through(data.images)
    runs_dir = workdir / "runs"
    runs_dir.mkdir(exist_ok=True)
    cache_dir, report_dir = runs_dir / "mmeval-cache", runs_dir / "mmeval-report"
    config = write_mmeval_config(runs_dir / "mmeval.yaml", data, checkpoint, device, args.batch_size, args.workers,
                                 report_dir, cache_dir)
    extra = shlex.split(args.mmeval_extra_args)
    warm_extra = extra + ["--set", "runtime.cache=pixels", *shlex.split(args.mmeval_warm_args)]

    runs: dict[str, list[ToolRun]] = {"clip_benchmark": [], "mmeval_cold": [], "mmeval_warm": [], "mmeval_rerun": []}
    for repeat in range(args.repeats):
        log(f"repeat {repeat + 1}/{args.repeats}: CLIP_benchmark on {device}")
        runs["clip_benchmark"].append(run_clip_benchmark(data, checkpoint, device, args.cb_batch_size,
                                                         args.cb_workers, runs_dir / "clip_benchmark.json"))
        log(f"  CLIP_benchmark {runs['clip_benchmark'][-1].wall_s:.2f} s")
        shutil.rmtree(cache_dir, ignore_errors=True)
        timed = [("mmeval_cold", "cold", extra)]
        timed += [] if args.no_warm else [("mmeval_warm", "warm", warm_extra)]
        timed += [("mmeval_rerun", "rerun", extra)] if args.rerun else []
        for key, label, arguments in timed:
            runs[key].append(run_mmeval(config, report_dir, label, arguments))
            log(f"  mmeval {label} {runs[key][-1].wall_s:.2f} s")

    rows = [median_run(r) for r in runs.values() if r]
    reference = rows[0]
    worst, where = max(max_difference(peer.recalls, ours.recalls)  # every mmeval run vs CLIP_benchmark's of its repeat
                       for key in runs if key != "clip_benchmark" for peer, ours in zip(runs["clip_benchmark"], runs[key]))
    print_tables(rows, reference)
    print(f"recall agreement: max |CLIP_benchmark - mmeval| = {worst:.2e} ({where}; tolerance {tolerance:g}, "
          f"{device}, {data.n_images} images, {data.n_texts} captions)")
    paired = {key: paired_ratio(runs["clip_benchmark"], done) for key, done in runs.items()
              if done and key != "clip_benchmark"}
    for row, ratio in zip(rows[1:], paired.values()):
        print(f"mmeval {row.configuration.split(':')[0]}: CLIP_benchmark / mmeval = "
              f"{reference.wall_s / row.wall_s:.2f}x ({reference.wall_s:.2f} s / {row.wall_s:.2f} s; median of "
              f"per-repeat ratios {ratio:.2f}x); {describe_mmeval_time(row)}")
    if args.json:
        summary = {
            "images": data.n_images, "texts": data.n_texts, "device": device, "repeats": args.repeats,
            "tolerance": tolerance, "max_recall_difference": worst, "max_difference_at": where,
            "agree": worst <= tolerance,
            "runs": [{**asdict(row), "speedup_vs_clip_benchmark": reference.wall_s / row.wall_s} for row in rows],
            "every_run": {key: [asdict(run) for run in done] for key, done in runs.items() if done},
            "median_paired_speedup": paired,
            "hardware": hardware(), "argv": sys.argv[1:],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str))
        log(f"wrote {args.json}")
    if worst > tolerance:
        print(f"FAIL: recalls differ by {worst:.2e} > {tolerance:g}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return benchmark(args, args.workdir.resolve())
    with tempfile.TemporaryDirectory(prefix="bench_retrieval_") as folder:
        return benchmark(args, Path(folder))


if __name__ == "__main__":
    sys.exit(main())
