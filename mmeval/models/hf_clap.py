"""Hugging Face transformers CLAP (`ClapModel`) saved with `save_pretrained`, with its processor.

The folder must hold the tokenizer and the feature extractor (`ClapProcessor.save_pretrained`), so a model is
always evaluated with its own front end (48 kHz log-mel, its own crop / pad policy).

Batch independence: `ClapFeatureExtractor` marks, in a batch with no clip longer than its window, one random clip
as "longer" (a training trick for the fusion branch), and crops long clips at random. Clips are therefore
featurised one at a time (as a single-clip call to transformers does) with NumPy's global generator seeded per
clip and restored afterwards, so an embedding depends on its clip only and is the same in every run.
"""

from __future__ import annotations

import numpy as np
import torch

from mmeval.errors import ModelLoadError
from mmeval.models.base import ModelInfo, Tokens, describe_load_error
from mmeval.models.hf_common import check_weights_fit, load_model, loading_kwargs

CROP_SEED = 0  # NumPy seed for CLAP's random crops of clips longer than its window


class HFClapEncoder:
    """`audio_text_encoder` capability over a transformers ClapModel."""

    def __init__(self, model, tokenizer, feature_extractor, info: ModelInfo):
        self.module, self.info = model, info
        self._tokenizer, self._features = tokenizer, feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self._max_length = int(getattr(model.config.text_config, "max_position_embeddings", 512)) - 2

    def tokenize(self, texts: list[str]) -> Tokens:
        encoded = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_length,
                                  return_tensors="pt")  # fmt: skip
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    def encode_text(self, tokens: Tokens) -> torch.Tensor:
        device = self.module.logit_scale_t.device
        return _features(self.module.get_text_features(**{k: v.to(device) for k, v in tokens.items()}))

    def audio_features(self, audio: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature extractor's inputs for each clip (its valid samples only), one clip at a time, stacked."""
        rows = []
        state = np.random.get_state()
        try:
            for wave, n in zip(audio.float().cpu().numpy(), lengths.cpu().tolist()):
                np.random.seed(CROP_SEED)
                rows.append(self._features([wave[: int(n)]], sampling_rate=self.sample_rate, return_tensors="pt"))
        finally:
            np.random.set_state(state)
        return {key: torch.cat([row[key] for row in rows]) for key in rows[0]}

    def encode_audio(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        device = self.module.logit_scale_a.device
        inputs = {k: v.to(device) for k, v in self.audio_features(audio, lengths).items()}
        inputs["input_features"] = inputs["input_features"].to(self.module.dtype)
        return _features(self.module.get_audio_features(**inputs))


def _features(output) -> torch.Tensor:
    """Newer transformers return a model output object instead of a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("pooler_output", "audio_embeds", "text_embeds"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected feature output {type(output).__name__}")


def load(cfg, trust_checkpoint: bool = False) -> HFClapEncoder:
    """Registry entry point; the folder's own code and pickles that need code only with `trust_checkpoint`."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = cfg.checkpoint
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelLoadError(f"model.checkpoint: {folder} is not a save_pretrained folder (no config.json)")
    try:
        (model, loading), loaded_with = load_model(ClapModel, folder, trust_checkpoint, ignore_mismatched_sizes=True,
                                                   output_loading_info=True)  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
        features = AutoFeatureExtractor.from_pretrained(folder, **loading_kwargs(folder, trust_checkpoint))
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError / ValueError / RuntimeError variously
        raise ModelLoadError(f"model.checkpoint: cannot load {folder} as a CLAP model with its processor "
                             f"({describe_load_error(exc)})") from exc  # fmt: skip
    check_weights_fit(folder, loading)
    info = ModelInfo.of_checkpoint("hf_clap", cfg.name or folder.name, folder, model, loaded_with=loaded_with,
                                   model_type=model.config.model_type, sample_rate=int(features.sampling_rate),
                                   fusion=bool(model.config.audio_config.enable_fusion))  # fmt: skip
    return HFClapEncoder(model.eval(), tokenizer, features, info)
