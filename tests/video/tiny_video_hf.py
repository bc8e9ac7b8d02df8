"""Tiny random transformers video models, built offline and saved with save_pretrained (model + processor).

Like tests/tiny_hf.py: the folders hold what a hub checkpoint holds, so tests load them through mmeval's
real path. The generative ones use the 10x init std and a sharpened output head of tiny_hf (see its
docstring): captions then depend on the video and top-1 / top-2 logit gaps are far above float noise, so
batched-vs-single and adapter-vs-transformers comparisons can be exact string equalities.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: tiny_hf's tokenizers and constants

from tiny_hf import INIT_STD, _sharpen, byte_tokenizer  # noqa: E402

SIZE = 32  # frame side after preprocessing
PATCH = 8
FRAMES = 4
_SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
# A one-line chat template with a video slot (hub checkpoints ship their own; the tests need one to exist).
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] | upper }}: {% for item in message['content'] %}"
                 "{% if item['type'] == 'video' %}{VIDEO}\n{% elif item['type'] == 'image' %}{IMAGE}\n"
                 "{% else %}{{ item['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
                 "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def _template(video: str, image: str) -> str:
    return CHAT_TEMPLATE.replace("{VIDEO}", video).replace("{IMAGE}", image)


def _text(vocab: int, **extra) -> dict:
    return dict(_SMALL, vocab_size=vocab, max_position_embeddings=256, initializer_range=INIT_STD,
                num_key_value_heads=2, **extra)  # fmt: skip


def save_xclip(folder: Path, frames: int = FRAMES, seed: int = 0) -> Path:
    """XCLIPModel (cross-frame ViT, MIT over `frames` frames, prompt generator) + XCLIPProcessor."""
    tokenizer = byte_tokenizer()
    text = dict(_SMALL, vocab_size=len(tokenizer), max_position_embeddings=77)
    vision = dict(_SMALL, image_size=SIZE, patch_size=PATCH, num_frames=frames, mit_hidden_size=16,
                  mit_intermediate_size=32, mit_num_hidden_layers=1, mit_num_attention_heads=2)
    config = transformers.XCLIPConfig(text_config=text, vision_config=vision, projection_dim=16, prompt_layers=1,
                                      prompt_num_attention_heads=2)
    torch.manual_seed(seed)
    model = transformers.XCLIPModel(config)
    image_processor = transformers.VideoMAEImageProcessor(size={"shortest_edge": SIZE},
                                                          crop_size={"height": SIZE, "width": SIZE})
    return _save(folder, model, transformers.XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer))


def save_llava_onevision(folder: Path, seed: int = 0) -> Path:
    """LlavaOnevisionForConditionalGeneration (tiny SigLIP + tiny Qwen2) + its processor (video: 2x2 pooled)."""
    tokenizer = byte_tokenizer(extra_special=("<image>", "<video>"))
    image_id, video_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    vision = transformers.SiglipVisionConfig(**_SMALL, image_size=SIZE, patch_size=PATCH)
    text = transformers.Qwen2Config(**_text(len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id))
    config = transformers.LlavaOnevisionConfig(
        vision_config=vision, text_config=text, image_token_id=image_id, video_token_id=video_id,
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=[[SIZE, SIZE]],
        vision_aspect_ratio="anyres_max_1",
    )
    torch.manual_seed(seed)
    model = transformers.LlavaOnevisionForConditionalGeneration(config)
    _sharpen(model.lm_head)
    square = {"height": SIZE, "width": SIZE}
    processor = transformers.LlavaOnevisionProcessor(
        image_processor=transformers.LlavaOnevisionImageProcessor(size=square, image_grid_pinpoints=[[SIZE, SIZE]]),
        video_processor=transformers.LlavaOnevisionVideoProcessor(size=square),
        tokenizer=tokenizer, num_image_tokens=(SIZE // PATCH) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_1", chat_template=_template("<video>", "<image>"),
    )
    return _save(folder, model, processor)


def save_llava_next_video(folder: Path, seed: int = 0) -> Path:
    """LlavaNextVideoForConditionalGeneration (tiny CLIP + tiny Llama) + LlavaNextVideoProcessor."""
    tokenizer = byte_tokenizer(extra_special=("<image>", "<video>"))
    image_id, video_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    vision = transformers.CLIPVisionConfig(**_SMALL, image_size=SIZE, patch_size=PATCH)
    text = transformers.LlamaConfig(**_text(len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id))
    patches = (SIZE // PATCH) ** 2
    config = transformers.LlavaNextVideoConfig(
        vision_config=vision, text_config=text, image_token_id=image_id, video_token_id=video_id,
        vision_feature_select_strategy="default", vision_feature_layer=-1, image_grid_pinpoints=[[SIZE, SIZE]],
        spatial_pool_stride=2, spatial_pool_mode="average", image_seq_length=patches, video_seq_length=patches // 4,
    )
    torch.manual_seed(seed)
    model = transformers.LlavaNextVideoForConditionalGeneration(config)
    _sharpen(model.lm_head)
    resize, crop = {"shortest_edge": SIZE}, {"height": SIZE, "width": SIZE}
    processor = transformers.LlavaNextVideoProcessor(
        video_processor=transformers.LlavaNextVideoVideoProcessor(size=resize, crop_size=crop),
        image_processor=transformers.LlavaNextImageProcessor(size=resize, crop_size=crop,
                                                             image_grid_pinpoints=[[SIZE, SIZE]]),
        tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=_template("<video>", "<image>"),
    )
    return _save(folder, model, processor)


QWEN_PATCH = 4  # x merge 2: frame sides are multiples of 8


def save_qwen2_vl(folder: Path, seed: int = 0) -> Path:
    """Qwen2VLForConditionalGeneration (tiny ViT with 2-frame temporal patches + tiny Qwen2, M-RoPE) + processor."""
    specials = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tokenizer = byte_tokenizer(extra_special=specials)
    start, end, image_id, video_id = tokenizer.convert_tokens_to_ids(list(specials))
    text = _text(len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": QWEN_PATCH,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "initializer_range": INIT_STD}
    config = transformers.Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=image_id,
                                        video_token_id=video_id, vision_start_token_id=start, vision_end_token_id=end)
    torch.manual_seed(seed)
    model = transformers.Qwen2VLForConditionalGeneration(config)
    _sharpen(model.lm_head)
    pixels = {"shortest_edge": 8 * 8, "longest_edge": 64 * 64}
    common = {"patch_size": QWEN_PATCH, "merge_size": 2, "temporal_patch_size": 2, "size": pixels}
    processor = transformers.Qwen2VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**common),
        video_processor=transformers.Qwen2VLVideoProcessor(**common),
        tokenizer=tokenizer,
        chat_template=_template("<|vision_start|><|video_pad|><|vision_end|>",
                                "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    return _save(folder, model, processor)


GENERATIVE = {"llava_onevision": save_llava_onevision, "llava_next_video": save_llava_next_video,
              "qwen2_vl": save_qwen2_vl}


def noise_videos(n: int, frames: int = FRAMES, size: tuple[int, int] = (40, 48), seed: int = 0) -> list[np.ndarray]:
    """Distinct uint8 RGB noise clips (T, H, W, 3), smooth enough in space that resizing keeps them distinct."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, frames, size[0] // 8 + 1, size[1] // 8 + 1, 3)).astype(np.float32)
    big = np.repeat(np.repeat(small, 8, axis=2), 8, axis=3)[:, :, : size[0], : size[1]]
    return [clip.astype(np.uint8) for clip in big]


def _save(folder: Path, model, processor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
