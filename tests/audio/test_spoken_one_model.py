"""Spoken VQA with ONE speech-capable model (`mode: one_model`): a deterministic plugin that hears the question's
audio and sees the image together (its answers come from the clip's duration and the image's mean grey level), the
same run through a served model (echo server), and the config checks that keep the two modes apart.

Every number is recomputed independently: durations from the FLAC files (soundfile), image means from the shapes
renderer, accuracies against the shipped manifest's answers."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import write_yaml
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.data.shapes import render_scene, split_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from served_server import FakeServer  # noqa: E402

ASSETS = Path(__file__).resolve().parents[2] / "mmeval" / "assets" / "spoken-shapes"
N = 12

PLUGIN = '''
import numpy as np
import torch
from mmeval.models.base import ModelInfo


class Hears:
    """Hears the spoken question and sees the image: 'yes' for a clip longer than `threshold` seconds, else the
    image's mean grey level; as a text answerer (text=True) it says 'yes' to everything."""

    sample_rate = 16000

    def __init__(self, threshold, text=True):
        self.module = torch.nn.Linear(1, 1)
        self.info = ModelInfo(adapter="plugin", name="hears", checkpoint=None, sha256=None, n_parameters=2)
        self.threshold = threshold
        self.capabilities = {"spoken_answerer", "answerer"} if text else {"spoken_answerer"}
        self.calls = []

    def image_transform(self, image):
        return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)

    def answer_spoken(self, pixels, audio, lengths, prompts, settings):
        assert pixels.shape[0] == audio.shape[0] == lengths.shape[0] == len(prompts)
        seconds = lengths.double() / self.sample_rate
        return ["yes" if s > self.threshold else f"{p.double().mean():.2f}" for p, s in zip(pixels, seconds.tolist())]

    def answer(self, pixels, questions, settings):
        return ["yes"] * len(questions)


def make(threshold=1.5, text=True):
    return Hears(threshold, text)
'''


def manifest() -> dict[int, dict]:
    rows = [json.loads(line) for line in (ASSETS / "manifest.jsonl").read_text().splitlines()]
    return {row["question_id"]: row for row in rows if row.get("kind") == "question"}


def durations() -> dict[int, float]:
    return {qid: soundfile.info(str(ASSETS / row["audio_filepath"])).duration for qid, row in manifest().items()}


def threshold() -> float:
    """Half-way between the two middle durations of the first N questions (far from any clip's length)."""
    ordered = sorted(list(durations().values())[:N])
    return (ordered[N // 2 - 1] + ordered[N // 2]) / 2


def run(tmp_path: Path, model: str, bench_extra: str = "", expect: int = 0) -> tuple[dict, dict, str]:
    config = write_yaml(tmp_path / "run.yaml", f"""
model: {model}
runtime: {{device: cpu, batch_size: 8, num_workers: 0}}
bootstrap: {{n: 100}}
output: {{dir: {tmp_path / 'out'}, name: run}}
benchmarks:
  - name: sv
    task: spoken_vqa
    mode: one_model
    data: {{format: spoken_shapes, limit: {N}}}
{textwrap.indent(bench_extra, '    ')}
""")
    done = CliRunner().invoke(app, ["run", "-c", str(config), "--no-cache"])
    assert done.exit_code == expect, done.output
    if expect:
        return {}, {}, done.output
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    samples = json.loads((tmp_path / "out" / "run.samples.json").read_text())
    return report["benchmarks"]["sv"], samples["sv"], done.output


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hears_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_one_model_plugin_answers_from_image_and_audio(tmp_path: Path, plugin: None) -> None:
    cut = threshold()
    bench, samples, _ = run(tmp_path, f"{{type: plugin, entry: 'hears_plugin:make', options: {{threshold: {cut}}}}}")
    assert bench["status"] == "complete" and bench["mode"] == "one_model"
    rows = samples["questions"]
    assert len(rows) == N
    truth, seconds = manifest(), durations()
    for row in rows:  # each row got its own clip and its own image
        scene = split_scene("test", 0, int(row["image_id"].split("-")[1]))
        mean = np.asarray(render_scene(scene, 64), dtype=np.float64).mean()
        assert abs(seconds[row["question_id"]] - cut) > 0.01
        expected = "yes" if seconds[row["question_id"]] > cut else f"{mean:.2f}"
        assert row["answer_spoken"] == expected and row["answer_text"] == "yes" and "transcript" not in row
    spoken = np.mean([r["answer_spoken"] == truth[r["question_id"]]["answer"] for r in rows])
    text = np.mean([truth[r["question_id"]]["answer"] == "yes" for r in rows])
    metrics = {name: m["value"] for name, m in bench["metrics"].items()}
    assert 0 < spoken < 1 and 0 < text < 1
    assert metrics == pytest.approx({"spoken_accuracy": spoken, "text_accuracy": text, "speech_loss": text - spoken})
    assert "question_wer" not in metrics and bench["question_wer"].startswith("not measured")
    assert bench["spoken_prompt"].startswith("Answer the question asked in the audio")


def test_one_model_without_text_answers_reports_spoken_accuracy_only(tmp_path: Path, plugin: None) -> None:
    bench, _, _ = run(tmp_path, "{type: plugin, entry: 'hears_plugin:make', options: {threshold: 0.0, text: false}}")
    assert set(bench["metrics"]) == {"spoken_accuracy"}
    assert bench["text_questions"].startswith("not measured: the model cannot answer text questions")


def test_one_model_through_a_served_model_sends_image_and_audio_together(tmp_path: Path) -> None:
    server = FakeServer(echo=True).start()
    try:
        model = (f"{{type: openai, served: {{base_url: '{server.base_url}', model: fake-vlm, image_size: 8, "
                 "audio_input: true}}")
        bench, samples, _ = run(tmp_path, model, "measure_wer: false")
    finally:
        server.stop()
    rows, seconds = samples["questions"], durations()
    spoken = [c for c in server.contents if any(p["type"] == "input_audio" for p in c)]
    assert len(spoken) == N and all([p["type"] for p in c] == ["image_url", "input_audio", "text"] for c in spoken)
    for row in rows:
        said = dict(part.split("=", 1) for part in row["answer_spoken"].split(" ")[:3])
        assert said["images"] == "1" and said["audio"] == "1"
        assert float(said["seconds"]) == pytest.approx(seconds[row["question_id"]], abs=2e-3)
    assert set(bench["metrics"]) == {"spoken_accuracy", "text_accuracy", "speech_loss"}  # served models answer text
    assert bench["question_wer"] == "not measured: measure_wer is false"


def test_one_model_with_transcripts_measures_the_questions_wer(tmp_path: Path) -> None:
    server = FakeServer(answer_fn=lambda image, prompt, n: "is there a blue circle").start()
    try:
        model = (f"{{type: openai, served: {{base_url: '{server.base_url}', model: fake-vlm, image_size: 8, "
                 "audio_input: true}}")
        bench, samples, _ = run(tmp_path, model)
    finally:
        server.stop()
    import jiwer

    from mmeval.metrics.text_norm import get_normaliser

    rows, normalise = samples["questions"], get_normaliser("basic")
    expected = jiwer.wer([normalise(r["question"]) for r in rows], [normalise("is there a blue circle")] * len(rows))
    assert bench["metrics"]["question_wer"]["value"] == pytest.approx(expected)
    assert bench["question_wer_source"].startswith("the same model's transcribe()")


@pytest.mark.parametrize("model,extra,message", [
    ("{type: reference}", "", "needs a model with capability 'spoken_answerer'"),
    ("{type: openai, served: {base_url: 'http://127.0.0.1:9/v1', model: m}}", "",
     "served.audio_input is not true"),
    ("{type: reference}", "recognizer: {type: pocketsphinx}", "recognizer: not used in mode one_model"),
])
def test_one_model_config_errors(tmp_path: Path, model: str, extra: str, message: str) -> None:
    config = write_yaml(tmp_path / "run.yaml", f"""
model: {model}
benchmarks:
  - {{name: sv, task: spoken_vqa, mode: one_model, data: {{format: spoken_shapes}}{', ' + extra if extra else ''}}}
""")
    done = CliRunner().invoke(app, ["validate", "-c", str(config)])
    assert done.exit_code == 2 and message in " ".join(done.output.split()), done.output


def test_pipeline_mode_needs_its_recognizer(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "run.yaml", """
model: {type: reference}
benchmarks:
  - {name: sv, task: spoken_vqa, data: {format: spoken_shapes}, spoken_prompt: hi}
""")
    done = CliRunner().invoke(app, ["validate", "-c", str(config)])
    text = " ".join(done.output.split())
    assert done.exit_code == 2 and "recognizer: required in mode pipeline" in text, done.output
    assert "spoken_prompt: read in mode one_model only" in text  # every problem at once
