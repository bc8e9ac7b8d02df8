"""The reference model as data (`ReferenceConfig`) and as torch modules (`ReferenceCLIP`).

A small CLIP: a ViT image tower (optional convolutional stem, patch embedding, [CLS] token, learned positions,
pre-norm transformer, LayerNorm, linear projection) and a word-level text tower (learned positions, pre-norm transformer with a
padding mask, the [EOS] state, LayerNorm, linear projection) meeting in one embedding space, with CLIP's
learned temperature. Optionally (`decoder_layers > 0`) a captioning decoder cross-attends to the image tower's
tokens (`mmeval.models.reference_decoder`), sharing the image encoder as CoCa and BLIP do.
Loading and saving checkpoints lives in `mmeval.models.reference`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from mmeval.models.reference_decoder import CaptionDecoder

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
PAD, UNK, BOS, EOS = range(4)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class ReferenceConfig:
    """Everything needed to rebuild the architecture and its preprocessing; saved as config.json."""

    vocab: list[str]  # token id -> word; starts with SPECIAL_TOKENS
    name: str = "reference"
    image_size: int = 64
    patch_size: int = 8
    conv_stem: int = 0  # 3x3 stride-2 convolutions before the patch embedding (0: a plain linear patchify)
    width: int = 128
    layers: int = 4
    heads: int = 4
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 32
    embed_dim: int = 64
    mlp_ratio: float = 2.0
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    # the captioning decoder; 0 layers = none (checkpoints from before it existed load as encoders)
    decoder_layers: int = 0
    decoder_width: int = 128
    decoder_heads: int = 4
    decoder_context_length: int = 32  # [BOS] + caption words + [EOS]
    # question answering: the decoder also attends to the text tower's summary of a question
    answers_questions: bool = False

    @property
    def has_decoder(self) -> bool:
        return self.decoder_layers > 0

    def problems(self) -> list[str]:
        """What makes this config unbuildable (empty when it is fine)."""
        sizes = ("image_size", "patch_size", "width", "layers", "heads", "text_width", "text_layers", "text_heads")
        found = [f"{name} must be at least 1" for name in (*sizes, "embed_dim") if getattr(self, name) < 1]
        if found:
            return found
        if tuple(self.vocab[:4]) != SPECIAL_TOKENS:
            found.append(f"vocab must start with {list(SPECIAL_TOKENS)}")
        if len(set(self.vocab)) != len(self.vocab):
            found.append("vocab has duplicate words")
        if self.conv_stem < 0 or self.patch_size % 2**self.conv_stem:
            found.append(f"conv_stem {self.conv_stem} needs patch_size {self.patch_size} divisible by 2**conv_stem")
        if self.image_size % self.patch_size:
            found.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.width % self.heads:
            found.append(f"width {self.width} is not divisible by heads {self.heads}")
        if self.text_width % self.text_heads:
            found.append(f"text_width {self.text_width} is not divisible by text_heads {self.text_heads}")
        if self.context_length < 3:
            found.append("context_length must be at least 3 ([BOS], one word, [EOS])")
        if self.decoder_layers < 0:
            found.append("decoder_layers must be 0 (no captioning decoder) or more")
        elif self.has_decoder:
            too_small = [
                f"{name} must be at least 1" for name in ("decoder_width", "decoder_heads") if getattr(self, name) < 1
            ]
            found += too_small
            if not too_small and self.decoder_width % self.decoder_heads:
                found.append(
                    f"decoder_width {self.decoder_width} is not divisible by decoder_heads {self.decoder_heads}"
                )
            if self.decoder_context_length < 3:
                found.append("decoder_context_length must be at least 3 ([BOS], one word, [EOS])")
        if self.answers_questions and not self.has_decoder:
            found.append("answers_questions needs a decoder (decoder_layers of 1 or more)")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            found.append("image_mean and image_std need 3 values each, std positive")
        return found


def tokenize(texts: list[str], vocab: dict[str, int], context_length: int) -> torch.Tensor:
    """Lower-case words split on non-alphanumerics -> (B, context_length) ids: [BOS] words [EOS] [PAD]...

    Unknown words become [UNK]; long texts are cut so that [EOS] always fits.
    """
    tokens = torch.full((len(texts), context_length), PAD, dtype=torch.long)
    for row, text in enumerate(texts):
        words = [vocab.get(w, UNK) for w in _WORD.findall(text.lower())][: context_length - 2]
        ids = [BOS, *words, EOS]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return tokens


def _encoder(width: int, layers: int, heads: int, mlp_ratio: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _conv_stem(cfg: ReferenceConfig) -> tuple[nn.Sequential | None, int]:
    """`conv_stem` 3x3 stride-2 convolutions + GELU (channels doubling up to width), and their channels.

    A convolutional stem makes a small ViT learn fine shape much faster than a linear patchify (Xiao et al.,
    "Early convolutions help transformers see better", 2021); each halves the resolution.
    """
    if cfg.conv_stem == 0:
        return None, 3
    layers: list[nn.Module] = []
    channels = 3
    for i in range(cfg.conv_stem):
        out = max(16, cfg.width // 2 ** (cfg.conv_stem - 1 - i))
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GELU()]
        channels = out
    return nn.Sequential(*layers), channels


class VisionTower(nn.Module):
    """ViT: (B, 3, H, W) normalised pixels -> (B, embed_dim)."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.stem, channels = _conv_stem(cfg)
        patch = cfg.patch_size // 2**cfg.conv_stem
        self.patch_embed = nn.Conv2d(channels, cfg.width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(cfg.width) * cfg.width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(n_patches + 1, cfg.width) * 0.02)
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = _encoder(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.embed_dim, bias=False)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + patches, width): the final LayerNorm'd [CLS] and patch tokens."""
        if self.stem is not None:
            pixels = self.stem(pixels)
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)  # (B, patches, width)
        cls = self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        return self.ln_post(self.transformer(x))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens`' output -> (B, embed_dim): the projected [CLS] token."""
        return self.proj(tokens[:, 0])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed(self.tokens(pixels))


class TextTower(nn.Module):
    """Word-level transformer: (B, context_length) token ids -> (B, embed_dim), read at [EOS]."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(len(cfg.vocab), cfg.text_width)
        self.positional_embedding = nn.Parameter(torch.randn(cfg.context_length, cfg.text_width) * 0.01)
        self.transformer = _encoder(cfg.text_width, cfg.text_layers, cfg.text_heads, cfg.mlp_ratio)
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, text_width): the normalised feature at [EOS], before the projection."""
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.transformer(x, src_key_padding_mask=tokens == PAD)
        eos = (tokens == EOS).int().argmax(dim=1)
        return self.ln_final(x[torch.arange(x.shape[0], device=x.device), eos])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pooled(tokens))


class ReferenceCLIP(nn.Module):
    """Both towers plus CLIP's learned logit scale (log of the inverse temperature), the captioning decoder
    when the config has one (`decoder` is None otherwise) and, for question answering, `question_proj`.

    Answering reuses the captioning decoder: it cross-attends to the image tokens plus one more token, the
    text tower's feature of the question mapped to the image tokens' width (as BLIP's decoder attends to a
    question encoding); when captioning, that token is a learned `caption_token`. One token per question
    keeps every row's memory the same length, so no padding or masking is needed and a row's answer does not
    depend on the other questions of its batch.
    """

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.config = cfg
        self.visual = VisionTower(cfg)
        self.text = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.decoder = (
            CaptionDecoder(
                len(cfg.vocab), cfg.decoder_width, cfg.decoder_layers, cfg.decoder_heads, cfg.mlp_ratio,
                cfg.decoder_context_length, memory_width=cfg.width,
            )
            if cfg.has_decoder
            else None
        )  # fmt: skip
        self.question_proj = nn.Linear(cfg.text_width, cfg.width) if cfg.answers_questions else None
        self.caption_token = nn.Parameter(torch.randn(1, 1, cfg.width) * 0.02) if cfg.answers_questions else None

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)

    def caption_memory(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """What the decoder attends to when captioning: the image tokens, plus the learned `caption_token` in a
        model that also answers questions (so the decoder can tell the two tasks apart)."""
        if self.caption_token is None:
            return image_tokens
        return torch.cat([image_tokens, self.caption_token.expand(image_tokens.shape[0], 1, -1)], dim=1)

    def question_memory(self, image_tokens: torch.Tensor, question_tokens: torch.Tensor) -> torch.Tensor:
        """(B, M, width) image tokens + (B, T) question ids -> (B, M + 1, width): what the decoder attends to."""
        if self.question_proj is None:
            raise ValueError("this reference model does not answer questions (answers_questions is false)")
        question = self.question_proj(self.text.pooled(question_tokens))
        return torch.cat([image_tokens, question[:, None]], dim=1)

    def caption_logits(self, image_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits (B, T, vocab) for captions `tokens` of images with `image_tokens`."""
        return self._decoder()(self.caption_memory(image_tokens), tokens)

    def answer_logits(self, image_tokens: torch.Tensor, question_tokens: torch.Tensor,
                      tokens: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Teacher-forced next-token logits (B, T, vocab) of answers `tokens` to the questions."""
        return self._decoder()(self.question_memory(image_tokens, question_tokens), tokens)

    def _decoder(self) -> CaptionDecoder:
        if self.decoder is None:
            raise ValueError("this reference model has no captioning decoder (decoder_layers is 0)")
        return self.decoder
