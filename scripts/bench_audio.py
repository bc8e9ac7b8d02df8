"""Audio throughput, measured side by side in one run:

1. decode + resample: mmeval's audio loader (`io/audio_loading.AudioBatches` with its defaults: decoding
   threads, each decoding a group of batches clip by clip through libsndfile directly (io/audio_direct.py) into
   one soxr_hq stream that writes into the padded batches; cold = decoding every clip, warm = the
   decoded-input cache filled by an earlier pass) against the naive single-process per-file loop a script would
   write (`librosa.load(path, sr=rate)` per clip, which also resamples with soxr_hq; librosa comes with the
   `bench` extra: pip install -e '.[bench]'), over the shipped spoken shapes clips, same files,
   same target rate. In the timed passes each batch (each clip, for the naive loop) is dropped once loaded, as a
   model pass consumes it; untimed passes keep the samples to compare them (lengths, max abs difference). Beside
   them, the floor: the C work alone (libsndfile decoding, one soxr stream over all clips) and how much faster
   the decoding alone runs split over the threads, measured in the same rounds;
2. Whisper (a tiny random config, tests/audio/tiny_speech.py, saved and loaded through mmeval's adapter):
   batched `generate` at --batch against one clip per call, transcripts checked identical.

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.):

    python scripts/bench_audio.py [--rate 22050] [--workers 2] [--repeats 3] [--batch 16] [--whisper-clips 32]

Prints the median of --repeats timings of each path (the loading paths interleaved, round by round), the ratios,
and the CPU seconds of this process (all threads) per path. The clips are 16 kHz: --rate 16000 times
decoding alone, any other rate decoding + resampling.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def naive_loader():
    """The per-file load a script would write: `librosa.load` (the peer the target is set against; it resamples
    with soxr_hq as mmeval does). Without librosa: one line saying how to install it, exit 2 (a weaker stand-in
    with another resampler would give a flattering ratio and samples that differ)."""
    try:
        import librosa
    except ImportError:
        print("bench_audio.py: the decode + resample comparison needs librosa, the peer it measures against: "
              "pip install -e '.[bench]' (or --skip loading)", file=sys.stderr)
        sys.exit(2)
    return "librosa.load", lambda path, rate: librosa.load(path, sr=rate, mono=True)[0]


def median_time(work, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), out


def interleaved(paths: dict[str, object], repeats: int) -> dict[str, tuple[float, float, object]]:
    """Each path run once per round, the rounds repeated: (median wall s, median CPU s of this process, output).
    Interleaving keeps a busy machine's changing load from favouring whichever path ran at a quiet moment."""
    walls: dict[str, list[float]] = {name: [] for name in paths}
    cpus: dict[str, list[float]] = {name: [] for name in paths}
    outs: dict[str, object] = {}
    for _ in range(repeats):
        for name, work in paths.items():
            wall, cpu = time.perf_counter(), time.process_time()
            outs[name] = work()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), outs[name]) for name in paths}


def bench_loading(paths: list[Path], rate: int, workers: int, batch: int, repeats: int) -> None:
    from mmeval.config.audio import AudioSettings
    from mmeval.config.run import RuntimeConfig
    from mmeval.engine.cache import Cache
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.engine.timing import Timer
    from mmeval.io.audio import describe_decoder
    from mmeval.io.audio_loading import AudioBatches, AudioSource
    from mmeval.io.audio_resample import resample_joined
    from mmeval.io.sndfile_direct import read_frames

    name, load = naive_loader()

    def loaded(runtime, keep: bool = False) -> list[np.ndarray]:
        """One pass of mmeval's loader; each batch dropped once seen, as the model pass does after its forward
        (the timed runs), or every clip's samples kept (the untimed runs that compare them)."""
        loader = AudioBatches(AudioSource(paths), runtime, AudioSettings(), rate, "skip")
        out = []
        for done in loader.batches(loader.order(), Timer()):
            audio, lengths = done.inputs["audio"], done.inputs["lengths"]
            if keep:
                out += [audio[r, : int(n)].numpy() for r, n in enumerate(lengths)]
        return out

    def naive_pass() -> None:  # each clip dropped once loaded, as a model would consume it
        for p in paths:
            load(p, rate)

    def runtime_with(threads: int):
        runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch,
                                                num_workers=threads))  # fmt: skip
        runtime.cache = None  # cold: no decoded-input cache, every clip read, decoded and resampled
        return runtime

    inline, threaded = runtime_with(0), runtime_with(workers)
    load(paths[0], rate), loaded(inline)  # imports and first-call set-up out of the timings
    waves = [read_frames(p).samples[:, 0] for p in paths]
    pool = ThreadPoolExecutor(max_workers=workers)
    shares = [paths[k::workers] for k in range(workers)]

    def decode_split() -> None:  # the decode floor split over the threads, each reading its share of the files
        list(pool.map(lambda share: [read_frames(p) for p in share], shares))

    timed = interleaved({"naive": naive_pass, "inline": lambda: loaded(inline),
                         "cold": lambda: loaded(threaded), "decode floor": lambda: [read_frames(p) for p in paths],
                         "decode floor split": decode_split,
                         "resample floor": lambda: resample_joined(waves, 16000, rate, "soxr_hq")}, repeats)  # fmt: skip
    pool.shutdown()
    naive_s, naive_cpu, _ = timed["naive"]
    naive, cold = [load(p, rate) for p in paths], loaded(threaded, keep=True)  # the samples compared
    with tempfile.TemporaryDirectory() as folder:
        threaded.cache = Cache(Path(folder))
        loaded(threaded)  # fills the decoded-input cache
        warm_s, _ = median_time(lambda: loaded(threaded), repeats)
        warm = loaded(threaded, keep=True)
    seconds = sum(len(w) for w in naive) / rate
    diffs = [np.abs(a[: len(b)] - b[: len(a)]) for a, b in zip(naive, cold)]
    skip = math.ceil(3 * rate / 16000) + 1  # the output samples of a clip's first 3 input samples
    diff, diff_after = max(float(d.max()) for d in diffs), max(float(d[skip:].max()) for d in diffs)
    length_diff = max(abs(len(a) - len(b)) for a, b in zip(naive, cold))
    assert all(np.array_equal(a, b) for a, b in zip(cold, warm)), "the decoded-input cache changed the samples"
    import os

    print(f"decode + resample of {len(paths)} clips ({seconds:.0f} s of audio, 16 kHz FLAC -> {rate} Hz), "
          f"median of {repeats} interleaved rounds, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; resampler {describe_decoder()['resampler']}:")
    print(f"  {'path':<52} {'wall s':>8} {'ratio':>7} {'CPU s':>8}")
    print(f"  {'naive per-file ' + name:<52} {naive_s:8.3f} {'':>7} {naive_cpu:8.3f}")
    for key, label in (("inline", "mmeval AudioBatches, no threads, cold"),
                       ("cold", f"mmeval AudioBatches, {workers} threads, cold (default)")):  # fmt: skip
        wall, cpu, _ = timed[key]
        print(f"  {label:<52} {wall:8.3f} {'x%.2f' % (naive_s / wall):>7} {cpu:8.3f}")
    print(f"  {'mmeval AudioBatches, decoded-input cache (warm)':<52} {warm_s:8.3f} {'x%.2f' % (naive_s / warm_s):>7}")
    floor = timed["decode floor"][1] + timed["resample floor"][1]
    cores = min(workers, os.cpu_count() or 1)
    scaling = timed["decode floor"][0] / timed["decode floor split"][0]
    print(f"  the C work alone, one thread: libsndfile decode {timed['decode floor'][1]:.3f} CPU s + one soxr stream over "
          f"all clips {timed['resample floor'][1]:.3f} CPU s = {floor:.3f}; on {cores} fully parallel cores with no "
          f"other cost, the best cold ratio would be x{naive_s / (floor / cores):.2f}")
    print(f"  measured parallelism: the decode alone split over {workers} threads (nothing else) runs x{scaling:.2f} "
          f"faster than in one; at that scaling and no other cost, the cold ratio would be about x{naive_s / (floor / scaling):.2f}")
    print(f"  samples: lengths differ by at most {length_diff} sample(s) (librosa fixes the length to "
          f"ceil(n x ratio), soxr rounds half up); max |mmeval - naive| = {diff:.2e}, {diff_after:.2e} after "
          f"the output of each clip's first 3 input samples (io/audio_resample.py: one libsoxr stream per group of batches)")


def bench_whisper(paths: list[Path], batch: int, repeats: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from audio.tiny_speech import save_whisper

    from mmeval.config.audio import AudioSettings
    from mmeval.config.model import ModelConfig
    from mmeval.io.audio import read_audio
    from mmeval.io.audio_loading import pad
    from mmeval.models.base import GenerationSettings
    from mmeval.models.hf_whisper import load

    with tempfile.TemporaryDirectory() as folder:
        model = load(ModelConfig(type="hf_whisper", checkpoint=save_whisper(Path(folder) / "tiny-whisper"),
                                 language="en"))  # fmt: skip
    waves = [read_audio(p, AudioSettings(), 16000).samples for p in paths]
    settings = GenerationSettings(max_new_tokens=16)

    def batched() -> list[str]:
        out = []
        for start in range(0, len(waves), batch):
            audio, lengths = pad(waves[start : start + batch])
            out += model.transcribe(audio, lengths, settings)
        return out

    def one_by_one() -> list[str]:
        return [model.transcribe(*pad([w]), settings)[0] for w in waves]

    with torch.inference_mode():
        batched()  # warm-up
        batch_s, together = median_time(batched, repeats)
        single_s, alone = median_time(one_by_one, repeats)
    print(f"tiny Whisper (random config, {model.info.n_parameters} parameters), {len(waves)} clips, "
          f"{settings.max_new_tokens} new tokens, {torch.get_num_threads()} threads, median of {repeats}:")
    print(f"  batch size 1        {single_s:7.3f} s")
    print(f"  batch size {batch:<8} {batch_s:7.3f} s   x{single_s / batch_s:.2f}")
    print(f"  identical transcripts: {together == alone} ({len(set(together))} distinct)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=22050, help="target rate (16000: no resampling)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whisper-clips", type=int, default=32)
    parser.add_argument("--skip", choices=["loading", "whisper"], default=None)
    args = parser.parse_args()
    from mmeval.data.speech_formats import SPOKEN_SHAPES, read_nemo_manifest

    paths = read_nemo_manifest(SPOKEN_SHAPES / "manifest.jsonl").audio.paths
    if args.skip != "loading":
        bench_loading(paths, args.rate, args.workers, args.batch, args.repeats)
    if args.skip != "whisper":
        bench_whisper(paths[: args.whisper_clips], args.batch, args.repeats)


if __name__ == "__main__":
    main()
