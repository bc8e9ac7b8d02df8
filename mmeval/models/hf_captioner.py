"""Hugging Face transformers captioners saved with `save_pretrained`: BLIP, GIT, VisionEncoderDecoder
(ViT + GPT-2 / BERT ...) and prompted image-text-to-text models (LLaVA-style).

The folder must also hold the image processor and tokenizer (or the processor), so captions are always
produced with the model's own preprocessing. The model class is the one `AutoModelForImageTextToText`
maps the config's `model_type` to; a folder whose saved architecture is another class (a retrieval or
question-answering head, a dual encoder) is refused rather than loaded with a random captioning head.

Decoding is greedy or beam search only (`GenerationSettings`); other generation options come from the
folder's generation_config.json and are recorded in the report. Prompted models get the same prompt
tokens in every row, so nothing is padded and a caption cannot depend on its batch-mates.

Prompted models also answer questions (capability `answerer`): each question is put in the processor's
chat template (or in `generation.prompt`, a wrapper with `{question}`, when given or when there is no
template) and the batch is padded on the LEFT, so every row's answer starts right after its own prompt and
the answers do not depend on the lengths of the other questions in the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, describe_load_error
from mmeval.models.hf_common import ImageProcessorTransform, check_weights_fit, load_model, loading_kwargs

# These caption from the image alone; every other image-text-to-text model needs a prompt.
_UNPROMPTED = ("blip", "git", "vision-encoder-decoder")
_NOT_DECODING = {"transformers_version", "use_cache", "output_attentions", "output_hidden_states"}
_PROMPT_EXAMPLE = "USER: <image>\\nDescribe the image. ASSISTANT:"
_ANSWER_EXAMPLE = "USER: <image>\\n{question} ASSISTANT:"



class HFCaptioner:
    """`captioner` capability over a transformers model that generates text from `pixel_values`; prompted
    models are `answerer`s too (set per instance)."""

    capabilities: tuple[str, ...] = ("captioner",)

    def __init__(self, model, tokenizer, image_processor, info: ModelInfo, processor=None):
        self.module = model
        self.image_transform = ImageProcessorTransform(image_processor)
        self.info = info
        self.needs_prompt = processor is not None
        self._tokenizer = tokenizer
        self._processor = processor  # prompted models only: expands the image placeholder in the prompt
        self._prompt_cache: dict[str, dict[str, torch.Tensor]] = {}
        self.capabilities = ("captioner", "answerer") if self.needs_prompt else ("captioner",)
        if self.needs_prompt:  # questions differ in length: pad on the left, so answers start after every prompt
            tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token

    def check_settings(self, settings: GenerationSettings) -> None:
        """Refuse settings this model cannot honour; cheap, so a benchmark can call it before loading data."""
        kind = f"model '{self.info.name}' ({self.info.extra['model_type']})"
        if self.needs_prompt and not settings.prompt:
            raise MmevalError(f"generation.prompt: {kind} needs a prompt, e.g. \"{_PROMPT_EXAMPLE}\"")
        if not self.needs_prompt and settings.prompt:
            raise MmevalError(f"generation.prompt: {kind} captions from the image alone and takes no prompt; remove it")
        if self.needs_prompt:
            token = getattr(self._processor, "image_token", None)
            if token and token not in settings.prompt:
                raise MmevalError(f"generation.prompt: must contain the image placeholder '{token}', "
                                  f"e.g. \"{_PROMPT_EXAMPLE}\"")
        _check_decoding(settings)

    def check_answer_settings(self, settings: GenerationSettings) -> None:
        """Answering needs a prompted model and a chat template, or a `generation.prompt` around {question}."""
        kind = f"model '{self.info.name}' ({self.info.extra['model_type']})"
        if not self.needs_prompt:
            raise MmevalError(f"{kind} captions from the image alone and cannot answer questions; "
                              "use a prompted (LLaVA-style) image-text-to-text model")
        token = getattr(self._processor, "image_token", None)
        if settings.prompt is None and not getattr(self._processor, "chat_template", None):
            raise MmevalError(f"generation.prompt: {kind} has no chat template; give a prompt with {{question}} "
                              f"and the image placeholder, e.g. \"{_ANSWER_EXAMPLE}\"")
        missing = [part for part in ("{question}", token) if settings.prompt is not None and part
                   and part not in settings.prompt]
        if missing:
            raise MmevalError(f"generation.prompt: to answer questions it must contain {' and '.join(repr(m) for m in missing)}, "
                              f"e.g. \"{_ANSWER_EXAMPLE}\"")
        _check_decoding(settings)

    def answer(self, pixels: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        """One answer per (image, question) row; prompts are left-padded so no row sees another's length."""
        self.check_answer_settings(settings)
        prompts = [self._question_prompt(question, settings.prompt) for question in questions]
        device = self.module.device
        pixels = pixels.to(device=device, dtype=self.module.dtype)
        # The processor sizes each image placeholder from processed pixels; its output size is fixed (checked
        # at load), so blank images give the tokens the real ones would, and the real pixels are used.
        encoded = self._processor(text=prompts, images=[Image.new("RGB", (64, 64))] * len(prompts), padding=True,
                                  return_tensors="pt")
        if not bool(encoded["attention_mask"][:, -1].all()):
            raise MmevalError(f"the processor of {self.info.name} padded questions on the right; answers would "
                              "depend on the batch")
        probe = encoded.pop("pixel_values")
        if probe.shape[1:] != pixels.shape[1:]:
            raise MmevalError(f"pixels of shape {tuple(pixels.shape[1:])} do not match this model's image "
                              f"processor output {tuple(probe.shape[1:])}; use the model's image_transform")
        inputs = {k: v.to(device) for k, v in encoded.items()}
        with torch.inference_mode():
            out = self.module.generate(pixel_values=pixels, **inputs, **_decoding(settings))
        out = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self._tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _question_prompt(self, question: str, wrapper: str | None) -> str:
        if wrapper is not None:
            return wrapper.replace("{question}", question)
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self._processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def generate(self, pixels: torch.Tensor, settings: GenerationSettings) -> list[str]:
        self.check_settings(settings)
        device, dtype = self.module.device, self.module.dtype
        pixels = pixels.to(device=device, dtype=dtype)
        prompt = self._prompt_inputs(settings.prompt, pixels) if self.needs_prompt else {}
        with torch.inference_mode():
            out = self.module.generate(pixel_values=pixels, **prompt, **_decoding(settings))
        if prompt:  # decoder-only models return the prompt too
            out = out[:, prompt["input_ids"].shape[1]:]
        return [text.strip() for text in self._tokenizer.batch_decode(out, skip_special_tokens=True)]

    def _prompt_inputs(self, prompt: str, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The processor's tokens for `prompt` (placeholder expanded), repeated identically for every row."""
        if prompt not in self._prompt_cache:
            # The processor sizes the image placeholder from processed pixels; this processor's output size
            # is fixed (checked at load), so any image gives the tokens every real image would get.
            encoded = self._processor(text=[prompt], images=[Image.new("RGB", (64, 64))], return_tensors="pt")
            probe = encoded.pop("pixel_values")
            if probe.shape[1:] != pixels.shape[1:]:
                raise MmevalError(f"pixels of shape {tuple(pixels.shape[1:])} do not match this model's image "
                                  f"processor output {tuple(probe.shape[1:])}; use the model's image_transform")
            self._prompt_cache[prompt] = dict(encoded)
        rows = pixels.shape[0]
        return {k: v.to(pixels.device).repeat(rows, *[1] * (v.dim() - 1))
                for k, v in self._prompt_cache[prompt].items()}


def _check_decoding(settings: GenerationSettings) -> None:
    if settings.num_beams < 1 or settings.max_new_tokens < 1 or settings.min_new_tokens > settings.max_new_tokens:
        raise MmevalError("generation: needs num_beams >= 1 and 1 <= max_new_tokens, min_new_tokens <= max_new_tokens")


def _decoding(settings: GenerationSettings) -> dict[str, Any]:
    """generate() arguments: deterministic greedy (num_beams=1) or beam search, one sequence per image."""
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "min_new_tokens": settings.min_new_tokens,
                              "num_beams": settings.num_beams, "do_sample": False, "num_return_sequences": 1}
    if settings.num_beams > 1:  # transformers warns about a length penalty without beams
        kwargs["length_penalty"] = settings.length_penalty
    return kwargs


def _captioning_class(folder: Path, config) -> str:
    """The transformers class that captions this config, or a ModelLoadError that says what was found."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = config.model_type
    saved = (getattr(config, "architectures", None) or [None])[0]
    found = f"a '{model_type}' model" + (f" ({saved})" if saved else "")
    wanted = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(model_type)
    if wanted is None:
        raise ModelLoadError(
            f"model.checkpoint: {folder} holds {found}, which cannot generate captions from images (hf_captioner "
            "loads image-text-to-text models: BLIP, GIT, VisionEncoderDecoder, LLaVA-style ...)"
        )
    if saved and saved != wanted:
        raise ModelLoadError(
            f"model.checkpoint: {folder} holds {found}, not the captioning model {wanted}; "
            "its weights would leave the caption head random"
        )
    return wanted



def _check_pixels_only(folder: Path, image_processor) -> None:
    """The captioner interface carries one pixel tensor per image: refuse processors that need more."""
    keys = set(image_processor(images=Image.new("RGB", (64, 48)), return_tensors="pt").keys())
    if keys != {"pixel_values"}:
        extra = ", ".join(sorted(keys - {"pixel_values"})) or "no pixel_values"
        raise ModelLoadError(
            f"model.checkpoint: the image processor in {folder} returns {extra} besides pixel_values "
            "(dynamic-resolution inputs), which hf_captioner does not support"
        )


def _check_prompt_processor(folder: Path, processor, model_type: str) -> None:
    """A prompted model needs the processor that expands the image placeholder; try it on one image."""
    token = getattr(processor, "image_token", None)
    unusable = (f"model.checkpoint: the processor in {folder} cannot place an image in a prompt for its "
                f"'{model_type}' model ({{}}); save the model's processor there with processor.save_pretrained")
    if getattr(processor, "image_processor", None) is None or not token:
        raise ModelLoadError(unusable.format(f"found {type(processor).__name__}, no processor with an image placeholder"))
    try:
        processor(text=[token], images=[Image.new("RGB", (64, 48))], return_tensors="pt")
    except Exception as exc:  # a processor saved without its settings (patch_size ...) fails here
        raise ModelLoadError(unusable.format(f"{type(exc).__name__}: {describe_load_error(exc)}")) from exc


def load(cfg, trust_checkpoint: bool = False) -> HFCaptioner:
    """Load a save_pretrained captioning folder (`cfg.checkpoint`), refusing anything not loaded exactly; the
    folder's own code and pickles that need code only with `trust_checkpoint`."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its load report would repeat, at length, what the errors below say

    folder = Path(cfg.checkpoint)
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    trusted = loading_kwargs(folder, trust_checkpoint)  # refuses a folder that needs its own code, untrusted
    try:
        config = transformers.AutoConfig.from_pretrained(folder, **trusted)
    except Exception as exc:  # unknown model_type, malformed JSON
        raise ModelLoadError(f"model.checkpoint: cannot read {folder}/config.json ({describe_load_error(exc)})") from exc
    class_name = _captioning_class(folder, config)
    prompted = config.model_type not in _UNPROMPTED
    try:
        # Load leniently, then refuse anything not loaded exactly: transformers would only warn and go on
        # to caption with partly random weights.
        (model, loading), loaded_with = load_model(transformers.AutoModelForImageTextToText, folder, trust_checkpoint,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)
        processor = transformers.AutoProcessor.from_pretrained(folder, **trusted) if prompted else None
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None:
            image_processor = transformers.AutoImageProcessor.from_pretrained(folder, **trusted)
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **trusted)
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} with transformers ({describe_load_error(exc)})") from exc
    check_weights_fit(folder, loading)
    _check_pixels_only(folder, image_processor)
    if prompted:
        _check_prompt_processor(folder, processor, config.model_type)
    generation = {k: v for k, v in model.generation_config.to_diff_dict().items()  # what decoding inherits
                  if not k.startswith("_") and k not in _NOT_DECODING}
    info = ModelInfo.of_checkpoint(
        "hf_captioner", cfg.name or folder.name, folder, model, model_type=config.model_type,
        architectures=config.architectures, model_class=class_name, prompted=prompted, generation_config=generation,
        chat_template=bool(getattr(processor, "chat_template", None)), loaded_with=loaded_with,
    )
    return HFCaptioner(model.eval(), tokenizer, image_processor, info, processor)
