"""The opt-in judge on audio captioning (the shipped reference audio model on shapes clips, a scripted loopback
judge): scores against the scripted rule recomputed here, judge_score beside the rule-based metrics, the
audio prompt's version, and Spearman agreement with per-clip CIDEr-D by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from served_server import FakeServer, scripted_judge  # noqa: E402
from test_judge import expected_score, spearman_by_hand  # noqa: E402

from mmeval.config.run import validate_mapping  # noqa: E402
from mmeval.data.audio_formats import load_audio_data  # noqa: E402
from mmeval.engine.evaluate import run_config  # noqa: E402


def test_audio_captions_judged_beside_cider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    server = FakeServer(model="judge-llm", answer_fn=scripted_judge).start()
    try:
        cfg = validate_mapping({
            "model": {"type": "reference_audio"},
            "benchmarks": [{"name": "acap", "task": "audio_captioning", "data": {"format": "shapes_audio", "n_clips": 10},
                            "metrics": ["Bleu", "ROUGE_L", "CIDEr"], "tokenizer": "python",
                            "judge": {"base_url": server.base_url, "model": "judge-llm"}}],
            "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
            "bootstrap": {"n": 0}, "output": {"dir": str(tmp_path / "out")}})
        outcome = run_config(cfg)
    finally:
        server.stop()
        torch.set_num_threads(threads)
    assert not outcome.errors, outcome.errors
    bench = outcome.report["benchmarks"]["acap"]
    rows = json.loads(outcome.samples_path.read_text())["acap"]["captions"]
    data = load_audio_data(cfg.benchmarks[0].data, "captions")
    references = dict(zip(data.ids, data.captions))
    expected = [expected_score(row["caption"], references[row["clip_id"]]) for row in rows]
    assert [row["judge"] for row in rows] == expected and len(rows) == 10 and len(set(expected)) > 1
    assert bench["metrics"]["judge_score"]["value"] == pytest.approx(sum(expected) / 10)
    assert "CIDEr" in bench["metrics"] and bench["judge"]["prompt_version"] == "mmeval-audio-caption-judge-v1"
    assert bench["judge"]["rule"] == "per-caption CIDEr-D" and server.requests == 10
    assert bench["judge"]["agreement"]["spearman"] == pytest.approx(
        spearman_by_hand(expected, [row["CIDEr"] for row in rows]))
