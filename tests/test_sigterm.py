"""SIGTERM (a cancelled CI job, a pre-empted Slurm job) stops `mmeval run` as Ctrl-C does: the finished batches
are kept, the partial report is written, the resume command printed, and the exit code is 143.

The subprocess test runs the shipped reference model through a plugin that sleeps in each captioning call, so the
run can be signalled while it captions, after some chunks are on disk; `--resume` then completes it with the
numbers of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from conftest import write_yaml
from safetensors import safe_open
from typer.testing import CliRunner

import mmeval.engine.evaluate as evaluate
from mmeval.cli import app
from mmeval.cli.signals import Terminated, sigterm_as_interrupt

N_IMAGES = 12
PLUGIN = '''
import os
import time

from mmeval.models.reference import DEMO_CHECKPOINT, load_folder


class Slow:
    """The reference model; each captioning call sleeps $DELAY s."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, pixels, settings):
        time.sleep(float(os.environ.get("DELAY", "0")))
        return self._inner.generate(pixels, settings)


def factory():
    return Slow(load_folder(DEMO_CHECKPOINT))
'''
CONFIG = f"""
model: {{type: plugin, entry: "slow_reference:factory"}}
benchmarks:
  - name: retr
    task: retrieval
    data: {{format: shapes, split: test, n_images: 8, seed: 1}}
  - name: cap
    task: coco_captions
    data: {{format: shapes, split: test, n_images: {N_IMAGES}, seed: 3}}
    generation: {{max_new_tokens: 8}}
    metrics: [Bleu, CIDEr]
    tokenizer: python
runtime: {{device: cpu, precision: fp32, batch_size: 2, num_workers: 0, threads: 1, chunk_size: 2}}
output: {{dir: OUT, per_sample: false}}
"""


def _env(folder: Path, delay: float, cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(folder), "DELAY": str(delay), "MMEVAL_CACHE_DIR": str(cache),
            "OMP_NUM_THREADS": "1", "COLUMNS": "200"}  # fmt: skip


def _caption_chunks(cache: Path) -> list[Path]:
    """Saved chunks of captioning work (generated text, no embedding rows) under the cache folder."""
    found = []
    try:
        paths = list((cache / "chunks").rglob("*.chunk.safetensors"))
    except OSError:  # a finished pass removes its chunk folder while we look
        return []
    for path in paths:
        try:
            with safe_open(str(path), "pt") as handle:
                if "rows" not in handle.keys():
                    found.append(path)
        except Exception:  # noqa: BLE001 - removed between the listing and the read
            continue
    return found


def _report(stderr: str) -> dict:
    path = next(line.split("report: ", 1)[1] for line in stderr.splitlines() if line.startswith("report: "))
    return json.loads(Path(path).read_text())


def _values(report: dict, name: str) -> dict:
    return {k: v["value"] for k, v in report["benchmarks"][name]["metrics"].items()}


@pytest.mark.slow
def test_sigterm_keeps_finished_work_exits_143_and_resume_completes(tmp_path: Path, own_cache: Path) -> None:
    (tmp_path / "slow_reference.py").write_text(PLUGIN)
    config = write_yaml(tmp_path / "run.yaml", CONFIG.replace("OUT", str(tmp_path / "reports")))
    command = [sys.executable, "-m", "mmeval", "run", "-c", str(config)]
    # the uninterrupted reference (its own cache), started alongside the run that is signalled
    full = subprocess.Popen(command, env=_env(tmp_path, 0, tmp_path / "full-cache"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    process = subprocess.Popen(command, env=_env(tmp_path, 0.3, own_cache), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(_caption_chunks(own_cache)) < 2:  # two captioning batches saved, the rest still to do
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no chunks were written"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "error: terminated (SIGTERM); the finished benchmarks were saved in the report" in stderr
    hint = next(line for line in stderr.splitlines() if line.startswith("finished batches were kept; to resume: "))
    assert shlex.split(hint.split("to resume: ", 1)[1]) == ["mmeval", "run", "-c", str(config), "--resume"]

    partial = _report(stderr)
    assert partial["status"] == "interrupted"
    assert partial["benchmarks"]["retr"]["status"] == "complete"
    assert partial["benchmarks"]["cap"]["status"] == "interrupted"
    assert partial["benchmarks"]["cap"]["error"] == "terminated (SIGTERM)"
    kept = len(_caption_chunks(own_cache)) * 2
    assert 4 <= kept < N_IMAGES  # whole batches of 2 were kept, the rest is not done

    resumed = subprocess.run([*command, "--resume"], env=_env(tmp_path, 0, own_cache), capture_output=True,
                             text=True, timeout=180)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {kept} row(s) done" in resumed.stderr
    _, full_stderr = full.communicate(timeout=180)
    assert full.returncode == 0, full_stderr
    done, reference = _report(resumed.stderr), _report(full_stderr)
    for name in ("retr", "cap"):
        assert done["benchmarks"][name]["status"] == "complete"
        assert _values(done, name) == _values(reference, name)
        datasets = [{k: v for k, v in r["benchmarks"][name]["dataset"].items() if k != "pixels_from"}
                    for r in (done, reference)]  # retr: from the output cache when resumed
        assert datasets[0] == datasets[1]
    captions = [json.loads((tmp_path / "reports" / r["benchmarks"]["cap"]["predictions_file"]).read_text())
                for r in (done, reference)]  # fmt: skip
    assert captions[0] == captions[1] and len(captions[0]) == N_IMAGES


def test_only_the_first_sigterm_raises_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    caught = []
    with sigterm_as_interrupt() as signals:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in this thread before the sleep ends
        except Terminated as exc:
            caught.append(str(exc))
            os.kill(os.getpid(), signal.SIGTERM)  # a second one while saving: ignored
            time.sleep(0.05)
    assert caught == ["terminated (SIGTERM)"]
    assert signals.terminated and signals.exit_code() == 143
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)  # the Ctrl-C path: batches saved, partial report


def test_an_interrupt_escaping_the_block_becomes_the_exit_code() -> None:
    with pytest.raises(typer.Exit) as info:
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert info.value.exit_code == 143
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C: left to the CLI (exit 130)
        with sigterm_as_interrupt():
            raise KeyboardInterrupt


def test_sigterm_before_any_benchmark_is_one_line_and_143(tmp_path: Path, monkeypatch) -> None:
    # SIGTERM while the model loads: nothing to save, no traceback, the exit code of a terminated process.
    def terminated_while_loading(model_cfg, trust_checkpoint=False):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(evaluate, "load_model", terminated_while_loading)
    config = write_yaml(tmp_path / "run.yaml", "model: {type: reference}\nbenchmarks:\n  - {name: r, task: retrieval, "
                        "data: {format: shapes, n_images: 4}}\nruntime: {device: cpu}\n"
                        f"output: {{dir: {tmp_path / 'reports'}}}\n")
    done = CliRunner().invoke(app, ["run", "-c", str(config)])
    assert done.exit_code == 143, done.output
    assert "error: terminated (SIGTERM) before any benchmark finished; nothing was computed" in done.output
    assert "Traceback" not in done.output
