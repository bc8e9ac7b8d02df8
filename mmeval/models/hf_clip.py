"""Hugging Face transformers dual encoders (CLIPModel, SiglipModel, ...) saved with `save_pretrained`.

The folder must also hold the tokenizer and image processor (`processor.save_pretrained`), so that the
model is always evaluated with its own preprocessing. SigLIP-style models were trained on texts padded to
the maximum length and must be evaluated that way; CLIP-style ones pad to the longest text.
"""

from __future__ import annotations

import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import ModelInfo, Tokens, describe_load_error
from mmeval.models.hf_common import ImageProcessorTransform, check_weights_fit, load_model, loading_kwargs

_PAD_TO_MAX = ("siglip", "siglip2")



class HFClipEncoder:
    """`image_text_encoder` capability over a transformers model with get_image/text_features."""

    def __init__(self, model, tokenizer, image_processor, info: ModelInfo):
        self.module = model
        self.image_transform = ImageProcessorTransform(image_processor)
        self._tokenizer = tokenizer
        self._pad_to_max = model.config.model_type in _PAD_TO_MAX
        self._max_length = int(getattr(model.config.text_config, "max_position_embeddings", 77))
        self.info = info

    def tokenize(self, texts: list[str]) -> Tokens:
        encoded = self._tokenizer(
            texts,
            padding="max_length" if self._pad_to_max else True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.module.get_image_features(pixel_values=pixels))

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        if self._pad_to_max:  # SigLIP's text tower takes no attention mask
            tokens = {"input_ids": tokens["input_ids"]}
        return _features(self.module.get_text_features(**tokens))


def _features(output) -> torch.Tensor:
    """Newer transformers may return a model output object instead of a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected feature output {type(output).__name__}")



def load(cfg, trust_checkpoint: bool = False) -> HFClipEncoder:
    """Registry entry point; the folder's own code and pickles that need code only with `trust_checkpoint`."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its load report would repeat, at length, what the error below says

    folder = cfg.checkpoint
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    try:
        # Load leniently, then refuse anything that was not loaded exactly: transformers would otherwise
        # evaluate a partly random model after a warning.
        (model, loading), loaded_with = load_model(AutoModel, folder, trust_checkpoint, ignore_mismatched_sizes=True,
                                                   output_loading_info=True)  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
        image_processor = AutoImageProcessor.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} with transformers ({describe_load_error(exc)})") from exc
    check_weights_fit(folder, loading)
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise ModelLoadError(
            f"model.checkpoint: {folder} holds a '{model.config.model_type}' model, which is not an image-text "
            "dual encoder (needs get_image_features and get_text_features, like CLIPModel or SiglipModel)"
        )
    info = ModelInfo.of_checkpoint("hf_clip", cfg.name or folder.name, folder, model,
                                   model_type=model.config.model_type, architectures=model.config.architectures,
                                   loaded_with=loaded_with)
    return HFClipEncoder(model, tokenizer, image_processor, info)
