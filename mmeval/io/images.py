"""Reading and decoding images, with errors that name the file."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmeval.errors import DataError
from mmeval.io.source import file_stamps, source_fingerprint

SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N")
_EOI = b"\xff\xd9"  # JPEG end-of-image marker
TRUNCATED = "cannot decode image (truncated: the file ends before the image data does)"


def _failed(where: str, exc: Exception) -> DataError:
    """The one-line error for bytes Pillow could not read; every kind of truncation gets the same message."""
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return DataError(f"{where}: {TRUNCATED}")
    return DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})")


def open_image(data: bytes, where: str) -> Image.Image:
    """Read an image's header (no pixels yet); raise DataError naming `where` for what cannot be decoded safely:
    not an image, over Pillow's decompression-bomb limit, or a JPEG cut short.

    Both decode paths start here (the CPU path before decoding, the GPU path before handing the bytes to nvJPEG),
    so they reject the same files with the same message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise DataError(f"{where}: cannot decode image (not a recognised image format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: cannot decode image (over Pillow's decompression-bomb limit, "
                        f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}: {exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _failed(where, exc) from exc
    # Pillow fails a JPEG whose data ends before the end-of-image marker ("image file is truncated"); nvJPEG may
    # decode the part that is there. Pillow stops reading the header at the start of the scan data, so the file
    # position is where the marker must come after (an EXIF thumbnail before it has its own marker).
    if image.format == "JPEG" and data.rfind(_EOI) < image.fp.tell():
        raise DataError(f"{where}: {TRUNCATED}")
    return image


def decode_image(data: bytes, where: str) -> Image.Image:
    """Decode image bytes into an RGB PIL image; raise DataError naming `where` if they are not an image.

    As open_clip / CLIP_benchmark (PIL's `Image.open(...).convert("RGB")`), so pixels match the reference tools:
    the EXIF orientation is not applied, alpha is dropped (not blended), palette, grayscale and CMYK images are
    converted by Pillow. One exception: 16-bit grayscale, which `convert` clips at 255 (an almost white image),
    is reduced to its high byte, as Pillow itself reads 16-bit RGB PNGs.
    """
    image = open_image(data, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise _failed(where, exc) from exc
    if image.mode in SIXTEEN_BIT_GRAY:
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8), "L")
    return image.convert("RGB")


def gpu_decodable(data: bytes, where: str) -> bool:
    """Whether JPEG bytes may go to nvJPEG: YCbCr or grayscale (CMYK / YCCK JPEGs are decoded by Pillow, whose
    conversion is the reference). Raises DataError as `decode_image` would (truncated, too large)."""
    return open_image(data, where).mode in ("RGB", "L")


class FileImages:
    """Images stored as files: the `ImageSource` (an `io.source.InputSource`) for the coco and karpathy formats."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def read_bytes(self, index: int) -> bytes:
        """The file's bytes, undecoded (for GPU decoding)."""
        path = self.paths[index]
        try:
            return path.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise DataError(f"{path}: cannot read image ({getattr(exc, 'strerror', None) or exc})") from exc

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        data = self.read_bytes(index)
        image = decode_image(data, str(self.paths[index]))
        image.info["mmeval.source"] = str(self.paths[index])  # the file behind it (a served model may send its URL)
        return data, image

    def fingerprint(self) -> str:
        """The files as they are now (`file_stamps`), without reading them."""
        return file_stamps(self.paths, b"files")


class SubsetImages:
    """A view of another image source restricted to some indices (used by `data.limit`)."""

    def __init__(self, source, indices: list[int]):
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self, index: int) -> str:
        return self.source.describe(self.indices[index])

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        return self.source.load(self.indices[index])

    def read_bytes(self, index: int) -> bytes:
        return self.source.read_bytes(self.indices[index])

    def fingerprint(self) -> str | None:
        inner = source_fingerprint(self.source)
        return None if inner is None else hashlib.sha256(f"{inner}|{self.indices}".encode()).hexdigest()
