"""The "reference_audio" adapter: mmeval's own small audio-text dual encoder (CLAP-style), trained on shapes_audio.

    <folder>/config.json        the architecture and its front end (`ReferenceAudioConfig`)
    <folder>/model.safetensors  the weights (float32 once loaded)

Audio tower: log-mel spectrogram computed with torch ops (STFT without centring, so a frame only ever sees its
own clip's samples), three stride-2 convolution blocks over (mel, time), a per-frame linear layer, then the mean
and max over the clip's valid frames, projected. Padding never changes a clip's embedding: frames past a clip's
length are zeroed after every block, exactly as a lone clip's convolution padding would see them.
Text tower: word embeddings (the image reference model's word tokenizer, `reference_arch.tokenize`), a width-2
convolution over neighbouring words (bigrams such as "three times"), then the mean and max over the words,
projected - cheap enough to train in CPU minutes; shapes_audio captions are nearly bags of words.

It is also an `audio_captioner` by nearest-neighbour caption retrieval: a clip's caption is the bank caption
(`captions.json`, training captions shipped with the weights) whose embedding is closest to the clip's - the
classic retrieval baseline for captioning, so audio captioning can run end to end on the shipped model.

Loading is strict: a missing or unreadable file or weights that do not fit the config raise `ModelLoadError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo
from mmeval.models.reference_arch import PAD, SPECIAL_TOKENS, tokenize
from mmeval.models.safe_load import SAFETENSORS

CONFIG_FILE, WEIGHTS_FILE, CAPTIONS_FILE = "config.json", "model.safetensors", "captions.json"
DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "shapes-audio"


@dataclass
class ReferenceAudioConfig:
    """Architecture and front end; saved as config.json. Text fields mirror `ReferenceConfig`'s text tower."""

    vocab: list[str]
    name: str = "reference-audio"
    sample_rate: int = 16000
    n_fft: int = 640  # 40 ms window
    hop: int = 320  # 20 ms hop
    n_mels: int = 48
    channels: list[int] = field(default_factory=lambda: [16, 32, 48])
    frame_width: int = 128
    embed_dim: int = 64
    text_width: int = 96
    context_length: int = 24

    def problems(self) -> list[str]:
        found = [f"{n} must be at least 1" for n in ("n_fft", "hop", "n_mels", "frame_width", "embed_dim", "text_width")
                 if getattr(self, n) < 1]  # fmt: skip
        if tuple(self.vocab[:4]) != SPECIAL_TOKENS:
            found.append(f"vocab must start with {list(SPECIAL_TOKENS)}")
        if not self.channels or any(c < 1 for c in self.channels):
            found.append("channels must be a non-empty list of positive widths")
        if self.context_length < 3:
            found.append("context_length must be at least 3 ([BOS], one word, [EOS])")
        return found


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filters, as torchaudio's melscale_fbanks(norm=None). Written
    here because torchaudio (pinned to one torch release) and librosa are not dependencies of mmeval."""
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))
    lower = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None]
    upper = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])[None]
    return np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)


def frame_counts(lengths: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Valid STFT frames per clip (no centring): 1 + (length - n_fft) // hop, at least 0."""
    return torch.clamp((lengths - n_fft) // hop + 1, min=0)


class AudioTower(nn.Module):
    """(B, N) waveforms + lengths -> (B, embed_dim)."""

    def __init__(self, cfg: ReferenceAudioConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.sample_rate)),
                             persistent=False)  # fmt: skip
        blocks, width = [], 1
        for channels in cfg.channels:
            blocks.append(nn.Conv2d(width, channels, 3, stride=2, padding=1))
            width = channels
        self.blocks = nn.ModuleList(blocks)
        mels = cfg.n_mels
        for _ in cfg.channels:
            mels = (mels + 1) // 2
        self.frame = nn.Linear(width * mels, cfg.frame_width)
        self.proj = nn.Linear(2 * cfg.frame_width, cfg.embed_dim)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, n_mels, frames): log(mel power + 1e-5), roughly standardised."""
        cfg = self.cfg
        if audio.shape[1] < cfg.n_fft:
            audio = F.pad(audio, (0, cfg.n_fft - audio.shape[1]))
        spec = torch.stft(audio.float(), cfg.n_fft, cfg.hop, window=self.window, center=False, return_complex=True)
        power = spec.real**2 + spec.imag**2
        return (torch.log(torch.einsum("bft,fm->bmt", power, self.mel) + 1e-5) + 5.0) / 4.0

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.from_log_mel(
            self.log_mel(audio), frame_counts(lengths.to(audio.device), self.cfg.n_fft, self.cfg.hop)
        )

    def from_log_mel(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel + valid frame counts -> (B, embed_dim) (training precomputes the log-mel)."""
        x = mel.unsqueeze(1)
        x = x * _mask(frames, x.shape[-1])[:, None, None]
        for block in self.blocks:
            x = F.gelu(block(x))
            frames = (frames + 1) // 2
            x = x * _mask(frames, x.shape[-1])[:, None, None]
        x = x.flatten(1, 2).transpose(1, 2)  # (B, T, C * mels)
        x = F.gelu(self.frame(x))
        valid = _mask(frames, x.shape[1])[:, :, None]
        mean = (x * valid).sum(1) / valid.sum(1).clamp(min=1)
        peak = x.masked_fill(valid == 0, -torch.inf).amax(1)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # a clip shorter than one frame
        return self.proj(torch.cat([mean, peak], dim=1))


def _mask(counts: torch.Tensor, size: int) -> torch.Tensor:
    return (torch.arange(size, device=counts.device)[None] < counts[:, None]).float()


class BagTextTower(nn.Module):
    """(B, T) token ids -> (B, embed_dim): words and word pairs, mean- and max-pooled over the caption."""

    def __init__(self, cfg: ReferenceAudioConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(len(cfg.vocab), cfg.text_width, padding_idx=PAD)
        self.pairs = nn.Conv1d(cfg.text_width, cfg.text_width, 2, padding=1)
        self.proj = nn.Linear(2 * cfg.text_width, cfg.embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens)  # (B, T, W)
        valid = (tokens != PAD).float()[:, :, None]
        x = x * valid
        x = x + F.gelu(self.pairs(x.transpose(1, 2)))[:, :, : x.shape[1]].transpose(1, 2)
        mean = (x * valid).sum(1) / valid.sum(1).clamp(min=1)
        peak = x.masked_fill(valid == 0, -torch.inf).amax(1)
        return self.proj(torch.cat([mean, peak], dim=1))


class ReferenceAudioCLAP(nn.Module):
    """Both towers and a learned logit scale (CLIP / CLAP's temperature)."""

    def __init__(self, cfg: ReferenceAudioConfig):
        super().__init__()
        self.config = cfg
        self.audio = AudioTower(cfg)
        self.text = BagTextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.audio(audio, lengths)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)


def save_reference_audio(module: ReferenceAudioCLAP, folder: Path, captions: list[str]) -> None:
    """Write config.json, model.safetensors and the captioning bank captions.json into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(module.config), indent=2) + "\n")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / WEIGHTS_FILE).chmod(0o644)
    (folder / CAPTIONS_FILE).write_text(json.dumps(captions, indent=0) + "\n")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"reference_audio {what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read reference_audio {what} {path}: {exc}") from None


def load_module(folder: Path) -> tuple[ReferenceAudioCLAP, list[str]]:
    """Build the architecture from config.json, load model.safetensors strictly, read the caption bank."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"reference_audio checkpoint {folder} is not a folder (expected {CONFIG_FILE}, "
                             f"{WEIGHTS_FILE}, {CAPTIONS_FILE})")  # fmt: skip
    raw = _read_json(folder / CONFIG_FILE, "config")
    names = {f.name for f in dataclasses.fields(ReferenceAudioConfig)}
    if not isinstance(raw, dict) or "vocab" not in raw or set(raw) - names:
        extra = sorted(set(raw) - names) if isinstance(raw, dict) else []
        raise ModelLoadError(
            f"reference_audio config {folder / CONFIG_FILE} must be a JSON object with 'vocab' and "
            f"only the fields {sorted(names)}" + (f"; unknown: {', '.join(extra)}" if extra else "")
        )
    config = ReferenceAudioConfig(**raw)
    problems = config.problems()
    if problems:
        raise ModelLoadError(f"reference_audio config {folder / CONFIG_FILE} is not a valid architecture: "
                             + "; ".join(problems))  # fmt: skip
    weights = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights))
    except FileNotFoundError:
        raise ModelLoadError(f"reference_audio weights {weights} do not exist") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read reference_audio weights {weights}: {exc}") from None
    module = ReferenceAudioCLAP(config)
    expected = module.state_dict()
    misfits = [f"{k} is missing" for k in expected if k not in tensors]
    misfits += [f"{k} has shape {tuple(tensors[k].shape)}, the config expects {tuple(v.shape)}"
                for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]  # fmt: skip
    misfits += [f"{k} is not part of the architecture" for k in tensors if k not in expected]
    if misfits:
        more = f" (and {len(misfits) - 3} more)" if len(misfits) > 3 else ""
        raise ModelLoadError(f"checkpoint {weights} does not fit the config {folder / CONFIG_FILE}: "
                             f"{'; '.join(misfits[:3])}{more}")  # fmt: skip
    module.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    captions = _read_json(folder / CAPTIONS_FILE, "caption bank")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise ModelLoadError(f"reference_audio caption bank {folder / CAPTIONS_FILE} must be a non-empty JSON list "
                             "of strings")  # fmt: skip
    return module.eval(), captions


class ReferenceAudioModel:
    """Capabilities `audio_text_encoder` and `audio_captioner` (nearest bank caption)."""

    capabilities = ("audio_text_encoder", "audio_captioner")

    def __init__(self, module: ReferenceAudioCLAP, captions: list[str], info: ModelInfo):
        self.module, self.bank, self.info = module, captions, info
        self.config = module.config
        self.sample_rate = module.config.sample_rate
        self._vocab = {word: i for i, word in enumerate(module.config.vocab)}
        self._bank_emb: torch.Tensor | None = None

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return tokenize(texts, self._vocab, self.config.context_length)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.encode_text(tokens.to(self.module.logit_scale.device))

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.module.encode_audio(audio, lengths)

    def generate_audio(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """The bank caption closest to each clip (cosine; ties go to the earlier bank entry). `settings` do not
        apply: nothing is decoded."""
        with torch.inference_mode():
            device = self.module.logit_scale.device
            if self._bank_emb is None or self._bank_emb.device != device:
                rows = [self.encode_text(self.tokenize(self.bank[i : i + 256])).float()
                        for i in range(0, len(self.bank), 256)]  # fmt: skip
                self._bank_emb = F.normalize(torch.cat(rows), dim=-1)
            clips = F.normalize(self.encode_audio(audio.to(device), lengths.to(device)).float(), dim=-1)
            best = (clips @ self._bank_emb.T).argmax(dim=1)
        return [self.bank[int(i)] for i in best]


def load_folder(folder: Path, name: str | None = None) -> ReferenceAudioModel:
    folder = Path(folder)
    if not folder.exists():
        raise ModelLoadError(f"reference_audio checkpoint {folder} does not exist")
    module, captions = load_module(folder)
    cfg = module.config
    info = ModelInfo.of_checkpoint("reference_audio", name or folder.name, folder, module, loaded_with=SAFETENSORS,
                                   architecture=cfg.name, embed_dim=cfg.embed_dim, sample_rate=cfg.sample_rate,
                                   front_end=f"log-mel {cfg.n_mels} bands, {cfg.n_fft}/{cfg.hop} samples",
                                   caption_bank=len(captions))  # fmt: skip
    return ReferenceAudioModel(module, captions, info)


def load(cfg: Any, trust_checkpoint: bool = False) -> ReferenceAudioModel:
    """Registry entry point: `cfg.checkpoint` (a folder; None = the shipped shapes_audio model). Safetensors only."""
    checkpoint = cfg.checkpoint if cfg.checkpoint is not None else DEMO_CHECKPOINT
    return load_folder(Path(checkpoint).expanduser(), cfg.name)
