"""The hf_clap adapter: a tiny random ClapModel + processor saved with save_pretrained and loaded through mmeval's
registry path; its embeddings equal calling transformers directly, clip by clip; a run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import write_yaml
from tiny_hf import byte_tokenizer
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.config.model import ModelConfig
from mmeval.registry import MODELS, resolve

RATE = 48000


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clap")
    torch.manual_seed(0)
    audio = {
        "depths": [1, 1],
        "num_attention_heads": [2, 2],
        "patch_embeds_hidden_size": 16,
        "hidden_size": 32,
        "projection_dim": 16,
        "window_size": 8,
        "spec_size": 256,
        "num_mel_bins": 64,
        "enable_fusion": True,
    }
    tokenizer = byte_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "projection_dim": 16,
        "max_position_embeddings": 66,
        "pad_token_id": 0,
    }
    model = transformers.ClapModel(transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=16))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformers.ClapFeatureExtractor(feature_size=64, sampling_rate=RATE, max_length_s=1).save_pretrained(folder)
    return folder


def _direct(folder: Path, clip: np.ndarray) -> torch.Tensor:
    """transformers alone, one clip: its feature extractor then get_audio_features."""
    model = transformers.ClapModel.from_pretrained(folder).eval()
    extractor = transformers.ClapFeatureExtractor.from_pretrained(folder)
    np.random.seed(0)
    inputs = extractor([clip], sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        out = model.get_audio_features(**inputs)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_embeddings_equal_transformers_directly_whatever_the_batch(tiny_clap: Path) -> None:
    model = resolve("model type", "hf_clap", MODELS)(ModelConfig(type="hf_clap", checkpoint=tiny_clap))
    assert model.sample_rate == RATE and model.info.extra["fusion"] is True
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (30000, 48000 + 9000, 12000)]  # one longer than 1 s
    batch = torch.zeros(3, max(len(c) for c in clips))
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = torch.from_numpy(clip)
    lengths = torch.tensor([len(c) for c in clips])
    with torch.no_grad():
        together = model.encode_audio(batch, lengths)
        alone = model.encode_audio(batch[2:, :12000], lengths[2:])
        texts = model.encode_text(model.tokenize(["a dog barks", "rain"]))
    for row, clip in enumerate(clips):
        assert torch.allclose(together[row], _direct(tiny_clap, clip)[0], atol=1e-5)
    assert torch.allclose(alone[0], together[2], atol=1e-5)
    direct = transformers.ClapModel.from_pretrained(tiny_clap).eval()
    tokens = transformers.AutoTokenizer.from_pretrained(tiny_clap)(
        ["a dog barks", "rain"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = direct.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert torch.allclose(texts, out, atol=1e-5)


@pytest.mark.slow  # a CLI run with a HTSAT encoder: ~15 s alone, far more on a busy machine
def test_audio_retrieval_runs_with_clap_at_its_own_rate(tiny_clap: Path, tmp_path: Path) -> None:
    config = write_yaml(
        tmp_path / "run.yaml",
        f"""
model: {{type: hf_clap, checkpoint: {tiny_clap}}}
runtime: {{device: cpu, batch_size: 4, num_workers: 0}}
output: {{dir: {tmp_path / "out"}}}
benchmarks:
  - {{name: clap_shapes, task: audio_retrieval, data: {{format: shapes_audio, n_clips: 6}}}}
""",
    )
    done = CliRunner().invoke(app, ["run", "-c", str(config)])
    assert done.exit_code == 0, done.output
    report = json.loads(next((tmp_path / "out").glob("*[0-9].json")).read_text())
    bench = report["benchmarks"]["clap_shapes"]
    assert bench["status"] == "complete" and bench["dataset"]["n_clips"] == 6
    assert bench["dataset"]["decoder"]["rate"] == RATE and "soxr" in bench["dataset"]["decoder"]["resampler"]
    assert 0 <= bench["metrics"]["t2a_mAP@10"]["value"] <= 1
