"""transformers CTC speech models (`AutoModelForCTC`: wav2vec2, HuBERT, WavLM, ... + their processor, a
save_pretrained folder) as a `speech_recognizer`.

Clips are normalised and padded by the model's own feature extractor with an attention mask (so padding never
reaches a clip's frames, for models trained with one), run in one forward pass, and decoded greedily: the best
token per frame, repeats merged, blanks dropped (`processor.batch_decode`, the tokenizer's CTC decoding). Models
whose feature extractor has no attention mask (wav2vec2-base style, group-norm front end) are evaluated as they
were trained, on zero-padded batches; the report records `attention_mask` so that is visible.
"""

from __future__ import annotations

import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, describe_load_error
from mmeval.models.hf_common import check_weights_fit, load_model, loading_kwargs


class HFCTC:
    """A loaded CTC model and processor (capability `speech_recognizer`)."""

    capabilities = ("speech_recognizer",)

    def __init__(self, model, processor, info: ModelInfo):
        self.module, self.processor, self.info = model.eval(), processor, info
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        self.attention_mask = bool(getattr(processor.feature_extractor, "return_attention_mask", False))

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        clips = [row[: int(n)].float().cpu().numpy() for row, n in zip(audio, lengths)]
        inputs = self.processor.feature_extractor(clips, sampling_rate=self.sample_rate, padding=True,
                                                  return_attention_mask=self.attention_mask, return_tensors="pt")  # fmt: skip
        device = next(self.module.parameters()).device
        dtype = next(self.module.parameters()).dtype
        kwargs = {"attention_mask": inputs.attention_mask.to(device)} if self.attention_mask else {}
        with torch.inference_mode():
            logits = self.module(inputs.input_values.to(device, dtype), **kwargs).logits
        frames = logits.argmax(dim=-1)
        if self.attention_mask:  # frames computed from padding only: blank them out
            valid = self.module._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1)).to(frames.device)
            pad_id = self.processor.tokenizer.pad_token_id
            frames[torch.arange(frames.shape[1], device=frames.device)[None, :] >= valid[:, None]] = pad_id
        return [text.strip() for text in self.processor.batch_decode(frames.cpu())]


def load(cfg, trust_checkpoint: bool = False) -> HFCTC:
    """Registry entry point (`model.type: hf_ctc`; field checkpoint)."""
    from transformers import AutoModelForCTC, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = cfg.checkpoint
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    try:
        (model, loading), loaded_with = load_model(AutoModelForCTC, folder, trust_checkpoint,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)  # fmt: skip
        processor = AutoProcessor.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError / ValueError / RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} as a CTC model with its processor "
                             f"({describe_load_error(exc)})") from exc  # fmt: skip
    check_weights_fit(folder, loading)
    if not hasattr(processor, "feature_extractor") or not hasattr(processor, "tokenizer"):
        raise ModelLoadError(f"model.checkpoint: {folder} has no CTC processor (feature extractor + tokenizer)")
    info = ModelInfo.of_checkpoint("hf_ctc", cfg.name or folder.name, folder, model, loaded_with=loaded_with,
                                   model_type=model.config.model_type, decoding="greedy CTC",
                                   attention_mask=bool(getattr(processor.feature_extractor, "return_attention_mask", False)),
                                   sample_rate=int(processor.feature_extractor.sampling_rate))  # fmt: skip
    return HFCTC(model, processor, info)
