"""Audio faults through `mmeval run` (a separate process, as a user runs it): corrupt, truncated and zero-length
clips, a header with a wrong sample rate, a clip over the length limit and a missing file are skipped, counted
and named in the report while the readable clips are still scored; with `data.on_bad_input: fail` (or
`audio.on_too_long: fail`) the benchmark fails with one `error:` line naming the file, exit code 2, no traceback.
The model is PocketSphinx with the spoken shapes grammar (real, offline, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from faults.conftest import RUNTIME, complete_report, error_lines, mmeval, shown
from mmeval.data.speech_formats import SPOKEN_SHAPES

GRAMMAR = SPOKEN_SHAPES / "shapes.jsgf"


def _us_clips(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (SPOKEN_SHAPES / "manifest.jsonl").read_text().splitlines()]
    return [r for r in rows if r["voice"] == "en-us"][:n]


def faulty_manifest(root: Path) -> tuple[Path, dict[str, str]]:
    """A NeMo manifest of 3 good clips and one clip of each fault; returns it and {file name: reason start}."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"audio_filepath": str(SPOKEN_SHAPES / r["audio_filepath"]), "text": r["text"], "id": r["id"]}
            for r in _us_clips(3)]  # fmt: skip
    good = (SPOKEN_SHAPES / _us_clips(1)[0]["audio_filepath"]).read_bytes()
    sf.write(root / "whole.wav", sf.read(SPOKEN_SHAPES / _us_clips(1)[0]["audio_filepath"])[0], 16000)
    wav = (root / "whole.wav").read_bytes()
    (root / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (root / "truncated.wav").write_bytes(wav[: len(wav) // 3])
    (root / "empty.flac").write_bytes(b"")
    sf.write(root / "silent.wav", np.zeros((0, 1), np.float32), 16000)
    rate = bytearray(wav)
    rate[24:28] = (0).to_bytes(4, "little")
    (root / "rate.wav").write_bytes(bytes(rate))
    sf.write(root / "long.wav", np.zeros(16000 * 12, np.float32), 16000)
    (root / "good-copy.flac").write_bytes(good)
    reasons = {"corrupt.flac": "cannot decode audio", "truncated.wav": "truncated audio",
               "empty.flac": "empty file (0 bytes)", "silent.wav": "no audio samples (zero-length clip)",
               "rate.wav": "implausible sample rate 0 Hz", "long.wav": "clip is 12.00 s, over audio.max_seconds = 10",
               "missing.flac": "file not found"}  # fmt: skip
    rows += [{"audio_filepath": str(root / name), "text": "is there a red circle", "id": name} for name in reasons]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, reasons


def write_config(root: Path, stem: str, manifest: Path, **changes) -> Path:
    bench = {"name": "asr", "task": "speech_recognition",
             "data": {"format": "nemo", "annotations": str(manifest), "on_bad_input": changes.pop("on_bad_input", "skip")},
             "audio": {"max_seconds": 10, **changes.pop("audio", {})}, "normalizers": ["basic"]}  # fmt: skip
    raw = {"model": {"type": "pocketsphinx", "grammar": str(changes.pop("grammar", GRAMMAR))}, "benchmarks": [bench],
           "runtime": RUNTIME, "output": {"dir": str(root / f"reports-{stem}"), "name": stem}}  # fmt: skip
    path = root / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_bad_clips_are_skipped_counted_and_named_and_the_rest_is_scored(tmp_path: Path) -> None:
    manifest, reasons = faulty_manifest(tmp_path / "clips")
    done = mmeval(tmp_path, "run", "-c", write_config(tmp_path, "skip", manifest))
    assert done.returncode == 0, shown(done)
    assert "Traceback" not in done.stderr
    bench = complete_report(tmp_path / "reports-skip", "skip")["benchmarks"]["asr"]
    assert bench["status"] == "complete"
    assert bench["dataset"]["n_clips"] == 3 and bench["dataset"]["n_skipped_clips"] == len(reasons)
    skipped = {entry["id"]: entry["reason"] for entry in bench["dataset"]["skipped_clips"]}
    for name, reason in reasons.items():
        assert skipped[name].startswith(f"{tmp_path / 'clips' / name}: {reason}"), (name, skipped[name])
    assert bench["metrics"]["wer"]["value"] == 0.0  # the three clean US-English clips are recognised exactly
    assert len(bench["metrics"]) == 3 and bench["metrics"]["rtfx"]["value"] > 0


def test_on_bad_input_fail_stops_with_one_line_naming_the_clip(tmp_path: Path) -> None:
    """A missing clip is found before the model loads (no report); a corrupt one fails its benchmark in the run."""
    manifest, _ = faulty_manifest(tmp_path / "clips")
    done = mmeval(tmp_path, "run", "-c", write_config(tmp_path, "fail", manifest, on_bad_input="fail"))
    assert done.returncode == 2, shown(done)
    lines = error_lines(done)
    assert len(lines) == 1 and "clip file(s) missing, e.g." in lines[0] and "missing.flac" in lines[0], lines
    assert "set data.on_bad_input: skip" in lines[0]
    assert not (tmp_path / "reports-fail").exists() or not list((tmp_path / "reports-fail").glob("*.json"))

    rows = [line for line in manifest.read_text().splitlines() if "missing.flac" not in line]
    manifest.write_text("\n".join(rows) + "\n")
    done = mmeval(tmp_path, "run", "-c", write_config(tmp_path, "fail", manifest, on_bad_input="fail"))
    assert done.returncode == 2, shown(done)
    lines = error_lines(done)
    assert len(lines) == 1 and "corrupt.flac: cannot decode audio" in lines[0], lines
    assert "set data.on_bad_input: skip" in lines[0]
    report = complete_report(tmp_path / "reports-fail", "fail")
    assert report["benchmarks"]["asr"]["status"] == "failed"


def test_a_clip_over_the_limit_with_on_too_long_fail_stops_the_run(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    root.mkdir()
    sf.write(root / "long.wav", np.zeros(16000 * 3, np.float32), 16000)
    manifest = root / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(root / "long.wav"), "text": "x"}) + "\n")
    config = write_config(tmp_path, "long", manifest, audio={"max_seconds": 2, "on_too_long": "fail"})
    done = mmeval(tmp_path, "run", "-c", config)
    assert done.returncode == 2, shown(done)
    lines = error_lines(done)
    assert len(lines) == 1 and f"{root / 'long.wav'}: clip is 3.00 s, over audio.max_seconds = 2" in lines[0], lines


def test_config_typos_and_a_missing_grammar_are_one_clear_line(tmp_path: Path) -> None:
    manifest, _ = faulty_manifest(tmp_path / "clips")
    done = mmeval(tmp_path, "validate", "-c", write_config(tmp_path, "typo", manifest, audio={"max_second": 3}))
    assert done.returncode == 2, shown(done)
    assert any("audio.max_second" in line for line in error_lines(done)), error_lines(done)
    done = mmeval(tmp_path, "run", "-c", write_config(tmp_path, "nogrammar", manifest, grammar=tmp_path / "none.jsgf"))
    assert done.returncode == 2, shown(done)
    assert any("model.grammar: file not found" in line and "none.jsgf" in line for line in error_lines(done))
