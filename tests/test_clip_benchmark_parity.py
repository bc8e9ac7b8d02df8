"""mmeval's retrieval recall equals CLIP_benchmark's (the peer tool, run through its own CLI) to 1e-6."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_coco_dataset

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config

# CLIP_benchmark's own CLI in a subprocess (torch + open_clip import, twice): the full tier only
pytestmark = pytest.mark.slow

CLIP_BENCHMARK_CLI = (
    "import sys, open_clip; open_clip.add_model_config(sys.argv[1]); "
    "from clip_benchmark.cli import main; sys.argv = ['clip_benchmark'] + sys.argv[2:]; main()"
)


def run_clip_benchmark(tiny_open_clip, root: Path, annotations: Path, out: Path, ks: list[int]) -> dict[str, float]:
    command = [
        sys.executable, "-c", CLIP_BENCHMARK_CLI, str(tiny_open_clip["arch_config"]),
        "eval", "--dataset", "mscoco_captions", "--dataset_root", str(root), "--annotation_file", str(annotations),
        "--model", str(tiny_open_clip["arch"]), "--pretrained", str(tiny_open_clip["checkpoint"]),
        "--task", "zeroshot_retrieval", "--recall_k", *map(str, ks), "--no_amp", "--batch_size", "16",
        "--num_workers", "0", "--output", str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())["metrics"]


def run_mmeval(tiny_open_clip, annotations: Path, images: Path, out: Path) -> dict:
    cfg = validate_mapping({
        "model": {"type": "open_clip", "arch": tiny_open_clip["arch"], "arch_config": str(tiny_open_clip["arch_config"]),
                  "checkpoint": str(tiny_open_clip["checkpoint"])},
        "benchmarks": [{"name": "parity", "task": "retrieval",
                        "data": {"format": "coco", "annotations": str(annotations), "images": str(images)}}],
        "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 7, "num_workers": 0},
        "output": {"dir": str(out)},
    })
    return run_config(cfg).report["benchmarks"]["parity"]


@pytest.mark.parametrize("dataset", ["synthetic", "real-coco"])
def test_recall_matches_clip_benchmark(tiny_open_clip, tmp_path, shared_data, dataset) -> None:
    if dataset == "synthetic":
        # 60 images with 1 to 7 captions each, so multi-positive image->text ranking is exercised.
        annotations = make_coco_dataset(tmp_path / "root", n_images=60, seed=3)
        ks = [1, 5, 10]
    else:
        # The real COCO JPEGs and captions, laid out as CLIP_benchmark expects (ROOT/val2014/...).
        (tmp_path / "root").mkdir()
        (tmp_path / "root" / "val2014").symlink_to(shared_data / "coco" / "images")
        annotations = shared_data / "coco" / "images_captions.json"
        ks = [1, 5]  # 9 images: CLIP_benchmark cannot take the top 10
    peer = run_clip_benchmark(tiny_open_clip, tmp_path / "root", annotations, tmp_path / "peer.json", ks)
    ours = run_mmeval(tiny_open_clip, annotations, tmp_path / "root" / "val2014", tmp_path / "reports")

    n_texts = len(json.loads(annotations.read_text())["annotations"])
    assert ours["dataset"]["n_texts"] == n_texts
    for k in ks:
        assert ours["metrics"][f"t2i_R@{k}"]["value"] == pytest.approx(peer[f"image_retrieval_recall@{k}"], abs=1e-6)
        assert ours["metrics"][f"i2t_R@{k}"]["value"] == pytest.approx(peer[f"text_retrieval_recall@{k}"], abs=1e-6)
    # A random tiny model must not be trivially perfect, or the comparison would prove nothing.
    assert ours["metrics"]["t2i_R@1"]["value"] < 0.9
