"""Hugging Face video LMs saved with `save_pretrained`: LLaVA-OneVision, LLaVA-NeXT-Video and Qwen2-VL, through
their processors' video inputs (capabilities `video_captioner` and `video_answerer`).

Frames arrive preprocessed (hf_video_frames: the model's own per-frame preprocessing); the processor then only
expands the prompt's video placeholder into the number of video tokens the model produces (and patchifies
for Qwen2-VL). Rows of a batch are padded on the LEFT so every row's text starts right after its own prompt;
decoding is greedy or beam search without sampling, so a row's output does not depend on its batch-mates.

Prompts: a `generation.prompt` that already holds the processor's video placeholder is used as it is (a raw
prompt); otherwise the prompt (captioning: the instruction; answering: a wrapper with `{question}`, or the
question alone when none is given) goes into the processor's chat template with the video before it. The
rendered prompts are given by `describe_prompts` for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, describe_load_error
from mmeval.models.hf_common import check_weights_fit, load_model, loading_kwargs
from mmeval.models.hf_video_frames import (
    ALREADY_PREPARED,
    FixedSizeFrames,
    VideoProcessorFrames,
    processor_facts,
)

# model_type -> whether its processor picks a size per video (native resolution: frames resized to frame_size)
FAMILIES: dict[str, bool] = {"llava_onevision": False, "llava_next_video": False, "qwen2_vl": True}
DEFAULT_FRAME_SIZE = 336  # native-resolution families: 12 x 28 px, 144 merged tokens per 2-frame step in Qwen2-VL
# Families transformers has but this adapter refuses, and why (rather than run them with wrong inputs).
_UNSUPPORTED = {"qwen2_5_vl": "its time-aware M-RoPE needs each clip's sampled fps (second_per_grid_ts), which "
                              "mmeval's frame batches do not carry"}
_NOT_DECODING = {"transformers_version", "use_cache", "output_attentions", "output_hidden_states"}
_CAPTION_EXAMPLE = "Describe the video in one sentence."


class HFVideoLM:
    """`video_captioner` and `video_answerer` over a transformers video LM and its processor."""

    capabilities: tuple[str, ...] = ("video_captioner", "video_answerer")
    frames_expected: int | None = None  # any number of frames (Qwen2-VL's processor repeats the last to an even count)

    def __init__(self, model, processor, info: ModelInfo, image_transform):
        self.module = model
        self.image_transform = image_transform
        self.info = info
        self._processor = processor
        self._tokenizer = processor.tokenizer
        self._video_token: str = processor.video_token
        self._tokenizer.padding_side = "left"  # every row's text starts right after its own prompt
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    # --- prompts ---------------------------------------------------------------------------------------------

    def caption_prompt(self, settings: GenerationSettings) -> str:
        """The full text prompt captioning uses (video placeholder not yet expanded)."""
        if not settings.prompt:
            raise MmevalError(f"generation.prompt: video LM '{self.info.name}' needs an instruction, e.g. "
                              f"\"{_CAPTION_EXAMPLE}\" (put in its chat template) or a raw prompt with "
                              f"'{self._video_token}'")
        return self._render(settings.prompt)

    def answer_prompt(self, question: str, settings: GenerationSettings) -> str:
        """The full text prompt for one question: `generation.prompt` around `{question}`, or the question."""
        wrapper = settings.prompt if settings.prompt is not None else "{question}"
        if "{question}" not in wrapper:
            raise MmevalError(f"generation.prompt: to answer questions it must contain '{{question}}', e.g. "
                              f"\"{{question}} Answer in one word.\"")
        return self._render(wrapper.replace("{question}", question))

    def describe_prompts(self, settings: GenerationSettings) -> dict[str, str]:
        """The rendered prompt(s) these settings give, for the report: "caption" for an instruction, "answer"
        (with its `{question}` slot) for a wrapper or no prompt at all."""
        if settings.prompt and "{question}" not in settings.prompt:
            return {"caption": self.caption_prompt(settings)}
        return {"answer": self.answer_prompt("{question}", settings)}

    def _render(self, text: str) -> str:
        count = text.count(self._video_token)
        if count > 1:
            raise MmevalError(f"generation.prompt: holds the video placeholder '{self._video_token}' {count} times; "
                              "one video per prompt")
        if count == 1:
            return text
        if not getattr(self._processor, "chat_template", None):
            raise MmevalError(f"generation.prompt: model '{self.info.name}' has no chat template; give a raw prompt "
                              f"with the video placeholder '{self._video_token}'")
        conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
        rendered = self._processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        if rendered.count(self._video_token) != 1:
            raise MmevalError(f"the chat template of '{self.info.name}' does not place the video placeholder "
                              f"'{self._video_token}' once; give a raw generation.prompt with it")
        return rendered

    def check_settings(self, settings: GenerationSettings) -> None:
        """Captioning settings this model can honour; cheap, so a task calls it before reading data."""
        _check_decoding(settings)
        self.caption_prompt(settings)

    def check_answer_settings(self, settings: GenerationSettings) -> None:
        _check_decoding(settings)
        self.answer_prompt("question", settings)

    # --- generation ------------------------------------------------------------------------------------------

    def generate_video(self, frames: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """One caption per clip of `frames` (B, T, 3, H, W), made by `image_transform` frame by frame."""
        self.check_settings(settings)
        return self._generate(frames, [self.caption_prompt(settings)] * frames.shape[0], settings)

    def answer_video(self, frames: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        """One answer per (clip, question) row; `questions[i]` is about `frames[i]`."""
        self.check_answer_settings(settings)
        if len(questions) != frames.shape[0]:
            raise MmevalError(f"{len(questions)} question(s) for {frames.shape[0]} clip(s)")
        return self._generate(frames, [self.answer_prompt(q, settings) for q in questions], settings)

    def _generate(self, frames: torch.Tensor, prompts: list[str], settings: GenerationSettings) -> list[str]:
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise MmevalError(f"video frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        clips = list(frames.float().cpu())  # the processor patchifies / checks on the CPU; the model runs on device
        encoded = self._processor(text=prompts, videos=clips, padding=True, padding_side="left",
                                  return_tensors="pt", **ALREADY_PREPARED)
        if not bool(encoded["attention_mask"][:, -1].all()):
            raise MmevalError(f"the processor of {self.info.name} padded prompts on the right; outputs would "
                              "depend on the batch")
        device, dtype = self.module.device, self.module.dtype
        inputs = {k: (v.to(device, dtype) if torch.is_floating_point(v) else v.to(device)) for k, v in encoded.items()}
        with torch.inference_mode():
            out = self.module.generate(**inputs, **_decoding(settings))
        out = out[:, inputs["input_ids"].shape[1]:]  # decoder-only: the prompt comes back first
        return [text.strip() for text in self._tokenizer.batch_decode(out, skip_special_tokens=True)]


def _check_decoding(settings: GenerationSettings) -> None:
    if settings.num_beams < 1 or settings.max_new_tokens < 1 or settings.min_new_tokens > settings.max_new_tokens:
        raise MmevalError("generation: needs num_beams >= 1 and 1 <= max_new_tokens, min_new_tokens <= max_new_tokens")


def _decoding(settings: GenerationSettings) -> dict[str, Any]:
    """generate() arguments: deterministic greedy (num_beams=1) or beam search, one sequence per clip."""
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "min_new_tokens": settings.min_new_tokens,
                              "num_beams": settings.num_beams, "do_sample": False, "num_return_sequences": 1}
    if settings.num_beams > 1:
        kwargs["length_penalty"] = settings.length_penalty
    return kwargs


def _frame_size(cfg, model_type: str, native: bool) -> tuple[int, int] | None:
    size = getattr(cfg, "frame_size", None)
    if size is None:
        return (DEFAULT_FRAME_SIZE, DEFAULT_FRAME_SIZE) if native else None
    if not native:
        raise ModelLoadError(f"model.frame_size: '{model_type}' models have a fixed input size set by their processor; "
                             "frame_size applies to native-resolution models (Qwen2-VL) only")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return int(height), int(width)


def _frame_transform(folder: Path, processor, model_type: str, size: tuple[int, int] | None):
    """The per-frame transform for this family, refusing a processor that cannot make video inputs."""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None or not getattr(processor, "video_token", None):
        raise ModelLoadError(f"model.checkpoint: the processor in {folder} has no video processor or video "
                             f"placeholder for its '{model_type}' model; save the model's processor there")
    if size is None:
        return VideoProcessorFrames(video_processor)
    factor = int(video_processor.patch_size) * int(video_processor.merge_size)
    if size[0] % factor or size[1] % factor:
        raise ModelLoadError(f"model.frame_size: {list(size)} must be multiples of {factor} (patch_size x merge_size "
                             f"of the processor in {folder})")
    return FixedSizeFrames(video_processor, *size)


def _check_processor(folder: Path, processor, transform, model_type: str) -> None:
    """Try the processor on a two-frame clip in a one-placeholder prompt, so a processor saved without its
    settings fails here, naming the folder, and not in the middle of a run."""
    from PIL import Image

    frame = transform(Image.new("RGB", (64, 48)))
    try:
        processor(text=[processor.video_token], videos=[torch.stack([frame, frame])], return_tensors="pt",
                  **ALREADY_PREPARED)
    except Exception as exc:  # e.g. num_image_tokens or patch_size missing from processor_config.json
        raise ModelLoadError(f"model.checkpoint: the processor in {folder} cannot place a video in a prompt for its "
                             f"'{model_type}' model ({type(exc).__name__}: {describe_load_error(exc)}); save the "
                             "model's processor there with processor.save_pretrained") from exc


def _facts(processor, transform) -> dict[str, Any]:
    from PIL import Image

    keys = ("size", "crop_size", "image_mean", "image_std", "resample", "patch_size", "merge_size",
            "temporal_patch_size")
    return {**processor_facts(processor.video_processor, keys),
            "frame_shape": list(transform(Image.new("RGB", (64, 48))).shape)}


def load(cfg, trust_checkpoint: bool = False) -> HFVideoLM:
    """Load a save_pretrained video LM folder (`cfg.checkpoint`: model + processor with its video processor),
    refusing anything not loaded exactly; the folder's own code and code-carrying pickles only when trusted."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its load report would repeat, at length, what the errors below say

    if not hasattr(transformers, "BaseVideoProcessor"):  # video processors arrived in transformers 4.52
        raise ModelLoadError(f"model.type: hf_video_lm needs transformers >= 4.52 (video processors); installed: "
                             f"{transformers.__version__}")
    folder = Path(cfg.checkpoint)
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    trusted = loading_kwargs(folder, trust_checkpoint)
    try:
        config = transformers.AutoConfig.from_pretrained(folder, **trusted)
    except Exception as exc:  # unknown model_type, malformed JSON
        raise ModelLoadError(f"model.checkpoint: cannot read {folder}/config.json "
                             f"({describe_load_error(exc)})") from exc
    model_type = config.model_type
    if model_type not in FAMILIES:
        why = f" ({model_type} is not supported: {_UNSUPPORTED[model_type]})" if model_type in _UNSUPPORTED else ""
        raise ModelLoadError(f"model.checkpoint: {folder} holds a '{model_type}' model; hf_video_lm reads "
                             f"{', '.join(FAMILIES)} (video inputs through their processors){why}")
    native = FAMILIES[model_type]
    size = _frame_size(cfg, model_type, native)
    try:
        # Leniently, then refuse what was not loaded exactly: transformers only warns about random weights.
        (model, loading), loaded_with = load_model(transformers.AutoModelForImageTextToText, folder, trust_checkpoint,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)
        processor = transformers.AutoProcessor.from_pretrained(folder, **trusted)
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} with transformers "
                             f"({describe_load_error(exc)})") from exc
    check_weights_fit(folder, loading)
    transform = _frame_transform(folder, processor, model_type, size)
    _check_processor(folder, processor, transform, model_type)
    generation = {k: v for k, v in model.generation_config.to_diff_dict().items()  # what decoding inherits
                  if not k.startswith("_") and k not in _NOT_DECODING}
    info = ModelInfo.of_checkpoint(
        "hf_video_lm", cfg.name or folder.name, folder, model, loaded_with=loaded_with, model_type=model_type,
        architectures=config.architectures, model_class=type(model).__name__, generation_config=generation,
        chat_template=bool(getattr(processor, "chat_template", None)), video_token=processor.video_token,
        frames_expected=None,
        frame_size=list(size) if size else None, processor=_facts(processor, transform), padding="left",
    )
    return HFVideoLM(model.eval(), processor, info, transform)
