"""Video decoding (`mmeval/io/video.py`) and frame sampling (`mmeval/config/video.py`) against brute force:
every frame decoded with PyAV, frame times read from the decoder, the frame on screen at each instant picked
by a plain loop. Covers seek vs one forward pass, variable frame rate, short videos, rotation, odd sizes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from mmeval.config.video import FrameSampling
from mmeval.data.shapes_video import write_mp4
from mmeval.io.video import VideoDecodeError, describe_decoder, read_clip

STEP = 8  # frame i is filled with grey level i * STEP: the decoded frame tells its index


def numbered(n: int, height: int = 32, width: int = 32) -> np.ndarray:
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = (i * STEP) % 256
    return frames


def frame_number(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / STEP)


def write_vfr(path: Path, pts_ms: list[int], size: int = 32) -> None:
    """An H.264 MP4 whose frame i (grey level i * STEP) is shown at pts_ms[i] milliseconds."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264")
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), i * STEP, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def every_frame(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Brute force: decode every frame; times from the decoder, from the first frame."""
    with av.open(str(path)) as container:
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    t0 = frames[0][0]
    return [t - t0 for t, _ in frames], [a for _, a in frames]


def on_screen(times: list[float], instant: float) -> int:
    """The last frame shown at or before `instant` (the first frame before the first time)."""
    chosen = 0
    for i, t in enumerate(times):
        if t <= instant + 1e-6:
            chosen = i
    return chosen


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """200 numbered frames at 25 fps (8 s), a keyframe every 25 frames: seeking pays off."""
    path = tmp_path_factory.mktemp("videos") / "long.mp4"
    write_mp4(numbered(200), path, fps=25, gop=25)
    return path


def test_uniform_sampling_picks_the_frame_on_screen_at_each_segment_middle(long_clip: Path) -> None:
    times, frames = every_frame(long_clip)
    duration = 200 / 25
    clip = read_clip(long_clip, FrameSampling(frames=8))
    instants = [(k + 0.5) * duration / 8 for k in range(8)]  # 0.5, 1.5, ... 7.5 s
    expected = [on_screen(times, t) for t in instants]
    assert expected == [12, 37, 62, 87, 112, 137, 162, 187]
    assert [frame_number(f) % 32 for f in clip.frames] == [e * STEP % 256 // STEP for e in expected]
    np.testing.assert_array_equal(clip.frames, np.stack([frames[i] for i in expected]))
    np.testing.assert_allclose(clip.timestamps, [times[i] for i in expected])
    assert clip.info["duration"] == pytest.approx(8.0) and clip.info["fps"] == pytest.approx(25.0)
    assert (clip.info["width"], clip.info["height"], clip.info["rotation"]) == (32, 32, 0)


def test_seeking_and_one_forward_pass_give_identical_frames_and_seeking_decodes_fewer(long_clip: Path) -> None:
    sampling = FrameSampling(frames=8)
    seek = read_clip(long_clip, sampling, strategy="seek")
    scan = read_clip(long_clip, sampling, strategy="scan")
    auto = read_clip(long_clip, sampling)
    np.testing.assert_array_equal(seek.frames, scan.frames)
    np.testing.assert_array_equal(auto.frames, scan.frames)
    assert seek.info["strategy"] == "seek" and scan.info["strategy"] == "scan" and auto.info["strategy"] == "seek"
    assert scan.info["decoded"] >= 188 and seek.info["decoded"] < 0.75 * scan.info["decoded"]
    dense = read_clip(long_clip, FrameSampling(frames=64))  # every ~3rd frame: one pass is cheaper
    assert dense.info["strategy"] == "scan"
    np.testing.assert_array_equal(dense.frames, read_clip(long_clip, FrameSampling(frames=64), strategy="seek").frames)


def test_variable_frame_rate_is_sampled_by_timestamps_not_frame_counts(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    pts_ms = [0, 100, 150, 400, 420, 900, 1000, 1500]
    write_vfr(path, pts_ms)
    times, _ = every_frame(path)
    assert times == pytest.approx([t / 1000 for t in pts_ms])
    clip = read_clip(path, FrameSampling(frames=4))
    duration = 1.5 + 0.5  # the last frame lasts as long as the container says (here its pts gap, 500 ms)
    assert clip.info["duration"] == pytest.approx(duration, abs=0.51)
    instants = [(k + 0.5) * clip.info["duration"] / 4 for k in range(4)]
    expected = [on_screen(times, t) for t in instants]
    assert [frame_number(f) for f in clip.frames] == expected
    # by frame count, the 2nd of 4 segments of 8 frames would be frame 3; by time it is frame 4 or 5
    assert expected[1] != 3 and expected[1] == on_screen(times, instants[1])


def test_a_short_video_repeats_frames_to_give_exactly_the_frames_asked(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    write_mp4(numbered(3), path, fps=10)
    clip = read_clip(path, FrameSampling(frames=8))
    assert clip.frames.shape == (8, 32, 32, 3)
    instants = [(k + 0.5) * 0.3 / 8 for k in range(8)]
    times, _ = every_frame(path)
    assert [frame_number(f) for f in clip.frames] == [on_screen(times, t) for t in instants] == [0, 0, 0, 1, 1, 2, 2, 2]
    one = tmp_path / "one.mp4"
    write_mp4(numbered(1), one, fps=10)
    single = read_clip(one, FrameSampling(frames=5, mode="window"))
    assert single.frames.shape[0] == 5 and {frame_number(f) for f in single.frames} == {0}


def test_fps_and_window_modes(long_clip: Path) -> None:
    times, _ = every_frame(long_clip)
    fps = read_clip(long_clip, FrameSampling(frames=6, mode="fps", fps=2.0))
    assert [on_screen(times, k / 2) for k in range(6)] == [0, 12, 25, 37, 50, 62]
    assert [frame_number(f) for f in fps.frames] == [i % 32 for i in (0, 12, 25, 37, 50, 62)]  # grey levels wrap
    window = read_clip(long_clip, FrameSampling(frames=8, mode="window"))
    first = (8.0 - 8 / 25) / 2  # 8 consecutive frames centred in the clip
    expected = [on_screen(times, first + k / 25) for k in range(8)]
    assert [frame_number(f) for f in window.frames] == [i % 32 for i in expected] and np.all(np.diff(expected) == 1)
    clipped = read_clip(long_clip, FrameSampling(frames=4, start=2.0, end=4.0))
    assert [frame_number(f) for f in clipped.frames] == [on_screen(times, 2 + (k + 0.5) * 0.5) % 32 for k in range(4)]
    beyond = FrameSampling(frames=4, mode="fps", fps=1.0, start=6.0)  # 6, 7, 8, 9 s: the last frame repeats
    assert [frame_number(f) for f in read_clip(long_clip, beyond).frames][-2:] == [199 % 32, 199 % 32]
    with pytest.raises(VideoDecodeError, match="after the video's end"):
        read_clip(long_clip, FrameSampling(frames=4, start=9.0))


def test_random_pick_is_seeded_per_video_and_stays_in_its_segment(long_clip: Path, tmp_path: Path) -> None:
    a = read_clip(long_clip, FrameSampling(frames=8, pick="random", seed=1))
    b = read_clip(long_clip, FrameSampling(frames=8, pick="random", seed=1))
    c = read_clip(long_clip, FrameSampling(frames=8, pick="random", seed=2))
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.timestamps, c.timestamps)
    assert all(k * 1.0 <= t < (k + 1) * 1.0 for k, t in enumerate(a.timestamps))  # one frame per 1 s segment
    copy = tmp_path / "other-name.mp4"
    copy.write_bytes(long_clip.read_bytes())
    assert not np.array_equal(read_clip(copy, FrameSampling(frames=8, pick="random", seed=1)).timestamps, a.timestamps)


def test_rotation_metadata_is_applied_as_players_show_it(tmp_path: Path) -> None:
    path = tmp_path / "rotated.mp4"
    frames = np.zeros((2, 32, 48, 3), np.uint8)
    frames[:, :8, :8] = 255  # a white block in the top-left corner of a landscape frame
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(90)  # display: turn 90 degrees counterclockwise
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    _, raw = every_frame(path)
    clip = read_clip(path, FrameSampling(frames=2))
    assert clip.info["rotation"] == 90 and clip.frames.shape == (2, 48, 32, 3)
    np.testing.assert_array_equal(clip.frames[0], np.rot90(raw[0]))
    assert clip.frames[0, -8:, :8].mean() > 200  # counterclockwise: the top-left block is now bottom-left


def test_odd_sizes_are_kept_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    write_mp4(numbered(6, height=17, width=33), path, fps=10, codec="mpeg4")
    clip = read_clip(path, FrameSampling(frames=3))
    assert clip.frames.shape == (3, 17, 33, 3) and clip.info["codec"] == "mpeg4"
    assert [frame_number(f) for f in clip.frames] == [1, 3, 5]


def test_frame_sampling_config_and_key() -> None:
    assert FrameSampling().key() == "uniform8-middle"
    assert FrameSampling(frames=16, pick="random", seed=3).key() == "uniform16-random-seed3"
    assert FrameSampling(mode="fps", fps=2, frames=4, start=1).key() == "fps4-fps2-t1-end"
    keys = {
        FrameSampling(**kw).key() for kw in ({}, {"frames": 4}, {"mode": "window"}, {"end": 3.0}, {"pick": "random"})
    }
    assert len(keys) == 5
    with pytest.raises(ValidationError, match="fps"):
        FrameSampling(mode="fps")
    with pytest.raises(ValidationError, match="after start"):
        FrameSampling(start=3, end=2)
    with pytest.raises(ValidationError):
        FrameSampling(frame=8)  # a typo is an error, not ignored


def test_describe_decoder_names_pyav_and_its_ffmpeg() -> None:
    described = describe_decoder()
    assert described["decoder"] == "pyav" and described["version"] == av.__version__
    assert described["libavcodec"].count(".") == 2
