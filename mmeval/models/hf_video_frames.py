"""Per-frame preprocessing for the transformers video LMs (hf_video_lm): one RGB frame -> a (3, H, W) tensor.

mmeval's video loader decodes frames and applies a model's `image_transform` to each one in DataLoader
workers, then stacks them into (B, T, 3, H, W). The transformers video processors of these families treat
every frame on its own except for the output size, so the work is split in two exact halves:

- fixed-size families (LLaVA-OneVision: resize to a square; LLaVA-NeXT-Video: resize + centre crop): the
  model's own video processor is run on the frame as a one-frame clip (`VideoProcessorFrames`), which gives
  what it gives each frame of a whole clip;
- native-resolution families (Qwen2-VL): the processor picks one size per video from its pixel budget, which
  would make clips of different shapes unstackable; frames are resized to one fixed `frame_size` instead
  (a recorded scoring choice) with the processor's own resampling, then rescaled and normalised by the
  processor (`FixedSizeFrames`).

Either way the adapter later hands the processor the prepared frames with resizing, cropping, rescaling and
normalisation switched off (`ALREADY_PREPARED`), so it only expands the prompt's video placeholder and, for
Qwen2-VL, cuts the frames into its temporal x spatial patches.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# processor(...) keyword arguments for frames that went through one of the transforms below
ALREADY_PREPARED = {"do_resize": False, "do_center_crop": False, "do_rescale": False, "do_normalize": False}


def _as_clip(image: Image.Image) -> torch.Tensor:
    """One PIL frame as a one-frame uint8 clip (1, 3, H, W), the layout video processors take."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None]


class VideoProcessorFrames:
    """Picklable: the model's video processor on one frame (its full preprocessing), as a (3, H, W) tensor."""

    def __init__(self, video_processor):
        self.video_processor = video_processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.video_processor(videos=[_as_clip(image)], return_tensors="pt")["pixel_values_videos"][0, 0]


class FixedSizeFrames:
    """Picklable: resize one frame to (height, width) as the video processor resizes, then its rescale and
    normalisation; (3, height, width) float."""

    def __init__(self, video_processor, height: int, width: int):
        self.video_processor = video_processor
        self.size = (height, width)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as tvF  # noqa: N812 - torchvision's own alias

        processor = self.video_processor
        clip = _as_clip(image)
        if tuple(clip.shape[-2:]) != self.size:  # the processor's resampling, antialiased, on uint8 like it
            clip = tvF.resize(clip, list(self.size), interpolation=_interpolation(processor.resample), antialias=True)
        return processor.rescale_and_normalize(clip.float(), True, processor.rescale_factor, True,
                                               processor.image_mean, processor.image_std)[0]  # fmt: skip


def _interpolation(resample) -> object:
    """torchvision's InterpolationMode for a PIL resampling code (what transformers' processors store)."""
    from torchvision.transforms import InterpolationMode

    if isinstance(resample, InterpolationMode):
        return resample
    names = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}
    return InterpolationMode[names.get(int(resample), "BICUBIC")]


def processor_facts(processor, keys: tuple[str, ...]) -> dict:
    """The named preprocessing settings of a transformers (video / image) processor, JSON-ready for the report."""
    facts: dict = {"class": type(processor).__name__}
    for key in keys:
        value = getattr(processor, key, None)
        if value is not None:
            facts[key] = _jsonable(value)
    return facts


def _jsonable(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "__dataclass_fields__"):  # transformers' SizeDict is a dataclass
        items = value.items() if isinstance(value, dict) else vars(value).items()
        return {k: _jsonable(v) for k, v in items if v is not None}
    return str(value)
