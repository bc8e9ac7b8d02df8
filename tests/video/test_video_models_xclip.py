"""hf_xclip: a tiny random X-CLIP saved with save_pretrained, loaded through mmeval, compared with transformers
called directly on the same folder (processor + XCLIPModel), which is the reference."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import VideoTextEncoder, capabilities_of, count_parameters, sha256_of_path
from mmeval.models.hf_xclip import XClipEncoder, load

transformers = pytest.importorskip("transformers")

from tiny_video_hf import FRAMES, noise_videos, save_xclip  # noqa: E402  (builds with transformers)


@pytest.fixture(scope="module")
def xclip(tmp_path_factory) -> tuple[Path, XClipEncoder, object, object]:
    """The folder, mmeval's adapter, and the reference: transformers' own model and processor from the folder."""
    torch.set_num_threads(1)
    folder = save_xclip(tmp_path_factory.mktemp("xclip") / "xclip")
    adapter = load(SimpleNamespace(checkpoint=folder, name=None))
    reference = transformers.XCLIPModel.from_pretrained(folder).eval()
    return folder, adapter, reference, transformers.XCLIPProcessor.from_pretrained(folder)


def _frames(adapter: XClipEncoder, clips) -> torch.Tensor:
    """What mmeval's video loader hands the model: every frame through image_transform, stacked (B, T, 3, H, W)."""
    return torch.stack([torch.stack([adapter.image_transform(Image.fromarray(f)) for f in clip]) for clip in clips])


def test_loaded_through_the_real_path_with_its_facts(xclip) -> None:
    folder, adapter, reference, _ = xclip
    assert isinstance(adapter, VideoTextEncoder) and capabilities_of(adapter) == {"video_text_encoder"}
    info = adapter.info
    assert (info.adapter, info.name, info.checkpoint) == ("hf_xclip", "xclip", str(folder))
    assert info.sha256 == sha256_of_path(folder) and len(info.sha256) == 64
    assert info.n_parameters == count_parameters(reference) > 0
    assert info.extra["frames_expected"] == FRAMES == adapter.frames_expected
    assert info.extra["image_size"] == 32 and info.extra["processor"]["crop_size"] == {"height": 32, "width": 32}
    assert "without X-CLIP's video-specific prompt generator" in info.extra["text_scoring"]
    assert info.loaded_with == "transformers from_pretrained (safetensors)"


def test_video_and_text_embeddings_equal_transformers(xclip) -> None:
    _, adapter, reference, processor = xclip
    clips = noise_videos(3, size=(40, 48), seed=1)
    with torch.inference_mode():
        ours = adapter.encode_video(_frames(adapter, clips))
        theirs = torch.cat([reference.get_video_features(**processor(videos=list(clip), return_tensors="pt"))
                            .pooler_output for clip in clips])  # fmt: skip
        single = adapter.encode_video(_frames(adapter, clips[1:2]))
    assert ours.shape == (3, 16)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single[0], ours[1], atol=1e-5, rtol=1e-5)  # batch-independent
    assert not torch.allclose(ours[0], ours[1], atol=1e-3)  # the clips really differ
    texts = ["a red circle moves left", "x", "two squares"]
    with torch.inference_mode():
        ours_t = adapter.encode_text(adapter.tokenize(texts))
        theirs_t = reference.get_text_features(**processor(text=texts, padding=True, return_tensors="pt")).pooler_output
    torch.testing.assert_close(ours_t, theirs_t, atol=1e-5, rtol=1e-5)


def test_prompted_scores_equal_the_full_forward(xclip) -> None:
    """X-CLIP's own video-text scores (prompt generator applied per pair) from the cached halves."""
    _, adapter, reference, processor = xclip
    clips = noise_videos(2, seed=2)
    texts = ["a blue square", "a circle that moves up fast", "nothing"]
    with torch.inference_mode():
        embeds, context = adapter.encode_video_with_context(_frames(adapter, clips))
        scores = adapter.prompted_scores(embeds, context, adapter.encode_text(adapter.tokenize(texts)))
        inputs = processor(text=texts, videos=[list(c) for c in clips], padding=True, return_tensors="pt")
        expected = reference(**inputs).logits_per_video / reference.logit_scale.exp()
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embeds, adapter.encode_video(_frames(adapter, clips)), atol=1e-6, rtol=1e-6)


def test_a_frame_count_the_checkpoint_cannot_take_is_refused(xclip) -> None:
    _, adapter, _, _ = xclip
    adapter.check_frames(FRAMES)
    with pytest.raises(MmevalError, match=rf"takes exactly {FRAMES} frames per clip .*got 6.*frames: {FRAMES}"):
        adapter.check_frames(6)
    with pytest.raises(MmevalError, match="got 2"):
        adapter.encode_video(torch.zeros(1, 2, 3, 32, 32))


def test_folders_that_are_not_a_fitting_xclip_are_refused(xclip, tmp_path: Path) -> None:
    from tiny_hf import damage, save_clip

    with pytest.raises(ModelLoadError, match=r"holds a 'clip' model, not X-CLIP"):
        load(SimpleNamespace(checkpoint=save_clip(tmp_path / "clip"), name=None))
    with pytest.raises(ModelLoadError, match="not a save_pretrained folder"):
        load(SimpleNamespace(checkpoint=tmp_path, name=None))
    folder = save_xclip(tmp_path / "damaged")
    damage(folder, "weights", {}, "mit.position_embedding")
    with pytest.raises(ModelLoadError, match=r"do not fit its config.json: missing key mit.position_embedding"):
        load(SimpleNamespace(checkpoint=folder, name="x"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "xclip"
