"""Served models beyond single images, against the loopback server in its scripted `echo` mode (the answer says what
the request carried): video as frames (N image parts in one message), audio as input_audio WAV parts (only with
served.audio_input, else exit 2 at validate), plain image URLs, and the request bodies themselves."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from served_server import FakeServer  # noqa: E402
from test_vqa import vqav2_data  # noqa: E402

from mmeval.cli.app import app  # noqa: E402
from mmeval.config.run import validate_mapping  # noqa: E402
from mmeval.engine.evaluate import run_config  # noqa: E402
from mmeval.engine.runtime import place_model, resolve_runtime  # noqa: E402
from mmeval.errors import MmevalError  # noqa: E402
from mmeval.models.base import GenerationSettings, capabilities_of  # noqa: E402
from mmeval.models.served.adapter import load  # noqa: E402

SETTINGS = GenerationSettings(max_new_tokens=8)
ECHO = re.compile(r"images=(\d+) audio=(\d+) seconds=([\d.]+) urls=(\S*) prompt=(.*)", re.DOTALL)


@pytest.fixture
def server():
    fake = FakeServer(echo=True).start()
    yield fake
    fake.stop()


def served(base_url: str, **extra) -> dict:
    return {"type": "openai", "served": {"base_url": base_url, "model": "fake-vlm", "image_size": 8,
                                         "timeout_s": 5, "max_retries": 0, **extra}}


def run_yaml(tmp_path: Path, model: dict, benchmarks: list[dict]) -> dict:
    benchmarks = benchmarks or [{"name": "v", "task": "vqa", "data": {"format": "shapes_vqa", "n_images": 2}}]
    return {"model": model, "benchmarks": benchmarks, "runtime": {"device": "cpu", "batch_size": 8, "num_workers": 0},
            "output": {"dir": str(tmp_path / "out"), "name": "run"}}


def loaded(mapping: dict):
    cfg = validate_mapping(mapping)
    model = load(cfg.model)
    place_model(model, resolve_runtime(cfg.runtime.model_copy(update={"cache": "off"})))
    return model


def decode_png(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_video_goes_as_its_frames_in_one_message(server: FakeServer, tmp_path: Path) -> None:
    model = loaded(run_yaml(tmp_path, served(server.base_url), []))
    assert {"video_captioner", "video_answerer"} <= capabilities_of(model)
    frames = torch.stack([torch.stack([torch.full((3, 8, 8), 40 * v + 10 * t, dtype=torch.uint8) for t in range(4)])
                          for v in range(2)])  # 2 videos x 4 frames, every frame a different grey
    answers = model.answer_video(frames, ["what moves?", "which colour?"], SETTINGS)
    assert [ECHO.fullmatch(a).group(1, 2, 5) for a in answers] == [("4", "0", "what moves?"), ("4", "0", "which colour?")]
    sent_frames = []  # requests arrive concurrently, in any order
    for content in server.contents:
        assert [part["type"] for part in content] == ["image_url"] * 4 + ["text"]
        sent = [decode_png(part["image_url"]["url"]) for part in content[:4]]  # lossless PNG, in time order
        sent_frames.append([int(f[0, 0, 0]) for f in sent])
    assert sorted(sent_frames) == [[40 * v + 10 * t for t in range(4)] for v in range(2)]
    captions = model.generate_video(frames[:1], SETTINGS)
    assert ECHO.fullmatch(captions[0]).group(1, 5) == ("4", "Write a short caption for this video.")


def test_video_qa_run_sends_the_sampled_frames(server: FakeServer, tmp_path: Path) -> None:
    bench = {"name": "vq", "task": "video_qa", "data": {"format": "shapes_video", "n_videos": 3},
             "frames": {"frames": 3}}
    outcome = run_config(validate_mapping(run_yaml(tmp_path, served(server.base_url), [bench])))
    entry = outcome.report["benchmarks"]["vq"]
    assert entry["status"] == "complete", outcome.errors
    assert server.requests == entry["dataset"]["n_questions"] >= 3
    assert all(len(c) == 4 for c in server.contents)  # 3 frames + the question, per request
    assert entry["video"]["video_encoder"]["sent_as"].startswith("the sampled frames as image parts")
    assert entry["video"]["sampling"]["frames"] == 3
    answers = json.loads((tmp_path / "out" / "run.samples.json").read_text())["vq"]["answers"]
    assert {ECHO.fullmatch(a["answer"]).group(1) for a in answers} == {"3"}


def test_audio_goes_as_input_audio_wav(server: FakeServer, tmp_path: Path) -> None:
    model = loaded(run_yaml(tmp_path, served(server.base_url, audio_input=True, audio_sample_rate=8000), []))
    assert {"speech_recognizer", "audio_captioner", "spoken_answerer"} <= capabilities_of(model)
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.uniform(-0.9, 0.9, (2, 8000)).astype(np.float32))
    lengths = torch.tensor([8000, 2000])
    texts = model.transcribe(audio, lengths, SETTINGS)
    assert [ECHO.fullmatch(t).group(2, 3) for t in texts] == [("1", "1.000"), ("1", "0.250")]
    received = {}  # requests arrive concurrently, in any order: each clip known by its length
    for content in server.contents:
        part = content[0]["input_audio"]
        assert content[0]["type"] == "input_audio" and part["format"] == "wav"
        samples, rate = soundfile.read(io.BytesIO(base64.b64decode(part["data"])), dtype="int16")
        assert rate == 8000
        received[len(samples)] = samples
    assert sorted(received) == [2000, 8000]  # the padding is not sent
    for row, n in enumerate((8000, 2000)):
        samples = received[n]
        expected = np.round(audio[row, :n].numpy().astype(np.float64) * 32767)  # 16-bit PCM: x * 32767, rounded
        assert np.abs(samples.astype(np.float64) - expected).max() <= 1
    caption = model.generate_audio(audio[:1], lengths[:1], SETTINGS)[0]
    assert ECHO.fullmatch(caption).group(5) == "Write a short caption describing the sounds in this audio."


def test_speech_recognition_run_through_the_server(server: FakeServer, tmp_path: Path) -> None:
    bench = {"name": "asr", "task": "speech_recognition", "data": {"format": "spoken_shapes", "limit": 4},
             "normalizers": ["basic"]}
    outcome = run_config(validate_mapping(run_yaml(tmp_path, served(server.base_url, audio_input=True), [bench])))
    entry = outcome.report["benchmarks"]["asr"]
    assert entry["status"] == "complete", outcome.errors
    rows = json.loads((tmp_path / "out" / "run.samples.json").read_text())["asr"]["utterances"]
    assert len(rows) == 4 and server.requests == 4
    for content in server.contents:
        with wave.open(io.BytesIO(base64.b64decode(content[0]["input_audio"]["data"]))) as clip:
            assert clip.getframerate() == 16000 and clip.getsampwidth() == 2 and clip.getnchannels() == 1
    assert outcome.report["model"]["extra"]["audio"]["sample_rate"] == 16000


@pytest.mark.parametrize("task,data", [("speech_recognition", {"format": "spoken_shapes"}),
                                       ("audio_captioning", {"format": "shapes_audio", "n_clips": 4})])
def test_audio_tasks_without_audio_input_are_a_config_error(tmp_path: Path, task: str, data: dict) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(run_yaml(tmp_path, served("http://127.0.0.1:9/v1"),
                                          [{"name": "a", "task": task, "data": data}])))
    done = CliRunner().invoke(app, ["validate", "-c", str(config)])
    assert done.exit_code == 2, done.output
    text = " ".join(done.output.split())
    assert "served.audio_input is not true" in text and "benchmarks[0].task" in text


def test_plain_image_urls(server: FakeServer, tmp_path: Path) -> None:
    data = vqav2_data(tmp_path)  # 3 PNG files, 9 questions
    root = Path(data["images"])
    model = served(server.base_url, image_transport="url", image_base_url="https://img.example/coco/",
                   image_root=str(root.parent))
    outcome = run_config(validate_mapping(run_yaml(tmp_path, model, [{"name": "v", "task": "vqa", "data": data}])))
    assert outcome.report["benchmarks"]["v"]["status"] == "complete", outcome.errors
    files = sorted(p.relative_to(root.parent).as_posix() for p in root.iterdir())
    sent = sorted({part["image_url"]["url"] for content in server.contents for part in content[:-1]})
    assert sent == [f"https://img.example/coco/{name}" for name in files]  # the file's own URL, no data URL
    assert server.requests == 9 and all(len(c) == 2 for c in server.contents)
    assert outcome.report["model"]["extra"]["images"]["sent_as"].startswith("URL: https://img.example/coco/")


def test_url_transport_refuses_images_without_a_file(server: FakeServer, tmp_path: Path) -> None:
    bench = {"name": "v", "task": "vqa", "data": {"format": "shapes_vqa", "n_images": 2}}
    model = served(server.base_url, image_transport="url", image_base_url="https://img.example/", image_root=str(tmp_path))
    outcome = run_config(validate_mapping(run_yaml(tmp_path, model, [bench])))
    entry = outcome.report["benchmarks"]["v"]
    assert entry["status"] == "failed" and server.requests == 0
    assert "image_transport is 'url', but these images were not read from files under image_root" in entry["error"]


def test_url_transport_needs_its_base_url_and_root(tmp_path: Path) -> None:
    with pytest.raises(MmevalError, match="image_transport: url needs image_base_url"):
        validate_mapping(run_yaml(tmp_path, served("http://127.0.0.1:9/v1", image_transport="url"), []))


def test_url_transport_skips_a_file_outside_its_root_naming_it(server: FakeServer, tmp_path: Path) -> None:
    data = vqav2_data(tmp_path, on_bad_image="fail")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    model = served(server.base_url, image_transport="url", image_base_url="https://img.example/",
                   image_root=str(elsewhere))
    outcome = run_config(validate_mapping(run_yaml(tmp_path, model, [{"name": "v", "task": "vqa", "data": data}])))
    entry = outcome.report["benchmarks"]["v"]
    assert entry["status"] == "failed" and server.requests == 0
    assert "model.served.image_root:" in entry["error"] and f"is not under {elsewhere}" in entry["error"]
    assert "COCO_val2014_" in entry["error"]  # the file is named
