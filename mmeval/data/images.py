"""Reading and decoding images, with errors that name the file."""

from __future__ import annotations

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

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        path = self.paths[index]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc
        return data, decode_image(data, str(path))


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
