"""Fault-injection helpers: images of every mode and defect built in memory with Pillow, tiny datasets around
them, and the `mmeval` command run as a user runs it (a separate process, so a traceback would show)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from mmeval.reporting.report import validate_report

# A narrow terminal, as in tests/test_cli_errors.py: an error line that rich wrapped would not be found whole.
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
ENV.update(COLUMNS="60", NO_COLOR="1", OMP_NUM_THREADS="1")
# Batch size 1: an image's embedding then does not depend on which other images share its batch (CPU kernels round
# differently by batch size), so a run that skips images can be compared with one that never had them exactly.
RUNTIME = {"device": "cpu", "precision": "fp32", "batch_size": 1, "num_workers": 0, "cache": "off"}


# --- images ------------------------------------------------------------------------------------------------------


def picture(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    """A small RGB picture with smooth and sharp parts (JPEG keeps it recognisable), different for each seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = [(x * rng.uniform(1, 6) + y * rng.uniform(1, 6) + rng.uniform(0, 255)) % 256 for _ in range(3)]
    pixels = np.stack(channels, axis=-1).astype(np.uint8)
    x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
    pixels[y0 : y0 + height // 3, x0 : x0 + width // 3] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims width x height 8-bit gray pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))  # fmt: skip


def gray16(width: int = 40, height: int = 30) -> np.ndarray:
    """16-bit grayscale values over the whole 0-65535 range (most above 255)."""
    y, x = np.mgrid[0:height, 0:width]
    return ((x * 1637 + y * 211) % 65536).astype(np.uint16)


def rgb16_png(values: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of (h, w, 3) values in 0-65535, written by hand: Pillow cannot save 16-bit RGB."""
    height, width, _ = values.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values.reshape(height, -1))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))  # fmt: skip


def exif_jpeg(image: Image.Image, orientation: int) -> bytes:
    """A JPEG of `image` as stored, with an EXIF orientation tag (6: display rotated 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def with_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with a small whole JPEG (as an EXIF thumbnail is) in an APP2 segment before its own image data:
    its end-of-image marker is in the file even when the main image's is cut off."""
    thumbnail = encode(picture(8, 6, seed=9), "JPEG")
    return jpeg[:2] + b"\xff\xe2" + struct.pack(">H", len(thumbnail) + 2) + thumbnail + jpeg[2:]


def good_images() -> dict[str, bytes]:
    """File name -> bytes of every decodable kind the suite covers."""
    base = picture()
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    return {
        "rgb.jpg": encode(base, "JPEG", quality=95),
        "gray.jpg": encode(base.convert("L"), "JPEG", quality=95),
        "cmyk.jpg": encode(base.convert("CMYK"), "JPEG", quality=95),
        "progressive.jpg": encode(base, "JPEG", quality=95, progressive=True),
        "trailing-bytes.jpg": encode(base, "JPEG", quality=95) + b"\x00 trailing bytes after the end marker",
        "png-named.jpg": encode(base, "PNG"),  # a PNG in a .jpg file
        "palette.png": encode(palette, "PNG"),
        "rgba.png": encode(base.convert("RGBA"), "PNG"),
        "gray-alpha.png": encode(base.convert("LA"), "PNG"),
        "gray16.png": encode(Image.fromarray(gray16()), "PNG"),
        "exif-rotated.jpg": exif_jpeg(base, 6),
        "thumbnail.jpg": with_thumbnail(encode(base, "JPEG", quality=95)),
    }


def bad_images() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, what the error says after '<path>: ') of every undecodable kind."""
    jpeg = encode(picture(120, 90, seed=3), "JPEG", quality=95)
    truncated = "cannot decode image (truncated: the file ends before the image data does)"
    return {
        "zero-bytes.jpg": (b"", "cannot decode image (not a recognised image format)"),
        "truncated-header.jpg": (jpeg[:300], truncated),
        "truncated-scan.jpg": (jpeg[: len(jpeg) * 2 // 3], truncated),
        "no-end-marker.jpg": (jpeg[:-2], truncated),
        "truncated-with-thumbnail.jpg": (with_thumbnail(jpeg)[:-40], truncated),
        "bomb.png": (png_claiming(20_000, 20_000),
                     f"cannot decode image (over Pillow's decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS = "
                     f"{Image.MAX_IMAGE_PIXELS}: Image size (400000000 pixels) exceeds limit of "
                     f"{2 * Image.MAX_IMAGE_PIXELS} pixels, could be decompression bomb DOS attack.)"),
    }


def reference_pixels(data: bytes) -> np.ndarray:
    """What open_clip / CLIP_benchmark feed their transforms: torchvision's `pil_loader` (Image.open +
    convert("RGB")), run on a file as they do."""
    from torchvision.datasets.folder import pil_loader

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mmeval-ref-{os.getpid()}.img"
    path.write_bytes(data)
    try:
        return np.asarray(pil_loader(str(path)))
    finally:
        path.unlink()


# --- datasets and the command ----------------------------------------------------------------------------------


def write_coco(root: Path, files: dict[str, bytes], name: str = "ann.json") -> Path:
    """Image files in root/images and a COCO captions file naming them (ids 1, 2, ... in sorted name order, two
    captions each)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for n, (file, data) in enumerate(sorted(files.items()), start=1):
        (root / "images" / file).write_bytes(data)
        images.append({"id": n, "file_name": file})
        annotations += [{"id": 2 * n + k, "image_id": n, "caption": f"picture {file} take {k}"} for k in range(2)]
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def coco_benchmark(name: str, annotations: Path, images: Path, **data: Any) -> dict[str, Any]:
    return {"name": name, "task": "retrieval",
            "data": {"format": "coco", "annotations": str(annotations), "images": str(images), **data}}


def write_config(root: Path, stem: str, benchmarks: list[dict[str, Any]]) -> Path:
    raw = {"model": {"type": "reference"}, "benchmarks": benchmarks, "runtime": RUNTIME,
           "output": {"dir": str(root / f"reports-{stem}"), "name": stem}}
    path = root / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def mmeval(cwd: Path, *args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmeval", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=ENV, timeout=300)


def shown(done: subprocess.CompletedProcess) -> str:
    return f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The `error: ` lines, without the prefix; there is no traceback and nothing else on stderr says 'Error'."""
    assert "Traceback" not in done.stderr, shown(done)
    return [line.removeprefix("error: ") for line in done.stderr.splitlines() if line.startswith("error: ")]


def complete_report(folder: Path, stem: str) -> dict[str, Any]:
    """The one report in `folder`: parsed, schema-valid, with no temporary file left beside it."""
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")
    assert not leftovers, leftovers
    report = json.loads((folder / f"{stem}.json").read_text())
    validate_report(report)
    return report
