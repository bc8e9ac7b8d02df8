"""Video decoding speed: mmeval's sampled-frame reader vs decoding every frame with PyAV, same files, one run.

What it measures, for each set of clips, --repeats times (medians quoted):
  * naive: `av.open`, decode every frame, convert every frame to RGB (as a loader that does not know which
    frames it needs must), then pick the sampled frames by timestamp (the same rule as mmeval);
  * mmeval: `mmeval.io.video.read_clip(path, FrameSampling(frames=F))` (auto: seek to the keyframe before each
    needed frame, or one forward pass that stops after the last needed frame, whichever decodes fewer frames;
    only the kept frames are converted), plus the forced `seek` and `scan` strategies;
  * mmeval loader: a whole `VideoBatches` pass (DataLoader with --workers processes, per-frame resize to 64x64
    uint8, batch of 8), what a benchmark's video pass costs in data time.
Every path is single-threaded in FFmpeg (one decoding thread per process), and the sampled frames of naive and
mmeval are checked to be identical. Throughput: sampled frames/s and videos/s (wall clock); ratio = naive time /
path time. CPU seconds of the process are reported too: on a shared machine they measure the decoding work more
steadily than wall time.

  * decode-all: decode every frame, convert only the sampled ones (mmeval's converter): how much of the gain
    is decoding fewer frames rather than converting fewer.
Peak memory: each path runs once more, untimed, while another process polls this one's resident set (/proc,
every 2 ms): how far it rose above its level before the pass (the frames a path holds at once).

Sets: the demo's clips (shapes_video test split: 64x64, 32 frames at 10 fps, keyframe every second) and longer
generated clips (--long-frames frames at 30 fps, 320x240 like MSR-VTT, a textured camera pan, keyframe every 30
frames: a typical 1 s GOP), where seeking pays off; both written under --workdir once.

    python scripts/bench_video_decode.py                      # 40 demo clips, 12 long clips, 5 repeats
    python scripts/bench_video_decode.py --frames 16 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeval.config.video import FrameSampling
from mmeval.data import shapes_video
from mmeval.io.video import _rgb, read_clip, target_times


def naive_clip(path: Path, sampling: FrameSampling) -> np.ndarray:
    """Decode and convert every frame, then sample by timestamp (the frame on screen at each instant)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        decoded = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    times = np.array([t for t, _ in decoded]) - decoded[0][0]
    duration = float(times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 0.04))
    instants = target_times(sampling, duration, len(times) / duration, path.name)
    picks = np.clip(np.searchsorted(times, instants + 1e-6, side="right") - 1, 0, len(times) - 1)
    return np.stack([decoded[i][1] for i in picks])


def decode_all_clip(path: Path, sampling: FrameSampling) -> np.ndarray:
    """Decode every frame but convert only the sampled ones (with mmeval's reused scaler): isolates what
    decoding fewer frames saves from what converting fewer frames saves."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        decoded = list(container.decode(stream))
    times = np.array([float(f.time) for f in decoded]) - float(decoded[0].time)
    duration = float(times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 0.04))
    instants = target_times(sampling, duration, len(times) / duration, path.name)
    picks = np.clip(np.searchsorted(times, instants + 1e-6, side="right") - 1, 0, len(times) - 1)
    return np.stack([_rgb(decoded[i]) for i in picks])


def demo_clips(workdir: Path, n: int) -> list[Path]:
    return list(shapes_video.load_shapes_video_captions("test", n, folder=workdir / "demo").videos.paths)


def textured_frames(seed: int, frames: int, height: int = 240, width: int = 320) -> np.ndarray:
    """A camera pan over a smooth random texture with a moving bright block and a little grain: content that
    costs a real decoder real work (MSR-VTT's 320x240), unlike flat synthetic colours."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + frames // 8 + 2, 3)).astype(np.float32)
    texture = np.kron(coarse, np.ones((8, 8, 1), np.float32))
    out = np.empty((frames, height, width, 3), np.uint8)
    for f in range(frames):
        frame = texture[:height, f : f + width].copy()
        x = int((f * 3) % (width - 40))
        frame[100:140, x : x + 40] = 255
        out[f] = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255)
    return out


def long_clips(workdir: Path, n: int, frames: int) -> list[Path]:
    folder = workdir / f"long-{frames}"
    paths = []
    for i in range(n):
        path = folder / f"long-{i:03d}.mp4"
        if not path.exists():
            shapes_video.write_mp4(textured_frames(i, frames), path, fps=30, gop=30)
        paths.append(path)
    return paths


def run_path(kind: str, paths: list[Path], sampling: FrameSampling, workers: int) -> int:
    """One pass of `kind` over `paths`; returns the number of sampled frames delivered."""
    if kind == "naive":
        return sum(len(naive_clip(p, sampling)) for p in paths)
    if kind == "decode-all":
        return sum(len(decode_all_clip(p, sampling)) for p in paths)
    if kind.startswith("mmeval-"):
        strategy = kind.split("-", 1)[1]
        return sum(len(read_clip(p, sampling, strategy=strategy).frames) for p in paths)
    if kind == "loader":
        return loader_pass(paths, sampling, workers)
    raise ValueError(kind)


def loader_pass(paths: list[Path], sampling: FrameSampling, workers: int) -> int:
    from PIL import Image

    from mmeval.config.run import RuntimeConfig
    from mmeval.data.video_data import VideoSource
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.engine.timing import Timer
    from mmeval.io.pixels import PixelPipeline
    from mmeval.io.video_loading import VideoBatches

    class Model:  # only what the loader reads: a 64x64 uint8 geometry, no cache key (no decoded-frame cache)
        pixel_pipeline = PixelPipeline(lambda im: im.resize((64, 64), Image.Resampling.BILINEAR), (64, 64),
                                       (0.5,) * 3, (0.5,) * 3, description="bench-64")  # fmt: skip

    run = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=8, num_workers=workers,
                                        cache="off"))  # fmt: skip
    loader = VideoBatches(Model(), VideoSource(paths), run, sampling, "fail")
    return sum(batch.inputs.shape[0] * batch.inputs.shape[1] for batch in loader.batches(loader.order(), Timer()))


_POLLER = """
import sys, time
page, pid, peak = int(sys.argv[2]), sys.argv[1], 0
def rss():
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * page
sys.stdout.write("ready\\n"); sys.stdout.flush()
import select
while not select.select([sys.stdin], [], [], 0.002)[0]:
    peak = max(peak, rss())
print(peak)
"""


def peak_rss_mb(kind: str, paths: list[Path], sampling: FrameSampling, workers: int) -> float:
    """How far this process's resident set rose above its level before one untimed pass (MiB): another process
    polls /proc/<pid>/statm every 2 ms (a thread here would be forked into the loader's workers, which can
    deadlock). The frames a path holds at once; for the loader, the main process's batches (its workers are
    other processes)."""
    page = os.sysconf("SC_PAGE_SIZE")
    gc.collect()
    with open(f"/proc/{os.getpid()}/statm") as handle:
        before = int(handle.read().split()[1]) * page
    poller = subprocess.Popen([sys.executable, "-c", _POLLER, str(os.getpid()), str(page)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    poller.stdout.readline()  # polling has started
    try:
        run_path(kind, paths, sampling, workers)
    finally:
        peak, _ = poller.communicate("stop\n")
    return max(int(peak) - before, 0) / 2**20


def bench_set(name: str, paths: list[Path], sampling: FrameSampling, repeats: int, workers: int) -> dict:
    for p in paths[:5]:  # same frames, or the comparison means nothing
        if not np.array_equal(naive_clip(p, sampling), read_clip(p, sampling).frames):
            raise SystemExit(f"{p}: mmeval's frames differ from the naive path's")
    kinds = ["naive", "decode-all", "mmeval-auto", "mmeval-seek", "mmeval-scan", "loader"]
    for kind in kinds:  # warm-up, untimed: imports, first-call set-up
        run_path(kind, paths[:2], sampling, workers)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    delivered = {}
    for _ in range(repeats):
        for kind in kinds:  # interleaved, so drift in machine load hits every path alike
            began, began_cpu = time.perf_counter(), time.process_time()
            delivered[kind] = run_path(kind, paths, sampling, workers)
            times[kind].append(time.perf_counter() - began)
            cpu[kind].append(time.process_time() - began_cpu)
    rows = {}
    for kind in kinds:
        median, median_cpu = statistics.median(times[kind]), statistics.median(cpu[kind])
        rows[kind] = {"median_s": round(median, 4), "frames_per_s": round(delivered[kind] / median, 1),
                      "videos_per_s": round(len(paths) / median, 2),
                      "ratio_vs_naive": round(statistics.median(times["naive"]) / median, 2),
                      # CPU seconds of this process: the decoding work, steadier than wall time on a busy machine
                      # (the loader's work happens in its workers: its CPU figure is not comparable)
                      "cpu_s": round(median_cpu, 4),
                      "cpu_ratio_vs_naive": round(statistics.median(cpu["naive"]) / median_cpu, 2) if kind != "loader" else None,
                      "peak_rss_mb": round(peak_rss_mb(kind, paths, sampling, workers), 1)}  # fmt: skip
    info = read_clip(paths[0], sampling).info
    return {"set": name, "videos": len(paths), "frames_per_video": info["frames"], "size": f"{info['width']}x{info['height']}",
            "sampled_frames": sampling.frames, "decoded_per_video_auto": info["decoded"], "strategy_auto": info["strategy"],
            "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmeval-bench-video"))
    parser.add_argument("--demo-videos", type=int, default=40)
    parser.add_argument("--long-videos", type=int, default=12)
    parser.add_argument("--long-frames", type=int, default=300)
    parser.add_argument("--frames", type=int, default=8, help="sampled frames per clip (uniform)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the loader path")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sampling = FrameSampling(frames=args.frames)
    results = [bench_set("demo (shapes_video)", demo_clips(args.workdir, args.demo_videos), sampling, args.repeats, args.workers),
               bench_set(f"long ({args.long_frames} frames, 30 fps, GOP 30)",
                         long_clips(args.workdir, args.long_videos, args.long_frames), sampling, args.repeats, args.workers)]  # fmt: skip
    print(f"PyAV {av.__version__}; {args.frames} frames per clip (uniform, middle); medians of {args.repeats} repeats")
    for result in results:
        print(
            f"\n{result['set']}: {result['videos']} videos, {result['frames_per_video']} frames each, {result['size']}; "
            f"auto decodes {result['decoded_per_video_auto']} frames per video ({result['strategy_auto']})"
        )
        print(f"  {'path':<12} {'median s':>9} {'frames/s':>10} {'videos/s':>9} {'x naive':>8} {'CPU s':>7} "
              f"{'CPU x naive':>12} {'peak +MiB':>10}")  # fmt: skip
        for kind, row in result["rows"].items():
            cpu_ratio = "-" if row["cpu_ratio_vs_naive"] is None else f"{row['cpu_ratio_vs_naive']:.2f}"
            print(
                f"  {kind:<12} {row['median_s']:>9.3f} {row['frames_per_s']:>10.1f} {row['videos_per_s']:>9.2f} "
                f"{row['ratio_vs_naive']:>8.2f} {row['cpu_s']:>7.3f} {cpu_ratio:>12} {row['peak_rss_mb']:>10.1f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
