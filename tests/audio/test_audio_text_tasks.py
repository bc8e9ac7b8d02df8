"""The audio-text tasks end to end on the shipped reference_audio model (mmeval/assets/shapes-audio), through the
CLI: report contents (decoder, resampler, settings), metric values against an independent clip-by-clip
computation (soundfile + the model + a NumPy brute force), far above chance on held-out clips, compare / gate on
two audio reports, the HTML page, and a resumed audio pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import write_yaml
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.config.audio import AudioSettings
from mmeval.config.run import RuntimeConfig
from mmeval.data.shapes_audio import load_shapes_audio, load_shapes_audio_classes
from mmeval.engine.audio_passes import encode_audio
from mmeval.engine.runtime import resolve_runtime
from mmeval.models.reference_audio import DEMO_CHECKPOINT, load_folder

N_CLIPS = 80


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs of the shipped model on the same clips: whole clips, and clips cut to their first second."""
    folder = tmp_path_factory.mktemp("audio-text-runs")
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(folder / "cache"))  # module-wide: the per-test cache fixture comes later
    out = {}
    for name, audio in (("full", "{}"), ("cut", "{max_seconds: 1.0, on_too_long: truncate}")):
        config = write_yaml(
            folder / f"{name}.yaml",
            f"""
model: {{type: reference_audio, name: ref-{name}}}
runtime: {{device: cpu, batch_size: 32, num_workers: 0}}
bootstrap: {{n: 200}}
output: {{dir: {folder / name}}}
benchmarks:
  - name: sa_retrieval
    task: audio_retrieval
    data: {{format: shapes_audio, n_clips: {N_CLIPS}}}
    audio: {audio}
    bias: {{attributes: [kind]}}
  - name: sa_zeroshot
    task: audio_zeroshot
    data: {{format: shapes_audio, n_clips: {N_CLIPS}}}
    audio: {audio}
    bias: {{attributes: [loudness]}}
  - name: sa_captions
    task: audio_captioning
    data: {{format: shapes_audio, n_clips: {N_CLIPS}, limit: 24}}
    metrics: [Bleu, ROUGE_L, CIDEr]
    tokenizer: python
""",
        )
        done = CliRunner().invoke(app, ["run", "-c", str(config)])
        assert done.exit_code == 0, done.output
        out[name] = next((folder / name).glob("*[0-9].json"))
    patch.undo()
    return out


def _report(path: Path) -> tuple[dict, dict]:
    return json.loads(path.read_text()), json.loads(path.with_suffix(".samples.json").read_text())


def test_reports_record_decoder_resampler_and_settings(runs) -> None:
    report, _ = _report(runs["full"])
    for name in ("sa_retrieval", "sa_zeroshot", "sa_captions"):
        bench = report["benchmarks"][name]
        assert bench["status"] == "complete", bench
        decoder = bench["dataset"]["decoder"]
        assert decoder["rate"] == 16000 and decoder["resampler"].startswith("soxr_hq")
        assert decoder["settings"] == AudioSettings().model_dump() and "soundfile" in decoder
        assert decoder["resampling"].startswith("one libsoxr stream per group of up to 16 clips")
    assert report["benchmarks"]["sa_retrieval"]["dataset"]["n_clips"] == N_CLIPS
    assert report["benchmarks"]["sa_retrieval"]["dataset"]["n_texts"] == 5 * N_CLIPS
    assert report["model"]["adapter"] == "reference_audio"


def test_retrieval_and_zeroshot_match_an_independent_clip_by_clip_computation(runs) -> None:
    report, samples = _report(runs["full"])
    model = load_folder(DEMO_CHECKPOINT)
    data = load_shapes_audio("test", N_CLIPS, 0)
    with torch.no_grad():
        clips = []
        for path in data.audio.paths:  # one clip at a time, read with soundfile directly
            wave = torch.from_numpy(sf.read(path, dtype="float32")[0])[None]
            clips.append(model.encode_audio(wave, torch.tensor([wave.shape[1]]))[0])
        audio = F.normalize(torch.stack(clips), dim=-1).double().numpy()
        text = F.normalize(model.encode_text(model.tokenize(data.texts)), dim=-1).double().numpy()
    scores = text @ audio.T
    owner = np.array(data.text_owner)
    own = scores[np.arange(len(owner)), owner]
    t2a = 1 + (scores >= own[:, None]).sum(1) - 1  # ties against the model; the own clip counted once
    got = [row["rank"] for row in samples["sa_retrieval"]["t2a"]]
    assert (np.array(got) != t2a).mean() < 0.01  # float32 batch vs clip-by-clip: at most a rare near-tie moves
    metrics = report["benchmarks"]["sa_retrieval"]["metrics"]
    assert metrics["t2a_mAP@10"]["value"] == pytest.approx(np.mean(np.where(t2a <= 10, 1 / t2a, 0)), abs=0.01)
    assert metrics["t2a_R@10"]["value"] == pytest.approx(np.mean(t2a <= 10), abs=0.01)

    classes = load_shapes_audio_classes("test", N_CLIPS, 0)
    with torch.no_grad():
        prompts = F.normalize(model.encode_text(model.tokenize([f"this is the sound of {c}." for c in classes.classnames])),
                              dim=-1).double().numpy()  # fmt: skip
    predicted = (audio @ prompts.T).argmax(1)
    top1 = report["benchmarks"]["sa_zeroshot"]["metrics"]["top1"]["value"]
    assert top1 == pytest.approx(np.mean(predicted == np.array(classes.labels)), abs=0.01)


def test_the_shipped_model_is_far_above_chance_on_held_out_clips(runs) -> None:
    report, _ = _report(runs["full"])
    retrieval = report["benchmarks"]["sa_retrieval"]["metrics"]
    assert retrieval["t2a_R@10"]["value"] > 4 * 10 / N_CLIPS  # chance: 10 / N
    assert retrieval["t2a_mAP@10"]["value"] > 4 * sum(1 / r for r in range(1, 11)) / N_CLIPS
    assert report["benchmarks"]["sa_zeroshot"]["metrics"]["top1"]["value"] > 0.5  # 8 classes: chance ~0.125
    captions = report["benchmarks"]["sa_captions"]
    assert captions["metrics"]["CIDEr"]["value"] > 0.3 and "SPIDEr" in captions["skipped_metrics"]
    assert "SPIDEr" not in captions["metrics"]  # only when SPICE ran


def test_compare_gate_and_html_on_two_audio_reports(runs, tmp_path) -> None:
    done = CliRunner().invoke(app, ["compare", str(runs["full"]), str(runs["cut"]), "-f", "json"])
    assert done.exit_code == 0, done.output
    compared = json.loads(done.stdout)
    assert "t2a_mAP@10" in done.output and "spoken" not in done.output
    cut, _ = _report(runs["cut"])
    assert cut["benchmarks"]["sa_retrieval"]["dataset"]["decoder"]["settings"]["max_seconds"] == 1.0
    assert (
        cut["benchmarks"]["sa_retrieval"]["metrics"]["t2a_mAP@10"]["value"]
        < _report(runs["full"])[0]["benchmarks"]["sa_retrieval"]["metrics"]["t2a_mAP@10"]["value"]
    )  # counts are cut off
    assert compared
    rules = write_yaml(
        tmp_path / "rules.yaml",
        """
rules:
  - {name: map floor, metric: "sa_retrieval/t2a_mAP@10", min: 0.05}
  - {name: zero-shot drop, metric: "sa_zeroshot/top1", max_drop: 0.5}
""",
    )
    gate = CliRunner().invoke(app, ["gate", "--candidate", str(runs["cut"]), "--baseline", str(runs["full"]),
                                    "--rules", str(rules), "--force"])  # fmt: skip
    assert gate.exit_code == 0, gate.output
    strict = write_yaml(
        tmp_path / "strict.yaml", "rules:\n  - {name: high, metric: sa_retrieval/t2a_mAP@10, min: 0.99}\n"
    )
    failed = CliRunner().invoke(app, ["gate", "--candidate", str(runs["cut"]), "--rules", str(strict)])
    assert failed.exit_code == 1, failed.output
    page = tmp_path / "audio.html"
    html = CliRunner().invoke(app, ["report", str(runs["full"]), str(runs["cut"]), "--html", str(page)])
    assert html.exit_code == 0, html.output
    text = page.read_text()
    retrieval = text[text.index('id="b-sa_retrieval"') : text.index('id="b-sa_zeroshot"')]
    assert "recall@k curves" in retrieval and 'id="b-sa_captions"' in text


def test_an_interrupted_audio_pass_resumes_with_the_same_embeddings() -> None:
    data = load_shapes_audio("test", 30, 0)
    model = load_folder(DEMO_CHECKPOINT)
    run = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=4, num_workers=0, chunk_size=4))
    run.cache.outputs = False  # the final output-cache entry would short-cut the rerun
    expected, _ = encode_audio(model, data.audio, run, AudioSettings(), "fail", lambda n: None)

    seen = []

    def stop(n: int) -> None:
        seen.append(n)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_audio(model, data.audio, run, AudioSettings(), "fail", stop)
    run.resume = True
    calls = []
    original = model.encode_audio
    model.encode_audio = lambda audio, lengths: calls.append(len(audio)) or original(audio, lengths)
    resumed, found = encode_audio(model, data.audio, run, AudioSettings(), "fail", lambda n: None)
    # the chunks saved before the interrupt (two of 4 clips: the third batch was interrupted while reported) are
    # reused, the rest is embedded again; the embeddings are those of the uninterrupted pass
    assert sum(calls) == 30 - 2 * 4 and torch.equal(resumed, expected) and found.ok_indices == list(range(30))


def test_bias_slices_by_clip_attributes_match_the_per_sample_rows(runs) -> None:
    report, samples = _report(runs["full"])
    attributes = load_shapes_audio("test", N_CLIPS, 0).attributes
    sliced = report["benchmarks"]["sa_retrieval"]["bias"]["attributes"]["kind"]["sliced"]
    rows = samples["sa_retrieval"]["t2a"]
    for kind, value in sliced["t2a_mAP@10"]["per_group"].items():
        ranks = np.array([r["rank"] for r in rows if attributes[r["clip_id"]]["kind"] == kind])
        assert value == pytest.approx(np.mean(np.where(ranks <= 10, 1 / ranks, 0)))
    assert set(sliced["t2a_R@1"]["per_group"]) == {"tone", "chirp", "noise", "clicks"}
    zeroshot = report["benchmarks"]["sa_zeroshot"]["bias"]["attributes"]["loudness"]["sliced"]["top1"]["per_group"]
    predictions = samples["sa_zeroshot"]["predictions"]
    for loudness, value in zeroshot.items():
        hits = [r["prediction"] == r["label"] for r in predictions if attributes[r["clip_id"]]["loudness"] == loudness]
        assert value == pytest.approx(np.mean(hits))
