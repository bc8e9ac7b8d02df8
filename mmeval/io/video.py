"""Decoding the sampled frames of one video with PyAV (FFmpeg): `read_clip(path, sampling) -> Clip`.

Why this shape:

- Frame times come from presentation timestamps (pts * time_base), read from the packet index of a demux pass
  (no decoding, a small fraction of the decode cost), never from frame counts: variable frame rates and
  containers with a non-zero start time are sampled by time. Instants map to the frame on screen then
  (`mmeval/config/video.py`), so a short video repeats frames and every clip has exactly `sampling.frames`.
- Only the needed frames are decoded: for each needed frame the decoder seeks to the keyframe before it and
  decodes forward, or, when the needed frames are dense enough that this decodes about as much, it decodes one
  forward pass from the start and stops after the last needed frame. The packet index gives the exact cost of
  both (frames to decode), so the choice is made per clip (`strategy: auto`); both give identical frames
  (tests/video/test_video_io.py). Only kept frames are converted to RGB, by one reused
  scaler context.
- Rotation metadata (the display matrix of phone videos) is applied, as FFmpeg's command-line tools do by
  default; `Clip.info["rotation"]` records it. Odd widths / heights are kept as they are (no crop or pad): the
  model's transform resizes. Colours are FFmpeg's swscale YUV -> RGB (the stream's colour matrix when tagged,
  BT.601 otherwise).
- Every failure (missing, corrupt or truncated file, no video stream, no decodable frame, a codec FFmpeg cannot
  decode, a clip window after the video's end) is a `VideoDecodeError` (a `DataError`) naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import av.logging
import numpy as np
from av.video.reformatter import VideoReformatter

from mmeval.config.video import FrameSampling
from mmeval.errors import DataError

_EPS = 1e-6  # seconds: an instant on a frame boundary belongs to the frame starting there
_SEEK_OVERHEAD = 2  # frames: the cost of one seek (decoder flush + demuxer repositioning), in decoded frames
# One per process (made on first use in it: a scaler made before a DataLoader fork would be shared with the
# workers): it keeps FFmpeg's scaler context between frames of one geometry, where `frame.to_ndarray` sets one
# up per frame (measured 0.05 vs 0.1-0.5 ms per 64x64 frame); the pixels are the same. One scaler thread: no
# thread pool to lose in a fork, and the workers already run one video per process.
_RGB: dict[int, VideoReformatter] = {}


def _rgb(frame) -> np.ndarray:
    reformatter = _RGB.get(os.getpid())
    if reformatter is None:
        _RGB.clear()
        reformatter = _RGB[os.getpid()] = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


class VideoDecodeError(DataError):
    """A video that cannot be read or decoded; the message names the file and what went wrong."""


@dataclass
class Clip:
    """The sampled frames of one video: `frames` uint8 (T, H, W, 3) RGB, their presentation times (seconds from
    the first frame) and what the decoder saw (`duration`, `fps`, `width`, `height`, `rotation`, `codec`,
    `strategy`, `decoded`: frames decoded to get them)."""

    frames: np.ndarray
    timestamps: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def describe_decoder() -> dict[str, Any]:
    """The decoder, for the report: PyAV's version and the FFmpeg libavcodec it bundles."""
    codec = av.library_versions.get("libavcodec", ())
    return {"decoder": "pyav", "version": av.__version__, "libavcodec": ".".join(map(str, codec))}


@dataclass
class _Packet:
    pts: int
    dts: int | None
    key: bool
    duration: int


def read_clip(path: str | Path, sampling: FrameSampling,
              strategy: Literal["auto", "seek", "scan"] = "auto", threads: int = 1) -> Clip:  # fmt: skip
    """The frames `sampling` picks from the video at `path` (see the module docstring).

    `strategy` forces seeking or one forward pass (for tests and the benchmark); `threads` is FFmpeg's decoding
    threads per call (1 in DataLoader workers, which already run one video per process)."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path, sampling)
    # FFmpeg's own messages go through PyAV's logging, captured: the latest one explains an error (e.g. "moov atom
    # not found"), the rest (concealed decoding errors) would only clutter the run's output
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # else a message repeated from the previous video is held back
    with av.logging.Capture() as logs:
        try:
            container = av.open(str(path))
        except FileNotFoundError as exc:  # av.error.FileNotFoundError is one too
            raise VideoDecodeError(f"{path}: video file not found") from exc
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoDecodeError(f"{path}: not a readable video container ({_reason(exc, logs)})") from exc
        try:
            return _read(container, path, sampling, strategy, threads)
        except av.FFmpegError as exc:
            raise VideoDecodeError(f"{path}: decoding failed ({_reason(exc, logs)}); the file is corrupt or "
                                   "truncated") from exc  # fmt: skip
        finally:
            container.close()


def _reason(exc: BaseException, logs: list[tuple[int, str, str]]) -> str:
    """PyAV's error text, without the errno and file name it repeats, and FFmpeg's latest logged explanation."""
    text = getattr(exc, "strerror", None) or str(exc)
    said = next((m.strip().splitlines()[0] for _, _, m in reversed(logs) if m.strip()), None)
    return f"{text}: {said}" if said else text


def _read(container, path: Path, sampling: FrameSampling, strategy: str, threads: int) -> Clip:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(f"{path}: no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or getattr(ctx, "codec", None) is None:
        raise VideoDecodeError(f"{path}: unsupported video codec (FFmpeg has no decoder for it)")
    ctx.thread_count = threads
    packets = _index(container, stream)
    if not packets:
        raise VideoDecodeError(f"{path}: no video frames (the video stream is empty)")
    container.seek(0, backward=True, any_frame=False, stream=stream)
    tb = float(stream.time_base)
    if any(p.pts is None for p in packets):
        return _read_unindexed(container, stream, path, sampling)
    packets.sort(key=lambda p: p.pts)
    pts = np.array([p.pts for p in packets], dtype=np.int64)
    times = (pts - pts[0]) * tb
    step = np.median(np.diff(times)) if len(times) > 1 else _rate_step(stream)
    last = packets[-1].duration * tb if packets[-1].duration else step
    duration = float(times[-1] + last)
    wanted = _frame_indices(times, target_times(sampling, duration, _native_fps(len(times), duration), path.name),
                            path, duration)  # fmt: skip
    needed = sorted(set(wanted.tolist()))
    plan = _plan(needed, [p.key for p in packets], strategy)
    by_pts, decoded, rotation = _decode(container, stream, path, packets, needed, plan)
    frames = np.stack([_rotate(by_pts[int(pts[i])], rotation) for i in wanted])
    info = _info(stream, duration, len(times), frames, rotation)
    info.update(strategy="seek" if plan else "scan", decoded=decoded)
    return Clip(frames, times[wanted].astype(np.float64), info)


def _index(container, stream) -> list[_Packet]:
    """Every packet of the video stream (timestamps, keyframe flag) from one demux pass, without decoding."""
    packets = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's final flush packet
            continue
        packets.append(_Packet(packet.pts, packet.dts, bool(packet.is_keyframe), packet.duration or 0))
    return packets


def _rate_step(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return 1.0 / float(rate) if rate else 1.0 / 25.0


def _native_fps(count: int, duration: float) -> float:
    return count / duration if duration > 0 else 25.0


def target_times(sampling: FrameSampling, duration: float, native_fps: float, name: str) -> np.ndarray:
    """The instants (seconds from the first frame) `sampling` asks of a video of `duration` seconds; `name`
    (the file name) seeds `pick: random` together with `sampling.seed`, so each video gets its own draw."""
    start = min(sampling.start or 0.0, duration)
    end = duration if sampling.end is None else min(sampling.end, duration)
    n = sampling.frames
    rng = None
    if sampling.pick == "random":
        digest = hashlib.sha256(f"{sampling.seed}:{name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    if sampling.mode == "uniform":
        offsets = np.full(n, 0.5) if rng is None else rng.random(n)
        return start + (np.arange(n) + offsets) * (end - start) / n
    if sampling.mode == "fps":
        return np.minimum(start + np.arange(n) / float(sampling.fps), max(end - _EPS, start))
    rate = float(sampling.fps or native_fps)
    span = n / rate
    room = max(end - start - span, 0.0)
    first = start + (room / 2 if rng is None else rng.random() * room)
    return np.minimum(first + np.arange(n) / rate, max(end - _EPS, start))


def _frame_indices(times: np.ndarray, targets: np.ndarray, path: Path, duration: float) -> np.ndarray:
    """The frame on screen at each instant: the last frame whose presentation time is <= it."""
    if targets[0] >= duration:
        raise VideoDecodeError(f"{path}: the clip window starts at {targets[0]:.3f} s, after the video's end "
                               f"({duration:.3f} s)")  # fmt: skip
    return np.clip(np.searchsorted(times, targets + _EPS, side="right") - 1, 0, len(times) - 1)


def _plan(needed: list[int], keys: list[bool], strategy: str) -> list[list[int]]:
    """Groups of needed frame positions (presentation order), each decoded after one seek to the keyframe before
    its first; [] means one forward pass from the start. `auto` picks whichever decodes fewer frames."""
    key_before = np.maximum.accumulate(np.where(keys, np.arange(len(keys)), 0))
    groups: list[list[int]] = []
    cost, position = 0, -1
    for p in needed:
        k = int(key_before[p])
        if k > position:  # the decoder is before this frame's keyframe: seek there
            groups.append([p])
            cost += p - k + 1 + (_SEEK_OVERHEAD if k > 0 else 0)
        else:
            groups[-1].append(p)
            cost += p - position
        position = p
    scan_cost = needed[-1] + 1
    if strategy == "scan" or (strategy == "auto" and scan_cost <= cost):
        return []
    return groups


def _decode(container, stream, path: Path, packets: list[_Packet], needed: list[int],
            plan: list[list[int]]) -> tuple[dict[int, np.ndarray], int, int]:  # fmt: skip
    """RGB arrays of the needed frames by pts, the number of frames decoded, and the rotation seen."""
    pts_of = [p.pts for p in packets]
    keys = [i for i, p in enumerate(packets) if p.key]
    groups = plan or [needed]
    out: dict[int, np.ndarray] = {}
    decoded, rotation, ctx, failure = 0, 0, stream.codec_context, None
    for group in groups:
        if plan:
            key = max((k for k in keys if k <= group[0]), default=0)
            # by pts: demuxers index keyframes at (about) their presentation time; seeking to the dts, which
            # B-frames put earlier, lands on the keyframe before (measured with MP4 / H.264)
            container.seek(packets[key].pts, backward=True, any_frame=False, stream=stream)
        want = {pts_of[i] for i in group}
        last, first, finished = max(want), None, False
        for packet in container.demux(stream):
            # Frames no other frame refers to (most B-frames) are skipped unless sampled: FFmpeg's skip_frame,
            # set per packet before it is decoded; the sampled frames and their references decode as usual.
            ctx.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in want else "NONREF"
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: go on, as FFmpeg's tools do; judged below
                failure = failure or (getattr(exc, "strerror", None) or str(exc))
                continue
            for frame in frames:
                decoded += 1
                if frame.pts is None:
                    continue
                first = frame.pts if first is None else first
                rotation = frame.rotation or rotation
                if frame.pts in want:
                    out[frame.pts] = _rgb(frame)
                    want.discard(frame.pts)
                if not want or frame.pts >= last:
                    finished = True
                    break
            if finished:
                break
        ctx.skip_frame = "DEFAULT"
        if want:
            if plan and (first is None or first > min(want)):  # the seek landed after the frame: scan instead
                container.seek(0, backward=True, any_frame=False, stream=stream)
                return _decode(container, stream, path, packets, needed, [])
            why = f"; first decoding error: {failure}" if failure else ""
            if decoded == 0:
                raise VideoDecodeError(f"{path}: no decodable video frames ({len(packets)} packets{why})")
            missing = min(want)
            raise VideoDecodeError(f"{path}: truncated or corrupt: the frame at "
                                   f"{(missing - pts_of[0]) * float(stream.time_base):.3f} s could not be decoded "
                                   f"({len(out)} of {len(needed)} sampled frames decoded{why})")  # fmt: skip
    return out, decoded, rotation


def _read_unindexed(container, stream, path: Path, sampling: FrameSampling) -> Clip:
    """Streams without packet timestamps (raw elementary streams, some AVI): decode every frame, keeping them,
    with frame times from the decoder (or counted at the stream's rate), then sample. Rare; costs memory."""
    rate_step = _rate_step(stream)
    kept, times, rotation = [], [], 0
    for i, frame in enumerate(container.decode(stream)):
        times.append(frame.time if frame.time is not None else i * rate_step)
        kept.append(frame)
        rotation = frame.rotation or rotation
    if not kept:
        raise VideoDecodeError(f"{path}: no decodable video frames")
    order = np.argsort(times, kind="stable")
    t = np.asarray(times, dtype=np.float64)[order]
    t -= t[0]
    duration = float(t[-1] + (np.median(np.diff(t)) if len(t) > 1 else rate_step))
    wanted = _frame_indices(t, target_times(sampling, duration, _native_fps(len(t), duration), path.name),
                            path, duration)  # fmt: skip
    arrays = {int(i): _rotate(_rgb(kept[order[i]]), rotation) for i in set(wanted.tolist())}
    frames = np.stack([arrays[int(i)] for i in wanted])
    info = _info(stream, duration, len(t), frames, rotation)
    info.update(strategy="scan-all", decoded=len(kept))
    return Clip(frames, t[wanted], info)


def _rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as displayed: `rotation` is the display matrix's counterclockwise angle; a multiple of 90
    is applied (np.rot90 turns counterclockwise), any other angle is left unapplied."""
    quarter = round(rotation / 90)
    if rotation % 90 or quarter % 4 == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=quarter % 4))


def _info(stream, duration: float, count: int, frames: np.ndarray, rotation: int) -> dict[str, Any]:
    return {"duration": round(duration, 6), "fps": round(count / duration, 6) if duration > 0 else None,
            "frames": count, "width": int(frames.shape[2]), "height": int(frames.shape[1]),
            "rotation": rotation if rotation % 90 == 0 else 0, "codec": stream.codec_context.name}  # fmt: skip


FRAME_FOLDER_FPS = 25.0  # a folder of frames has no timestamps: its frames are taken as shown at this rate
_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_frame_folder(path: Path, sampling: FrameSampling, fps: float = FRAME_FOLDER_FPS) -> Clip:
    """A video stored as one image per frame (sorted by file name, natural order: frame2 before frame10), shown
    at `fps`; sampled as a video file is, decoding only the sampled images."""
    from PIL import Image, UnidentifiedImageError

    files = sorted((f for f in path.iterdir() if f.suffix.lower() in _FRAME_SUFFIXES), key=_natural)
    if not files:
        raise VideoDecodeError(f"{path}: no frame images ({', '.join(sorted(_FRAME_SUFFIXES))}) in the folder")
    times = np.arange(len(files)) / fps
    duration = len(files) / fps
    wanted = _frame_indices(times, target_times(sampling, duration, fps, path.name), path, duration)
    arrays = {}
    for i in sorted(set(wanted.tolist())):
        try:
            with Image.open(files[i]) as image:
                arrays[i] = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise VideoDecodeError(f"{files[i]}: cannot decode the frame image ({exc})") from exc
    sizes = {a.shape for a in arrays.values()}
    if len(sizes) > 1:
        raise VideoDecodeError(f"{path}: frame images of different sizes ({', '.join(map(str, sorted(sizes)))})")
    frames = np.stack([arrays[int(i)] for i in wanted])
    info = {"duration": duration, "fps": fps, "frames": len(files), "width": int(frames.shape[2]),
            "height": int(frames.shape[1]), "rotation": 0, "codec": "frames", "strategy": "frames",
            "decoded": len(arrays)}  # fmt: skip
    return Clip(frames, times[wanted], info)


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
