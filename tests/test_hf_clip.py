"""Tiny transformers CLIP and SigLIP models, saved with save_pretrained and loaded through the hf_clip adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.registry import MODELS, resolve
from mmeval.reporting.report import validate_report

transformers = pytest.importorskip("transformers")
from tiny_hf import damage as damage_checkpoint  # noqa: E402  (needs transformers: after the skip)


def write_tiny_clip_tokenizer(folder: Path) -> "transformers.CLIPTokenizer":
    """A CLIP byte-level BPE tokenizer with a character vocabulary and no merges, built offline."""
    from tokenizers import pre_tokenizers

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab[symbol] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[])


def save_tiny(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True)
    tokenizer = write_tiny_clip_tokenizer(folder)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=24)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    torch.manual_seed(0)
    if kind == "clip":
        text["eos_token_id"] = tokenizer.eos_token_id
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model = transformers.CLIPModel(config)
        processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        config = transformers.SiglipConfig(text_config=text, vision_config=vision)
        model = transformers.SiglipModel(config)
        processor = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["clip", "siglip"])
def tiny_hf_model(request, tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("hf") / request.param, request.param)


def test_adapter_embeddings_equal_the_model_own(tiny_hf_model: Path) -> None:
    """The adapter adds nothing: same pixels, tokens and features as calling transformers directly."""
    encoder = resolve("model type", "hf_clip", MODELS)(validate_mapping({
        "model": {"type": "hf_clip", "checkpoint": str(tiny_hf_model)},
        "benchmarks": [{"name": "b", "task": "retrieval", "data": {"format": "shapes"}}],
    }).model)
    model = transformers.AutoModel.from_pretrained(tiny_hf_model).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(tiny_hf_model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_hf_model)
    image = Image.new("RGB", (40, 30), "red")
    pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
    assert torch.equal(encoder.image_transform(image), pixels[0])
    texts = ["a red square", "two blue circles on the left"]
    siglip = model.config.model_type == "siglip"
    tokens = tokenizer(texts, padding="max_length" if siglip else True, max_length=24, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        expected_text = model.get_text_features(input_ids=tokens["input_ids"],
                                                **({} if siglip else {"attention_mask": tokens["attention_mask"]}))
        expected_image = model.get_image_features(pixel_values=pixels)
        got_text = encoder.encode_text(encoder.tokenize(texts))
        got_image = encoder.encode_image(pixels)
    expected_text = getattr(expected_text, "pooler_output", expected_text)
    expected_image = getattr(expected_image, "pooler_output", expected_image)
    torch.testing.assert_close(got_text, expected_text)
    torch.testing.assert_close(got_image, expected_image)
    assert encoder.info.adapter == "hf_clip" and encoder.info.n_parameters == sum(p.numel() for p in model.parameters())
    assert len(encoder.info.sha256) == 64


def test_hf_clip_retrieval_run(tiny_hf_model: Path, coco_dataset: Path, tmp_path: Path) -> None:
    cfg = validate_mapping({
        "model": {"type": "hf_clip", "checkpoint": str(tiny_hf_model)},
        "benchmarks": [{"name": "coco", "task": "retrieval",
                        "data": {"format": "coco", "annotations": str(coco_dataset),
                                 "images": str(coco_dataset.parent / "val2014")}}],
        "runtime": {"device": "cpu", "batch_size": 16, "num_workers": 0},
        "output": {"dir": str(tmp_path)},
    })
    outcome = run_config(cfg)
    validate_report(outcome.report)
    bench = outcome.report["benchmarks"]["coco"]
    assert bench["status"] == "complete" and bench["dataset"]["n_images"] == 40
    assert 0.0 <= bench["metrics"]["t2i_R@10"]["value"] <= 1.0
    assert outcome.report["model"]["extra"]["model_type"] == tiny_hf_model.name


def test_not_a_dual_encoder_is_refused(tmp_path: Path) -> None:
    from mmeval.errors import ModelLoadError

    folder = tmp_path / "bert"
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32)
    transformers.BertModel(config).save_pretrained(folder)
    write_tiny_clip_tokenizer(folder).save_pretrained(folder)
    transformers.CLIPImageProcessor().save_pretrained(folder)
    cfg = validate_mapping({"model": {"type": "hf_clip", "checkpoint": str(folder)},
                            "benchmarks": [{"name": "b", "task": "retrieval", "data": {"format": "shapes"}}]})
    with pytest.raises(ModelLoadError, match="not an image-text dual encoder"):
        resolve("model type", "hf_clip", MODELS)(cfg.model)


@pytest.mark.parametrize("damage", ["config", "weights"])
def test_weights_that_do_not_fit_are_refused(tmp_path: Path, damage: str) -> None:
    """A partly random model must never be evaluated: transformers would only warn."""
    from mmeval.errors import ModelLoadError

    folder = save_tiny(tmp_path / "clip", "clip")
    damage_checkpoint(folder, damage, {"projection_dim": lambda _: 24}, "text_projection.weight")
    expected = {
        "config": r"do not fit its config.json: size mismatch for .*projection.weight: checkpoint \(16, 32\), "
        r"config \(24, 32\)",
        "weights": "do not fit its config.json: missing key text_projection.weight",
    }[damage]
    cfg = validate_mapping({"model": {"type": "hf_clip", "checkpoint": str(folder)},
                            "benchmarks": [{"name": "b", "task": "retrieval", "data": {"format": "shapes"}}]})
    with pytest.raises(ModelLoadError, match=expected):
        resolve("model type", "hf_clip", MODELS)(cfg.model)
