"""Spoken VQA end to end: PocketSphinx (the spoken shapes grammar) -> the shipped shapes reference answerer, on the
shipped spoken shapes questions. Accuracies and WER are recomputed independently (jiwer, the answerer called
directly on the reference texts); a recogniser that cannot transcribe is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch
from conftest import write_yaml
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.data.shapes import render_scene, split_scene
from mmeval.metrics.text_norm import get_normaliser
from mmeval.models.base import GenerationSettings
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder

GRAMMAR = Path(__file__).resolve().parents[2] / "mmeval" / "assets" / "spoken-shapes" / "shapes.jsgf"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("spoken-vqa")
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(folder / "cache"))  # module-wide: the per-test cache fixture comes later
    config = write_yaml(
        folder / "run.yaml",
        f"""
model: {{type: reference}}
runtime: {{device: cpu, batch_size: 16, num_workers: 0}}
bootstrap: {{n: 200}}
output: {{dir: {folder}}}
benchmarks:
  - name: spoken_shapes
    task: spoken_vqa
    data: {{format: spoken_shapes, limit: 16}}
    recognizer: {{type: pocketsphinx, grammar: {GRAMMAR}}}
""",
    )
    done = CliRunner().invoke(app, ["run", "-c", str(config)])
    patch.undo()
    assert done.exit_code == 0, done.output
    path = next(folder.glob("*[0-9].json"))
    return json.loads(path.read_text()), json.loads(path.with_suffix(".samples.json").read_text())


def test_accuracies_wer_and_speech_loss_recomputed_independently(report) -> None:
    result, samples = report
    bench = result["benchmarks"]["spoken_shapes"]
    rows = samples["spoken_shapes"]["questions"]
    assert bench["status"] == "complete" and len(rows) == bench["dataset"]["n_questions"] >= 10
    metrics = {name: entry["value"] for name, entry in bench["metrics"].items()}
    normalise = get_normaliser("basic")
    wer = jiwer.wer([normalise(r["question"]) for r in rows], [normalise(r["transcript"]) for r in rows])
    assert metrics["question_wer"] == pytest.approx(wer)
    model = load_folder(DEMO_CHECKPOINT)
    scenes = [split_scene("test", 0, int(r["image_id"].split("-")[1])) for r in rows]
    pixels = torch.stack([model.image_transform(render_scene(s, 64)) for s in scenes])
    with torch.no_grad():
        direct = model.answer(pixels, [r["question"] for r in rows], GenerationSettings())
    assert direct == [r["answer_text"] for r in rows]  # the text condition is the answerer on the reference text
    truth = _truth(rows)
    text_acc = np.mean([a == t for a, t in zip(direct, truth)])
    spoken_acc = np.mean([r["answer_spoken"] == t for r, t in zip(rows, truth)])
    assert metrics["text_accuracy"] == pytest.approx(text_acc) and metrics["spoken_accuracy"] == pytest.approx(
        spoken_acc
    )
    assert metrics["speech_loss"] == pytest.approx(text_acc - spoken_acc)
    assert bench["dataset"]["decoder"]["rate"] == 16000 and bench["recognizer"]["adapter"] == "pocketsphinx"


def _truth(rows: list[dict]) -> list[str]:
    """The manifest's answer of each question, read from the shipped manifest itself."""
    manifest = Path(__file__).resolve().parents[2] / "mmeval" / "assets" / "spoken-shapes" / "manifest.jsonl"
    answer = {}
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("kind") == "question":
            answer[entry["question_id"]] = entry["answer"]
    return [answer[r["question_id"]] for r in rows]


def test_a_recognizer_that_cannot_transcribe_is_refused(tmp_path) -> None:
    config = write_yaml(
        tmp_path / "run.yaml",
        """
model: {type: reference}
benchmarks:
  - {name: sv, task: spoken_vqa, data: {format: spoken_shapes}, recognizer: {type: reference_audio}}
""",
    )
    done = CliRunner().invoke(app, ["validate", "-c", str(config)])
    assert done.exit_code == 2
    assert (
        "recognizer.type" in done.output
        and "must be a speech_recognizer; model type 'reference_audio' is not" in done.output
    )


def test_audio_noise_cell_hurts_the_spoken_questions_only(tmp_path: Path, monkeypatch) -> None:
    """A robustness cell of white noise at 0 dB SNR (severity 5) reaches the recogniser's audio (its WER rises, the
    spoken accuracy does not improve) and leaves the typed questions alone (text accuracy as clean)."""
    monkeypatch.setenv("MMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    config = write_yaml(
        tmp_path / "run.yaml",
        f"""
model: {{type: reference}}
runtime: {{device: cpu, batch_size: 16, num_workers: 0}}
output: {{dir: {tmp_path}}}
benchmarks:
  - name: spoken_shapes
    task: spoken_vqa
    data: {{format: spoken_shapes, limit: 12}}
    recognizer: {{type: pocketsphinx, grammar: {GRAMMAR}}}
    perturb: {{audio: [white_noise], severities: [5]}}
""",
    )
    done = CliRunner().invoke(app, ["run", "-c", str(config)])
    assert done.exit_code == 0, done.output
    bench = json.loads(next(tmp_path.glob("*[0-9].json")).read_text())["benchmarks"]["spoken_shapes"]
    block = bench["robustness"]
    clean, noisy = block["clean"], {m: v[0] for m, v in block["grid"]["audio:white_noise"].items()}
    assert noisy["question_wer"] > clean["question_wer"] + 0.2
    assert noisy["spoken_accuracy"] <= clean["spoken_accuracy"]
    assert noisy["text_accuracy"] == pytest.approx(clean["text_accuracy"])
