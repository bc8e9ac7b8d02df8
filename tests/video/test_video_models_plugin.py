"""video_plugin: a user's own video encoder / captioner module written to tmp_path, named by `entry`, built by its
factory and checked for a video capability when loaded."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, VideoTextEncoder, capabilities_of, sha256_of_path
from mmeval.models.video_plugin import check_frame_count, load, recorded_prompts

PLUGIN = '''
import torch
from mmeval.models.base import ModelInfo


def to_pixels(image):
    return torch.full((3, 4, 4), float(image.size[0]))


class MeanFrames:
    """A video encoder: a linear map of each clip's mean frame colour."""

    def __init__(self, dim, frames=None):
        self.module = torch.nn.Linear(3, dim)
        self.image_transform = to_pixels
        self.frames_expected = frames

    def tokenize(self, texts):
        return torch.tensor([[float(len(t))] for t in texts])

    def encode_text(self, tokens):
        return tokens.repeat(1, self.module.out_features)

    def encode_video(self, frames):
        return self.module(frames.mean(dim=(1, 3, 4)))


class Narrator:
    """A video captioner and answerer with its own info."""

    def __init__(self):
        self.module = torch.nn.Linear(1, 1)
        self.image_transform = to_pixels
        self.info = ModelInfo(adapter="mine", name="narrator", checkpoint=None, sha256=None, n_parameters=2)

    def generate_video(self, frames, settings):
        return [f"{frames.shape[1]} frames, width {int(clip[0, 0, 0, 0])}" for clip in frames]

    def answer_video(self, frames, questions, settings):
        return [q.upper() for q in questions]

    def describe_prompts(self, settings):
        return {"answer": settings.prompt or "{question}"}


class ImageOnly:
    def __init__(self):
        self.module = torch.nn.Linear(3, 2)
        self.image_transform = to_pixels

    def tokenize(self, texts):
        return texts

    def encode_image(self, pixels):
        return pixels

    def encode_text(self, tokens):
        return tokens


class Pretender(MeanFrames):
    capabilities = ("video_captioner",)


def make_encoder(checkpoint=None, dim=4, frames=None):
    return MeanFrames(dim, frames)


def make_narrator():
    return Narrator()


def make_image_only():
    return ImageOnly()


def make_pretender():
    return Pretender(2)


def make_bad_frames():
    return MeanFrames(2, frames="eight")
'''


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "my_video_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_video_plugin", None)


def _cfg(entry: str, checkpoint: Path | None = None, name: str | None = None, **options) -> SimpleNamespace:
    return SimpleNamespace(entry=entry, checkpoint=checkpoint, options=options, name=name)


def _frames(model, sizes: list[int], count: int = 3) -> torch.Tensor:
    """Clips whose frames are plain images of the given widths, through the model's image_transform."""
    return torch.stack([torch.stack([model.image_transform(Image.new("RGB", (w, 2)))] * count) for w in sizes])


def test_a_video_encoder_plugin_with_a_default_info(plugins: Path) -> None:
    checkpoint = plugins / "weights.bin"
    checkpoint.write_bytes(b"\x01" * 7)
    model = load(_cfg("my_video_plugin:make_encoder", checkpoint=checkpoint, dim=5))
    assert isinstance(model, VideoTextEncoder) and capabilities_of(model) == {"video_text_encoder"}
    info = model.info
    assert (info.adapter, info.name) == ("video_plugin", "my_video_plugin:make_encoder")
    assert info.checkpoint == str(checkpoint)
    assert info.sha256 == sha256_of_path(checkpoint) and info.n_parameters == 3 * 5 + 5
    assert info.extra == {"entry": "my_video_plugin:make_encoder", "options": {"dim": 5}, "frames_expected": None}
    frames = _frames(model, [2, 6])
    expected = model.module(torch.tensor([[2.0] * 3, [6.0] * 3]))  # the mean frame colour, by hand
    torch.testing.assert_close(model.encode_video(frames), expected)


def test_a_captioner_answerer_plugin_keeps_its_info_and_prompts(plugins: Path) -> None:
    model = load(_cfg("my_video_plugin:make_narrator", name="story"))
    assert capabilities_of(model) == {"video_captioner", "video_answerer"}
    assert (model.info.adapter, model.info.name) == ("mine", "story")
    assert model.info.extra == {"frames_expected": None}
    settings = GenerationSettings(prompt="Q: {question}")
    assert model.generate_video(_frames(model, [3, 9], count=5), settings) == ["5 frames, width 3", "5 frames, width 9"]
    assert model.answer_video(_frames(model, [1]), ["why?"], settings) == ["WHY?"]
    assert recorded_prompts(model, settings) == {"answer": "Q: {question}"}


def test_frames_expected_is_checked_before_decoding(plugins: Path) -> None:
    model = load(_cfg("my_video_plugin:make_encoder", frames=8))
    assert model.info.extra["frames_expected"] == 8
    check_frame_count(model, 8)
    with pytest.raises(MmevalError, match=r"takes exactly 8 frames per clip, got 16; set frames: \{frames: 8\}"):
        check_frame_count(model, 16)
    check_frame_count(load(_cfg("my_video_plugin:make_encoder")), 16)  # no fixed count: any number
    with pytest.raises(ModelLoadError, match="frames_expected must be a positive int or None, got 'eight'"):
        load(_cfg("my_video_plugin:make_bad_frames"))


def test_an_image_only_plugin_is_refused_with_what_a_video_model_needs(plugins: Path) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load(_cfg("my_video_plugin:make_image_only"))
    message = str(caught.value)
    assert message.startswith("video_plugin my_video_plugin:make_image_only returned a ImageOnly with "
                              "image_text_encoder, not a video capability (video_text_encoder needs info, module, "
                              "image_transform, tokenize, encode_text, encode_video; video_captioner needs")
    assert message.endswith("(an image-text encoder plugin goes in as type: plugin; video tasks pool its frames)")
    with pytest.raises(ModelLoadError, match="declares capability 'video_captioner' but lacks generate_video"):
        load(_cfg("my_video_plugin:make_pretender"))
