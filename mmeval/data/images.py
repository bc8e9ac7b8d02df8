"""Reading and decoding images, with errors that name the file."""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mmeval.errors import DataError


def decode_image(data: bytes, where: str) -> Image.Image:
    """Decode image bytes into an RGB PIL image; raise DataError naming `where` if they are not an image.

    Like open_clip / CLIP_benchmark, EXIF orientation is not applied, so pixels match the reference tools.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
        return image.convert("RGB")
    except UnidentifiedImageError as exc:
        raise DataError(f"{where}: cannot decode image (not a recognised image format)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from exc


class FileImages:
    """Images stored as files: the `ImageSource` for the coco and karpathy formats."""

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
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        data = self.read_bytes(index)
        return data, decode_image(data, str(self.paths[index]))

    def fingerprint(self) -> str:
        """Identifies the files as they are now (path, size, modification time) without reading them: a cache
        entry made from other or since-changed files never matches."""
        digest = hashlib.sha256(b"files")
        for path in self.paths:
            try:
                stat = path.stat()
                digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}|missing\n".encode())
        return digest.hexdigest()


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


def source_fingerprint(source) -> str | None:
    """What identifies an image source's content for caching, or None when it cannot be identified cheaply."""
    method = getattr(source, "fingerprint", None)
    return method() if method is not None else None
