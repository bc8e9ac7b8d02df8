"""The "reference" adapter: mmeval's own small dual encoder (and captioner), stored as a folder of two files.

    <folder>/config.json        the architecture and preprocessing (`ReferenceConfig`)
    <folder>/model.safetensors  the weights (fp32 or fp16 on disk; always float32 once loaded)

Loading is strict: a missing or unreadable file, or weights that do not fit the config, raise
`ModelLoadError` with one line naming the file. No pickle anywhere. With no checkpoint configured, the
demo checkpoint trained on the shapes benchmark (`scripts/train_reference.py`) ships in mmeval/assets; it
has a captioning decoder, so one model serves both retrieval and captioning.

Captions are the decoder's words, lower-case and joined by single spaces, without restored capitals or
punctuation (the word-level vocabulary has none; COCO caption metrics lower-case and strip them anyway).
Decoding runs in float32 even under autocast. Batch independence: rows never interact, but CPU libraries pick
other kernels (another summation order) for small batches - convolutions for one image, matrix multiplies for
under 12 rows - which moves values in the last bit and could flip a near-tie between two words. `generate`
therefore pads the images to `MIN_IMAGE_ROWS` and the decoding batch to `MIN_DECODE_ROWS` rows (copies of the
first image, dropped afterwards), so a lone image runs the same kernels as a large batch: captions are then
bit-identical at every batch size on the x86 CPU build this was checked on (tests/test_reference_captioner.py).
On other hardware a near-tie of ~1e-7 could still resolve differently; the trained model's confident logits
make that rare.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.io.pixels import PixelPipeline
from mmeval.models.base import GenerationSettings, ModelInfo
from mmeval.models.reference_arch import BOS, EOS, PAD, UNK, ReferenceCLIP, ReferenceConfig, tokenize
from mmeval.models.reference_decoder import Search, beam_search, greedy
from mmeval.models.safe_load import SAFETENSORS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "shapes-clip"
MIN_IMAGE_ROWS = 4  # see the module docstring: a lone image takes other convolution kernels
MIN_DECODE_ROWS = 16  # and a decoding batch of under 12 rows other matmul kernels


def normalize_pixels(pixels: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 normalised; shared by `ImageTransform` and the training script."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (pixels.to(torch.float32) / 255.0 - mean_t) / std_t


class SquareResize:
    """PIL image -> bicubic resize to `size` x `size` (unless it already is); picklable for data workers."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        return image

    def __repr__(self) -> str:
        return f"SquareResize({self.size}, bicubic)"


class ImageTransform:
    """PIL image -> RGB -> bicubic resize to the model's size -> normalised CHW float tensor (picklable)."""

    def __init__(self, image_size: int, mean: list[float], std: list[float]):
        self.image_size = image_size
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = SquareResize(self.image_size)(image.convert("RGB"))
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        return normalize_pixels(pixels, self.mean, self.std)

    def pipeline(self) -> PixelPipeline:
        """The same preprocessing in two stages (mmeval.io.pixels): uint8 geometry, then normalisation."""
        size = (self.image_size, self.image_size)
        return PixelPipeline(SquareResize(self.image_size), size, tuple(self.mean), tuple(self.std),
                             description=repr(SquareResize(self.image_size)))  # fmt: skip

    def __repr__(self) -> str:
        return f"ImageTransform(size={self.image_size}, mean={self.mean}, std={self.std})"


# --- checkpoint folders --------------------------------------------------------------------------------


def save_reference(module: ReferenceCLIP, folder: Path, dtype: torch.dtype = torch.float32) -> None:
    """Write the module's config.json and model.safetensors (weights stored as `dtype`) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(module.config), indent=2) + "\n")
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    # one metadata key only: safetensors writes metadata in hash order, and the file should be reproducible
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / WEIGHTS_FILE).chmod(0o644)  # safetensors creates it owner-only; a checkpoint is meant to be shared


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {  # ReferenceConfig field annotation -> check of a JSON value
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "str": lambda v: isinstance(v, str),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "list[float]": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
}


def read_config(path: Path) -> ReferenceConfig:
    """config.json -> ReferenceConfig; unknown or missing keys and bad values are a ModelLoadError."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"reference checkpoint config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read reference config {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"reference config {path} must hold a JSON object, found {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(ReferenceConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ModelLoadError(f"reference config {path} has unknown key(s): {', '.join(unknown)}")
    if "vocab" not in raw:
        raise ModelLoadError(f"reference config {path} has no 'vocab'")
    bad_types = [name for name, value in raw.items() if not _TYPE_CHECKS[str(fields[name].type)](value)]
    if bad_types:
        raise ModelLoadError(f"reference config {path} has values of the wrong type for: {', '.join(bad_types)}")
    config = ReferenceConfig(**raw)
    problems = config.problems()
    if problems:
        raise ModelLoadError(f"reference config {path} is not a valid architecture: {'; '.join(problems)}")
    return config


def _describe_shape(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def load_reference_module(folder: Path) -> tuple[ReferenceCLIP, ReferenceConfig]:
    """Build the architecture from config.json and load model.safetensors into it, strictly, as float32."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"reference checkpoint {folder} is not a folder (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    config = read_config(config_path)
    if not weights_path.is_file():
        raise ModelLoadError(f"reference checkpoint weights {weights_path} do not exist")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:  # a truncated, garbage or unreadable file
        raise ModelLoadError(f"cannot read reference weights {weights_path}: {exc}") from None
    module = ReferenceCLIP(config)
    expected = module.state_dict()
    misfits = []  # in the architecture's order, then the extra tensors
    for key, want in expected.items():
        if key not in tensors:
            misfits.append(f"{key} is missing")
        elif tensors[key].shape != want.shape:
            have = _describe_shape(tensors[key].shape)
            misfits.append(f"{key} has shape {have}, the config expects {_describe_shape(want.shape)}")
        elif not tensors[key].is_floating_point():
            misfits.append(f"{key} has dtype {tensors[key].dtype}, expected floating point")
    misfits += [f"{key} is not part of the architecture" for key in tensors if key not in expected]
    if misfits:
        more = f" (and {len(misfits) - 3} more)" if len(misfits) > 3 else ""
        raise ModelLoadError(
            f"checkpoint {weights_path} does not fit the reference config {config_path}: {'; '.join(misfits[:3])}{more}"
        )
    module.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, strict=True)
    return module.eval(), config


# --- the adapter -----------------------------------------------------------------------------------------


class ReferenceModel:
    """`ImageTextEncoder` over a reference checkpoint folder; `Captioner` when it has a decoder and `Answerer`
    when it was trained to answer questions."""

    def __init__(self, module: ReferenceCLIP, config: ReferenceConfig, info: ModelInfo):
        self.module = module
        self.config = config
        self.info = info
        self.image_transform = ImageTransform(config.image_size, config.image_mean, config.image_std)
        self.pixel_pipeline = self.image_transform.pipeline()
        self._vocab = {word: i for i, word in enumerate(config.vocab)}
        self.capabilities = {"image_text_encoder"}
        if config.has_decoder:
            self.capabilities.add("captioner")
        if config.answers_questions:
            self.capabilities.add("answerer")

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return tokenize(texts, self._vocab, self.config.context_length)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode_image(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.module.encode_text(tokens)

    def generate(self, pixels: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """One caption per image: greedy (num_beams 1) or beam search; deterministic and batch-independent.

        max_new_tokens counts [EOS] and is capped at what the decoder's positions allow
        (decoder_context_length - 1); [EOS] is forbidden among the first min_new_tokens tokens, so a caption
        has at least min_new_tokens words (at most max_new_tokens).
        """
        search = self._search(settings, "caption")
        return self._decode(pixels, None, search)

    def question_template(self, task: str) -> str:
        """The prompt template this model needs: the bare question (it was trained on questions alone)."""
        from mmeval.registry import short_answer_task, task_spec

        if task_spec(task).answers != "short" or not self.config.answers_questions:
            what = f"short-answer questions (task {short_answer_task()})" if self.config.answers_questions else "no questions"
            raise MmevalError(f"reference model '{self.info.name}' cannot run task '{task}': it answers {what}")
        return "{question}"

    def answer(self, pixels: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        """One short answer per (image, question) row, decoded as captions are (same settings and guarantees)."""
        if len(questions) != pixels.shape[0]:
            raise ValueError(f"{pixels.shape[0]} images but {len(questions)} questions")
        search = self._search(settings, "answer questions")
        return self._decode(pixels, self.tokenize(questions), search)

    def _decode(self, pixels: torch.Tensor, questions: torch.Tensor | None, search: Search) -> list[str]:
        """Captions (questions None) or answers; rows padded as the module docstring explains."""
        n = pixels.shape[0]
        if n == 0:
            return []
        with torch.inference_mode(), torch.autocast(pixels.device.type, enabled=False):
            image_tokens = self.module.visual.tokens(_pad_rows(pixels.float(), MIN_IMAGE_ROWS))
            if questions is None:
                memory = self.module.caption_memory(image_tokens)
            else:
                questions = _pad_rows(questions.to(pixels.device), image_tokens.shape[0])
                memory = self.module.question_memory(image_tokens, questions)
            memory = _pad_rows(memory, -(-MIN_DECODE_ROWS // search.num_beams))
            decode = greedy if search.num_beams == 1 else beam_search
            ids = decode(self.module.decoder, memory, search)[:n]
        return [self._words(row) for row in ids.tolist()]

    def _search(self, settings: GenerationSettings, doing: str) -> Search:
        if not self.config.has_decoder:
            raise MmevalError(
                f"reference model '{self.info.name}' cannot {doing}: its checkpoint has no decoder "
                "(decoder_layers is 0 in config.json); it is an image_text_encoder only"
            )
        if doing == "answer questions" and not self.config.answers_questions:
            raise MmevalError(f"reference model '{self.info.name}' cannot answer questions: its checkpoint was not "
                              "trained for it (answers_questions is false in config.json)")
        if settings.prompt is not None:
            raise MmevalError(
                f"reference model '{self.info.name}' does not take a prompt (generation.prompt is "
                f"{settings.prompt!r}); remove the prompt"
            )
        problems = [f"{name} must be at least {low}, got {getattr(settings, name)}"
                    for name, low in (("max_new_tokens", 1), ("num_beams", 1), ("min_new_tokens", 0))
                    if getattr(settings, name) < low]  # fmt: skip
        if problems:
            raise MmevalError(f"generation settings for reference model '{self.info.name}': {'; '.join(problems)}")
        max_new = min(settings.max_new_tokens, self.config.decoder_context_length - 1)
        return Search(
            bos=BOS, eos=EOS, banned=(PAD, UNK, BOS), max_new_tokens=max_new,
            min_new_tokens=min(settings.min_new_tokens, max_new), num_beams=settings.num_beams,
            length_penalty=float(settings.length_penalty),
        )  # fmt: skip

    def _words(self, ids: list[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            words.append(self.config.vocab[i])
        return " ".join(words)


ReferenceEncoder = ReferenceModel  # the name before the captioning decoder


def _pad_rows(batch: torch.Tensor, rows: int) -> torch.Tensor:
    """`batch` with copies of its first row appended up to `rows` rows (see the module docstring: why)."""
    missing = rows - batch.shape[0]
    return torch.cat([batch, batch[:1].expand(missing, *batch.shape[1:])]) if missing > 0 else batch


def load_folder(folder: Path, name: str | None = None) -> ReferenceModel:
    """The adapter for one checkpoint folder; `name` defaults to the folder's name."""
    folder = Path(folder)
    if not folder.exists():
        raise ModelLoadError(f"reference checkpoint {folder} does not exist")
    module, config = load_reference_module(folder)
    info = ModelInfo.of_checkpoint(
        "reference", name or folder.name, folder, module, architecture=config.name, embed_dim=config.embed_dim,
        image_size=config.image_size, decoder_layers=config.decoder_layers,
        answers_questions=config.answers_questions, loaded_with=SAFETENSORS,
    )
    return ReferenceModel(module, config, info)


def load(cfg: Any, trust_checkpoint: bool = False) -> ReferenceModel:
    """Registry entry point: `cfg.checkpoint` (a folder, or None for the shipped shapes demo) and `cfg.name`.

    Weights are safetensors only, so `trust_checkpoint` changes nothing here."""
    checkpoint = cfg.checkpoint if cfg.checkpoint is not None else DEMO_CHECKPOINT
    return load_folder(Path(checkpoint).expanduser(), cfg.name)
