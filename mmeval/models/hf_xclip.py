"""Hugging Face X-CLIP (`XCLIPModel`) saved with `save_pretrained`: a native video-text encoder.

X-CLIP embeds a clip by encoding every frame with its cross-frame vision tower and fusing the frame
embeddings with a small multi-frame integration transformer (MIT) whose positional table has exactly
`vision_config.num_frames` rows: a checkpoint takes that many frames per clip and no other number
(`frames_expected`, checked before any video is decoded by `check_frames`).

Scoring choice (recorded in the report): `encode_text` returns X-CLIP's text embeddings *without* its
video-specific prompt generator. `XCLIPModel.forward` adds, for every (video, text) pair, a prompt computed
by cross-attending the text embedding to that video's patch features; that makes scores a function of the
pair, not of two independent embeddings, so a dual-encoder benchmark (retrieval over cached embeddings)
cannot use it. `encode_video_with_context` + `prompted_scores` compute the prompted scores exactly (equal to
`forward`'s `logits_per_video / logit_scale`) for a task that wants them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import ModelInfo, Tokens, describe_load_error
from mmeval.models.hf_common import check_weights_fit, load_model, loading_kwargs
from mmeval.models.hf_video_frames import processor_facts

_PROCESSOR_KEYS = ("size", "crop_size", "do_center_crop", "image_mean", "image_std", "resample", "rescale_factor")
TEXT_SCORING = "text embeddings without X-CLIP's video-specific prompt generator (dual-encoder scores)"


class FrameTransform:
    """Picklable: one RGB frame -> the X-CLIP image processor's (3, H, W) tensor.

    X-CLIP's processor (VideoMAEImageProcessor, or a CLIP one) treats every frame on its own (resize,
    centre crop, rescale, normalise), so frame by frame equals processing the whole clip at once.
    """

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = self.image_processor(images=image, return_tensors="pt")["pixel_values"]
        while pixels.dim() > 3:  # (1, 1, 3, H, W) from a video processor, (1, 3, H, W) from an image one
            pixels = pixels[0]
        return pixels


class XClipEncoder:
    """Capability `video_text_encoder` over a transformers `XCLIPModel`."""

    capabilities: tuple[str, ...] = ("video_text_encoder",)

    def __init__(self, model, tokenizer, image_processor, info: ModelInfo):
        self.module = model
        self.image_transform = FrameTransform(image_processor)
        self.frames_expected = int(model.config.vision_config.num_frames)
        self._tokenizer = tokenizer
        self._max_length = int(model.config.text_config.max_position_embeddings)
        self.info = info

    def check_frames(self, frames: int) -> None:
        """Refuse a frame count the checkpoint cannot take; cheap, so a task can call it before decoding."""
        if frames != self.frames_expected:
            raise MmevalError(f"frames.frames: X-CLIP model '{self.info.name}' takes exactly {self.frames_expected} "
                              f"frames per clip (vision_config.num_frames), got {frames}; set "
                              f"frames: {{frames: {self.frames_expected}}}")

    def tokenize(self, texts: list[str]) -> Tokens:
        encoded = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_length,
                                  return_tensors="pt")
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        return _pooled(self.module.get_text_features(**tokens))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) frames -> (B, D) clip embeddings (vision tower, projection, MIT)."""
        self.check_frames(frames.shape[1])
        return _pooled(self.module.get_video_features(pixel_values=frames))

    def encode_video_with_context(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip embeddings (B, D) and the frame-averaged patch features (B, P, D) the prompt generator reads.

        The same steps as `XCLIPModel.forward`'s video half, done once per clip so texts can be scored later.
        """
        self.check_frames(frames.shape[1])
        model = self.module
        batch, count = frames.shape[:2]
        vision = model.vision_model(pixel_values=frames.reshape(-1, *frames.shape[2:]))
        cls = model.visual_projection(vision.pooler_output).view(batch, count, -1)
        embeds = model.mit(cls).pooler_output
        patches = model.prompts_visual_layernorm(vision.last_hidden_state[:, 1:, :]) @ model.prompts_visual_projection
        context = patches.view(batch, count, -1, embeds.shape[-1]).mean(dim=1)
        return embeds, context

    def prompted_scores(self, video_embeds: torch.Tensor, context: torch.Tensor,
                        text_embeds: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Cosine scores (B videos, K texts) with each text prompted by each video, as `XCLIPModel.forward`."""
        texts = text_embeds.unsqueeze(0).expand(video_embeds.shape[0], -1, -1)
        texts = texts + self.module.prompts_generator(texts, context)
        videos = torch.nn.functional.normalize(video_embeds, dim=-1)
        return torch.einsum("bd,bkd->bk", videos, torch.nn.functional.normalize(texts, dim=-1))


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns an output object with the projected features as `pooler_output`; 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load(cfg, trust_checkpoint: bool = False) -> XClipEncoder:
    """Load an X-CLIP save_pretrained folder (`cfg.checkpoint`: model + processor), refusing anything not
    loaded exactly; the folder's own code and pickles that need code only with `trust_checkpoint`."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its load report would repeat, at length, what the errors below say

    folder = Path(cfg.checkpoint)
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    trusted = loading_kwargs(folder, trust_checkpoint)
    try:
        config = transformers.AutoConfig.from_pretrained(folder, **trusted)
    except Exception as exc:  # unknown model_type, malformed JSON
        raise ModelLoadError(f"model.checkpoint: cannot read {folder}/config.json "
                             f"({describe_load_error(exc)})") from exc
    if config.model_type != "xclip":
        raise ModelLoadError(f"model.checkpoint: {folder} holds a '{config.model_type}' model, not X-CLIP "
                             "(model_type 'xclip'); image-text models go through hf_clip, which a video task "
                             "pools over frames")
    try:
        # Leniently, then refuse what was not loaded exactly: transformers only warns about random weights.
        (model, loading), loaded_with = load_model(transformers.XCLIPModel, folder, trust_checkpoint,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **trusted)
        image_processor = transformers.AutoImageProcessor.from_pretrained(folder, **trusted)
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} with transformers "
                             f"({describe_load_error(exc)})") from exc
    check_weights_fit(folder, loading)
    vision = config.vision_config
    info = ModelInfo.of_checkpoint(
        "hf_xclip", cfg.name or folder.name, folder, model, loaded_with=loaded_with, model_type=config.model_type,
        architectures=config.architectures, frames_expected=int(vision.num_frames), image_size=int(vision.image_size),
        processor=processor_facts(image_processor, _PROCESSOR_KEYS), text_scoring=TEXT_SCORING,
    )
    return XClipEncoder(model.eval(), tokenizer, image_processor, info)
