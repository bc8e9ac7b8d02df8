"""The video adapters through a whole run (config -> load -> video tasks on the synthetic shapes clips -> report):
what each records in the report, batch-size independence of the saved answers, and a frame count X-CLIP
cannot take refused before any video is decoded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.reporting.report import validate_report

transformers = pytest.importorskip("transformers")

from tiny_video_hf import FRAMES, save_llava_onevision, save_xclip  # noqa: E402  (builds with transformers)

SHAPES = {"format": "shapes_video", "n_videos": 4, "split": "test"}
FRAMES_CFG = {"frames": FRAMES, "mode": "uniform"}


@pytest.fixture(scope="module", autouse=True)
def quiet_and_small(tmp_path_factory):
    """One torch thread, and the shapes clips in a cache folder of this module's own."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()
    torch.set_num_threads(before)


def _run(tmp_path: Path, model: dict, benchmarks: list[dict], name: str, batch_size: int = 4, workers: int = 0):
    cfg = validate_mapping({
        "model": model, "benchmarks": benchmarks,
        "runtime": {"device": "cpu", "batch_size": batch_size, "num_workers": workers, "cache": "off"},
        "output": {"dir": str(tmp_path / "reports"), "name": name}, "bootstrap": {"n": 0},
    })  # fmt: skip
    outcome = run_config(cfg)
    validate_report(outcome.report)  # the adapters' model facts fit the report schema
    return outcome


def _saved(tmp_path: Path, report: dict, bench: str) -> list[dict]:
    return json.loads((tmp_path / "reports" / report["benchmarks"][bench]["predictions_file"]).read_text())


def test_a_video_lm_answers_and_captions_the_same_at_any_batch_size(tmp_path: Path) -> None:
    folder = save_llava_onevision(tmp_path / "llava-ov")
    benchmarks = [
        {"name": "qa", "task": "video_qa", "frames": FRAMES_CFG, "data": SHAPES, "generation": {"max_new_tokens": 4}},
        {"name": "caps", "task": "video_captioning", "frames": FRAMES_CFG, "data": SHAPES, "tokenizer": "python",
         "metrics": ["Bleu", "CIDEr"], "generation": {"max_new_tokens": 5, "prompt": "Describe the video."}},
    ]
    model = {"type": "hf_video_lm", "checkpoint": str(folder)}
    first = _run(tmp_path, model, benchmarks, "b4", batch_size=4)
    assert not first.errors, first.errors
    report = first.report
    assert report["model"]["adapter"] == "hf_video_lm" and len(report["model"]["sha256"]) == 64
    assert report["model"]["extra"]["processor"]["frame_shape"] == [3, 32, 32]
    qa, caps = report["benchmarks"]["qa"], report["benchmarks"]["caps"]
    assert qa["prompts"]["answer"].startswith("USER: <video>\n") and "{question}" in qa["prompts"]["answer"]
    assert caps["prompts"] == {"caption": "USER: <video>\nDescribe the video.ASSISTANT:"}
    assert 0.0 <= qa["metrics"]["exact_match"]["value"] <= 1.0
    again = _run(tmp_path, model, benchmarks, "b1", batch_size=1)
    assert not again.errors, again.errors
    for bench in ("qa", "caps"):
        assert _saved(tmp_path, report, bench) == _saved(tmp_path, again.report, bench)
    answers = [row["answer"] for row in _saved(tmp_path, report, "qa")]
    assert len(answers) > 4 and len(set(answers)) > 1


def test_xclip_retrieval_and_a_refused_frame_count(tmp_path: Path) -> None:
    folder = save_xclip(tmp_path / "xclip")
    model = {"type": "hf_xclip", "checkpoint": str(folder)}
    retrieval = [{"name": "r", "task": "video_retrieval", "frames": FRAMES_CFG, "data": SHAPES}]
    done = _run(tmp_path, model, retrieval, "x", workers=1)  # frames made by the model's transform in a worker
    assert not done.errors, done.errors
    bench = done.report["benchmarks"]["r"]
    assert done.report["model"]["extra"]["text_scoring"].startswith("text embeddings without X-CLIP's")
    recalls = [bench["metrics"][f"{way}_R@{k}"]["value"] for way in ("t2v", "v2t") for k in (1, 5, 10)]
    assert all(0.0 <= v <= 1.0 for v in recalls) and bench["video"]["sampling"]["frames"] == FRAMES
    wrong = _run(tmp_path, model, [{"name": "r", "task": "video_retrieval", "frames": {"frames": 8}, "data": SHAPES}],
                 "wrong")  # fmt: skip
    message = " ".join(str(e) for e in wrong.errors)
    assert f"takes exactly {FRAMES} frames per clip" in message and "got 8" in message


PLUGIN = '''
import numpy as np
import torch


def to_pixels(image):
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None] / 255
    return torch.nn.functional.interpolate(pixels, size=(8, 8), mode="area")[0]


class MotionEncoder:
    """Embeds a clip by its first-to-last frame difference; texts by a hash of their words."""

    def __init__(self):
        self.module = torch.nn.Linear(3 * 8 * 8, 16, bias=False)
        self.image_transform = to_pixels

    def tokenize(self, texts):
        return torch.tensor([[float(sum(map(ord, w)) % 97) for w in (t.split() + [""] * 16)[:16]] for t in texts])

    def encode_text(self, tokens):
        return tokens

    def encode_video(self, frames):
        return self.module((frames[:, -1] - frames[:, 0]).flatten(1))


def build():
    torch.manual_seed(0)
    return MotionEncoder()
'''


def test_a_video_plugin_through_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "motion_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        done = _run(tmp_path, {"type": "video_plugin", "entry": "motion_plugin:build"},
                    [{"name": "r", "task": "video_retrieval", "frames": FRAMES_CFG, "data": SHAPES}], "p")
    finally:
        sys.modules.pop("motion_plugin", None)
    assert not done.errors, done.errors
    assert done.report["model"]["adapter"] == "video_plugin"
    assert done.report["model"]["extra"] == {"entry": "motion_plugin:build", "options": {}, "frames_expected": None}
    metrics = done.report["benchmarks"]["r"]["metrics"]
    assert 0.0 <= metrics["t2v_R@1"]["value"] <= metrics["t2v_R@5"]["value"] <= metrics["t2v_R@10"]["value"] <= 1.0
