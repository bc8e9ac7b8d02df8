"""The reference model's captioning decoder: capabilities, decoding rules (checked against brute force on a tiny
model), batch independence, and the shipped checkpoint's captions of held-out scenes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel

from mmeval.data.shapes import COLORS, KIND_WORDS, load_shapes, render_scene, split_scene
from mmeval.errors import MmevalError
from mmeval.models.base import Captioner, GenerationSettings, ImageTextEncoder, capabilities_of
from mmeval.models.reference import load, load_folder, save_reference
from mmeval.models.reference_arch import BOS, EOS, PAD, SPECIAL_TOKENS, UNK, ReferenceCLIP, ReferenceConfig
from mmeval.models.reference_decoder import Search, beam_search, greedy

WORDS = ["red", "circle", "blue"]  # 3 words + [EOS]: every caption of <= 3 tokens can be enumerated
VOCAB = [*SPECIAL_TOKENS, *WORDS]


class ModelCfg(BaseModel):  # the run config's model section, as the registry passes it
    checkpoint: Path | None = None
    name: str | None = None


def tiny_config(**overrides) -> ReferenceConfig:
    sizes = {"image_size": 16, "patch_size": 8, "width": 32, "layers": 1, "heads": 2, "embed_dim": 16}
    text = {"text_width": 32, "text_layers": 1, "text_heads": 2, "context_length": 8}
    decoder = {"decoder_layers": 2, "decoder_width": 16, "decoder_heads": 2, "decoder_context_length": 8}
    return ReferenceConfig(**{"vocab": VOCAB, **sizes, **text, **decoder, **overrides})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A random tiny captioner, its output head and image path scaled up so that captions depend on the image
    and sequences have clearly different scores."""
    torch.manual_seed(0)
    module = ReferenceCLIP(tiny_config()).eval()
    with torch.no_grad():
        module.decoder.head.weight.mul_(4.0)
        module.decoder.memory_proj.weight.mul_(4.0)
        for layer in module.decoder.layers:
            layer.cross_attn.out_proj.weight.mul_(4.0)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-captioner"
    save_reference(module, folder)
    return folder


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(40, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def settings(**kwargs) -> GenerationSettings:
    return GenerationSettings(**{"max_new_tokens": 3, **kwargs})


# --- capabilities and errors -----------------------------------------------------------------------------


def test_checkpoint_with_decoder_is_encoder_and_captioner(tiny):
    model = load(ModelCfg(checkpoint=tiny))
    assert capabilities_of(model) == {"image_text_encoder", "captioner"}
    assert isinstance(model, Captioner) and isinstance(model, ImageTextEncoder)


def test_checkpoint_without_decoder_is_only_an_encoder_and_refuses_to_caption(tmp_path, pixels):
    folder = tmp_path / "encoder-only"
    save_reference(ReferenceCLIP(tiny_config(decoder_layers=0)), folder)
    config = json.loads((folder / "config.json").read_text())
    old = {k: v for k, v in config.items() if not k.startswith("decoder_")}  # as written before the decoder
    (folder / "config.json").write_text(json.dumps(old))
    model = load_folder(folder)
    assert model.module.decoder is None and not any("decoder" in k for k in model.module.state_dict())
    assert capabilities_of(model) == {"image_text_encoder"}
    with pytest.raises(MmevalError, match="encoder-only.*cannot caption.*no decoder"):
        model.generate(pixels[:2], settings())


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"prompt": "a photo of"}, "does not take a prompt"),
        ({"num_beams": 0}, "num_beams must be at least 1, got 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1, got 0"),
    ],
)
def test_unsupported_generation_settings_are_clear_errors(tiny, pixels, change, fragment):
    with pytest.raises(MmevalError, match=fragment):
        load_folder(tiny).generate(pixels[:2], settings(**change))


def test_decoder_config_problems_are_listed():
    assert "decoder_width 16 is not divisible by decoder_heads 3" in tiny_config(decoder_heads=3).problems()
    assert tiny_config(decoder_layers=-1).problems() == ["decoder_layers must be 0 (no captioning decoder) or more"]
    assert tiny_config(decoder_layers=0, decoder_heads=3).problems() == []  # unused settings are not checked


# --- decoding rules on the tiny model ----------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_captions(tiny, tmp_path, pixels):
    model = load_folder(tiny)
    save_reference(model.module, tmp_path / "again")
    again = load_folder(tmp_path / "again")
    for beams in (1, 3):
        assert again.generate(pixels, settings(num_beams=beams)) == model.generate(pixels, settings(num_beams=beams))


@pytest.mark.parametrize("beams", [1, 2, 5])
def test_a_caption_does_not_depend_on_the_rest_of_the_batch(tiny, pixels, beams):
    model = load_folder(tiny)
    batch = model.generate(pixels[:32], settings(num_beams=beams))
    alone = [model.generate(pixels[i : i + 1], settings(num_beams=beams))[0] for i in range(32)]
    shuffled = model.generate(pixels[:32].flip(0), settings(num_beams=beams))[::-1]
    assert batch == alone == shuffled
    assert len(set(batch)) > 5  # the images really get different captions


@torch.no_grad()
def _sequence_scores(module: ReferenceCLIP, pixels: torch.Tensor, max_new: int, min_new: int) -> dict:
    """Every caption of <= max_new tokens -> (sum of log-probs, length), from teacher-forced full passes."""
    image_tokens = module.visual.tokens(pixels[None])
    words = [VOCAB.index(w) for w in WORDS]
    candidates = [(*seq, EOS) for n in range(max_new) for seq in itertools.product(words, repeat=n)]
    candidates += list(itertools.product(words, repeat=max_new))  # cut at max_new, no [EOS]
    scores = {}
    for seq in candidates:
        if EOS in seq and seq.index(EOS) < min_new:
            continue
        logits = module.caption_logits(image_tokens, torch.tensor([[BOS, *seq[:-1]]]))[0]
        logits[:, [PAD, UNK, BOS]] = -torch.inf
        logprobs = logits.log_softmax(dim=-1)
        scores[seq] = (sum(logprobs[i, t].item() for i, t in enumerate(seq)), len(seq))
    return scores


@pytest.mark.parametrize("min_new", [0, 2])
def test_wide_beam_search_finds_the_brute_force_best_caption(tiny, pixels, min_new):
    """With more beams than continuations, beam search is exhaustive: its caption must be the best of all
    captions under sum(log p) / length**length_penalty, and length_penalty must change which one that is."""
    model = load_folder(tiny)
    chosen_by_penalty = set()
    for image in range(4):
        scores = _sequence_scores(model.module, pixels[image], 3, min_new)
        for penalty in (-1.0, 0.0, 1.0, 3.0):
            ranked = sorted(scores, key=lambda s: scores[s][0] / scores[s][1] ** penalty, reverse=True)
            best, second = (scores[s][0] / scores[s][1] ** penalty for s in ranked[:2])
            assert best - second > 1e-4  # no near-tie: the check is meaningful
            expected = " ".join(VOCAB[t] for t in ranked[0] if t != EOS)
            got = model.generate(pixels[image : image + 1], settings(num_beams=64, length_penalty=penalty,
                                                                    min_new_tokens=min_new))  # fmt: skip
            assert got == [expected], (image, penalty)
            chosen_by_penalty.add((image, expected))
    if min_new == 0:  # (with min_new 2 every candidate has 3 tokens, so the penalty cannot matter)
        assert len(chosen_by_penalty) > 4  # some image's best caption changes with the length penalty


@pytest.mark.parametrize("penalty", [0.0, 1.0, 2.0])
def test_beam_search_with_one_beam_is_greedy(tiny, pixels, penalty):
    module = load_folder(tiny).module
    with torch.no_grad():
        image_tokens = module.visual.tokens(pixels)
    search = Search(BOS, EOS, (PAD, UNK, BOS), max_new_tokens=6, num_beams=1, length_penalty=penalty)
    assert torch.equal(beam_search(module.decoder, image_tokens, search), greedy(module.decoder, image_tokens, search))


@pytest.mark.parametrize("beams", [1, 3])
def test_min_and_max_new_tokens_bound_the_caption_length(tiny, pixels, beams):
    model = load_folder(tiny)
    free = model.generate(pixels, settings(max_new_tokens=7, num_beams=beams))
    assert min(len(c.split()) for c in free) < 4  # without a minimum some captions are short...
    longer = model.generate(pixels, settings(max_new_tokens=7, min_new_tokens=4, num_beams=beams))
    assert min(len(c.split()) for c in longer) >= 4  # ...with one, none is
    capped = model.generate(pixels, settings(max_new_tokens=2, num_beams=beams))
    assert max(len(c.split()) for c in capped) == 2
    if beams == 1:  # greedy: a cap cuts the uncapped caption
        assert capped == [" ".join(c.split()[:2]) for c in free]


def test_max_new_tokens_is_capped_by_the_decoder_positions(tiny, pixels):
    model = load_folder(tiny)  # decoder_context_length 8: [BOS] + at most 7 generated tokens
    long = model.generate(pixels, settings(max_new_tokens=50, min_new_tokens=50))
    assert {len(c.split()) for c in long} == {7}


# --- the shipped checkpoint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load(ModelCfg())


@pytest.fixture(scope="module")
def held_out(demo) -> torch.Tensor:
    data = load_shapes("test", n_images=32, seed=0)
    return torch.stack([demo.image_transform(data.images.load(i)[1]) for i in range(32)])


def test_shipped_model_is_an_encoder_a_captioner_and_an_answerer(demo):
    assert capabilities_of(demo) == {"image_text_encoder", "captioner", "answerer"}
    assert demo.info.extra["decoder_layers"] > 0


@pytest.mark.parametrize("beams", [1, 3])
def test_shipped_model_captions_do_not_depend_on_the_batch(demo, held_out, beams):
    """Batch 1 = batch 32 = odd chunks, bit for bit (the padding of reference.py keeps the CPU kernels alike)."""
    settings = GenerationSettings(num_beams=beams)
    batch = demo.generate(held_out, settings)
    alone = [demo.generate(held_out[i : i + 1], settings)[0] for i in range(12)]
    chunks = [c for part in held_out.split([2, 5, 25]) for c in demo.generate(part, settings)]
    assert batch[:12] == alone and batch == chunks
    assert len(set(batch)) > 20


def test_shipped_model_beam_search_with_one_beam_is_greedy(demo, held_out):
    with torch.no_grad():
        image_tokens = demo.module.visual.tokens(held_out)
    search = Search(BOS, EOS, (PAD, UNK, BOS), max_new_tokens=30, num_beams=1)
    memory = demo.module.caption_memory(image_tokens)
    assert torch.equal(beam_search(demo.module.decoder, memory, search), greedy(demo.module.decoder, memory, search))


def test_shipped_model_names_colour_and_shape_of_one_shape_scenes(demo):
    """A real quality check on 250 held-out one-shape scenes: the colour is (almost) always right and colour +
    kind are right for most. The kind is the weak part: the model confuses circle / square and triangle / star
    (it knows about 55% of kinds, chance is 20%; see the training script's notes)."""
    scenes = [s for s in (split_scene("test", 0, i) for i in range(1500)) if len(s.shapes) == 1][:250]
    pixels = torch.stack([demo.image_transform(render_scene(s)) for s in scenes])
    captions = demo.generate(pixels, GenerationSettings())
    colour_hits = both_hits = 0
    for scene, caption in zip(scenes, captions):
        shape, words = scene.shapes[0], caption.split()
        colour_ok = shape.color in words and not (set(COLORS) - {shape.color}) & set(words)
        kind_ok = any(w.split()[0] in words for w in KIND_WORDS[shape.kind])  # any synonym ("plus sign": "plus")
        colour_hits += colour_ok
        both_hits += colour_ok and kind_ok
    assert len(scenes) == 250
    assert colour_hits >= 0.95 * len(scenes), list(zip(scenes, captions))
    assert both_hits > 0.5 * len(scenes), list(zip(scenes, captions))  # shipped model: 136 of 250
