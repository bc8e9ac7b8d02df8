"""The report: schema-valid, traceable to its inputs, written atomically, never overwriting, kept on failure."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from conftest import make_coco_dataset

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.errors import MmevalError
from mmeval.reporting.report import git_commit, load_schema, validate_report, write_json_no_clobber


def open_clip_config(tiny_open_clip, benchmarks: list[dict], out: Path, **output) -> object:
    return validate_mapping({
        "model": {"type": "open_clip", "arch": tiny_open_clip["arch"],
                  "arch_config": str(tiny_open_clip["arch_config"]), "checkpoint": str(tiny_open_clip["checkpoint"])},
        "benchmarks": benchmarks,
        "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 16, "num_workers": 0},
        "output": {"dir": str(out), **output},
    })


def coco_benchmark(name: str, annotations: Path, **data) -> dict:
    return {"name": name, "task": "retrieval",
            "data": {"format": "coco", "annotations": str(annotations), "images": str(annotations.parent / "val2014"),
                     **data}}


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_report_is_valid_and_traceable(tiny_open_clip, coco_dataset: Path, tmp_path: Path) -> None:
    outcome = run_config(open_clip_config(tiny_open_clip, [coco_benchmark("coco", coco_dataset)], tmp_path))
    written = json.loads(outcome.report_path.read_text())
    validate_report(written)
    assert written["model"]["sha256"] == hashlib.sha256(Path(tiny_open_clip["checkpoint"]).read_bytes()).hexdigest()
    assert written["model"]["n_parameters"] > 0 and written["model"]["adapter"] == "open_clip"
    assert written["config"]["benchmarks"][0]["data"]["annotations"] == str(coco_dataset)
    assert written["environment"]["device"] == "cpu" and written["environment"]["torch"]
    bench = written["benchmarks"]["coco"]
    assert set(bench["metrics"]) == {f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)} | {
        "t2i_mean_rank", "t2i_median_rank", "i2t_mean_rank", "i2t_median_rank", "rsum"}
    assert bench["metrics"]["t2i_mean_rank"]["higher_is_better"] is False
    assert bench["dataset"]["n_images"] == 40 and bench["dataset"]["n_texts"] == sum(1 + i % 7 for i in range(40))
    samples = json.loads((tmp_path / written["per_sample_file"]).read_text())["coco"]
    assert len(samples["t2i"]) == bench["dataset"]["n_texts"] and len(samples["i2t"]) == 40
    r1 = sum(row["rank"] == 1 for row in samples["t2i"]) / len(samples["t2i"])
    assert r1 == pytest.approx(bench["metrics"]["t2i_R@1"]["value"])


def test_dataset_digest_changes_with_image_bytes(tiny_open_clip, tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "data", n_images=6)
    cfg = open_clip_config(tiny_open_clip, [coco_benchmark("b", annotations)], tmp_path / "out")
    first = run_config(cfg).report["benchmarks"]["b"]["dataset"]["sha256"]
    assert run_config(cfg).report["benchmarks"]["b"]["dataset"]["sha256"] == first
    image = annotations.parent / "val2014" / "COCO_val2014_000000000003.jpg"
    image.write_bytes(image.read_bytes() + b"\0")  # same pixels, different file
    assert run_config(cfg).report["benchmarks"]["b"]["dataset"]["sha256"] != first


def test_never_overwrites(tmp_path: Path) -> None:
    first = write_json_no_clobber({"n": 1}, tmp_path, "run")
    second = write_json_no_clobber({"n": 2}, tmp_path, "run")
    assert first.name == "run.json" and second.name == "run-1.json"
    assert json.loads(first.read_text()) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1.json", "run.json"]  # no temporary files left


def test_output_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder")
    with pytest.raises(MmevalError, match=r"output.dir: cannot write to .*reports"):
        write_json_no_clobber({}, blocker, "run")


def test_late_failure_keeps_finished_benchmarks(tiny_open_clip, tmp_path: Path) -> None:
    good = make_coco_dataset(tmp_path / "good", n_images=8)
    bad = make_coco_dataset(tmp_path / "bad", n_images=8)
    (bad.parent / "val2014" / "COCO_val2014_000000000005.jpg").write_bytes(b"not a jpeg")
    cfg = open_clip_config(tiny_open_clip, [coco_benchmark("first", good), coco_benchmark("second", bad)], tmp_path / "out")
    outcome = run_config(cfg)
    report = json.loads(outcome.report_path.read_text())
    validate_report(report)
    assert report["status"] == "partial"
    assert report["benchmarks"]["first"]["status"] == "complete"
    assert report["benchmarks"]["second"]["status"] == "failed"
    assert "COCO_val2014_000000000005.jpg" in report["benchmarks"]["second"]["error"]
    assert len(outcome.errors) == 1 and "second" in outcome.errors[0]


def test_git_commit_recorded(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "m"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "f").write_text("changed")
    assert git_commit(tmp_path) == head + "-dirty"
