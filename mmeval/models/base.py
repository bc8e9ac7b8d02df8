"""What a model can do, stated as capabilities (Protocols), plus the facts a report records about it.

The runner and the benchmarks only talk to these interfaces, never to a model family directly, so a new
family is one adapter file and one registry line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from PIL import Image

Tokens = torch.Tensor | dict[str, torch.Tensor]


@dataclass
class ModelInfo:
    """Facts about a loaded model that go into the report so a number can be traced to its checkpoint."""

    adapter: str
    name: str
    checkpoint: str | None
    sha256: str | None
    n_parameters: int
    extra: dict[str, Any] = field(default_factory=dict)
    # How the weights were read (mmeval.models.safe_load): "safetensors", "torch.load(weights_only=True)",
    # "torch.load(trusted pickle)", "transformers from_pretrained (safetensors)", ...; None: not recorded.
    loaded_with: str | None = None

    @classmethod
    def of_checkpoint(cls, adapter: str, name: str, checkpoint: Path | str | None, module: torch.nn.Module, *,
                      loaded_with: str | None = None, **extra: Any) -> ModelInfo:  # fmt: skip
        """The info of `module` loaded from `checkpoint` (a file or folder, hashed; None when there is none)."""
        return cls(
            adapter=adapter, name=name, checkpoint=str(checkpoint) if checkpoint is not None else None,
            sha256=sha256_of_path(Path(checkpoint)) if checkpoint is not None else None,
            n_parameters=count_parameters(module), extra=extra, loaded_with=loaded_with,
        )  # fmt: skip


@runtime_checkable
class ImageTextEncoder(Protocol):
    """Capability `image_text_encoder`: images and texts embedded into one shared space (CLIP-style).

    `image_transform` turns one RGB PIL image into a CHW float tensor (the model's own preprocessing) and
    must be picklable so DataLoader workers can run it. `tokenize` turns a batch of strings into what
    `encode_text` takes. Embeddings need not be normalised; the benchmark normalises them.
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def tokenize(self, texts: list[str]) -> Tokens: ...

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, tokens: Tokens) -> torch.Tensor: ...


CAPABILITIES: dict[str, type] = {"image_text_encoder": ImageTextEncoder}


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters, shared tensors counted once."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def sha256_of_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files (sorted relative names and contents) for saved HF models."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def describe_load_error(exc: BaseException) -> str:
    """The first informative line of a torch `load_state_dict` error (size mismatch / missing / unexpected)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("size mismatch", "Missing key", "Unexpected key")):
            extra = len([l for l in lines if l.startswith(("size mismatch", "Missing key", "Unexpected key"))]) - 1
            return line.rstrip(".") + (f" (and {extra} more problem(s))" if extra > 0 else "")
    return lines[0] if lines else type(exc).__name__


@dataclass
class GenerationSettings:
    """How captions are decoded; the same settings for every adapter (from a benchmark's `generation`)."""

    max_new_tokens: int = 30
    num_beams: int = 1  # 1 = greedy
    min_new_tokens: int = 0
    length_penalty: float = 1.0  # beam search: score / length**length_penalty
    prompt: str | None = None  # prompted image-text-to-text models only


@runtime_checkable
class Captioner(Protocol):
    """Capability `captioner`: a caption for each image of a batch.

    `generate` must be deterministic and batch-independent: an image's caption may not depend on which
    other images share its batch (no sampling; any padding handled so it cannot leak across images).
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def generate(self, pixels: torch.Tensor, settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["captioner"] = Captioner


@runtime_checkable
class Answerer(Protocol):
    """Capability `answerer`: a short answer to each (image, question) pair of a batch (VQA, multiple choice).

    `questions[i]` is about `pixels[i]` (an image with several questions appears in several rows) and is the
    benchmark's full instruction, prompt template applied. `settings.prompt`, when set, is a model-level
    wrapper with a `{question}` placeholder. Deterministic and batch-independent like `Captioner.generate`:
    questions differ in length, so padding must not leak across rows (left-pad decoder-only models).
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def answer(self, pixels: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["answerer"] = Answerer


# --- video (issue #15): frames arrive as one float tensor (B, T, 3, H, W), each frame through `image_transform` --


@runtime_checkable
class VideoTextEncoder(Protocol):
    """Capability `video_text_encoder`: videos and texts embedded into one shared space.

    `image_transform` is applied to each sampled frame (PIL -> CHW float); `encode_video` takes the stacked
    frames (B, T, 3, H, W) and returns one embedding per video (B, D). Any `ImageTextEncoder` becomes one by
    pooling its frame embeddings (`mmeval.models.frame_pooling`).
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def tokenize(self, texts: list[str]) -> Tokens: ...

    def encode_text(self, tokens: Tokens) -> torch.Tensor: ...

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor: ...


CAPABILITIES["video_text_encoder"] = VideoTextEncoder


@runtime_checkable
class VideoCaptioner(Protocol):
    """Capability `video_captioner`: a caption for each video (frames (B, T, 3, H, W)) of a batch.

    Deterministic and batch-independent, as `Captioner.generate`.
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def generate_video(self, frames: torch.Tensor, settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["video_captioner"] = VideoCaptioner


@runtime_checkable
class VideoAnswerer(Protocol):
    """Capability `video_answerer`: a short answer to each (video, question) pair; `questions[i]` is about
    `frames[i]`. Deterministic and batch-independent, as `Answerer.answer`.
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]

    def answer_video(self, frames: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["video_answerer"] = VideoAnswerer


def capabilities_of(model: Any) -> set[str]:
    """The capabilities a loaded model actually has (an adapter may offer more than one checkpoint can do)."""
    declared = getattr(model, "capabilities", None)
    if declared is not None:
        return set(declared)
    return {name for name, protocol in CAPABILITIES.items() if isinstance(model, protocol)}


# --- audio (issue #16) -------------------------------------------------------------------------------------------
# Waveforms arrive as a zero-padded float batch `audio: Tensor[B, N]` (mono, at the model's `sample_rate`) plus
# `lengths: Tensor[B]` (valid samples per row); padding must never change a row's output (batch independence).


@runtime_checkable
class AudioTextEncoder(Protocol):
    """Capability `audio_text_encoder`: clips and texts embedded into one shared space (CLAP-style)."""

    info: ModelInfo
    module: torch.nn.Module
    sample_rate: int

    def tokenize(self, texts: list[str]) -> Tokens: ...

    def encode_text(self, tokens: Tokens) -> torch.Tensor: ...

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor: ...


CAPABILITIES["audio_text_encoder"] = AudioTextEncoder


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Capability `speech_recognizer`: one transcript per clip of a batch (deterministic, batch-independent)."""

    info: ModelInfo
    module: torch.nn.Module
    sample_rate: int

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["speech_recognizer"] = SpeechRecognizer


@runtime_checkable
class AudioCaptioner(Protocol):
    """Capability `audio_captioner`: a caption for each clip of a batch (deterministic, batch-independent)."""

    info: ModelInfo
    module: torch.nn.Module
    sample_rate: int

    def generate_audio(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]: ...


CAPABILITIES["audio_captioner"] = AudioCaptioner


@runtime_checkable
class SpokenAnswerer(Protocol):
    """Capability `spoken_answerer`: one model answers a spoken question about an image (a voice assistant), with
    no transcript in between.

    Row i is the image `pixels[i]` (through `image_transform`) and the question's waveform `audio[i, :lengths[i]]`
    (mono, zero-padded, at `sample_rate`); `prompts[i]` is the text instruction sent with them (the benchmark's
    `spoken_prompt`: the question itself is only in the audio). Deterministic and batch-independent, as
    `Answerer.answer`.
    """

    info: ModelInfo
    module: torch.nn.Module
    image_transform: Callable[[Image.Image], torch.Tensor]
    sample_rate: int

    def answer_spoken(self, pixels: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor, prompts: list[str],
                      settings: GenerationSettings) -> list[str]: ...  # fmt: skip


CAPABILITIES["spoken_answerer"] = SpokenAnswerer
