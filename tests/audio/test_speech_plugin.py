"""A user's own speech recogniser through `model.type: plugin`, run by `mmeval run` on the shipped spoken set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jiwer
import yaml

from mmeval.metrics.text_norm import basic

PLUGIN = '''
import torch
from mmeval.models.base import ModelInfo


class Echo:
    """Says the same sentence for every clip, and records how long each clip was."""

    capabilities = {"speech_recognizer"}
    sample_rate = 16000

    def __init__(self, sentence):
        self.module = torch.nn.Linear(1, 1)
        self.info = ModelInfo(adapter="plugin", name="echo", checkpoint=None, sha256=None, n_parameters=2)
        self.sentence = sentence

    def transcribe(self, audio, lengths, settings):
        assert audio.shape[0] == lengths.shape[0] and audio.dtype == torch.float32
        return [self.sentence] * audio.shape[0]


def make(sentence="is there a blue circle"):
    return Echo(sentence)
'''


def test_a_speech_recognizer_plugin_runs_speech_recognition(tmp_path: Path) -> None:
    (tmp_path / "echo_asr.py").write_text(textwrap.dedent(PLUGIN))
    config = {"model": {"type": "plugin", "entry": "echo_asr:make"},
              "benchmarks": [{"name": "asr", "task": "speech_recognition",
                              "data": {"format": "spoken_shapes", "limit": 6}, "normalizers": ["basic"]}],
              "runtime": {"device": "cpu", "batch_size": 4}, "output": {"dir": str(tmp_path / "out"), "name": "run"}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", str(path), "--no-cache"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    bench = report["benchmarks"]["asr"]
    rows = json.loads((tmp_path / "out" / "run.samples.json").read_text())["asr"]["utterances"]
    references = [basic(row["reference"]) for row in rows]
    assert len(references) == 6 and all(row["hypothesis"] == "is there a blue circle" for row in rows)
    expected = jiwer.wer(references, ["is there a blue circle"] * 6)
    assert abs(bench["metrics"]["wer"]["value"] - expected) < 1e-12
    assert report["model"]["adapter"] == "plugin"
