"""Resume: finished batches are saved in chunks as a pass runs; `--resume` after kill -9 or Ctrl-C redoes only
the rest and gives the numbers of an uninterrupted run.

The subprocess tests use the shipped reference model through a plugin that logs each captioning call (its
rows) and sleeps a little, so a run can be killed while it captions and the resumed run's model calls counted.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_yaml
from safetensors import safe_open

from mmeval.config.run import RuntimeConfig
from mmeval.data.shapes import load_shapes
from mmeval.engine.runner import encode_images, encode_texts
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import MmevalError
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder

N_IMAGES = 24
PLUGIN = '''
import os
import time

from mmeval.models.reference import DEMO_CHECKPOINT, load_folder


class Logged:
    """The reference model; each captioning call appends its row count to $CALLS_LOG and sleeps $DELAY s. With
    $HOLD_AFTER = n, call n + 1 waits (up to 120 s) for the signal the test sends: the run is surely still going."""

    def __init__(self, inner):
        self._inner, self._calls = inner, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, pixels, settings):
        self._calls += 1
        hold = int(os.environ.get("HOLD_AFTER", "0"))
        if hold and self._calls > hold:
            time.sleep(120)
            raise RuntimeError("held for 120 s and no signal came")
        with open(os.environ["CALLS_LOG"], "a") as log:
            log.write(f"{len(pixels)}\\n")
        time.sleep(float(os.environ.get("DELAY", "0")))
        return self._inner.generate(pixels, settings)


def factory():
    return Logged(load_folder(DEMO_CHECKPOINT))
'''
CONFIG = f"""
model: {{type: plugin, entry: "logged_reference:factory"}}
benchmarks:
  - name: cap
    task: coco_captions
    data: {{format: shapes, split: test, n_images: {N_IMAGES}, seed: 3}}
    generation: {{max_new_tokens: 10}}
    metrics: [Bleu, ROUGE_L, CIDEr]
    tokenizer: python
runtime: {{device: cpu, precision: fp32, batch_size: 2, num_workers: 0, threads: 1, chunk_size: 2}}
output: {{dir: OUT}}
"""


@pytest.fixture
def setup(tmp_path: Path, own_cache: Path) -> dict:
    (tmp_path / "logged_reference.py").write_text(PLUGIN)
    config = write_yaml(tmp_path / "run.yaml", CONFIG.replace("OUT", str(tmp_path / "reports")))
    return {"config": config, "cache": own_cache, "dir": tmp_path}


def _env(setup: dict, log: str, delay: float, hold_after: int = 0) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(setup["dir"]), "CALLS_LOG": str(setup["dir"] / log),
            "DELAY": str(delay), "HOLD_AFTER": str(hold_after), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}  # fmt: skip


def _mmeval(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmeval", *args]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=180)


def _chunk_files(cache: Path) -> list[Path]:
    return list((cache / "chunks").rglob("*.chunk.safetensors")) if (cache / "chunks").is_dir() else []


def _covered(cache: Path) -> set[int]:
    """The source indices the chunks on disk hold (read straight from the files)."""
    covered: set[int] = set()
    for path in _chunk_files(cache):
        with safe_open(str(path), "pt") as handle:
            covered.update(json.loads(handle.metadata()["part"])["covered"])
    return covered


def _rows_computed(setup: dict, log: str) -> int:
    path = setup["dir"] / log
    return sum(int(line) for line in path.read_text().split()) if path.exists() else 0


def _start_and_wait(setup: dict, n_chunks: int) -> subprocess.Popen:
    """Start a run and return once `n_chunks` chunks are on disk, while it is still running: the model holds its
    call after the next one until the test's signal (on a busy machine a timed delay let the run finish first)."""
    env = _env(setup, "interrupted.log", 0.05, hold_after=n_chunks + 1)
    # SIGINT at its default in the run, as a terminal's Ctrl-C finds it: a suite started in the background
    # (`cmd &` without job control) ignores SIGINT, and an ignored SIGINT is inherited through exec
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(_mmeval("run", "-c", str(setup["config"])), env=env, preexec_fn=default_sigint,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(_chunk_files(setup["cache"])) < n_chunks:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no chunks were written"
        time.sleep(0.01)
    return process


def _report(done: subprocess.CompletedProcess) -> dict:
    path = next(line.split("report: ", 1)[1] for line in done.stderr.splitlines() if line.startswith("report: "))
    return json.loads(Path(path).read_text())


def _uninterrupted(setup: dict) -> dict:
    """The reference run, with a cache of its own."""
    env = {**_env(setup, "full.log", 0), "MMEVAL_CACHE_DIR": str(setup["dir"] / "other-cache")}
    done = _run(_mmeval("run", "-c", str(setup["config"])), env)
    assert done.returncode == 0, done.stderr
    assert _rows_computed(setup, "full.log") == N_IMAGES
    return _report(done)


def _same_results(resumed: dict, full: dict) -> None:
    one, two = resumed["benchmarks"]["cap"], full["benchmarks"]["cap"]
    assert one["status"] == "complete"
    assert {k: v["value"] for k, v in one["metrics"].items()} == {k: v["value"] for k, v in two["metrics"].items()}
    assert one["dataset"] == two["dataset"]
    folders = [Path(report["config_path"]).parent / "reports" for report in (resumed, full)]
    captions = [json.loads((folder / bench["predictions_file"]).read_text())
                for folder, bench in zip(folders, (one, two))]  # fmt: skip
    assert captions[0] == captions[1] and len(captions[0]) == N_IMAGES


@pytest.mark.slow
def test_kill_9_then_resume_on_two_ranks_redoes_only_unfinished_chunks(setup: dict) -> None:
    full = _uninterrupted(setup)
    n_chunks = random.Random(8).randint(2, N_IMAGES // 2 - 4)  # one chunk = one batch of 2 images here
    process = _start_and_wait(setup, n_chunks)
    process.kill()  # SIGKILL: nothing runs on the way out
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    kept = _covered(setup["cache"])
    assert n_chunks * 2 <= len(kept) < N_IMAGES

    # resumed by two processes: chunks are keyed by source index, so any number of ranks can pick them up
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mmeval"]
    done = _run([*torchrun, "run", "-c", str(setup["config"]), "--resume"], _env(setup, "resumed.log", 0))
    assert done.returncode == 0, done.stderr
    assert _rows_computed(setup, "resumed.log") == N_IMAGES - len(kept)  # only what the chunks lack, on both ranks
    assert _report(done)["runtime"]["world_size"] == 2
    assert f"captions: resuming: {len(kept)} row(s) done" in done.stderr
    _same_results(_report(done), full)
    assert not _chunk_files(setup["cache"])  # the pass finished: its chunks are gone


@pytest.mark.slow
def test_ctrl_c_keeps_finished_batches_and_prints_the_resume_command(setup: dict) -> None:
    full = _uninterrupted(setup)
    process = _start_and_wait(setup, 3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    # stopped after the 3 awaited batches and by the held fifth call at the latest: the signal lands mid-run
    assert 2 * 3 <= _rows_computed(setup, "interrupted.log") <= 2 * 4
    assert "interrupted; the finished benchmarks were saved in the report" in stderr
    hint = next(line for line in stderr.splitlines() if line.startswith("finished batches were kept; to resume: "))
    command = shlex.split(hint.split("to resume: ", 1)[1])
    assert command == ["mmeval", "run", "-c", str(setup["config"]), "--resume"]
    kept = _covered(setup["cache"])
    assert len(kept) >= 6 and len(kept) % 2 == 0 and len(kept) < N_IMAGES  # whole batches, the pending ones too

    done = _run(_mmeval(*command[1:]), _env(setup, "resumed.log", 0))
    assert done.returncode == 0, done.stderr
    assert _rows_computed(setup, "resumed.log") == N_IMAGES - len(kept)
    _same_results(_report(done), full)


def test_resume_needs_the_cache(setup: dict) -> None:
    with pytest.raises(MmevalError, match=r"^--resume: .* runtime.cache is off"):
        resolve_runtime(RuntimeConfig(device="cpu", cache="off"), resume=True)
    done = _run(_mmeval("run", "-c", str(setup["config"]), "--no-cache", "--resume"), _env(setup, "none.log", 0))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    expected = ("error: --resume: finished work is kept in the cache folder, but runtime.cache is off (--no-cache); "
                "resume with the cache on (runtime.cache: on or pixels)")
    assert errors == [expected]
    assert _rows_computed(setup, "none.log") == 0


class _Counting:
    """The reference model, counting the rows its encoders see."""

    def __init__(self):
        self._inner = load_folder(DEMO_CHECKPOINT)
        self.rows = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.rows += len(pixels)
        return self._inner.encode_image(pixels)

    def encode_text(self, tokens) -> torch.Tensor:
        self.rows += len(tokens["tokens"] if isinstance(tokens, dict) else tokens)
        return self._inner.encode_text(tokens)


def _stop_after(batches: int):
    seen = []

    def progress(n: int) -> None:
        if n:
            seen.append(n)
            if len(seen) == batches:
                raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("pass_name", ["images", "texts"])
def test_resume_in_process_is_bit_identical_and_a_fresh_run_ignores_chunks(pass_name: str, caplog) -> None:
    data = load_shapes("test", 17, 5, 64)
    runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=3, num_workers=0,
                                            chunk_size=3))  # fmt: skip

    def run(model, progress):
        if pass_name == "images":
            return encode_images(model, data.images, runtime, "fail", progress)[0]
        return encode_texts(model, data.texts[:40], runtime, progress)[0]

    total = 17 if pass_name == "images" else 40
    reference = _Counting()
    with torch.no_grad():
        runtime.cache.outputs = False  # the final output-cache entry would short-cut the reruns below
        expected = run(reference, lambda n: None)
        assert reference.rows == total

        with pytest.raises(KeyboardInterrupt):
            run(_Counting(), _stop_after(2))
        fresh = _Counting()
        with caplog.at_level("WARNING", logger="mmeval"):
            assert torch.equal(run(fresh, lambda n: None), expected)
        assert fresh.rows == total  # the chunks were not used without --resume, and the log says so
        assert "found 2 chunk(s) of finished work" in caplog.text and "--resume" in caplog.text

        with pytest.raises(KeyboardInterrupt):
            run(_Counting(), _stop_after(4))
        runtime.resume = True
        resumed = _Counting()
        assert torch.equal(run(resumed, lambda n: None), expected)
        assert resumed.rows == total - 4 * 3
