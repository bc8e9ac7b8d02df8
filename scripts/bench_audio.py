"""Audio throughput, measured side by side in one run:

1. decode + resample: mmeval's audio loader (`io/audio_loading.AudioBatches`: DataLoader workers, soxr, padded
   batches; cold = decoding every clip, warm = the decoded-input cache filled by an earlier pass) against the
   naive per-file loop a script would write (`librosa.load(path, sr=rate)` per clip; soundfile +
   scipy.signal.resample_poly when librosa is not installed), over the shipped spoken shapes clips;
2. Whisper (a tiny random config, tests/audio/tiny_speech.py, saved and loaded through mmeval's adapter):
   batched `generate` at --batch against one clip per call, transcripts checked identical.

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.):

    python scripts/bench_audio.py [--rate 22050] [--workers 2] [--repeats 3] [--batch 16] [--whisper-clips 32]

Prints the median of --repeats timings of each path and the ratios. The clips are 16 kHz: --rate 16000 times
decoding alone, any other rate decoding + resampling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def naive_loader():
    """The per-file load a script would write: librosa.load, or soundfile + scipy when librosa is missing."""
    try:
        import librosa

        return "librosa.load", lambda path, rate: librosa.load(path, sr=rate, mono=True)[0]
    except ImportError:
        import soundfile as sf
        from scipy.signal import resample_poly

        def load(path: Path, rate: int) -> np.ndarray:
            samples, native = sf.read(path, dtype="float32", always_2d=True)
            mono = samples.mean(axis=1)
            return mono if native == rate else resample_poly(mono, rate, native).astype(np.float32)

        return "soundfile.read + scipy resample_poly", load


def median_time(work, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), out


def bench_loading(paths: list[Path], rate: int, workers: int, batch: int, repeats: int) -> None:
    from mmeval.config.audio import AudioSettings
    from mmeval.config.run import RuntimeConfig
    from mmeval.engine.cache import Cache
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.engine.timing import Timer
    from mmeval.io.audio_loading import AudioBatches, AudioSource

    name, load = naive_loader()
    naive_s, naive = median_time(lambda: [load(p, rate) for p in paths], repeats)

    def loaded(runtime) -> list[np.ndarray]:
        loader = AudioBatches(AudioSource(paths), runtime, AudioSettings(), rate, "skip")
        out = []
        for done in loader.batches(loader.order(), Timer()):
            audio, lengths = done.inputs["audio"], done.inputs["lengths"]
            out += [audio[r, : int(n)].numpy() for r, n in enumerate(lengths)]
        return out

    runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch, num_workers=0))
    runtime.cache = None
    inline_s, _ = median_time(lambda: loaded(runtime), repeats)
    runtime.num_workers = workers
    cold_s, cold = median_time(lambda: loaded(runtime), repeats)
    with tempfile.TemporaryDirectory() as folder:
        runtime.cache = Cache(Path(folder))
        loaded(runtime)  # fills the decoded-input cache
        warm_s, warm = median_time(lambda: loaded(runtime), repeats)
    seconds = sum(len(w) for w in naive) / rate
    diff = max(float(np.abs(a[: len(b)] - b[: len(a)]).max()) for a, b in zip(naive, cold))
    length_diff = max(abs(len(a) - len(b)) for a, b in zip(naive, cold))
    assert all(np.array_equal(a, b) for a, b in zip(cold, warm)), "the decoded-input cache changed the samples"
    print(f"decode + resample of {len(paths)} clips ({seconds:.0f} s of audio, 16 kHz FLAC -> {rate} Hz), "
          f"median of {repeats}:")
    print(f"  naive per-file {name:<38} {naive_s:7.3f} s")
    print(f"  mmeval AudioBatches, no workers, cold{'':<14} {inline_s:7.3f} s   x{naive_s / inline_s:.2f}")
    print(f"  mmeval AudioBatches, {workers} workers, cold{'':<16} {cold_s:7.3f} s   x{naive_s / cold_s:.2f}")
    print(f"  mmeval AudioBatches, decoded-input cache (warm){'':<1} {warm_s:7.3f} s   x{naive_s / warm_s:.2f}")
    print(f"  samples: max |mmeval - naive| = {diff:.2e} over the common length; lengths differ by at most "
          f"{length_diff} sample(s) (librosa fixes the length to ceil(n * ratio), soxr rounds)")


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
