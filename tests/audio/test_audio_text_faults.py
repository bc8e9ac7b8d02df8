"""Bad input to the audio-text tasks through the CLI: one clear message naming the file and field, exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import write_yaml
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.models.reference_audio import DEMO_CHECKPOINT


def _run(tmp_path: Path, model: str, bench: str) -> tuple[int, str]:
    config = write_yaml(
        tmp_path / "run.yaml",
        f"""
model: {model}
runtime: {{device: cpu, batch_size: 8, num_workers: 0}}
output: {{dir: {tmp_path / "out"}}}
benchmarks:
  - {bench}
""",
    )
    done = CliRunner().invoke(app, ["run", "-c", str(config)])
    return done.exit_code, " ".join(done.output.split())


def test_a_csv_without_its_columns_names_the_file(tmp_path) -> None:
    csv = tmp_path / "captions.csv"
    csv.write_text("path,text\na.wav,hello\n")
    code, out = _run(
        tmp_path,
        "{type: reference_audio}",
        f"{{name: c, task: audio_retrieval, data: {{format: clotho, annotations: {csv}, root: {tmp_path}}}}}",
    )
    assert code == 2 and f"{csv}: not a Clotho captions CSV: missing column(s) file_name, caption_1" in out
    assert "Traceback" not in out


def test_a_format_that_holds_captions_cannot_feed_zero_shot(tmp_path) -> None:
    code, out = _run(
        tmp_path,
        "{type: reference_audio}",
        "{name: z, task: audio_zeroshot, data: {format: audiocaps, annotations: x.csv, root: .}}",
    )
    assert code == 2 and "format" in out and "audiocaps" in out


def test_an_unknown_fold_and_a_wrong_label_column(tmp_path) -> None:
    meta = tmp_path / "esc50.csv"
    meta.write_text("filename,fold,target,category\n1-1-A-0.wav,1,0,dog\n")
    code, out = _run(
        tmp_path,
        "{type: reference_audio}",
        f"{{name: z, task: audio_zeroshot, data: {{format: esc50, annotations: {meta}, root: {tmp_path}, folds: [2]}}}}",
    )
    assert code == 2 and f"{meta}: no clips in fold(s) [2] (the file has folds [1])" in out
    code, out = _run(
        tmp_path,
        "{type: reference_audio}",
        "{name: z, task: audio_zeroshot, data: {format: shapes_audio, n_clips: 4, label_column: color}}",
    )
    assert code == 2 and "shapes_audio: label_column must be one of sound, count, loudness, got 'color'" in out


@pytest.mark.parametrize("damage", ["no_bank", "bad_config", "misfit"])
def test_a_damaged_reference_audio_checkpoint_names_the_file(tmp_path, damage) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(DEMO_CHECKPOINT, folder)
    if damage == "no_bank":
        (folder / "captions.json").unlink()
        expected = f"reference_audio caption bank {folder / 'captions.json'} does not exist"
    elif damage == "bad_config":
        (folder / "config.json").write_text('{"vocab": ["[PAD]"], "depth": 3}')
        expected = "unknown: depth"
    else:
        text = (folder / "config.json").read_text().replace('"embed_dim": 64', '"embed_dim": 32')
        (folder / "config.json").write_text(text)
        expected = f"checkpoint {folder / 'model.safetensors'} does not fit the config"
    code, out = _run(
        tmp_path,
        f"{{type: reference_audio, checkpoint: {folder}}}",
        "{name: r, task: audio_retrieval, data: {format: shapes_audio, n_clips: 4}}",
    )
    assert code == 2 and expected in out and "Traceback" not in out


def test_validate_names_missing_clip_files(tmp_path) -> None:
    csv = tmp_path / "captions.csv"
    csv.write_text("file_name,caption_1\nthere.wav,a tone\ngone.wav,a beep\n")
    (tmp_path / "there.wav").write_bytes(b"RIFF")
    for policy, code in (("skip", 0), ("fail", 2)):
        config = write_yaml(
            tmp_path / "run.yaml",
            f"""
model: {{type: reference_audio}}
benchmarks:
  - name: c
    task: audio_retrieval
    data: {{format: clotho, annotations: {csv}, root: {tmp_path}, on_bad_input: {policy}}}
""",
        )
        done = CliRunner().invoke(app, ["validate", "-c", str(config)])
        out = " ".join(done.output.split())
        assert done.exit_code == code and f"1 clip file(s) missing, e.g. {tmp_path / 'gone.wav'}" in out, out
    assert "set data.on_bad_input: skip to skip them" in out
