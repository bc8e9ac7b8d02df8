"""The transformers speech adapters on tiny random models saved and loaded through the real path: Whisper
(batched generate, language and task recorded) and CTC (wav2vec2 with a letter vocabulary); batched transcripts
equal batch-size-1 transcripts, and damaged folders or unknown languages are refused with one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audio.tiny_speech import save_ctc, save_whisper
from mmeval.config.model import ModelConfig
from mmeval.errors import ModelLoadError
from mmeval.models.base import GenerationSettings, SpeechRecognizer, capabilities_of
from mmeval.models.hf_ctc import load as load_ctc
from mmeval.models.hf_whisper import load as load_whisper

RATE = 16000


def clips(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Tones and chirps of different lengths, zero-padded, with their lengths."""
    t = torch.arange(RATE) / RATE
    rows, lengths = [], []
    for i in range(n):
        length = int(RATE * (0.4 + 0.1 * i))
        wave = 0.3 * torch.sin(2 * torch.pi * (150 + 400 * i + 800 * i * t) * t)
        wave[length:] = 0
        rows.append(wave)
        lengths.append(length)
    return torch.stack(rows), torch.tensor(lengths)


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory) -> Path:
    return save_whisper(tmp_path_factory.mktemp("whisper") / "tiny-whisper")


@pytest.fixture(scope="module")
def ctc_folder(tmp_path_factory) -> Path:
    return save_ctc(tmp_path_factory.mktemp("ctc") / "tiny-ctc")


def test_whisper_batched_generate_equals_one_by_one_and_records_language_and_task(whisper_folder: Path) -> None:
    torch.set_num_threads(1)
    model = load_whisper(ModelConfig(type="hf_whisper", checkpoint=whisper_folder, language="en"))
    assert isinstance(model, SpeechRecognizer) and capabilities_of(model) == {"speech_recognizer"}
    assert model.info.extra["language"] == "en" and model.info.extra["task"] == "transcribe"
    assert model.info.loaded_with == "transformers from_pretrained (safetensors)" and model.sample_rate == RATE
    audio, lengths = clips()
    settings = GenerationSettings(max_new_tokens=8)
    together = model.transcribe(audio, lengths, settings)
    alone = [model.transcribe(audio[i : i + 1, : lengths[i]], lengths[i : i + 1], settings)[0] for i in range(6)]
    assert together == alone and all(isinstance(t, str) for t in together)
    assert len(set(together)) > 1  # the transcripts depend on the audio
    beams = model.transcribe(audio[:2], lengths[:2], GenerationSettings(max_new_tokens=8, num_beams=2))
    assert len(beams) == 2


def test_whisper_unknown_language_and_missing_processor_are_refused(whisper_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"model.language: 'xx' is not a language of .* knows en, fr"):
        load_whisper(ModelConfig(type="hf_whisper", checkpoint=whisper_folder, language="xx"))
    broken = tmp_path / "no-processor"
    broken.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (broken / name).write_bytes((whisper_folder / name).read_bytes())
    with pytest.raises(ModelLoadError, match=r"cannot load .*no-processor as a Whisper model with its processor"):
        load_whisper(ModelConfig(type="hf_whisper", checkpoint=broken))


def test_ctc_batched_equals_one_by_one_with_an_attention_mask(ctc_folder: Path) -> None:
    model = load_ctc(ModelConfig(type="hf_ctc", checkpoint=ctc_folder))
    assert model.info.extra["decoding"] == "greedy CTC" and model.info.extra["attention_mask"] is True
    audio, lengths = clips()
    together = model.transcribe(audio, lengths, GenerationSettings())
    alone = [model.transcribe(audio[i : i + 1, : lengths[i]], lengths[i : i + 1], GenerationSettings())[0]
             for i in range(6)]  # fmt: skip
    assert together == alone and len(set(together)) > 1
    vocab = set(json.loads((ctc_folder / "vocab.json").read_text())) - {"<pad>", "|"}
    letters = {c for c in "".join(together).replace("<unk>", "") if c != " "}
    assert letters <= vocab  # greedy CTC output spells with the model's own vocabulary


def test_ctc_weights_that_do_not_fit_the_config_are_refused(ctc_folder: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in ctc_folder.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    config = json.loads((damaged / "config.json").read_text())
    config["hidden_size"] = 48
    (damaged / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"do not fit its config.json: size mismatch"):
        load_ctc(ModelConfig(type="hf_ctc", checkpoint=damaged))
