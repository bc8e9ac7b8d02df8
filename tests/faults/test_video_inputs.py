"""Video faults: every kind of unreadable video gives one line naming the file and what is wrong; in a pass
(`data.on_bad_input: skip`) it is counted and named and the rest is kept; through `mmeval run` a bad video
either fails its benchmark (exit code 2, one `error:` line, the other benchmark still reported) or is skipped and
named in the report. Fixtures are made here with PyAV: truncated (index at the end, or at the start with the
data cut), payloads overwritten, a text file, an audio-only file, a codec FFmpeg cannot decode, a missing file.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from faults.conftest import complete_report, error_lines, mmeval, shown, write_config
from mmeval.config.run import RuntimeConfig
from mmeval.config.video import FrameSampling
from mmeval.data.shapes_video import load_shapes_video_captions, write_mp4
from mmeval.data.video_data import VideoSource
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import DataError
from mmeval.io.video import VideoDecodeError, read_clip
from mmeval.io.video_loading import encode_videos
from mmeval.models.base import ModelInfo

FRAMES = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
CONTAINER = "not a readable video container (Invalid data found when processing input: moov atom not found)"


class TinyVideoModel:
    """Mean colour of the clip (no checkpoint hash: nothing cached)."""

    info = ModelInfo("tiny-video", "tiny", None, None, 1)

    @staticmethod
    def image_transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), np.float32).copy()).permute(2, 0, 1) / 255

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=(1, 3, 4)) + 1


def faststart_mp4(path: Path) -> bytes:
    """An H.264 MP4 with its index before the data (as streaming sites serve them): a cut file still opens."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for frame in FRAMES:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path.read_bytes()


def bad_videos(folder: Path) -> dict[str, str]:
    """File name -> the exact error message after '<path>: ' (written into `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_mp4(FRAMES, folder / "good.mp4", fps=10)
    plain = (folder / "good.mp4").read_bytes()  # the index (moov) at the end, PyAV's default
    (folder / "truncated.mp4").write_bytes(plain[: len(plain) // 2])
    fast = faststart_mp4(folder / "fast.mp4")
    (folder / "cut.mp4").write_bytes(fast[: int(len(fast) * 0.6)])
    data = fast.find(b"mdat") + 4
    (folder / "zeroed.mp4").write_bytes(fast[:data] + bytes(len(fast) - data))  # every frame's payload zeroed
    (folder / "codec.mp4").write_bytes(plain.replace(b"avc1", b"zzzz"))  # a codec tag FFmpeg has no decoder for
    (folder / "notes.mp4").write_text("these are my notes, not a video\n")
    with av.open(str(folder / "voice.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    (folder / "fast.mp4").unlink()
    return {
        "truncated.mp4": CONTAINER,
        "cut.mp4": "truncated or corrupt: the frame at 1.100 s could not be decoded (7 of 8 sampled frames decoded; "
                   "first decoding error: Invalid data found when processing input)",
        "zeroed.mp4": "no decodable video frames (20 packets; first decoding error: Invalid data found when "
                      "processing input)",
        "codec.mp4": "unsupported video codec (FFmpeg has no decoder for it)",
        "notes.mp4": CONTAINER,
        "voice.m4a": "no video stream (streams: audio)",
        "missing.mp4": "video file not found",
    }  # fmt: skip


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad-videos")
    return folder, bad_videos(folder)


def test_every_bad_video_gives_one_line_naming_the_file(videos) -> None:
    folder, expected = videos
    assert read_clip(folder / "good.mp4", FrameSampling(frames=8)).frames.shape == (8, 32, 32, 3)
    for name, message in expected.items():
        with pytest.raises(VideoDecodeError) as failed:
            read_clip(folder / name, FrameSampling(frames=8))
        assert isinstance(failed.value, DataError)  # the CLI's exit code 2, no traceback
        assert str(failed.value) == f"{folder / name}: {message}"


def test_a_pass_skips_and_names_bad_videos_and_keeps_the_rest(videos) -> None:
    folder, expected = videos
    names = ["good.mp4", *expected, "good.mp4"]
    run = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=3, num_workers=2, cache="off"))
    model = TinyVideoModel()
    rows, done = encode_videos(model, VideoSource([folder / n for n in names]), run, FrameSampling(frames=8), "skip",
                               lambda n: None)  # fmt: skip
    assert done.ok_indices == [0, len(names) - 1] and rows.shape == (2, 3)
    assert done.bad == [(i + 1, f"{folder / name}: {message}") for i, (name, message) in enumerate(expected.items())]
    with pytest.raises(DataError) as failed:
        encode_videos(model, VideoSource([folder / n for n in names]), run, FrameSampling(frames=8), "fail",
                      lambda n: None)  # fmt: skip
    assert str(failed.value) == (f"{folder / 'truncated.mp4'}: {CONTAINER} "
                                 "(set data.on_bad_input: skip to skip such videos)")  # fmt: skip


@pytest.mark.slow
def test_mmeval_run_fails_one_benchmark_in_one_line_or_skips_and_names_bad_videos(videos, tmp_path: Path) -> None:
    folder, expected = videos
    clips = load_shapes_video_captions("test", 3, folder=tmp_path / "clips")
    manifest = tmp_path / "manifest.csv"
    rows = [f"{p},moving {a['direction']}" for p, a in zip(clips.videos.paths, clips.attributes.values())]
    rows += [f"{folder / name},moving left" for name in ("notes.mp4", "zeroed.mp4", "missing.mp4")]
    manifest.write_text("video,label\n" + "\n".join(rows) + "\n")
    present = tmp_path / "present.csv"  # a missing file is found before the model loads: the strict run reads the rest
    present.write_text("video,label\n" + "\n".join(r for r in rows if "missing.mp4" not in r) + "\n")

    def bench(name: str, on_bad: str) -> dict:
        listing = present if on_bad == "fail" else manifest
        return {"name": name, "task": "video_zeroshot", "frames": {"frames": 4},
                "data": {"format": "video_manifest", "annotations": str(listing), "on_bad_input": on_bad,
                         "classnames": ["moving left", "moving right", "moving up", "moving down"]}}  # fmt: skip

    config = write_config(tmp_path, "videos", [bench("strict", "fail"), bench("lenient", "skip")])
    done = mmeval(tmp_path, "run", "-c", config)
    assert done.returncode == 2, shown(done)
    line = f"benchmark 'strict': {folder / 'notes.mp4'}: {CONTAINER} (set data.on_bad_input: skip to skip such videos)"
    assert error_lines(done) == [line], shown(done)
    report = complete_report(tmp_path / "reports-videos", "videos")
    lenient = report["benchmarks"]["lenient"]
    skipped = lenient["dataset"]["skipped_videos"]
    assert lenient["dataset"]["n_videos"] == 3 and lenient["dataset"]["n_skipped_videos"] == 3
    assert [s["reason"] for s in skipped] == [
        f"{folder / n}: {expected[n]}" for n in ("notes.mp4", "zeroed.mp4", "missing.mp4")
    ]
