"""The reference dual encoder: checkpoint round trip, strict loading, tokenizer, and the shipped demo model.

The captioning decoder has its own tests in test_reference_captioner.py."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel

from mmeval.data.shapes import Scene, Shape, load_shapes, render_scene, scene_captions
from mmeval.errors import ModelLoadError
from mmeval.models.base import ImageTextEncoder, count_parameters, sha256_of_path
from mmeval.models.reference import DEMO_CHECKPOINT, load, load_folder, load_reference_module, save_reference
from mmeval.models.reference_arch import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, ReferenceCLIP, ReferenceConfig

VOCAB = [*SPECIAL_TOKENS, "red", "circle", "blue", "square"]


class ModelCfg(BaseModel):  # the shape of the run config's model section, as the registry passes it
    checkpoint: Path | None = None
    name: str | None = None


def tiny_config(**overrides) -> ReferenceConfig:
    sizes = {"image_size": 16, "patch_size": 8, "width": 32, "layers": 1, "heads": 2, "embed_dim": 16}
    text = {"text_width": 32, "text_layers": 1, "text_heads": 2, "context_length": 8}
    return ReferenceConfig(**{"vocab": VOCAB, **sizes, **text, **overrides})


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[ReferenceCLIP, Path]:
    torch.manual_seed(0)
    module = ReferenceCLIP(tiny_config()).eval()
    folder = tmp_path / "tiny-clip"
    save_reference(module, folder)
    return module, folder


@torch.no_grad()
def test_save_load_round_trip_gives_identical_embeddings(tiny):
    module, folder = tiny
    encoder = load_folder(folder)
    pixels = torch.randn(3, 3, 16, 16)
    tokens = encoder.tokenize(["red circle", "blue square red", "square"])
    assert torch.equal(encoder.encode_image(pixels), module.encode_image(pixels))
    assert torch.equal(encoder.encode_text(tokens), module.encode_text(tokens))
    assert encoder.encode_image(pixels).shape == (3, 16)
    assert encoder.module.logit_scale.item() == module.logit_scale.item()


@torch.no_grad()
def test_half_precision_checkpoint_loads_as_float32(tmp_path, tiny):
    module, _ = tiny
    save_reference(module, tmp_path / "half", dtype=torch.float16)
    loaded, config = load_reference_module(tmp_path / "half")
    assert config == module.config
    for (name, original), (_, restored) in zip(module.state_dict().items(), loaded.state_dict().items()):
        assert restored.dtype == torch.float32, name
        assert torch.equal(restored, original.half().float()), name


def test_adapter_reports_its_checkpoint(tiny):
    module, folder = tiny
    encoder = load(ModelCfg(checkpoint=folder))
    assert isinstance(encoder, ImageTextEncoder)
    assert encoder.info.adapter == "reference" and encoder.info.name == "tiny-clip"
    assert encoder.info.checkpoint == str(folder)
    assert encoder.info.sha256 == sha256_of_path(folder)
    assert encoder.info.n_parameters == count_parameters(module) > 0
    assert load(ModelCfg(checkpoint=folder, name="mine")).info.name == "mine"


def test_tokenizer_lowercases_marks_unknown_words_pads_and_truncates(tiny):
    encoder = load_folder(tiny[1])
    red, circle, blue, square = 4, 5, 6, 7
    tokens = encoder.tokenize(["Red CIRCLE, zebra!", "", "red blue square circle red blue square circle"])
    assert tokens.dtype == torch.long and tokens.shape == (3, 8)
    assert tokens[0].tolist() == [BOS, red, circle, UNK, EOS, PAD, PAD, PAD]
    assert tokens[1].tolist() == [BOS, EOS] + [PAD] * 6
    assert tokens[2].tolist() == [BOS, red, blue, square, circle, red, blue, EOS]  # cut to fit [EOS]


@torch.no_grad()
def test_padding_does_not_change_the_text_embedding(tiny):
    encoder = load_folder(tiny[1])
    tokens = encoder.tokenize(["red circle"])
    assert torch.allclose(encoder.encode_text(tokens), encoder.encode_text(tokens[:, :4]), atol=1e-5)


def test_image_transform_converts_resizes_and_normalises(tiny):
    encoder = load_folder(tiny[1])
    transform = pickle.loads(pickle.dumps(encoder.image_transform))
    white_gray = Image.new("L", (40, 30), 255)
    pixels = transform(white_gray)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 16, 16)
    expected = (1.0 - 0.5) / 0.25  # the config's default mean / std
    assert torch.allclose(pixels, torch.full_like(pixels, expected))


def test_weights_that_do_not_fit_the_config_name_the_files(tmp_path):
    folder = tmp_path / "misfit"
    save_reference(ReferenceCLIP(tiny_config(width=32)), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "width": 64}))
    with pytest.raises(ModelLoadError) as info:
        load_folder(folder)
    message = str(info.value)
    assert "\n" not in message
    assert str(folder / "model.safetensors") in message and str(folder / "config.json") in message
    assert "visual.class_embedding has shape (32,), the config expects (64,)" in message
    assert "visual.patch_embed.weight has shape (32, 3, 8, 8), the config expects (64, 3, 8, 8)" in message
    assert "more)" in message  # the first few misfits, then a count


def test_missing_and_unexpected_weights_are_reported(tmp_path):
    folder = tmp_path / "layers"
    save_reference(ReferenceCLIP(tiny_config(layers=2)), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "layers": 1}))
    with pytest.raises(ModelLoadError, match=r"visual\.transformer\.layers\.1\.\S+ is not part of the architecture"):
        load_folder(folder)


def test_corrupt_weights_raise_model_load_error(tiny):
    _, folder = tiny
    (folder / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file" * 10)
    with pytest.raises(ModelLoadError, match=r"cannot read reference weights .*model\.safetensors"):
        load_folder(folder)


@pytest.mark.parametrize(
    "config_text, fragment",
    [
        (None, "config.json does not exist"),
        ("{not json", "cannot read reference config"),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "colour": 1}', "unknown key(s): colour"),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "width": "wide"}', "wrong type for: width"),
        ('{"vocab": ["a", "b"]}', "vocab must start with"),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "patch_size": 0}', "patch_size must be at least 1"),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "heads": 3}', "width 128 is not divisible by heads 3"),
        (
            '{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "decoder_layers": 2, "decoder_heads": 3}',
            "decoder_width 128 is not divisible by decoder_heads 3",
        ),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "decoder_layers": true}', "wrong type for: decoder_layers"),
        ('{"vocab": ["[PAD]", "[UNK]", "[BOS]", "[EOS]"], "conv_stem": 4}', "conv_stem 4 needs patch_size 8 divisible"),
    ],
)
def test_bad_config_raises_model_load_error(tiny, config_text, fragment):
    _, folder = tiny
    if config_text is None:
        (folder / "config.json").unlink()
    else:
        (folder / "config.json").write_text(config_text)
    with pytest.raises(ModelLoadError, match="config.json") as info:
        load_folder(folder)
    assert fragment in str(info.value)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        load(ModelCfg(checkpoint=tmp_path / "nowhere"))


# --- the shipped demo checkpoint (a real check of the trained model) -----------------------------------


@pytest.fixture(scope="module")
def demo():
    return load(ModelCfg())


def test_demo_checkpoint_is_small_and_loads_by_default(demo):
    assert demo.info.checkpoint == str(DEMO_CHECKPOINT) and demo.info.name == "shapes-clip"
    assert sum(p.stat().st_size for p in DEMO_CHECKPOINT.iterdir()) <= 4 * 2**20
    assert all(p.dtype == torch.float32 for p in demo.module.parameters())


@torch.no_grad()
def _embed(encoder, images: list[Image.Image], texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.stack([encoder.image_transform(image) for image in images])
    image_emb = F.normalize(encoder.encode_image(pixels), dim=-1)
    text_emb = F.normalize(encoder.encode_text(encoder.tokenize(texts)), dim=-1)
    return image_emb, text_emb


def test_demo_model_matches_a_scene_to_its_own_captions(demo):
    a = Scene((Shape("circle", "red", "large", 1, 1, 0.0, 0.0),), "white")
    b = Scene(
        (Shape("star", "blue", "small", 0, 2, 0.01, 0.0), Shape("square", "yellow", "large", 2, 0, 0.0, -0.01)),
        "black",
    )
    image_emb, text_emb = _embed(demo, [render_scene(a), render_scene(b)], scene_captions(a) + scene_captions(b))
    sims = image_emb @ text_emb.T  # (2 images, 10 captions)
    assert (sims[0, :5] > sims[0, 5:].max()).all()  # every caption of a beats every caption of b
    assert (sims[1, 5:] > sims[1, :5].max()).all()


def test_demo_model_retrieves_held_out_scenes_far_above_chance(demo):
    data = load_shapes("test", n_images=100, seed=0)
    images = [data.images.load(i)[1] for i in range(100)]
    image_emb, text_emb = _embed(demo, images, data.texts)
    top1 = (text_emb @ image_emb.T).argmax(dim=1)
    recall_at_1 = (top1 == torch.tensor(data.text_image_index)).float().mean().item()
    assert recall_at_1 > 0.3  # chance is 0.01
