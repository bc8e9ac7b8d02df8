"""Per-image time of each ImageNet-C corruption (mmeval.perturb.image) at one severity, on a 224x224 and a
640x480 image, against the `imagecorruptions` package's own function on the same image in the same run.

    PYTHONPATH=$PWD python scripts/bench_corruptions.py [--severity 3] [--repeats 5] [--image PATH]

Prints medians (ms) of `--repeats` timed calls after one untimed warm-up (which also compiles the package's numba
loop), the ratio package / mmeval, and the sum over the 15 corruptions (about a fifth of the per-image cost of a
5 x 15 grid). With `--python-glass`, also the published pure-Python glass-blur loop (the original package's) once
at 224x224. The image is a real COCO photograph from ../shared/data when present, else a seeded random one.
Both sides run with one torch / OpenCV thread, as in a DataLoader worker, and the 5 frost textures are decoded
before timing (once per process in a real run).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mmeval.perturb.image import CORRUPTIONS, _frost_tensor

ROOT = Path(__file__).resolve().parents[1]


def load_image(path: Path | None) -> Image.Image:
    candidates = [path] if path else sorted((ROOT.parent / "shared" / "data" / "coco" / "images").glob("*.jpg"))[:1]
    for candidate in candidates:
        if candidate and candidate.is_file():
            return Image.open(candidate).convert("RGB")
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: caches, lazy imports, numba compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--python-glass", action="store_true", help="also time the published pure-Python loop")
    args = parser.parse_args()
    try:
        import imagecorruptions as package
    except ImportError:
        package = None
        print("imagecorruptions is not installed: mmeval's times only (pip install imagecorruptions-imaug)")

    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker
    if package is not None:
        import cv2

        cv2.setNumThreads(1)
    for index in range(5):
        _frost_tensor(index)  # decoded once per process
    photo = load_image(args.image)
    sizes = {"224x224": (224, 224), "640x480": (640, 480)}
    images = {label: np.asarray(photo.resize(size)) for label, size in sizes.items()}
    print(f"severity {args.severity}, median of {args.repeats} calls per image (ms)")
    print(f"{'corruption':18s}" + "".join(f" | {label:>8s} mmeval  package  ratio" for label in sizes))
    totals = {label: [0.0, 0.0] for label in sizes}
    for name, fn in CORRUPTIONS.items():
        row = f"{name:18s}"
        for label, img in images.items():
            rng = np.random.default_rng(0)
            ours = median_ms(functools.partial(fn, img, args.severity, rng), args.repeats)
            theirs = (median_ms(functools.partial(package.corrupt, img, args.severity, name), args.repeats)
                      if package else float("nan"))
            totals[label][0] += ours
            totals[label][1] += theirs
            row += f" | {ours:15.1f} {theirs:8.1f} {theirs / ours:6.2f}"
        print(row)
    print(f"{'sum of the 15':18s}" + "".join(f" | {a:15.1f} {b:8.1f} {b / a:6.2f}" for a, b in totals.values()))

    if args.python_glass and package is not None:
        from imagecorruptions import corruptions as impl

        img = images["224x224"]
        loop = impl._shuffle_pixels_njit_glass_blur
        impl._shuffle_pixels_njit_glass_blur = loop.py_func  # the loop as published, in the interpreter
        try:
            start = time.perf_counter()
            package.corrupt(img, args.severity, "glass_blur", seed=0)
            python_ms = 1000 * (time.perf_counter() - start)
        finally:
            impl._shuffle_pixels_njit_glass_blur = loop
        ours = median_ms(lambda: CORRUPTIONS["glass_blur"](img, args.severity, np.random.default_rng(0)), args.repeats)
        print(f"glass_blur 224x224, published Python loop: {python_ms:.1f} ms (one call); mmeval {ours:.1f} ms; "
              f"ratio {python_ms / ours:.1f}")


if __name__ == "__main__":
    main()
