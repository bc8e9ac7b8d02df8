"""A second modality through the one engine: synthetic audio waveforms, a toy encoder and a toy transcriber.

Nothing here is image-specific: a waveform source and batch loader written against `mmeval.io.source` (with
its own decoded-input cache, float32 under `waveforms/`) run through `engine.model_pass` as the image and text
passes do. Outputs are checked against a per-clip loop in NumPy (float64), not against the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mmeval.config.run import RuntimeConfig
from mmeval.engine.model_pass import model_pass
from mmeval.engine.outputs import Embeddings, Generation
from mmeval.engine.runtime import Runtime, resolve_runtime
from mmeval.engine.timing import Timer
from mmeval.errors import DataError, MmevalError
from mmeval.io.source import Batch
from mmeval.models.base import ModelInfo

N_CLIPS, LENGTH, DIM = 14, 32, 5


class Waveforms:
    """`n` int16 clips of 20 to 44 samples (seeded); `broken` ones cannot be read, `silent` ones are all zero."""

    def __init__(self, n: int, seed: int, broken: frozenset[int] = frozenset(), silent: frozenset[int] = frozenset()):
        rng = np.random.default_rng(seed)
        self.clips = [rng.integers(-30000, 30000, int(rng.integers(20, 45))).astype(np.int16) for _ in range(n)]
        for index in silent:
            self.clips[index][:] = 0
        self.seed, self.broken, self.reads = seed, broken, 0

    def __len__(self) -> int:
        return len(self.clips)

    def describe(self, index: int) -> str:
        return f"clip-{index:04d}.wav"

    def fingerprint(self) -> str:
        return f"synthetic-waveforms|{self.seed}|{len(self.clips)}|{sorted(self.broken)}"

    def read(self, index: int) -> bytes:
        self.reads += 1
        if index in self.broken:
            raise DataError(f"{self.describe(index)}: cannot decode audio (not a WAV file)")
        return self.clips[index].tobytes()


def decode(data: bytes) -> np.ndarray:
    """int16 bytes -> float32 in [-1, 1), cropped or zero-padded to LENGTH samples."""
    wave = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768
    return np.pad(wave[:LENGTH], (0, max(0, LENGTH - len(wave))))


class WaveformBatches:
    """A `BatchLoader` for waveforms, with a decoded-input cache of its own (float32 rows under `waveforms/`)."""

    def __init__(self, source: Waveforms, runtime: Runtime):
        self.source, self.runtime = source, runtime
        parts = {"source": source.fingerprint(), "length": LENGTH}
        self.store = runtime.cache.decoded_store(parts, "waveforms", np.float32) if runtime.cache else None

    def order(self) -> list[int]:
        return list(range(len(self.source)))

    def cache_parts(self) -> dict:
        return {"waveforms": self.source.fingerprint(), "length": LENGTH}

    def batches(self, indices: list[int], timer: Timer) -> Iterator[Batch]:
        stored = self.store is not None and self.store.complete()
        writing = not stored and self.store is not None and len(indices) == len(self.source)
        writing = writing and self.store.begin(len(self.source), (LENGTH,))
        known = {int(i): r for i, r in self.store.meta()["bad"]} if stored else {}
        array = self.store.array() if stored else None
        found: dict = {"ok": [], "bad": [], "digests": {}}
        for start in range(0, len(indices), self.runtime.batch_size):
            items, waves, bad = indices[start : start + self.runtime.batch_size], [], []
            for index in items:
                try:
                    if index in known:
                        raise DataError(known[index])
                    waves.append((index, array[index] if stored else decode(self.source.read(index))))
                except DataError as exc:
                    bad.append((index, str(exc)))
            ok = [index for index, _ in waves]
            rows = torch.from_numpy(np.stack([w for _, w in waves])) if waves else None
            if writing and ok:
                self.store.write(ok, rows)
            found["ok"] += ok
            found["bad"] += [list(b) for b in bad]
            yield Batch(ok, rows, bad, {})
        if writing:
            self.store.finish(found)


class ToyAudioEncoder:
    """Embeds a (B, LENGTH) batch as waves @ W / |wave| (a silent clip gives NaN); records each call's rows and
    fails calls of more than `oom_above` rows as CUDA would."""

    def __init__(self, tag: str = "a", oom_above: int | None = None):
        self.weights = torch.randn(LENGTH, DIM, generator=torch.Generator().manual_seed(7))
        self.info = ModelInfo("toy-audio", f"toy-{tag}", None, f"sha-{tag}", LENGTH * DIM)
        self.oom_above, self.calls = oom_above, []

    def encode_audio(self, waves: torch.Tensor) -> torch.Tensor:
        if self.oom_above is not None and len(waves) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.calls.append(len(waves))
        return waves @ self.weights / waves.norm(dim=1, keepdim=True)

    def transcribe(self, waves: torch.Tensor) -> list[str]:
        self.calls.append(len(waves))
        return [f"loudest sample {int(w.abs().argmax())}" for w in waves]


def reference_embeddings(source: Waveforms, model: ToyAudioEncoder, indices: list[int]) -> np.ndarray:
    """Clip by clip in float64: the toy encoder's formula, then L2-normalised."""
    weights = model.weights.double().numpy()
    rows = []
    for index in indices:
        wave = decode(source.clips[index].tobytes()).astype(np.float64)
        row = wave @ weights / np.sqrt((wave**2).sum())
        rows.append(row / np.sqrt((row**2).sum()))
    return np.array(rows)


def runtime(batch_size: int = 3, chunk_size: int = 1024) -> Runtime:
    return resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch_size, num_workers=0,
                                         chunk_size=chunk_size))  # fmt: skip


def embed(model: ToyAudioEncoder, source: Waveforms, run: Runtime, progress=lambda n: None):
    loader = WaveformBatches(source, run)
    return model_pass(model, loader, Embeddings(model.encode_audio, "waveform", run), run, progress)


def test_waveform_embeddings_match_a_clip_by_clip_reference_and_name_unreadable_clips() -> None:
    source = Waveforms(N_CLIPS, seed=1, broken=frozenset({4, 9}))
    model, run = ToyAudioEncoder(), runtime()
    ticks: list[int] = []
    done = embed(model, source, run, ticks.append)
    readable = [i for i in range(N_CLIPS) if i not in (4, 9)]
    assert done.part.ok == readable and not done.from_cache
    assert done.part.bad == [(4, "clip-0004.wav: cannot decode audio (not a WAV file)"),
                             (9, "clip-0009.wav: cannot decode audio (not a WAV file)")]  # fmt: skip
    np.testing.assert_allclose(done.rows.double().numpy(), reference_embeddings(source, model, readable), atol=1e-6)
    assert model.calls == [3, 2, 3, 2, 2] and sum(ticks) == N_CLIPS  # batches of 3 clips less the broken ones
    assert done.timer.rows == model.calls and len(done.timer.batches) == 5


def test_waveform_outputs_are_cached_and_decoded_waveforms_are_shared_between_models(own_cache: Path) -> None:
    source, run = Waveforms(N_CLIPS, seed=2, broken=frozenset({0})), runtime()
    first = embed(ToyAudioEncoder("a"), source, run)
    assert source.reads == N_CLIPS
    assert len(list((own_cache / "waveforms").rglob("*.float32"))) == 1  # the decoded-input store, float32

    again_model = ToyAudioEncoder("a")
    again = embed(again_model, source, run)
    assert again.from_cache and again.timer.cached and again_model.calls == []
    assert torch.equal(again.rows, first.rows) and again.part.bad == first.part.bad and again.part.ok == first.part.ok

    other = ToyAudioEncoder("b")  # another checkpoint: no output-cache hit, but nothing is decoded again
    third = embed(other, source, run)
    assert not third.from_cache and sum(other.calls) == N_CLIPS - 1 and source.reads == N_CLIPS
    assert torch.equal(third.rows, first.rows)  # same formula and weights: the stored waveforms are exact
    assert third.part.bad == first.part.bad


def _stop_after(batches: int):
    seen: list[int] = []

    def progress(n: int) -> None:
        if n:  # the pass first reports what earlier chunks covered (0 here)
            seen.append(n)
        if len(seen) == batches:
            raise KeyboardInterrupt

    return progress


def test_an_interrupted_waveform_pass_resumes_bit_identically() -> None:
    source, run = Waveforms(N_CLIPS, seed=3, broken=frozenset({5})), runtime(batch_size=3, chunk_size=3)
    run.cache.outputs = False  # the final output-cache entry would short-cut the reruns
    expected = embed(ToyAudioEncoder(), source, run)
    with pytest.raises(KeyboardInterrupt):
        embed(ToyAudioEncoder(), source, run, _stop_after(3))
    run.resume = True
    resumed_model = ToyAudioEncoder()
    resumed = embed(resumed_model, source, run)
    assert sum(resumed_model.calls) == N_CLIPS - 3 * 3  # three batches of 3 (one broken clip among them) were kept
    assert torch.equal(resumed.rows, expected.rows)
    assert resumed.part.ok == expected.part.ok == [i for i in range(N_CLIPS) if i != 5]
    assert resumed.part.bad == expected.part.bad == [(5, "clip-0005.wav: cannot decode audio (not a WAV file)")]


def test_out_of_memory_halves_waveform_calls_and_keeps_the_results() -> None:
    source, run = Waveforms(N_CLIPS, seed=4), runtime(batch_size=8)
    model = ToyAudioEncoder(oom_above=2)
    done = embed(model, source, run)
    np.testing.assert_allclose(done.rows.double().numpy(), reference_embeddings(source, model, list(range(N_CLIPS))),
                               atol=1e-6)  # fmt: skip
    assert [(r["pass"], r["from"], r["to"]) for r in run.batch_reductions] == [("waveforms", 8, 4), ("waveforms", 4, 2)]
    assert model.calls == [2] * 7  # 8 + 6 clips in calls of 2 once halved twice


def test_nan_waveform_embeddings_name_the_batch_and_the_clip() -> None:
    source, run = Waveforms(N_CLIPS, seed=5, silent=frozenset({4})), runtime(batch_size=3)
    with pytest.raises(MmevalError) as error:
        embed(ToyAudioEncoder(), source, run)
    assert str(error.value) == ("the model returned NaN or Inf waveform embeddings in waveform batch 2 for 1 of its "
                                "3 waveforms: clip-0004.wav")


def test_waveform_transcripts_run_through_the_generation_kind_and_are_cached() -> None:
    source, run = Waveforms(N_CLIPS, seed=6, broken=frozenset({2})), runtime(batch_size=4)

    def transcribe(model):
        kind = Generation(lambda waves, _: model.transcribe(waves), "transcripts", "clips", run)
        return model_pass(model, WaveformBatches(source, run), kind, run, lambda n: None, settings={"beam": 1})

    model = ToyAudioEncoder()
    done = transcribe(model)
    readable = [i for i in range(N_CLIPS) if i != 2]
    expected = [f"loudest sample {int(np.abs(decode(source.clips[i].tobytes())).argmax())}" for i in readable]
    assert done.part.items == expected and done.part.ok == readable and model.calls == [3, 4, 4, 2]
    cached_model = ToyAudioEncoder()
    again = transcribe(cached_model)
    assert again.from_cache and again.part.items == expected and cached_model.calls == []
