"""The "reference_video" adapter: mmeval's shipped shapes image encoder plus a small temporal module.

    <folder>/config.json        `VideoReferenceConfig`: the base image checkpoint, text tower, temporal module,
                                the caption bank (captioning) and the answer candidates (answering)
    <folder>/model.safetensors  the text tower and the temporal module (the base image tower is not copied)

The image tower is the base reference checkpoint's (`base`, a folder path relative to this folder; its sha256
is recorded and checked), frozen: each sampled frame becomes its tokens ([CLS] + one per 8x8 patch). The video
embedding is the sum of two parts:

- appearance: the mean over frames of the [CLS] feature, LayerNorm'd and projected (order-blind, like pooling);
- motion (`temporal: difference`): where the frames change, from the local patch features (the tower's
  convolutional stem and patch embedding, before attention mixes positions): background subtraction against
  each patch's temporal median, the change-weighted mean position in the last half of the frames minus that
  in the first half (dx, dy) and its length, then one linear layer (`motion_features`). It depends on the
  order of the frames, so it can tell "moves left" from "moves right", and it generalises to unseen clips,
  where a 1-layer temporal transformer over [CLS] features (tried first) memorised the training clips (test
  pairwise accuracy 0.49) and a learned linear difference map did not learn in the same budget (0.52).

`temporal: mean` is the order-blind ablation (appearance only; same text tower and training).

Captioning and answering are retrieval, not generation, and say so in the report: a caption is the bank
caption (the training split's captions) nearest to the video; an answer is the candidate a whose text
"<question> <a>" is nearest to the video. Trained by `scripts/train_reference_video.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, sha256_of_path
from mmeval.models.reference import ImageTransform, load_reference_module
from mmeval.models.reference_arch import PAD, ReferenceConfig, TextTower, tokenize
from mmeval.models.safe_load import SAFETENSORS

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
DEMO_VIDEO_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "shapes-video"


@dataclasses.dataclass
class VideoReferenceConfig:
    """Everything needed to rebuild the video model; saved as config.json."""

    vocab: list[str]
    base: str = "../shapes-clip"  # the image checkpoint folder, relative to this one (or absolute)
    base_sha256: str | None = None
    name: str = "reference-video"
    temporal: str = "difference"  # difference | mean (the order-blind ablation)
    width: int = 128  # the base image tower's width (its tokens)
    patches: int = 64  # patch tokens per frame of the base tower ((image_size / patch_size) ** 2)
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 32
    embed_dim: int = 64
    mlp_ratio: float = 2.0
    captions: list[str] = dataclasses.field(default_factory=list)  # the caption bank
    answers: list[str] = dataclasses.field(default_factory=list)  # the answer candidates

    def text_config(self) -> ReferenceConfig:
        return ReferenceConfig(vocab=self.vocab, text_width=self.text_width, text_layers=self.text_layers,
                               text_heads=self.text_heads, context_length=self.context_length,
                               embed_dim=self.embed_dim, mlp_ratio=self.mlp_ratio)  # fmt: skip


def frame_tokens(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1 + patches, width): the tower's final [CLS] token, then the local patch features
    (convolutional stem + patch embedding, before any attention mixes the positions)."""
    cls = visual.tokens(pixels)[:, :1]
    local = visual.patch_embed(visual.stem(pixels) if visual.stem is not None else pixels)
    return torch.cat([cls, local.flatten(2).transpose(1, 2)], dim=1)


def motion_features(patches: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, T, P, W) local patch features -> (B, 3): the displacement (dx, dy) of what moves and its length.

    What moves is found by background subtraction: a patch's distance from its temporal median (the median is
    the background and anything still, since a moving shape covers a patch only briefly). The mean position of
    that change in the last half of the frames minus that in the first half is the displacement; with one
    frame there is none."""
    steps, half = patches.shape[1], patches.shape[1] // 2
    if half == 0:
        return patches.new_zeros(patches.shape[0], 3)
    change = (patches - patches.median(dim=1, keepdim=True).values).norm(dim=-1)  # (B, T, P)

    def centre(part: torch.Tensor) -> torch.Tensor:
        weights = part.sum(dim=1)  # (B, P)
        return (weights @ grid) / weights.sum(dim=1, keepdim=True).clamp_min(1e-6)

    shift = centre(change[:, steps - half:]) - centre(change[:, :half])
    return torch.cat([shift, shift.norm(dim=1, keepdim=True)], dim=1)


class TemporalHead(nn.Module):
    """(B, T, 1 + patches, width) frame tokens -> (B, embed_dim) video embedding (see the module docstring)."""

    def __init__(self, cfg: VideoReferenceConfig):
        super().__init__()
        self.cfg = cfg
        self.ln = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.embed_dim, bias=False)
        if cfg.temporal == "difference":  # created after the appearance layers: the ablation's init is unchanged
            self.motion = nn.Linear(3, cfg.embed_dim, bias=False)
        side = round(math.sqrt(cfg.patches))
        axis = torch.linspace(-1.0, 1.0, side)
        self.register_buffer("grid", torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2),
                             persistent=False)  # (patches, 2): x then y of each patch centre, in [-1, 1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        appearance = self.proj(self.ln(tokens[:, :, 0].mean(dim=1)))
        if self.cfg.temporal != "difference":
            return appearance
        return appearance + self.motion(motion_features(tokens[:, :, 1:], self.grid))


class VideoReferenceModule(nn.Module):
    """The trainable parts (text tower, temporal head, logit scale) around a frozen base image tower."""

    def __init__(self, cfg: VideoReferenceConfig, visual: nn.Module):
        super().__init__()
        self.config = cfg
        self.text = TextTower(cfg.text_config())
        self.temporal = TemporalHead(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.visual = visual.requires_grad_(False)  # not saved: it is the base checkpoint's

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T, 1 + patches, width): each frame's tokens from the frozen base tower."""
        batch, steps = frames.shape[:2]
        tokens = frame_tokens(self.visual, frames.reshape(batch * steps, *frames.shape[2:]))
        return tokens.reshape(batch, steps, *tokens.shape[1:])

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("visual.")}


def read_video_config(path: Path) -> VideoReferenceConfig:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"reference_video checkpoint config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read reference_video config {path}: {exc}") from None
    names = {f.name for f in dataclasses.fields(VideoReferenceConfig)}
    if not isinstance(raw, dict) or "vocab" not in raw:
        raise ModelLoadError(f"reference_video config {path} must be a JSON object with a 'vocab'")
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ModelLoadError(f"reference_video config {path} has unknown key(s): {', '.join(unknown)}")
    config = VideoReferenceConfig(**raw)
    if config.temporal not in ("difference", "mean"):
        raise ModelLoadError(f"reference_video config {path}: temporal must be difference or mean, got {config.temporal!r}")
    return config


def save_video_reference(module: VideoReferenceModule, folder: Path, dtype: torch.dtype = torch.float16) -> None:
    """config.json + the trainable weights (stored as `dtype`; the base tower stays in its own folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(module.config), indent=1) + "\n")
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.trainable_state().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / WEIGHTS_FILE).chmod(0o644)


def base_folder(folder: Path, config: VideoReferenceConfig) -> Path:
    base = Path(config.base).expanduser()
    return base if base.is_absolute() else (folder / base).resolve()


def load_video_module(folder: Path) -> tuple[VideoReferenceModule, Path]:
    """The module with its base image tower and trained weights (strictly, as float32), and the base folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"reference_video checkpoint {folder} is not a folder (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    config = read_video_config(folder / CONFIG_FILE)
    base = base_folder(folder, config)
    if config.base_sha256 is not None and base.is_dir() and sha256_of_path(base) != config.base_sha256:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: base image checkpoint {base} is not the one this model was "
                             f"trained on (sha256 differs from base_sha256)")
    base_module, base_config = load_reference_module(base)
    patches = (base_config.image_size // base_config.patch_size) ** 2
    if base_config.width != config.width or patches != config.patches:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: width {config.width} / patches {config.patches} do not fit the "
                             f"base tower's {base_config.width} / {patches}")
    module = VideoReferenceModule(config, base_module.visual)
    weights = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights))
    except FileNotFoundError:
        raise ModelLoadError(f"reference_video checkpoint weights {weights} do not exist") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read reference_video weights {weights}: {exc}") from None
    expected = module.trainable_state()
    misfits = [f"{k} is missing" for k in expected if k not in tensors]
    misfits += [f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
                for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    misfits += [f"{k} is not part of the architecture" for k in tensors if k not in expected]
    if misfits:
        raise ModelLoadError(f"checkpoint {weights} does not fit {folder / CONFIG_FILE}: {'; '.join(misfits[:3])}")
    module.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=False)
    return module.eval(), base


class VideoReferenceModel:
    """`VideoTextEncoder`, plus `VideoCaptioner` / `VideoAnswerer` by retrieval when the config has a caption
    bank / answer candidates (see the module docstring)."""

    def __init__(self, module: VideoReferenceModule, info: ModelInfo, image_transform: ImageTransform):
        self.module, self.info, self.config = module, info, module.config
        self.image_transform = image_transform
        self.pixel_pipeline = image_transform.pipeline()
        self._vocab = {word: i for i, word in enumerate(self.config.vocab)}
        self.capabilities = {"video_text_encoder"}
        if self.config.captions:
            self.capabilities.add("video_captioner")
        if self.config.answers:
            self.capabilities.add("video_answerer")
        self._bank: torch.Tensor | None = None

    def describe_video(self) -> dict[str, Any]:
        """The report's `video_encoder` entry."""
        kind = ("frame-feature mean + motion map (last half minus first half of the frames)"
                if self.config.temporal == "difference" else "mean of frame features (order-blind ablation)")
        return {"kind": kind, "temporal": self.config.temporal, "base": Path(self.config.base).name,
                "captioning": "retrieval from a caption bank" if self.config.captions else None,
                "answering": "retrieval over answer candidates" if self.config.answers else None}  # fmt: skip

    def video_question_template(self, style: str) -> str:
        """The bare question, for both styles: answers are picked from the candidates (a multiple-choice
        answer is an option's text, which the task maps to its letter)."""
        return "{question}"

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return tokenize(texts, self._vocab, self.config.context_length)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.text(tokens)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.module.temporal(self.module.frame_features(frames))

    def _texts(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """Normalised embeddings of `texts`, each distinct text encoded once, padding cut to the longest."""
        unique = sorted(set(texts))
        tokens = self.tokenize(unique)
        used = int((tokens != PAD).sum(dim=1).max()) if len(unique) else 1
        embedded = F.normalize(self.module.text(tokens[:, :used].to(device)).float(), dim=-1)
        where = {text: i for i, text in enumerate(unique)}
        return embedded[torch.tensor([where[t] for t in texts], device=device)]

    def _videos(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised video embeddings; a row equal to the one before it (a video asked several questions
        comes as consecutive copies) is not encoded again."""
        same = [i > 0 and torch.equal(frames[i], frames[i - 1]) for i in range(frames.shape[0])]
        keep = [i for i, repeated in enumerate(same) if not repeated]
        encoded = F.normalize(self.encode_video(frames[keep].float()).float(), dim=-1)
        source = torch.cumsum(torch.tensor([not r for r in same]), dim=0) - 1
        return encoded[source.to(encoded.device)]

    def generate_video(self, frames: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """The bank caption nearest to each video (settings other than a prompt do not apply to retrieval)."""
        _no_prompt(self, settings)
        with torch.inference_mode(), torch.autocast(frames.device.type, enabled=False):
            videos = self._videos(frames)
            if self._bank is None or self._bank.device != videos.device:
                self._bank = self._texts(self.config.captions, videos.device)
            best = (videos @ self._bank.T).argmax(dim=1)
        return [self.config.captions[i] for i in best.tolist()]

    def answer_video(self, frames: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        """For each (video, question) row, the candidate a whose "<question> <a>" is nearest to the video."""
        _no_prompt(self, settings)
        if len(questions) != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} videos but {len(questions)} questions")
        candidates = self.config.answers
        with torch.inference_mode(), torch.autocast(frames.device.type, enabled=False):
            videos = self._videos(frames)
            texts = self._texts([f"{q} {a}" for q in questions for a in candidates], videos.device)
            scores = torch.einsum("bkd,bd->bk", texts.reshape(len(questions), len(candidates), -1), videos)
        return [candidates[i] for i in scores.argmax(dim=1).tolist()]


def _no_prompt(model: VideoReferenceModel, settings: GenerationSettings) -> None:
    if settings.prompt is not None:
        raise MmevalError(f"reference_video model '{model.info.name}' does not take a prompt (generation.prompt is "
                          f"{settings.prompt!r}); remove the prompt")


def load_video_folder(folder: Path, name: str | None = None) -> VideoReferenceModel:
    folder = Path(folder)
    if not folder.exists():
        raise ModelLoadError(f"reference_video checkpoint {folder} does not exist")
    module, base = load_video_module(folder)
    from mmeval.models.reference import read_config

    base_config = read_config(base / CONFIG_FILE)
    info = ModelInfo.of_checkpoint("reference_video", name or folder.name, folder, module,
                                   loaded_with=SAFETENSORS, temporal=module.config.temporal, base=str(base),
                                   base_sha256=sha256_of_path(base))  # fmt: skip
    return VideoReferenceModel(module, info, ImageTransform(base_config.image_size, base_config.image_mean,
                                                            base_config.image_std))


def load(cfg: Any, trust_checkpoint: bool = False) -> VideoReferenceModel:
    """Registry entry point: `cfg.checkpoint` (a folder, or None for the shipped shapes-video model)."""
    checkpoint = cfg.checkpoint if cfg.checkpoint is not None else DEMO_VIDEO_CHECKPOINT
    return load_video_folder(Path(checkpoint).expanduser(), cfg.name)
