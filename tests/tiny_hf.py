"""Tiny random transformers captioners (and one non-captioner), built offline and saved with save_pretrained.

Each `save_*` writes a model plus the processor or tokenizer it is used with into a folder, as a hub
checkpoint would hold them, so the tests can load it through mmeval like a user's folder.

Random tiny models at the default init give every image the same caption (the decoder barely sees the
image) from near-uniform next-token distributions, so a batch-independence test would prove little and a
float-noise tie could flip it. Weights are therefore drawn with a 10x init std (`INIT_STD`: captions
depend on the image) and the output head is scaled up (`_sharpen`; the norm before it when the head is
tied to the input embeddings, which would otherwise just echo the input token), giving peaked, trained-
looking distributions. Measured with seed 0 on 8 noise images x 10 steps: batch 1 vs batch 8 logits differ
by <= 4e-5, while the smallest top-1/top-2 gap is >= 8e-4 (typical gaps are whole logits).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image

INIT_STD = 0.2  # instead of 0.02: images change the captions, not only the noise
HEAD_SCALE = 8.0  # top-1 vs top-2 logit gaps of order 1, far above float noise
IMAGE_SIZE = 32
PATCH = 8
WORDS = ["a", "red", "blue", "green", "square", "circle", "on", "the", "left", "right", "of", "and"]

_SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
_VISION = dict(_SMALL, image_size=IMAGE_SIZE, patch_size=PATCH, initializer_range=INIT_STD)


def bert_tokenizer() -> transformers.BertTokenizer:
    """A WordPiece tokenizer over single characters (any lowercase text tokenises) plus a few words."""
    chars = list(string.ascii_lowercase + string.digits + ".,!?'")
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    tokens = special + chars + ["##" + c for c in chars] + WORDS
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, bos_token="[DEC]")


def byte_tokenizer(extra_special: tuple[str, ...] = ()) -> transformers.GPT2Tokenizer:
    """A GPT-2 byte-level BPE tokenizer with one token per byte and no merges (any text tokenises)."""
    from tokenizers import pre_tokenizers

    vocab = {"<|endoftext|>": 0}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tokenizer = transformers.GPT2Tokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>")
    if extra_special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tokenizer


def _sharpen(module: torch.nn.Module) -> None:
    """Scale the output head, or the norm just before it when the head is tied to the input embeddings."""
    with torch.no_grad():
        module.weight.mul_(HEAD_SCALE)
        if getattr(module, "bias", None) is not None:
            module.bias.mul_(HEAD_SCALE)


def _text(vocab_size: int, **extra) -> dict:
    return dict(_SMALL, vocab_size=vocab_size, max_position_embeddings=128, initializer_range=INIT_STD, **extra)


def save_blip(folder: Path, seed: int = 0, head: str = "BlipForConditionalGeneration") -> Path:
    """BlipForConditionalGeneration + BlipProcessor (BlipImageProcessor + BertTokenizer with [DEC] as BOS).

    `head="BlipForImageTextRetrieval"` saves the same tiny BLIP with a retrieval head instead (no captioner).
    """
    tokenizer = bert_tokenizer()
    text = _text(len(tokenizer), bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                 sep_token_id=tokenizer.sep_token_id, eos_token_id=tokenizer.sep_token_id)
    config = transformers.BlipConfig(text_config=text, vision_config=_VISION, projection_dim=16,
                                     initializer_range=INIT_STD)
    torch.manual_seed(seed)
    model = getattr(transformers, head)(config)
    if head == "BlipForConditionalGeneration":
        _sharpen(model.text_decoder.cls.predictions.transform.LayerNorm)
    processor = transformers.BlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    return _save(folder, model, processor)


def save_git(folder: Path, seed: int = 0) -> Path:
    """GitForCausalLM + GitProcessor (CLIPImageProcessor + BertTokenizer; [CLS] starts, [SEP] ends)."""
    tokenizer = bert_tokenizer()
    config = transformers.GitConfig(
        vision_config=_VISION, **_text(len(tokenizer), bos_token_id=tokenizer.cls_token_id,
                                       eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id),
    )
    torch.manual_seed(seed)
    model = transformers.GitForCausalLM(config)
    _sharpen(model.output)
    processor = transformers.GitProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer)
    return _save(folder, model, processor)


def save_vision_encoder_decoder(folder: Path, decoder: str = "gpt2", seed: int = 0) -> Path:
    """VisionEncoderDecoderModel: ViT encoder + GPT-2 or BERT decoder; ViTImageProcessor + tokenizer."""
    encoder = transformers.ViTConfig(**_VISION)
    if decoder == "gpt2":
        tokenizer = byte_tokenizer()
        start = end = pad = tokenizer.eos_token_id
        dec = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                      initializer_range=INIT_STD, bos_token_id=start, eos_token_id=end)
    else:
        tokenizer = bert_tokenizer()
        start, end, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        dec = transformers.BertConfig(**_text(len(tokenizer), bos_token_id=start, eos_token_id=end, pad_token_id=pad))
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, dec)
    config.decoder_start_token_id, config.eos_token_id, config.pad_token_id = start, end, pad
    torch.manual_seed(seed)
    model = transformers.VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = start
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = end, pad
    _sharpen(model.decoder.transformer.ln_f if decoder == "gpt2" else model.decoder.cls.predictions.transform.LayerNorm)
    image_processor = transformers.ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    _save(folder, model, image_processor)
    tokenizer.save_pretrained(folder)
    return folder


def save_llava(folder: Path, seed: int = 0) -> Path:
    """LlavaForConditionalGeneration (tiny CLIP vision tower + tiny Llama) + LlavaProcessor; needs a prompt."""
    tokenizer = byte_tokenizer(extra_special=("<image>",))
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    text = transformers.LlamaConfig(**_text(len(tokenizer), num_key_value_heads=2, bos_token_id=None,
                                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    vision = transformers.CLIPVisionConfig(**_VISION)
    config = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                                      vision_feature_layer=-1, vision_feature_select_strategy="default",
                                      image_seq_length=(IMAGE_SIZE // PATCH) ** 2)
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config)
    _sharpen(model.lm_head)
    processor = transformers.LlavaProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer,
                                            patch_size=PATCH, vision_feature_select_strategy="default",
                                            num_additional_image_tokens=1)
    return _save(folder, model, processor)


def save_clip(folder: Path) -> Path:
    """A CLIPModel folder: a complete, loadable transformers model that cannot write captions."""
    tokenizer = byte_tokenizer()
    config = transformers.CLIPConfig(text_config=_text(len(tokenizer)), vision_config=_VISION, projection_dim=16)
    torch.manual_seed(0)
    return _save(folder, transformers.CLIPModel(config),
                 transformers.CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer))


FAMILIES = {
    "blip": save_blip,
    "git": save_git,
    "vit-gpt2": lambda folder: save_vision_encoder_decoder(folder, "gpt2"),
    "vit-bert": lambda folder: save_vision_encoder_decoder(folder, "bert"),
    "llava": save_llava,
}


def damage(folder: Path, how: str, config_changes: dict, drop_weight: str) -> None:
    """Make a saved checkpoint stop fitting its config: edit config.json (how "config") or drop one tensor."""
    from safetensors.torch import load_file, save_file

    if how == "config":
        config = json.loads((folder / "config.json").read_text())
        config.update({key: change(config[key]) for key, change in config_changes.items()})
        (folder / "config.json").write_text(json.dumps(config))
    else:
        weights = load_file(folder / "model.safetensors")
        del weights[drop_weight]
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def noise_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Distinct RGB noise images of varied sizes, so each gets its own caption."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (24 + 4 * (i % 4), 40, 3), dtype=np.uint8)) for i in range(n)]


def _clip_image_processor() -> transformers.CLIPImageProcessor:
    return transformers.CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                           crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def _save(folder: Path, model, processor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
