"""Tiny random transformers captioners (BLIP, GIT, ViT+GPT-2, ViT+BERT, LLaVA), built offline, saved with
save_pretrained and loaded through the hf_captioner adapter; compared with calling transformers directly."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, capabilities_of
from mmeval.models.hf_captioner import HFCaptioner, load

transformers = pytest.importorskip("transformers")

from tiny_hf import FAMILIES, noise_images, save_blip, save_clip
from tiny_hf import damage as damage_checkpoint  # builds with transformers: after the skip

PROMPT = "USER: <image>\nDescribe the image. ASSISTANT:"
DIRECT_CLASS = {  # the class each family must load as, used for the direct reference calls
    "blip": "BlipForConditionalGeneration",
    "git": "GitForCausalLM",
    "vit-gpt2": "VisionEncoderDecoderModel",
    "vit-bert": "VisionEncoderDecoderModel",
    "llava": "LlavaForConditionalGeneration",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run ~20x faster on one thread than on two contended ones (thread hand-offs dominate)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(folder: Path) -> HFCaptioner:
    return load(SimpleNamespace(checkpoint=folder, name=None))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Callable[[str], tuple[Path, HFCaptioner]]:
    """family -> (saved folder, captioner loaded from it); each family is built once per module."""
    cache: dict[str, tuple[Path, HFCaptioner]] = {}

    def get(family: str) -> tuple[Path, HFCaptioner]:
        if family not in cache:
            folder = FAMILIES[family](tmp_path_factory.mktemp("captioners") / family)
            cache[family] = folder, _load(folder)
        return cache[family]

    return get


def _settings(captioner: HFCaptioner, **kwargs) -> GenerationSettings:
    return GenerationSettings(prompt=PROMPT if captioner.needs_prompt else None, **kwargs)


def _pixels(captioner: HFCaptioner, images) -> torch.Tensor:
    return torch.stack([captioner.image_transform(image) for image in images])


def _direct_captions(folder: Path, family: str, images, max_new_tokens: int, num_beams: int) -> list[str]:
    """What a user would write with transformers alone: the family's class, processor and generate()."""
    model = getattr(transformers, DIRECT_CLASS[family]).from_pretrained(folder).eval()
    decoding = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": False}
    if family.startswith("vit-"):
        pixels = transformers.ViTImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        with torch.no_grad():
            out = model.generate(pixel_values=pixels["pixel_values"], **decoding)
        return [text.strip() for text in tokenizer.batch_decode(out, skip_special_tokens=True)]
    processor = transformers.AutoProcessor.from_pretrained(folder)
    if family == "llava":
        inputs = processor(text=[PROMPT] * len(images), images=images, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, **decoding)[:, inputs["input_ids"].shape[1]:]
    else:
        inputs = processor(images=images, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(pixel_values=inputs["pixel_values"], **decoding)
    return [text.strip() for text in processor.batch_decode(out, skip_special_tokens=True)]


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("num_beams", [1, 3])
def test_captions_equal_the_model_own(built, family: str, num_beams: int) -> None:
    """One string per image, exactly what the model's own processor + generate() give, and not all equal."""
    folder, captioner = built(family)
    images = noise_images(4)
    captions = captioner.generate(_pixels(captioner, images), _settings(captioner, max_new_tokens=8,
                                                                          num_beams=num_beams))
    assert isinstance(captions, list) and len(captions) == 4 and all(isinstance(c, str) for c in captions)
    assert captions == _direct_captions(folder, family, images, max_new_tokens=8, num_beams=num_beams)
    assert len(set(captions)) > 1, "the tiny model ignores its image: the comparison would prove little"
    assert type(captioner.module).__name__ == DIRECT_CLASS[family]
    assert capabilities_of(captioner) == ({"captioner", "answerer"} if family == "llava" else {"captioner"})


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("num_beams", [1, 3])
def test_captions_do_not_depend_on_the_batch(built, family: str, num_beams: int) -> None:
    _, captioner = built(family)
    pixels = _pixels(captioner, noise_images(8, seed=1))
    settings = _settings(captioner, max_new_tokens=10, num_beams=num_beams)
    batched = captioner.generate(pixels, settings)
    alone = [captioner.generate(pixels[i : i + 1], settings)[0] for i in range(len(pixels))]
    assert batched == alone
    assert len(set(batched)) > 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_token_budget_is_respected(built, family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_new_tokens caps and min_new_tokens forces the number of generated tokens (counted on the ids)."""
    _, captioner = built(family)
    real_generate, calls = captioner.module.generate, []

    def spy(**kwargs):
        out = real_generate(**kwargs)
        prefix = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else 1  # prompt, or the start token
        calls.append(out[:, prefix:])
        return out

    monkeypatch.setattr(captioner.module, "generate", spy)
    pixels = _pixels(captioner, noise_images(3))
    eos = captioner.module.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    for minimum in (0, 3):
        captioner.generate(pixels, _settings(captioner, max_new_tokens=3, min_new_tokens=minimum))
        new = calls[-1]
        assert new.shape[1] <= 3
        if minimum:
            assert new.shape[1] == 3 and not any(int(t) in eos for t in new.flatten())


def test_image_transform_pickles_and_info_is_recorded(built) -> None:
    folder, captioner = built("git")
    image = noise_images(1)[0]
    restored = pickle.loads(pickle.dumps(captioner.image_transform))
    assert torch.equal(restored(image), captioner.image_transform(image))
    info = captioner.info
    assert info.adapter == "hf_captioner" and info.name == folder.name and len(info.sha256) == 64
    assert info.extra["model_type"] == "git" and info.extra["architectures"] == ["GitForCausalLM"]
    assert info.n_parameters == sum(p.numel() for p in captioner.module.parameters())


def test_prompt_rules(built) -> None:
    _, llava = built("llava")
    _, blip = built("blip")
    pixels = _pixels(llava, noise_images(1))
    with pytest.raises(MmevalError, match="needs a prompt"):
        llava.generate(pixels, GenerationSettings())
    with pytest.raises(MmevalError, match="image placeholder '<image>'"):
        llava.generate(pixels, GenerationSettings(prompt="Describe the image."))
    with pytest.raises(MmevalError, match="takes no prompt"):
        blip.generate(_pixels(blip, noise_images(1)), GenerationSettings(prompt=PROMPT))


@pytest.mark.parametrize("damage", ["config", "weights"])
def test_weights_that_do_not_fit_are_refused(built, tmp_path: Path, damage: str) -> None:
    """A partly random captioner must never be evaluated: transformers would only warn."""
    folder = Path(shutil.copytree(built("git")[0], tmp_path / "git"))
    damage_checkpoint(folder, damage, {"vocab_size": lambda n: n + 1}, "output.weight")
    expected = {"config": r"do not fit its config.json: size mismatch for .*: checkpoint \(\d+(, 32)?\), config",
                "weights": "do not fit its config.json: missing key output.weight"}[damage]
    with pytest.raises(ModelLoadError, match=expected):
        _load(folder)


def test_a_model_that_cannot_caption_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"holds a 'clip' model \(CLIPModel\), which cannot generate captions"):
        _load(save_clip(tmp_path / "clip"))
    retrieval = save_blip(tmp_path / "blip-itm", head="BlipForImageTextRetrieval")
    with pytest.raises(ModelLoadError, match="not the captioning model BlipForConditionalGeneration"):
        _load(retrieval)
    with pytest.raises(ModelLoadError, match="not a save_pretrained folder"):
        _load(tmp_path / "missing")


def test_prompted_model_without_processor_is_refused(built, tmp_path: Path) -> None:
    """Image processor and tokenizer saved separately: the processor rebuilt from them lacks its patch size."""
    saved, captioner = built("llava")
    folder = Path(shutil.copytree(saved, tmp_path / "llava"))
    (folder / "processor_config.json").unlink()
    captioner.image_transform.image_processor.save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="cannot place an image in a prompt .*TypeError"):
        _load(folder)
