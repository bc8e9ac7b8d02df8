"""Image preprocessing split in two: geometry to uint8 pixels, then normalisation to float on the device.

A model's `image_transform` maps a PIL image to normalised float pixels. Models that expose a
`pixel_pipeline` let mmeval split that into

    to_uint8(image)   PIL -> (3, H, W) uint8 at the model's resolution (resize, crop: the model's own
                      CPU ops, so the pixels are exactly the ones `image_transform` would produce)
    normalize(batch)  (N, 3, H, W) uint8 -> float32 (x / 255 - mean) / std, run on the device

which is what makes three things possible:

- data workers hand over uint8 batches, a quarter of the bytes of float32 through shared memory, pinned memory
  and the host-to-device copy;
- the decoded-input cache (`decoded_cache.py`) stores uint8 pixels once per (dataset, geometry): every checkpoint
  with the same preprocessing reuses them without decoding a single image;
- JPEGs can be decoded on the GPU (nvJPEG via torchvision) and resized there (`gpu_geometry`), when
  `data.decode` allows it. GPU resizing is not bit-identical to PIL's (different antialiasing filters), so
  GPU-decoded scores move slightly; mmeval reports which decode path ran.

`normalize` matches torchvision's ToTensor + Normalize bit for bit (x.float() / 255, then (x - mean) / std),
so the split path gives the same floats as the model's own transform (tested for reference and open_clip).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass
class PixelPipeline:
    """How one model turns images into pixels, in two stages (see the module docstring)."""

    cpu_geometry: Callable[[Image.Image], Image.Image]  # PIL -> PIL at the final size (the model's own ops)
    size: tuple[int, int]  # final (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_shortest: int | None = None  # GPU geometry: shortest side to this, then centre crop to `size`
    interpolation: str = "bicubic"
    description: str = ""  # identifies the geometry in cache keys and reports

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, H, W) uint8, after the model's resize / crop."""
        pixels = np.asarray(self.cpu_geometry(image.convert("RGB")), dtype=np.uint8)
        if pixels.shape[:2] != self.size:
            raise ValueError(f"preprocessing produced {pixels.shape[1]}x{pixels.shape[0]} pixels, "
                             f"expected {self.size[1]}x{self.size[0]}")  # fmt: skip
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> float32, exactly as ToTensor + Normalize compute it."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        return batch.to(torch.float32).div(255).sub(mean).div(std)

    def gpu_geometry(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decoded (3, h, w) uint8 images on the GPU -> (N, 3, H, W) uint8 at the model's size."""
        from torchvision.transforms.v2 import functional as TF

        mode = TF.InterpolationMode.BICUBIC if self.interpolation == "bicubic" else TF.InterpolationMode.BILINEAR
        out = []
        for image in images:
            if self.resize_shortest is not None:
                image = TF.resize(image, self.resize_shortest, interpolation=mode, antialias=True)
                image = TF.center_crop(image, list(self.size))
            else:
                image = TF.resize(image, list(self.size), interpolation=mode, antialias=True)
            out.append(image)
        return torch.stack(out)

    def key(self) -> str:
        return f"{self.description}|size={self.size}|mean={self.mean}|std={self.std}"


def from_torchvision_compose(compose) -> PixelPipeline | None:
    """Split a torchvision Compose of [Resize, CenterCrop, (RGB conversion), ToTensor, Normalize] (open_clip's
    evaluation transform) at ToTensor; None for any other shape, which then runs whole on the CPU."""
    from torchvision import transforms as T

    steps = list(getattr(compose, "transforms", []))
    if len(steps) < 3 or not isinstance(steps[-2], T.ToTensor) or not isinstance(steps[-1], T.Normalize):
        return None  # (open_clip's MaybeToTensor is a ToTensor)
    geometry = steps[:-2]
    resize = [s for s in geometry if isinstance(s, T.Resize)]
    crop = [s for s in geometry if isinstance(s, T.CenterCrop)]
    known = all(isinstance(s, (T.Resize, T.CenterCrop)) or callable(s) and not isinstance(s, torch.nn.Module)
                for s in geometry)  # fmt: skip
    if len(resize) != 1 or len(crop) != 1 or not known:
        return None
    size, crop_size = resize[0].size, crop[0].size
    shortest = size if isinstance(size, int) else size[0] if len(size) == 1 else None
    crop_hw = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if shortest is None or len(crop_hw) != 2 or resize[0].max_size is not None:
        return None
    normalize = steps[-1]
    return PixelPipeline(
        cpu_geometry=T.Compose(geometry), size=(int(crop_hw[0]), int(crop_hw[1])),
        mean=tuple(float(m) for m in normalize.mean), std=tuple(float(s) for s in normalize.std),
        resize_shortest=int(shortest), interpolation=resize[0].interpolation.value,
        description=f"torchvision:{geometry!r}",
    )  # fmt: skip
