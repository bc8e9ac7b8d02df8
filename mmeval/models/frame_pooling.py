"""Any image-text encoder as a video encoder: embed each sampled frame, L2-normalise, pool over time.

Mean pooling of normalised frame embeddings is CLIP4Clip's parameter-free baseline ("meanP", Luo et al. 2021)
and the usual zero-shot way to put an image CLIP on video. It ignores frame order by construction: a clip
played backwards gets the same embedding, so it cannot tell "moves left" from "moves right" (the reference
temporal model, `mmeval.models.reference_video`, exists to show that gap). `max` takes the element-wise
maximum instead. The pooled vector is returned unnormalised; video tasks normalise every embedding.

Video tasks wrap an image-text model automatically (`as_video_encoder`); the pooling comes from the model
config's `video_pooling` (default mean) and is recorded in each video benchmark's report entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F

from mmeval.models.base import ImageTextEncoder, Tokens, VideoTextEncoder, capabilities_of

Pooling = Literal["mean", "max"]
POOLINGS: tuple[str, ...] = ("mean", "max")
DEFAULT_POOLING: Pooling = "mean"


def pool_frames(frame_embeddings: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, T, D) frame embeddings -> (B, D): each frame L2-normalised, then mean or max over T."""
    normalised = F.normalize(frame_embeddings.float(), dim=-1)
    if pool == "mean":
        return normalised.mean(dim=1)
    if pool == "max":
        return normalised.amax(dim=1)
    raise ValueError(f"unknown video pooling '{pool}' (choose from {', '.join(POOLINGS)})")


class FramePooledEncoder:
    """`VideoTextEncoder` over an `ImageTextEncoder`: texts as the image model embeds them, videos as the pool
    of their frames' image embeddings. Frames of all videos of a batch go through `encode_image` in one call."""

    capabilities = frozenset({"video_text_encoder"})

    def __init__(self, image_model: ImageTextEncoder, pool: str = DEFAULT_POOLING):
        if pool not in POOLINGS:
            raise ValueError(f"unknown video pooling '{pool}' (choose from {', '.join(POOLINGS)})")
        self.image_model = image_model
        self.pool = pool
        # its own identity for the output cache: the same checkpoint pooled otherwise gives other video embeddings
        self.info = dataclasses.replace(image_model.info, extra={**image_model.info.extra, "video_pooling": pool})
        self.module = image_model.module
        self.image_transform = image_model.image_transform
        if getattr(image_model, "pixel_pipeline", None) is not None:  # uint8 frames through the workers
            self.pixel_pipeline = image_model.pixel_pipeline

    def tokenize(self, texts: list[str]) -> Tokens:
        return self.image_model.tokenize(texts)

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        return self.image_model.encode_text(tokens)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        batch, steps = frames.shape[:2]
        flat = self.image_model.encode_image(frames.reshape(batch * steps, *frames.shape[2:]))
        return pool_frames(flat.reshape(batch, steps, -1), self.pool)

    def describe(self) -> dict[str, Any]:
        """The report's `video_encoder` entry."""
        return {"kind": "frame pooling", "pool": self.pool, "frame_embeddings": "L2-normalised",
                "image_model": self.info.name}


def as_video_encoder(model: Any) -> tuple[VideoTextEncoder, dict[str, Any]]:
    """`model` as a video-text encoder, and what the report records about how videos are embedded.

    A model with its own video encoder is used as it is (its `describe_video()` when it has one); an image-text
    encoder is wrapped in `FramePooledEncoder` with the pooling set on the model config (`video_pooling`)."""
    if "video_text_encoder" in capabilities_of(model):
        describe = getattr(model, "describe_video", None)
        return model, (describe() if describe is not None else {"kind": "native video encoder"})
    wrapped = FramePooledEncoder(model, getattr(model, "video_pooling", None) or DEFAULT_POOLING)
    return wrapped, wrapped.describe()
