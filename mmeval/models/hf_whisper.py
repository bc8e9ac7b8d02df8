"""transformers Whisper (`WhisperForConditionalGeneration` + `WhisperProcessor`, a save_pretrained folder) as a
`speech_recognizer`.

A batch is turned into log-mel features by the model's own feature extractor (every clip padded to Whisper's
30 s window, as in training, so a clip's features never depend on its batch), then decoded with one batched
`generate` (greedy or beam search from the benchmark's `generation`), with the language and task from the config
forced as the decoder prompt (language None: Whisper detects it per clip). Clips longer than 30 s are cut by the
feature extractor: set `audio.max_seconds: 30` to skip or truncate them explicitly instead.
"""

from __future__ import annotations

from typing import Any

import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo, describe_load_error
from mmeval.models.hf_common import check_weights_fit, load_model, loading_kwargs


class HFWhisper:
    """A loaded Whisper model and processor (capability `speech_recognizer`)."""

    capabilities = ("speech_recognizer",)

    def __init__(self, model, processor, info: ModelInfo, language: str | None, task: str):
        self.module, self.processor, self.info = model.eval(), processor, info
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        self.language, self.task = language, task

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        clips = [row[: int(n)].float().cpu().numpy() for row, n in zip(audio, lengths)]
        features = self.processor.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        device = next(self.module.parameters()).device
        dtype = next(self.module.parameters()).dtype
        kwargs: dict[str, Any] = {"task": self.task, "max_new_tokens": settings.max_new_tokens,
                                  "num_beams": settings.num_beams, "do_sample": False}  # fmt: skip
        if settings.num_beams > 1:
            kwargs["length_penalty"] = settings.length_penalty
        if self.language is not None:
            kwargs["language"] = self.language
        with torch.inference_mode():
            tokens = self.module.generate(features.input_features.to(device, dtype), **kwargs)
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]


def load(cfg, trust_checkpoint: bool = False) -> HFWhisper:
    """Registry entry point (`model.type: hf_whisper`; fields checkpoint, language, asr_task)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = cfg.checkpoint
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    try:
        (model, loading), loaded_with = load_model(WhisperForConditionalGeneration, folder, trust_checkpoint,
                                                   ignore_mismatched_sizes=True, output_loading_info=True)  # fmt: skip
        processor = WhisperProcessor.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError / ValueError / RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} as a Whisper model with its processor "
                             f"({describe_load_error(exc)})") from exc  # fmt: skip
    check_weights_fit(folder, loading)
    language = cfg.language
    if language is not None:
        known = getattr(model.generation_config, "lang_to_id", None) or {}
        if known and f"<|{language}|>" not in known and language not in _language_names():
            raise ModelLoadError(f"model.language: '{language}' is not a language of {folder} (its generation_config "
                                 f"knows {', '.join(sorted(k.strip('<|>') for k in known))})")  # fmt: skip
    info = ModelInfo.of_checkpoint("hf_whisper", cfg.name or folder.name, folder, model, loaded_with=loaded_with,
                                   model_type=model.config.model_type, language=language or "detected",
                                   task=cfg.asr_task, sample_rate=int(processor.feature_extractor.sampling_rate))  # fmt: skip
    return HFWhisper(model, processor, info, language, cfg.asr_task)


def _language_names() -> set[str]:
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    return set(TO_LANGUAGE_CODE)
