"""The plugin adapter: a user's module written to tmp_path, named by `entry`, imported only on load."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, capabilities_of, sha256_of_path
from mmeval.models.plugin import load

PLUGIN = '''
import torch
from mmeval.models.base import ModelInfo

received = {}


def to_pixels(image):
    return torch.zeros(3, 4, 4) + image.size[0]


class Encoder:
    def __init__(self, dim):
        self.module = torch.nn.Linear(3, dim)
        self.image_transform = to_pixels

    def tokenize(self, texts):
        return torch.tensor([[float(len(t))] for t in texts])

    def encode_image(self, pixels):
        return self.module(pixels.mean(dim=(2, 3)))

    def encode_text(self, tokens):
        return tokens.repeat(1, self.module.out_features)


class Captioner:
    def __init__(self):
        self.module = torch.nn.Linear(2, 2)
        self.image_transform = to_pixels
        self.info = ModelInfo(adapter="mine", name="my-captioner", checkpoint=None, sha256=None, n_parameters=6)

    def generate(self, pixels, settings):
        return [f"caption {i} of {settings.max_new_tokens}" for i in range(len(pixels))]


class Both(Encoder, Captioner):
    def __init__(self):
        Encoder.__init__(self, 2)

    generate = Captioner.generate


class Foo:
    module = torch.nn.Linear(1, 1)

    def encode_image(self, pixels):
        return pixels


class Liar(Encoder):
    capabilities = ("captioner",)


class Unknown(Encoder):
    capabilities = ("segmenter",)


def make_encoder(checkpoint=None, dim=8):
    received.update(checkpoint=checkpoint, dim=dim)
    return Encoder(dim)


def make_captioner():
    return Captioner()


def make_both():
    return Both()


def make_foo():
    return Foo()


def make_liar():
    return Liar(2)


def make_unknown():
    return Unknown(2)


def make_raising():
    raise RuntimeError("weights.bin not found\\nsecond line of detail")


not_a_factory = 3
'''


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Plugin modules on sys.path (and out of sys.modules again afterwards)."""
    (tmp_path / "good_plugin.py").write_text(PLUGIN)
    (tmp_path / "needs_dep_plugin.py").write_text("import not_installed_dependency\n")
    (tmp_path / "broken_plugin.py").write_text("raise ValueError('bad setting\\nmore')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("good_plugin", "needs_dep_plugin", "broken_plugin"):
        sys.modules.pop(name, None)


def _cfg(entry: str, checkpoint: Path | None = None, name: str | None = None, **options) -> SimpleNamespace:
    return SimpleNamespace(entry=entry, checkpoint=checkpoint, options=options, name=name)


def test_module_is_imported_only_on_load(plugins: Path) -> None:
    assert "good_plugin" not in sys.modules
    load(_cfg("good_plugin:make_captioner"))
    assert "good_plugin" in sys.modules


def test_encoder_gets_checkpoint_options_and_a_default_info(plugins: Path) -> None:
    checkpoint = plugins / "weights.bin"
    checkpoint.write_bytes(b"\x00" * 10)
    model = load(_cfg("good_plugin:make_encoder", checkpoint=checkpoint, dim=4))
    assert sys.modules["good_plugin"].received == {"checkpoint": checkpoint, "dim": 4}
    assert capabilities_of(model) == {"image_text_encoder"}
    info = model.info
    assert (info.adapter, info.name, info.checkpoint) == ("plugin", "good_plugin:make_encoder", str(checkpoint))
    assert info.sha256 == sha256_of_path(checkpoint) and info.n_parameters == 3 * 4 + 4
    assert info.extra == {"entry": "good_plugin:make_encoder", "options": {"dim": 4}}
    pixels = model.image_transform(Image.new("RGB", (5, 5)))[None]
    assert model.encode_image(pixels).shape == (1, 4)


def test_captioner_keeps_its_own_info(plugins: Path) -> None:
    model = load(_cfg("good_plugin:make_captioner"))
    assert capabilities_of(model) == {"captioner"}
    assert (model.info.adapter, model.info.name) == ("mine", "my-captioner")
    assert model.generate(torch.zeros(2, 3, 4, 4), GenerationSettings(max_new_tokens=5)) == ["caption 0 of 5",
                                                                                             "caption 1 of 5"]
    renamed = load(_cfg("good_plugin:make_captioner", name="label"))
    assert (renamed.info.adapter, renamed.info.name) == ("mine", "label")


def test_both_capabilities(plugins: Path) -> None:
    model = load(_cfg("good_plugin:make_both"))
    assert capabilities_of(model) == {"image_text_encoder", "captioner"}
    assert model.info.checkpoint is None and model.info.sha256 is None


def test_object_without_capability_is_refused_with_what_it_lacks(plugins: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load(_cfg("good_plugin:make_foo"))
    assert str(caught.value) == (
        "plugin good_plugin:make_foo returned a Foo, which is neither "
        "an image_text_encoder (needs info, module, image_transform, tokenize, encode_image, encode_text; "
        "lacks image_transform, tokenize, encode_text) "
        "nor a captioner (needs info, module, image_transform, generate; lacks image_transform, generate) "
        "nor an answerer (needs info, module, image_transform, answer; lacks image_transform, answer) "
        "nor an audio_text_encoder (needs info, module, sample_rate, tokenize, encode_text, encode_audio; "
        "lacks sample_rate, tokenize, encode_text, encode_audio) "
        "nor a speech_recognizer (needs info, module, sample_rate, transcribe; lacks sample_rate, transcribe) "
        "nor an audio_captioner (needs info, module, sample_rate, generate_audio; lacks sample_rate, generate_audio) "
        "nor a spoken_answerer (needs info, module, image_transform, sample_rate, answer_spoken; lacks "
        "image_transform, sample_rate, answer_spoken); a video model is model.type: video_plugin"
    )


def test_declared_capabilities_are_checked(plugins: Path) -> None:
    with pytest.raises(ModelLoadError, match="declares capability 'captioner' but lacks generate"):
        load(_cfg("good_plugin:make_liar"))
    with pytest.raises(ModelLoadError, match="unknown capability 'segmenter'"):
        load(_cfg("good_plugin:make_unknown"))


@pytest.mark.parametrize(("entry", "expected"), [
    ("no_such_plugin:make", (r"cannot import no_such_plugin for plugin no_such_plugin:make: no module named "
                             r"'no_such_plugin' \(is it installed, or on PYTHONPATH\?\)")),
    ("needs_dep_plugin:make", (r"importing needs_dep_plugin for plugin needs_dep_plugin:make failed "
                               r"\(ModuleNotFoundError: No module named 'not_installed_dependency'\)")),
    ("broken_plugin:make", r"importing broken_plugin .* failed \(ValueError: bad setting\)"),
    ("good_plugin:make_encodr", r"module good_plugin has no attribute 'make_encodr'. Did you mean 'make_encoder'\?"),
    ("good_plugin:not_a_factory", "good_plugin:not_a_factory is a int, not a callable factory"),
    ("good_plugin", r"'good_plugin' is not of the form 'package.module:factory'"),
    ("good_plugin:make_raising", r"^plugin good_plugin:make_raising raised RuntimeError: weights.bin not found$"),
])
def test_load_errors_are_one_line(plugins: Path, entry: str, expected: str) -> None:
    with pytest.raises(ModelLoadError, match=expected) as caught:
        load(_cfg(entry))
    assert len(caught.value.lines()) == 1


def test_factory_rejecting_an_option_is_reported(plugins: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"raised TypeError: .*unexpected keyword argument 'colour'"):
        load(_cfg("good_plugin:make_captioner", colour="red"))
    checkpoint = plugins / "w.bin"
    checkpoint.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="'checkpoint' is set both"):
        load(SimpleNamespace(entry="good_plugin:make_encoder", checkpoint=checkpoint,
                             options={"checkpoint": checkpoint}, name=None))
