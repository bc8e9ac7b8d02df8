"""The video batch loader through the one engine: embeddings against a clip-by-clip reference, the uint8 and float
frame paths, worker processes, the decoded-frame cache (hit without decoding, miss on another sampling), and
unreadable videos skipped with their names or failing in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmeval.config.run import RuntimeConfig
from mmeval.config.video import FrameSampling
from mmeval.data.shapes_video import load_shapes_video_captions
from mmeval.data.video_data import VideoSource
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import DataError
from mmeval.io import video_loading
from mmeval.io.pixels import PixelPipeline
from mmeval.io.video import read_clip
from mmeval.io.video_loading import encode_videos, video_report
from mmeval.models.base import ModelInfo

SIZE, MEAN, STD = 8, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def geometry(image: Image.Image) -> Image.Image:
    return image.resize((SIZE, SIZE), Image.Resampling.BILINEAR)


def float_transform(image: Image.Image) -> torch.Tensor:
    """ToTensor + Normalize after the resize: what the pipeline's uint8 + normalize split computes."""
    pixels = torch.from_numpy(np.asarray(geometry(image.convert("RGB")), dtype=np.uint8).copy()).permute(2, 0, 1)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (pixels.float() / 255 - mean) / std


class ToyVideoEncoder:
    """Embeds (B, T, 3, H, W) frames as the per-frame channel means, concatenated, times a fixed matrix."""

    def __init__(self, tag: str, frames: int, split: bool):
        self.info = ModelInfo("toy-video", f"toy-{tag}", None, f"sha-{tag}", 1)
        self.weights = torch.randn(frames * 3, 4, generator=torch.Generator().manual_seed(3))
        self.image_transform = float_transform
        if split:
            self.pixel_pipeline = PixelPipeline(geometry, (SIZE, SIZE), MEAN, STD, description="toy-bilinear-8")
        self.calls: list[int] = []

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(frames))
        return frames.flatten(3).mean(-1).flatten(1) @ self.weights


def reference(paths: list[Path], sampling: FrameSampling, weights: torch.Tensor) -> np.ndarray:
    """Clip by clip in float64: decode, transform each frame, the toy formula, L2-normalise."""
    rows = []
    for path in paths:
        frames = torch.stack([float_transform(Image.fromarray(f)) for f in read_clip(path, sampling).frames])
        row = frames.double().flatten(2).mean(-1).flatten() @ weights.double()
        rows.append((row / row.norm()).numpy())
    return np.array(rows)


def runtime(batch_size: int = 2, workers: int = 0):
    return resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch_size,
                                         num_workers=workers))  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return list(load_shapes_video_captions("test", 5, folder=tmp_path_factory.mktemp("shapes-video")).videos.paths)


@pytest.mark.parametrize("split", [True, False], ids=["uint8", "float"])
def test_video_embeddings_match_a_clip_by_clip_reference(clips: list[Path], split: bool) -> None:
    sampling = FrameSampling(frames=4)
    model = ToyVideoEncoder("a", 4, split)
    rows, done = encode_videos(model, VideoSource(clips), runtime(), sampling, "fail", lambda n: None)
    assert done.ok_indices == [0, 1, 2, 3, 4] and done.bad == [] and model.calls == [2, 2, 1]
    assert done.frames_from == ("uint8" if split else "float")
    np.testing.assert_allclose(rows.double().numpy(), reference(clips, sampling, model.weights), atol=1e-5)
    assert len(done.digests) == 5 and all(len(d) == 64 for d in done.digests.values())
    report = video_report(sampling, done)
    assert report["sampling"]["key"] == "uniform4-middle" and report["decoder"] == "pyav"


def test_worker_processes_give_the_same_embeddings(clips: list[Path]) -> None:
    sampling = FrameSampling(frames=4)
    alone, _ = encode_videos(ToyVideoEncoder("a", 4, True), VideoSource(clips), runtime(), sampling, "fail",
                             lambda n: None)  # fmt: skip
    model = ToyVideoEncoder("b", 4, True)  # another checkpoint: not an output-cache hit
    model.weights = ToyVideoEncoder("a", 4, True).weights
    workers, done = encode_videos(model, VideoSource(clips), runtime(workers=2), sampling, "fail", lambda n: None)
    assert torch.equal(alone, workers) and done.ok_indices == list(range(5))


def test_a_second_pass_reads_decoded_frames_from_the_cache_and_another_sampling_misses(
    clips: list[Path], own_cache: Path, monkeypatch
) -> None:
    reads: list[Path] = []

    def counting(path, sampling, *args, **kwargs):
        reads.append(path)
        return read_clip(path, sampling, *args, **kwargs)

    monkeypatch.setattr(video_loading, "read_clip", counting)
    source, run, sampling = VideoSource(clips), runtime(), FrameSampling(frames=4)
    first, done = encode_videos(ToyVideoEncoder("a", 4, True), source, run, sampling, "fail", lambda n: None)
    assert len(reads) == 5 and done.frames_from == "uint8"
    assert len(list((own_cache / "frames").rglob("*.u8"))) == 1

    other = ToyVideoEncoder("b", 4, True)  # same geometry, another checkpoint: frames from the cache
    other.weights = ToyVideoEncoder("a", 4, True).weights
    again, done = encode_videos(other, source, run, sampling, "fail", lambda n: None)
    assert len(reads) == 5 and done.frames_from == "cache" and sum(other.calls) == 5
    assert torch.equal(again, first) and len(done.digests) == 5

    moved = FrameSampling(frames=4, pick="random")  # another sampling: decoded again, a second store
    _, done = encode_videos(ToyVideoEncoder("c", 4, True), source, run, moved, "fail", lambda n: None)
    assert len(reads) == 10 and done.frames_from == "uint8"
    assert len(list((own_cache / "frames").rglob("*.u8"))) == 2


def test_unreadable_videos_are_skipped_with_their_names_or_fail_in_one_line(clips: list[Path], tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    missing = tmp_path / "gone.mp4"
    source = VideoSource([clips[0], text, clips[1], missing, clips[2]])
    model = ToyVideoEncoder("a", 4, True)
    rows, done = encode_videos(model, source, runtime(), FrameSampling(frames=4), "skip", lambda n: None)
    assert done.ok_indices == [0, 2, 4] and rows.shape == (3, 4) and model.calls == [1, 1, 1]
    assert [i for i, _ in done.bad] == [1, 3]
    assert done.bad[0][1].startswith(f"{text}: not a readable video container")
    assert done.bad[1][1] == f"{missing}: video file not found"
    expected = reference([clips[0], clips[1], clips[2]], FrameSampling(frames=4), model.weights)
    np.testing.assert_allclose(rows.double().numpy(), expected, atol=1e-5)

    with pytest.raises(DataError) as failed:
        encode_videos(ToyVideoEncoder("d", 4, True), source, runtime(), FrameSampling(frames=4), "fail",
                      lambda n: None)  # fmt: skip
    assert str(failed.value).startswith(f"{text}: not a readable video container")
    assert "data.on_bad_input: skip" in str(failed.value) and "\n" not in str(failed.value)
