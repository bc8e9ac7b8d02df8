"""The content parts of a chat-completions user message: images (data URL or plain URL), video frames, audio.

OpenAI's chat-completions format carries an image as `{"type": "image_url", "image_url": {"url": ...}}` (a
`data:` URL or an http(s) URL the server fetches), and audio as `{"type": "input_audio", "input_audio": {"data":
<base64>, "format": "wav"}}`. A video has no part of its own in that format: it goes as its sampled frames, one
image part each, in time order (as lmms-eval and VLMEvalKit send video to API models).
"""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

URL_BYTES = 2048  # a URL travels through the image loader as a fixed-width uint8 row (so a batch stacks)
SOURCE_KEY = "mmeval.source"  # PIL `info` key under which mmeval's image decoder names the file an image came from


class SquareImage:
    """PIL image -> (3, size, size) uint8, resized with PIL bicubic unless it already has that size."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    def __repr__(self) -> str:
        return f"SquareImage({self.size}, bicubic)"


class UrlOrSquareImage(SquareImage):
    """`image_transport: url`: an image read from a file under `root` becomes its URL (`base_url` + the path
    relative to `root`) as a (URL_BYTES,) uint8 row; any other image (a video frame, an in-memory or perturbed
    image: no file behind it) stays pixels, which the adapter sends as a data URL where that is allowed."""

    def __init__(self, size: int, root: Path, base_url: str):
        super().__init__(size)
        self.root, self.base_url = Path(root).resolve(), base_url.rstrip("/")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        source = image.info.get(SOURCE_KEY)
        if source is None:
            return super().__call__(image)
        try:
            relative = Path(source).resolve().relative_to(self.root)
        except ValueError:
            raise ValueError(f"model.served.image_root: {source} is not under {self.root}, so it has no URL "
                             f"under {self.base_url}") from None
        raw = f"{self.base_url}/{relative.as_posix()}".encode("utf-8")
        if len(raw) > URL_BYTES:
            raise ValueError(f"the URL of {source} is longer than {URL_BYTES} bytes")
        return torch.from_numpy(np.frombuffer(raw.ljust(URL_BYTES, b"\0"), dtype=np.uint8).copy())

    def __repr__(self) -> str:
        return f"UrlOrSquareImage({self.size}, bicubic, {self.root} -> {self.base_url})"


def is_url_row(row: torch.Tensor) -> bool:
    return row.dim() == 1


def url_of(row: torch.Tensor) -> str:
    """The URL a (URL_BYTES,) row made by `UrlOrSquareImage` carries."""
    return bytes(row.detach().cpu().numpy().tobytes()).rstrip(b"\0").decode("utf-8")


def data_url(pixels: torch.Tensor, image_format: str, jpeg_quality: int) -> str:
    """A (3, H, W) uint8 tensor as a data:image/...;base64 URL."""
    array = pixels.detach().to("cpu", torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    if image_format == "jpeg":
        Image.fromarray(array).save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        Image.fromarray(array).save(buffer, format="PNG")
    return f"data:image/{image_format};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def wav_base64(wave_row: torch.Tensor, length: int, rate: int) -> str:
    """The first `length` samples of a float waveform in [-1, 1] as a base64 16-bit PCM mono WAV file.

    Written with the standard library's `wave` (PCM only, which is all `input_audio` needs); samples are clipped
    to [-1, 1] and rounded to 16 bits, the format every server that takes `input_audio` reads."""
    samples = wave_row[:length].detach().to("cpu", torch.float32).numpy()
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def audio_part(data_b64: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data_b64, "format": "wav"}}
