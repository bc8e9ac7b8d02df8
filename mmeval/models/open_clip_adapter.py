"""open_clip models: an architecture name (or a config JSON of one) plus a local checkpoint or pretrained tag.

The model comes with open_clip's own evaluation preprocessing and tokenizer, exactly as CLIP_benchmark
uses them, so numbers are comparable with published ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import ModelInfo, Tokens, describe_load_error
from mmeval.pixels import from_torchvision_compose
from mmeval.registry import did_you_mean


class OpenClipEncoder:
    """`image_text_encoder` capability over an open_clip CLIP model."""

    def __init__(self, model: torch.nn.Module, preprocess, tokenizer, info: ModelInfo):
        self.module = model
        self.image_transform = preprocess
        self.pixel_pipeline = from_torchvision_compose(preprocess)  # None: an unusual transform, run whole
        self._tokenizer = tokenizer
        self.info = info

    def tokenize(self, texts: list[str]) -> Tokens:
        return self._tokenizer(texts)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels)

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        return self.module.encode_text(tokens)


def load(cfg) -> OpenClipEncoder:
    import open_clip

    if cfg.arch_config is not None:
        open_clip.add_model_config(cfg.arch_config)  # registered under the file's stem
    known = open_clip.list_models()
    if cfg.arch not in known and not cfg.arch.startswith(("hf-hub:", "local-dir:")):
        raise ModelLoadError(
            f"model.arch: unknown open_clip architecture '{cfg.arch}'.{did_you_mean(cfg.arch, known)} "
            f"(`python -c 'import open_clip; print(open_clip.list_models())'` lists them; "
            f"a custom one can be given with model.arch_config)"
        )
    pretrained = str(cfg.checkpoint) if cfg.checkpoint else cfg.pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(cfg.arch, pretrained=pretrained, device="cpu")
    except (RuntimeError, AssertionError) as exc:  # open_clip asserts on some shape changes
        raise ModelLoadError(
            f"model.checkpoint: {pretrained} does not fit open_clip architecture '{cfg.arch}': {describe_load_error(exc)}"
        ) from exc
    except Exception as exc:  # open_clip raises bare exceptions for unreadable files and unknown tags
        raise ModelLoadError(f"model.checkpoint: cannot load {pretrained} for '{cfg.arch}' ({describe_load_error(exc)})") from exc
    name = cfg.name or (f"{cfg.arch}:{Path(str(pretrained)).name}" if pretrained else cfg.arch)
    info = ModelInfo.of_checkpoint("open_clip", name, cfg.checkpoint, model, arch=cfg.arch,
                                   open_clip_version=open_clip.__version__)
    if not cfg.checkpoint:
        info.checkpoint = cfg.pretrained  # a pretrained tag: open_clip's own download, not a file to hash
    return OpenClipEncoder(model, preprocess, open_clip.get_tokenizer(cfg.arch), info)
