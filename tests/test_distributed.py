"""Data-parallel runs: `torchrun --nproc_per_node 2 -m mmeval run` (gloo on CPU) against a single process.

The shipped reference model on small shapes sets whose sizes leave uneven shards (odd batch counts, a short
last batch): the report of the 2-process run must hold the same metrics, dataset digests and per-sample rows
as the single-process run, and the cache entries the same embeddings, bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_coco_dataset, write_yaml
from safetensors.torch import load_file

from mmeval.engine.distributed import Distributed, device_spec, from_env, shard
from mmeval.errors import MmevalError

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

CONFIG = """
model: {type: reference}
benchmarks:
  - name: ret
    task: retrieval
    data: {format: shapes, split: test, n_images: 37, seed: 0}
  - name: cap
    task: coco_captions
    data: {format: shapes, split: test, n_images: 21, seed: 1}
    generation: {max_new_tokens: 12}
    metrics: [Bleu, ROUGE_L, CIDEr]
    tokenizer: python
  - name: cls
    task: zeroshot_classification
    data: {format: shapes, split: test, n_images: 29, seed: 2}
runtime: {device: cpu, precision: fp32, batch_size: 4, num_workers: 0, threads: 1, chunk_size: 8}
output: {dir: OUT, name: NAME}
"""


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "MMEVAL_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def _run(command: list[str], cache: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False, env=_env(cache), timeout=timeout)


def _metrics(report: dict) -> dict[str, dict[str, float]]:
    return {name: {m: v["value"] for m, v in bench.get("metrics", {}).items()}
            for name, bench in report["benchmarks"].items()}  # fmt: skip


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 10, 63, 64, 65, 1000])
@pytest.mark.parametrize("world", [1, 2, 3, 4, 7, 8])
def test_every_unit_goes_to_exactly_one_rank(n: int, world: int) -> None:
    shares = [shard(n, rank, world) for rank in range(world)]
    assert sorted(unit for share in shares for unit in share) == list(range(n))
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1
    assert all(share == sorted(share) for share in shares)


def test_environment_and_devices(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    plain = from_env()
    assert (plain.rank, plain.world_size, plain.is_primary, plain.parallel) == (0, 1, True, False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ranks = from_env()
    assert (ranks.rank, ranks.local_rank, ranks.is_primary, ranks.parallel) == (3, 1, False, True)
    assert device_spec("cuda", ranks) == "cuda:1" and device_spec("cpu", ranks) == "cpu"
    with pytest.raises(MmevalError, match="runtime.device: 'cuda:0' names one GPU"):
        device_spec("cuda:0", ranks)
    assert device_spec("cuda:0", Distributed()) == "cuda:0"
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(MmevalError, match="RANK=4, WORLD_SIZE=4"):
        from_env()


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_report(tmp_path: Path) -> None:
    single = tmp_path / "single"
    text = CONFIG.replace("OUT", str(single))
    config = write_yaml(tmp_path / "run.yaml", text.replace("NAME", "single"))
    done = _run([sys.executable, "-m", "mmeval", "run", "-c", str(config)], tmp_path / "cache-single")
    assert done.returncode == 0, done.stderr

    parallel = tmp_path / "parallel"
    config = write_yaml(tmp_path / "dp.yaml", CONFIG.replace("OUT", str(parallel)).replace("NAME", "dp"))
    done = _run([*TORCHRUN, "-m", "mmeval", "run", "-c", str(config)], tmp_path / "cache-dp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("mmeval results") == 1  # rank 0 alone prints the results

    one = json.loads((single / "single.json").read_text())
    two = json.loads((parallel / "dp.json").read_text())
    assert sorted(p.name for p in parallel.iterdir()) == ["dp.cap.captions.json", "dp.json", "dp.samples.json"]
    assert two["runtime"]["world_size"] == 2 and two["runtime"]["distributed_backend"] == "gloo"
    assert one["runtime"]["world_size"] == 1 and one["runtime"]["distributed_backend"] is None
    assert two["status"] == "complete"
    metrics = _metrics(two)
    assert set(metrics) == {"ret", "cap", "cls"} and all(metrics.values())
    assert metrics == _metrics(one)
    for name in ("ret", "cap", "cls"):
        assert two["benchmarks"][name]["dataset"] == one["benchmarks"][name]["dataset"]
    assert two["benchmarks"]["ret"]["dataset"]["n_texts"] == 37 * 5
    # per-query ranks, captions and predictions: the same rows in the same order
    samples = [json.loads((folder / f"{name}.samples.json").read_text()) for folder, name in ((parallel, "dp"),
                                                                                               (single, "single"))]
    assert samples[0] == samples[1]
    assert ((parallel / "dp.cap.captions.json").read_text() == (single / "single.cap.captions.json").read_text())
    # the output caches hold the same embeddings, bit for bit, and no chunk is left over
    entries = sorted((tmp_path / "cache-single" / "outputs").rglob("*.safetensors"))
    assert len(entries) == 5  # ret images + texts, cap captions, cls images + prompts
    for entry in entries:
        other = tmp_path / "cache-dp" / entry.relative_to(tmp_path / "cache-single")
        a, b = load_file(str(entry)), load_file(str(other))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "cache-dp").rglob("*.chunk.safetensors"))


@pytest.mark.slow
def test_a_failure_on_one_rank_fails_the_benchmark_on_all(tmp_path: Path) -> None:
    """An unreadable image in rank 1's share: both ranks record the failure and go on to the next benchmark
    in step (no hang); rank 0 writes a partial report naming the file."""
    annotations = make_coco_dataset(tmp_path / "coco", n_images=11)
    broken = tmp_path / "coco" / "val2014" / "COCO_val2014_000000000006.jpg"  # index 5: the second batch of 4
    broken.write_bytes(b"\xff\xd8 truncated")
    config = write_yaml(tmp_path / "run.yaml", f"""
model: {{type: reference}}
benchmarks:
  - name: coco
    task: retrieval
    data: {{format: coco, annotations: {annotations}, images: {annotations.parent / 'val2014'}}}
  - name: shapes
    task: retrieval
    data: {{format: shapes, split: test, n_images: 9, seed: 0}}
runtime: {{device: cpu, precision: fp32, batch_size: 4, num_workers: 0, threads: 1}}
output: {{dir: {tmp_path / 'out'}, name: r}}
""")
    done = _run([*TORCHRUN, "-m", "mmeval", "run", "-c", str(config)], tmp_path / "cache", timeout=180)
    assert done.returncode != 0
    report = json.loads((tmp_path / "out" / "r.json").read_text())
    assert report["status"] == "partial"
    failed = report["benchmarks"]["coco"]
    assert failed["status"] == "failed" and str(broken) in failed["error"] and "(on rank 1)" in failed["error"]
    assert report["benchmarks"]["shapes"]["status"] == "complete"
    assert f"benchmark 'coco': {broken}" in done.stderr


@pytest.mark.parametrize("command", ["validate", "bench"])
def test_single_process_commands_refuse_torchrun(command: str, monkeypatch) -> None:
    """`validate` and `bench` are one-process commands: under torchrun's environment, one line and exit 2
    (not N copies joining a process group)."""
    from typer.testing import CliRunner

    from mmeval.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    done = CliRunner().invoke(app, [command, "-c", str(demo)])
    assert done.exit_code == 2, done.output
    assert "run it without torchrun" in done.output and "Traceback" not in done.output
