"""Config checks for the video model adapters: the fields each reads, folder checkpoints, and capabilities a
task needs, all reported at validation time (before any model is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmeval.config.run import validate_mapping
from mmeval.errors import ConfigError
from mmeval.registry import MODELS


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lm").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"\0")
    return tmp_path


def _problems(model: dict[str, Any], task: str = "retrieval") -> list[str]:
    raw = {"model": model, "benchmarks": [{"name": "b", "task": task, "data": {"format": "shapes"}}]}
    with pytest.raises(ConfigError) as caught:
        validate_mapping(raw)
    return caught.value.problems


def test_registered_with_their_capabilities() -> None:
    assert MODELS["hf_xclip"].capabilities == ("video_text_encoder",)
    assert MODELS["hf_video_lm"].capabilities == ("video_captioner", "video_answerer")
    assert set(MODELS["video_plugin"].capabilities) == {"video_text_encoder", "video_captioner", "video_answerer"}
    assert MODELS["hf_xclip"].extra == MODELS["hf_video_lm"].extra == "hf"


def test_fields_each_video_adapter_reads(workdir: Path) -> None:
    assert ("model.frame_size: not used by model type 'hf_xclip' (it reads: checkpoint, name, video_pooling); "
            "remove it") in _problems({"type": "hf_xclip", "checkpoint": "lm", "frame_size": 32})
    assert any("model.frame_size" in p and "expected positive pixel sizes, got (32, 0)" in p
               for p in _problems({"type": "hf_video_lm", "checkpoint": "lm", "frame_size": [32, 0]}))
    assert (f"model.checkpoint: model type 'hf_video_lm' needs a folder saved with save_pretrained, got a file: "
            "weights.bin") in _problems({"type": "hf_video_lm", "checkpoint": "weights.bin"})
    assert "model.entry: required for model type 'video_plugin' (plugin: 'package.module:factory' building the model)" \
        in _problems({"type": "video_plugin"})  # fmt: skip


def test_an_image_task_is_refused_for_a_video_only_model(workdir: Path) -> None:
    assert _problems({"type": "hf_video_lm", "checkpoint": "lm", "frame_size": [32, 48]}) == [
        "benchmarks[0].task: task 'retrieval' needs a model with capability 'image_text_encoder', but model type 'hf_video_lm' "
        "provides: video_captioner, video_answerer"
    ]
