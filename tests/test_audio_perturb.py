"""Audio perturbations (mmeval/perturb/audio.py) and the audio loader applying them: SNR exact per clip,
deterministic per (seed, name, severity, clip), pink noise's 1/f spectrum, silence untouched; the loader perturbs
the decoded wave at the model's rate whatever the batching and threads; a speech_recognition run under white
noise with PocketSphinx (the shipped real model) gets worse with severity and leaves the clean caches alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from mmeval.config.audio import AudioSettings
from mmeval.config.model import ModelConfig
from mmeval.config.run import RuntimeConfig
from mmeval.data.speech_formats import SPOKEN_SHAPES
from mmeval.engine.runtime import resolve_runtime
from mmeval.engine.timing import Timer
from mmeval.io.audio import read_audio
from mmeval.io.audio_loading import AudioBatches, AudioSource
from mmeval.perturb import PERTURBATIONS, Cell, apply, apply_cell
from mmeval.perturb.audio import CLIP_LEVEL, SNR_DB

CLIPS = [SPOKEN_SHAPES / f"{n:04d}.flac" for n in range(0, 60, 7)]


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean**2) / np.mean((noisy.astype(np.float64) - clean) ** 2))


@pytest.mark.parametrize("name", ["white_noise", "pink_noise"])
def test_added_noise_has_the_severitys_snr_and_is_deterministic(name: str) -> None:
    assert SNR_DB == {1: 20.0, 2: 15.0, 3: 10.0, 4: 5.0, 5: 0.0}
    wave = read_audio(CLIPS[0], AudioSettings(), 16000).samples
    for severity in range(1, 6):
        noisy = apply("audio", name, wave, severity, seed=3, sample_id="clip-a")
        assert noisy.dtype == np.float32 and noisy.shape == wave.shape
        assert abs(_snr_db(wave, noisy) - SNR_DB[severity]) < 0.1
        np.testing.assert_array_equal(noisy, apply("audio", name, wave, severity, seed=3, sample_id="clip-a"))
        other = apply("audio", name, wave, severity, seed=3, sample_id="clip-b")  # another clip: other noise
        assert abs(_snr_db(wave, other) - SNR_DB[severity]) < 0.1 and not np.array_equal(noisy, other)
    np.testing.assert_array_equal(wave, read_audio(CLIPS[0], AudioSettings(), 16000).samples)  # input untouched


def test_pink_noise_falls_3_db_per_octave_and_white_noise_is_flat() -> None:
    wave = np.random.default_rng(0).standard_normal(16000 * 8).astype(np.float32)
    band = slice(8, 2000)  # 16 Hz .. 4 kHz of a 2 Hz-resolution Welch estimate
    slopes = {}
    for name in ("white_noise", "pink_noise"):
        noise = apply("audio", name, wave, 5, seed=0, sample_id=0) - wave  # 0 dB: noise as loud as the wave
        freqs, psd = welch(noise, fs=16000, nperseg=8000)
        slopes[name] = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
    assert abs(slopes["white_noise"]) < 0.1  # flat
    assert abs(slopes["pink_noise"] + 1.0) < 0.1  # power ~ 1/f


def test_silence_is_returned_unchanged_and_clipping_cuts_at_its_level() -> None:
    silent = np.zeros(1600, np.float32)
    for name in PERTURBATIONS["audio"]:
        assert apply("audio", name, silent, 5, seed=0, sample_id="s") is silent
    wave = read_audio(CLIPS[1], AudioSettings(), 16000).samples
    peak = float(np.abs(wave).max())
    for severity, level in CLIP_LEVEL.items():
        out = apply("audio", "clipping", wave, severity, seed=0, sample_id="c")
        assert float(np.abs(out).max()) == pytest.approx(level * peak, rel=1e-6)
        inside = np.abs(wave) <= level * peak
        np.testing.assert_array_equal(out[inside], wave[inside])


def _runtime(batch_size: int, threads: int, cache: bool = False):
    runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=batch_size,
                                            num_workers=threads))  # fmt: skip
    if not cache:
        runtime.cache = None
    return runtime


def _waves(loader: AudioBatches) -> dict[int, np.ndarray]:
    out = {}
    for batch in loader.batches(loader.order(), Timer()):
        for row, index in enumerate(batch.indices):
            out[index] = batch.inputs["audio"][row, : int(batch.inputs["lengths"][row])].numpy()
    return out


def test_the_loader_perturbs_each_decoded_clip_alike_in_any_batching_and_from_the_clean_store(own_cache: Path) -> None:
    source = AudioSource(CLIPS[:5])
    cell = Cell("audio", "white_noise", 4, seed=1)
    # the reference: each clip decoded alone at the model's rate (22050: resampled), then perturbed by its id
    expected = {i: apply_cell(cell, "audio", read_audio(p, AudioSettings(), 22050).samples, source.ids[i])
                for i, p in enumerate(source.paths)}  # fmt: skip
    for batch_size, threads in ((2, 0), (5, 2)):
        loader = AudioBatches(source, _runtime(batch_size, threads, cache=True), AudioSettings(), 22050, "skip", cell)
        got = _waves(loader)
        assert "perturbation" in loader.cache_parts() and loader.store is not None and not loader.store.complete()
        for i, want in expected.items():
            assert len(got[i]) == len(want)
            assert float(np.abs(got[i] - want).max()) < 1e-3  # joined resampling: its first samples only differ
            assert abs(_snr_db(read_audio(source.paths[i], AudioSettings(), 22050).samples, got[i]) - SNR_DB[4]) < 0.1
    assert not list(own_cache.rglob("*.float32"))  # a perturbed pass never writes the (clean) decoded store
    clean = AudioBatches(source, _runtime(5, 2, cache=True), AudioSettings(), 22050, "skip")
    clean_waves = _waves(clean)  # a clean pass over the whole source writes the decoded store
    assert "perturbation" not in clean.cache_parts() and clean.store.complete()
    again = AudioBatches(source, _runtime(5, 2, cache=True), AudioSettings(), 22050, "skip", cell)
    from_store = _waves(again)
    assert again.done.decoded_from_cache == 5  # clean decoded clips, perturbed after reading
    for i in range(5):
        np.testing.assert_array_equal(from_store[i], apply_cell(cell, "audio", clean_waves[i], source.ids[i]))
        assert not np.array_equal(from_store[i], clean_waves[i])
    text_cell = AudioBatches(source, _runtime(5, 2, cache=True), AudioSettings(), 22050, "skip",
                             Cell("text", "casing", 3))  # fmt: skip
    assert text_cell.cache_parts() == clean.cache_parts()  # a text cell leaves the audio (and its outputs) clean
    for i, wave in _waves(text_cell).items():
        np.testing.assert_array_equal(wave, clean_waves[i])


def _cache_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_speech_recognition_under_white_noise_gets_worse_with_severity_and_keeps_the_clean_cache(
        tmp_path: Path, own_cache: Path) -> None:  # fmt: skip
    from mmeval.models.pocketsphinx_adapter import load
    from mmeval.tasks.base import RunContext
    from mmeval.tasks.speech_recognition import TASK
    from mmeval.tasks.speech_recognition.config import SpeechRecognitionConfig
    from mmeval.tasks.speech_recognition.run import run

    assert TASK.perturbs == ("audio",)
    rows = [json.loads(line) for line in (SPOKEN_SHAPES / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["voice"] == "en-us"][:12]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio_filepath": str(SPOKEN_SHAPES / r["audio_filepath"])}) + "\n"
                                for r in rows))  # fmt: skip
    bench = SpeechRecognitionConfig(name="asr", task="speech_recognition",
                                    data={"format": "nemo", "annotations": manifest}, normalizers=["basic"])  # fmt: skip
    model = load(ModelConfig(type="pocketsphinx", grammar=SPOKEN_SHAPES / "shapes.jsgf"))
    runtime = _runtime(8, 2, cache=True)

    def wer(cell: Cell | None) -> tuple[float, list[str]]:
        result = run(model, bench, RunContext(runtime, perturbation=cell))
        return result.metrics["wer"]["value"], [u["hypothesis"] for u in result.per_sample["utterances"]]

    clean_wer, clean_text = wer(None)
    clean_files = _cache_files(own_cache)
    assert clean_files  # the clean pass's outputs and decoded clips are cached
    noisy = {s: wer(Cell("audio", "white_noise", s, seed=0)) for s in (1, 3, 5)}
    # light noise can even help PocketSphinx on espeak's digital silence (a dither); 0 dB SNR cannot
    assert noisy[5][0] >= clean_wer and noisy[5][0] > noisy[1][0]
    assert noisy[1][0] <= noisy[3][0] <= noisy[5][0]  # monotone in severity on these 12 utterances
    assert noisy[5][1] != clean_text
    after = _cache_files(own_cache)
    assert {k: v for k, v in after.items() if k in clean_files} == clean_files  # clean entries untouched
    assert len(after) > len(clean_files)  # the perturbed passes have their own output entries
    assert wer(None) == (clean_wer, clean_text)  # and the clean run reads its own again


@pytest.mark.parametrize("task", ["audio_retrieval", "audio_zeroshot"])
def test_text_cells_perturb_captions_and_prompts_and_reuse_the_clean_audio_outputs(task: str, own_cache: Path,
                                                                                   monkeypatch) -> None:  # fmt: skip
    import importlib

    from mmeval.models.reference_audio import DEMO_CHECKPOINT, load_folder
    from mmeval.registry import task_spec
    from mmeval.tasks.base import RunContext

    spec = task_spec(task)
    assert spec.perturbs == ("audio", "text")
    bench = spec.config(name="b", task=task, data={"format": "shapes_audio", "n_clips": 40})
    model = load_folder(DEMO_CHECKPOINT)
    seen: list[str] = []
    module = importlib.import_module(f"mmeval.tasks.{task}.run")
    original = module.encode_texts
    monkeypatch.setattr(module, "encode_texts", lambda m, texts, *rest: seen.extend(texts) or original(m, texts, *rest))
    run, runtime = spec.load("run"), _runtime(16, 0, cache=True)
    clean = run(model, bench, RunContext(runtime))
    clean_texts, seen[:] = list(seen), []
    audio_calls = []
    encode = model.encode_audio
    model.encode_audio = lambda *a: audio_calls.append(1) or encode(*a)
    cell = Cell("text", "char_drop", 5, seed=0)
    perturbed = run(model, bench, RunContext(runtime, perturbation=cell))
    assert audio_calls == []  # the clips' embeddings: the clean pass's, from the output cache
    assert seen and seen != clean_texts  # the captions / prompts went in perturbed ...
    if task == "audio_retrieval":  # ... each caption by its own position
        expected = [apply_cell(cell, "text", text, t) for t, text in enumerate(clean_texts)]
    else:  # ... each class prompt by its (class, template) positions
        n_templates = len(module.DEFAULT_TEMPLATES)
        expected = [apply_cell(cell, "text", text, (j // n_templates, j % n_templates))
                    for j, text in enumerate(clean_texts)]  # fmt: skip
    assert seen == expected
    headline = "t2a_R@1" if task == "audio_retrieval" else "top1"
    assert perturbed.metrics[headline]["value"] != clean.metrics[headline]["value"]
