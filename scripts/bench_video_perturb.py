"""Video robustness passes: a temporal perturbation from the decoded-frame cache vs decoding the videos again.

A robustness grid re-runs a video benchmark once per (perturbation, severity) cell. A temporal perturbation
(frame_drop, temporal_shuffle, frame_reverse) only moves whole frames, so `VideoBatches` applies its index map to
the clean run's cached preprocessed frames; any other video perturbation (and any run with the cache off) decodes
every clip again and perturbs its frames in the DataLoader workers. Both give the same frames (checked here and
in tests/test_video_perturb.py). Measured, --repeats times each (medians quoted), on the demo's shapes_video clips:

  * decode: the perturbed pass with no decoded-frame cache (PyAV decoding + perturbation + per-frame resize in
    --workers workers), what the naive path (and a non-temporal perturbation) costs;
  * cached: the same perturbed pass read from the decoded-frame cache the clean pass wrote;
  * clean cached: the clean pass read from that cache (the floor: the index maps add only the difference);
  * model: one `encode_videos` call of the reference video model on the cached frames (the model's share, for
    scale: what a cell costs when its data time is near zero).

    python scripts/bench_video_perturb.py                 # 100 clips, 1 worker, 5 repeats
    python scripts/bench_video_perturb.py --videos 200 --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeval.config.runtime import RuntimeConfig
from mmeval.config.video import FrameSampling
from mmeval.data import shapes_video
from mmeval.engine.runtime import resolve_runtime
from mmeval.engine.timing import Timer
from mmeval.io.video_loading import VideoBatches, encode_videos
from mmeval.models.reference_video import DEMO_VIDEO_CHECKPOINT, load_video_folder
from mmeval.perturb import Cell


def frames_of(model, source, runtime, sampling, cell) -> tuple[torch.Tensor, str]:
    loader = VideoBatches(model, source, runtime, sampling, "fail", cell)
    batches = [batch.inputs for batch in loader.batches(loader.order(), Timer())]
    return torch.cat(batches), loader.done.frames_from


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cell", default="frame_drop:3", help="temporal perturbation:severity")
    args = parser.parse_args()
    torch.set_num_threads(2)
    name, severity = args.cell.split(":")
    cell = Cell("video", name, int(severity), 0)
    source = shapes_video.load_shapes_video_classes("test", args.videos).videos
    sampling = FrameSampling(frames=args.frames)
    model = load_video_folder(DEMO_VIDEO_CHECKPOINT)
    with tempfile.TemporaryDirectory() as cache_dir:
        runtime = resolve_runtime(RuntimeConfig(device="cpu", batch_size=16, num_workers=args.workers,
                                                cache="pixels", cache_dir=Path(cache_dir)))  # fmt: skip
        no_cache = replace(runtime, cache=None)
        frames_of(model, source, runtime, sampling, None)  # the clean pass writes the decoded-frame cache
        cached, how_cached = frames_of(model, source, runtime, sampling, cell)
        decoded, how_decoded = frames_of(model, source, no_cache, sampling, cell)
        assert (how_cached, how_decoded) == ("cache", "uint8") and torch.equal(cached, decoded)
        decode_s = timed(lambda: frames_of(model, source, no_cache, sampling, cell), args.repeats)
        cached_s = timed(lambda: frames_of(model, source, runtime, sampling, cell), args.repeats)
        clean_s = timed(lambda: frames_of(model, source, runtime, sampling, None), args.repeats)
        model_s = timed(lambda: encode_videos(model, source, runtime, sampling, "fail", lambda n: None, cell),
                        args.repeats)  # fmt: skip
    d, c, k, m = (statistics.median(x) for x in (decode_s, cached_s, clean_s, model_s))
    print(f"{args.videos} shapes_video clips, {args.frames} frames each, video:{name}@{severity}, "
          f"{args.workers} worker(s), {args.repeats} repeats (medians); same frames on both paths: yes")
    print(f"  decode again (naive)       {d:8.3f} s   {args.videos / d:8.1f} videos/s")
    print(f"  from decoded-frame cache   {c:8.3f} s   {args.videos / c:8.1f} videos/s   ratio {d / c:6.1f}x")
    print(f"  clean pass from the cache  {k:8.3f} s   {args.videos / k:8.1f} videos/s")
    print(f"  whole encode pass (cached) {m:8.3f} s   {args.videos / m:8.1f} videos/s")


if __name__ == "__main__":
    main()
