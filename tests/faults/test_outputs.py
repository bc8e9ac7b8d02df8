"""Faulty outputs: an output folder that cannot be written, a disk that fills while writing, and a config that
points two benchmarks at the same output name.

Each case has one outcome: a one-line `error:` and exit code 2, never a traceback, and never a half-written
file under a final name. A folder that cannot be written, and clashing names, are found before any work (the
model factory below leaves a marker file when it is called). A disk that fills at the end keeps what was
computed: the captions saved during the run, the per-sample file, and the results table on the console.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PLUGIN_HEADER, importable_module, make_coco_dataset

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.errors import ConfigError, MmevalError
from mmeval.reporting.report import validate_report, write_json_no_clobber

MODULE = "mmeval_fault_outputs"
PLUGIN = PLUGIN_HEADER + '''
from pathlib import Path

class Captioner:
    def __init__(self, marker):
        Path(marker).write_text("factory called")
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(8)

    def generate(self, pixels, settings):
        return [f"a {int(p.mean() * 100)} box" for p in pixels]


def make(marker):
    return Captioner(marker)
'''

# Runs the CLI with json.dump failing half-way through the report (the file written last): a disk that fills up
# at the very end of a run, after the captions and the per-sample file were saved.
DISK_FULL_AT_REPORT = '''
import errno, json, sys

real_dump = json.dump


def dump(payload, handle, **kwargs):
    if isinstance(payload, dict) and "schema_version" in payload:
        text = json.dumps(payload, **kwargs)
        handle.write(text[: len(text) // 2])
        handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")
    real_dump(payload, handle, **kwargs)


json.dump = dump
from mmeval.cli import main

sys.argv = ["mmeval", *sys.argv[1:]]
main()
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch) -> Path:
    return importable_module(tmp_path, monkeypatch, MODULE, PLUGIN)


def captioning_config(tmp_path: Path, out: Path, names: tuple[str, ...] = ("caps",)) -> dict:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=6)
    data = {"format": "coco", "annotations": str(annotations), "images": str(tmp_path / "coco" / "val2014")}
    return {"model": {"type": "plugin", "entry": f"{MODULE}:make", "options": {"marker": str(tmp_path / "marker")}},
            "benchmarks": [{"name": name, "task": "coco_captions", "data": data, "metrics": ["Bleu", "CIDEr"],
                            "tokenizer": "python"} for name in names],
            "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
            "output": {"dir": str(out), "name": "run"}}  # fmt: skip


def run_cli(tmp_path: Path, plugin: Path, cfg: dict, *command: str) -> subprocess.CompletedProcess:
    (tmp_path / "run.yaml").write_text(json.dumps(cfg))
    command = command or (sys.executable, "-m", "mmeval")
    return subprocess.run([*command, "run", "-c", "run.yaml"], cwd=tmp_path, text=True, capture_output=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(plugin)})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------- writing one JSON file


def test_disk_full_at_fsync_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mmeval.reporting.report.os.fsync", full)
    with pytest.raises(MmevalError) as caught:
        write_json_no_clobber({"a": [1.0] * 1000}, tmp_path, "run")
    assert str(caught.value) == f"output.dir: writing run.json to {tmp_path} failed (No space left on device)"
    assert listing(tmp_path) == []


def test_disk_full_half_way_through_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    real_dump = json.dump

    def half(payload, handle, **kwargs) -> None:
        text = json.dumps(payload, **kwargs)
        handle.write(text[: len(text) // 2])
        handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "run.json").write_text("{}\n")  # an earlier report: kept as it is
    monkeypatch.setattr("mmeval.reporting.report.json.dump", half)
    with pytest.raises(MmevalError, match=r"^output\.dir: writing run\.json to .* failed \(No space left on device\)$"):
        write_json_no_clobber({"a": list(range(1000))}, tmp_path, "run")
    monkeypatch.setattr("mmeval.reporting.report.json.dump", real_dump)
    assert listing(tmp_path) == ["run.json"] and (tmp_path / "run.json").read_text() == "{}\n"
    assert write_json_no_clobber({"b": 1}, tmp_path, "run").name == "run-1.json"  # the disk has room again


# ------------------------------------------------------------------------------------------ a whole run


def test_disk_full_at_the_report_keeps_captions_and_per_sample_rows(tmp_path: Path, plugin: Path) -> None:
    out = tmp_path / "reports"
    (tmp_path / "driver.py").write_text(DISK_FULL_AT_REPORT)

    done = run_cli(tmp_path, plugin, captioning_config(tmp_path, out), sys.executable, "driver.py")

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        (f"error: output.dir: writing run.json to {out} failed (No space left on device); no report was written; "
        f"kept in {out}: run.caps.captions.json, run.samples.json")]
    assert listing(out) == ["run.caps.captions.json", "run.samples.json"]  # no run.json, no .tmp file
    captions = json.loads((out / "run.caps.captions.json").read_text())
    samples = json.loads((out / "run.samples.json").read_text())
    assert len(captions) == 6 and [row["caption"] for row in samples["caps"]["captions"]] == [
        row["caption"] for row in captions]
    assert "CIDEr" in done.stdout  # the results table is still printed


def test_disk_full_at_the_per_sample_file_still_writes_the_report(tmp_path: Path, plugin: Path,
                                                                  monkeypatch) -> None:  # fmt: skip
    out = tmp_path / "reports"
    real = write_json_no_clobber

    def full_for_samples(payload, directory, stem, suffix=".json"):
        if suffix == ".samples.json":
            raise MmevalError(f"output.dir: writing {stem}{suffix} to {directory} failed (No space left on device)")
        return real(payload, directory, stem, suffix)

    monkeypatch.setattr("mmeval.engine.evaluate.write_json_no_clobber", full_for_samples)
    outcome = run_config(validate_mapping(captioning_config(tmp_path, out)))

    assert outcome.errors == [(f"output.dir: writing run.samples.json to {out} failed (No space left on device); the "
                              "per-sample output was not saved")]
    assert listing(out) == ["run.caps.captions.json", "run.json"]
    report = json.loads((out / "run.json").read_text())
    validate_report(report)
    assert "per_sample_file" not in report and report["benchmarks"]["caps"]["status"] == "complete"


def test_output_folder_that_cannot_be_created_fails_before_any_work(tmp_path: Path, plugin: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "reports"

    done = run_cli(tmp_path, plugin, captioning_config(tmp_path, out))

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [f"error: run.yaml: output.dir: expected a folder (created if missing), got a "
                                        f"file: {tmp_path / 'a-file'}"]
    assert not (tmp_path / "marker").exists()  # the model was never loaded


def test_read_only_output_folder_fails_before_any_work(tmp_path: Path, plugin: Path, monkeypatch) -> None:
    """What a folder without write permission gives (simulated: the tests may run as root, who can write
    anywhere; `test_read_only_folder_for_real` checks the real thing as another user)."""
    out = tmp_path / "reports"
    out.mkdir()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("mmeval.reporting.report.tempfile.mkstemp", denied)
    with pytest.raises(MmevalError) as caught:
        run_config(validate_mapping(captioning_config(tmp_path, out)))
    assert str(caught.value) == f"output.dir: cannot write to {out} (Permission denied)"
    assert not (tmp_path / "marker").exists()
    assert listing(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders; simulated in the test above")
def test_read_only_folder_for_real(tmp_path: Path, plugin: Path) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    out.chmod(0o555)
    try:
        done = run_cli(tmp_path, plugin, captioning_config(tmp_path, out))
    finally:
        out.chmod(0o755)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [f"error: output.dir: cannot write to {out} (Permission denied)"]
    assert not (tmp_path / "marker").exists() and listing(out) == []


# ----------------------------------------------------------------------------------------- clashing names


def test_two_benchmarks_with_one_name_are_a_config_error_before_any_work(tmp_path: Path, plugin: Path) -> None:
    out = tmp_path / "reports"

    done = run_cli(tmp_path, plugin, captioning_config(tmp_path, out, names=("caps", "caps")))

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [("error: run.yaml: benchmarks[1].name: duplicate benchmark name 'caps' (also "
                                        "used by benchmarks[0]); names must be unique")]
    assert not (tmp_path / "marker").exists() and not out.exists()


def test_names_equal_but_for_case_collide_as_file_names(tmp_path: Path) -> None:
    """`run.COCO.captions.json` and `run.coco.captions.json` are one file on macOS and Windows."""
    cfg = captioning_config(tmp_path, tmp_path / "reports", names=("coco", "val", "COCO", "Coco"))
    with pytest.raises(ConfigError) as caught:
        validate_mapping(cfg, "run.yaml")
    assert caught.value.problems == [
        ("benchmarks[2].name: benchmark name 'COCO' differs from benchmarks[0].name 'coco' only in case; their output "
        "files would collide on case-insensitive file systems; names must be unique ignoring case"),
        ("benchmarks[3].name: benchmark name 'Coco' differs from benchmarks[0].name 'coco' only in case; their output "
        "files would collide on case-insensitive file systems; names must be unique ignoring case"),
    ]
