"""Your own video model: `model.type: video_plugin` with `entry: "my_package.my_module:factory"`.

The factory is called as for `type: plugin` (mmeval.models.plugin: `checkpoint=` when set, the config's
`options` as keyword arguments, `trust_checkpoint=` when it takes it) and must return an object with at least
one video capability (mmeval.models.base):

- `video_text_encoder`: `image_transform` (one PIL frame -> CHW float tensor, picklable: it runs in
  DataLoader workers), `tokenize(texts)`, `encode_text(tokens) -> (N, D)`, `encode_video(frames) -> (B, D)`
  with `frames` the stacked transformed frames, a float tensor (B, T, 3, H, W);
- `video_captioner`: `image_transform`, `generate_video(frames, settings) -> list[str]`;
- `video_answerer`: `image_transform`, `answer_video(frames, questions, settings) -> list[str]`;

plus `module` (a torch.nn.Module: mmeval places it on the device and counts its parameters) and optionally
`info` (a ModelInfo; without one mmeval records the entry, options, checkpoint sha256 and parameter count).

Two optional members every video model may have, the built-in adapters included, and that tasks read
through the functions below: `frames_expected` (an int: the model takes exactly that many frames per clip,
as X-CLIP does; checked against the benchmark's `frames:` before any video is decoded) and
`describe_prompts(settings) -> dict[str, str]` (the rendered prompts a generative model will use, recorded
in the report).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models import plugin
from mmeval.models.base import CAPABILITIES, GenerationSettings, ModelInfo, capabilities_of

VIDEO_CAPABILITIES = ("video_text_encoder", "video_captioner", "video_answerer")


def check_frame_count(model: Any, frames: int) -> None:
    """Refuse a benchmark's frame count when the model takes a fixed number of frames per clip."""
    expected = getattr(model, "frames_expected", None)
    if expected is not None and frames != expected:
        name = model.info.name if isinstance(getattr(model, "info", None), ModelInfo) else type(model).__name__
        raise MmevalError(f"frames.frames: model '{name}' takes exactly {expected} frames per clip, got {frames}; "
                          f"set frames: {{frames: {expected}}}")


def recorded_prompts(model: Any, settings: GenerationSettings) -> dict[str, str] | None:
    """The rendered prompts a generative video model uses with `settings`, or None when it cannot say."""
    describe = getattr(model, "describe_prompts", None)
    return dict(describe(settings)) if callable(describe) else None


def load(cfg, trust_checkpoint: bool = False) -> Any:
    """Build the user's video model with its factory; refuse one without a video capability, saying why."""
    model = plugin.load(cfg, trust_checkpoint)  # the factory call, `info`, and declared capabilities are checked
    found = capabilities_of(model)
    if not found & set(VIDEO_CAPABILITIES):
        needs = "; ".join(f"{name} needs {', '.join(plugin._needs(protocol))}"
                          for name, protocol in CAPABILITIES.items() if name in VIDEO_CAPABILITIES)
        hint = " (an image-text encoder plugin goes in as type: plugin; video tasks pool its frames)" \
            if "image_text_encoder" in found else ""  # fmt: skip
        raise ModelLoadError(f"video_plugin {cfg.entry} returned a {type(model).__name__} with "
                             f"{', '.join(sorted(found)) or 'no capability'}, not a video capability ({needs}){hint}")
    expected = getattr(model, "frames_expected", None)
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 1):
        raise ModelLoadError(f"video_plugin {cfg.entry}: frames_expected must be a positive int or None, "
                             f"got {expected!r}")
    info = model.info
    if isinstance(info, ModelInfo):  # the frame count goes into the report's model facts
        extra = {**info.extra, "frames_expected": expected}
        made_here = info.adapter == "plugin" and info.extra.get("entry") == cfg.entry  # the info plugin.load made
        model.info = dataclasses.replace(info, adapter="video_plugin" if made_here else info.adapter, extra=extra)
    return model
