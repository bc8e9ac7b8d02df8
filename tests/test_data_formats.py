"""The three retrieval data formats load the same data identically, and real COCO files load and run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.config.run import validate_mapping
from mmeval.data.loaders import load_retrieval_data
from mmeval.engine.evaluate import run_config
from mmeval.errors import DataError


def config(data: dict, out: Path, model: dict | None = None) -> object:
    return validate_mapping({
        "model": model or {"type": "reference"},
        "benchmarks": [{"name": "b", "task": "retrieval", "data": data}],
        "runtime": {"device": "cpu", "batch_size": 16, "num_workers": 0},
        "output": {"dir": str(out)},
    })


def coco_to_karpathy(annotations: Path, train_every: int = 4) -> Path:
    raw = json.loads(annotations.read_text())
    images = []
    for n, image in enumerate(raw["images"]):
        sentences = [{"raw": a["caption"]} for a in raw["annotations"] if a["image_id"] == image["id"]]
        images.append({"filepath": "val2014", "filename": image["file_name"], "cocoid": image["id"],
                       "split": "train" if n % train_every == 0 else "test", "sentences": sentences})
    path = annotations.parent / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "images": images}))
    return path


def coco_to_hf(annotations: Path) -> Path:
    import datasets

    raw = json.loads(annotations.read_text())
    rows = {"image": [], "caption": [], "image_id": []}
    for image in raw["images"]:
        rows["image"].append(str(annotations.parent / "val2014" / image["file_name"]))
        rows["caption"].append([a["caption"] for a in raw["annotations"] if a["image_id"] == image["id"]])
        rows["image_id"].append(image["id"])
    dataset = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    folder = annotations.parent / "hf_dataset"
    dataset.save_to_disk(str(folder))
    return folder


def test_formats_agree(coco_dataset: Path, tmp_path: Path) -> None:
    images = coco_dataset.parent / "val2014"
    coco = load_retrieval_data(config({"format": "coco", "annotations": str(coco_dataset), "images": str(images)},
                                      tmp_path).benchmarks[0].data)
    karpathy = load_retrieval_data(config({"format": "karpathy", "annotations": str(coco_to_karpathy(coco_dataset)),
                                           "images": str(coco_dataset.parent), "split": "test"},
                                          tmp_path).benchmarks[0].data)
    hf = load_retrieval_data(config({"format": "hf", "path": str(coco_to_hf(coco_dataset)),
                                     "image_id_column": "image_id"}, tmp_path).benchmarks[0].data)
    assert hf.image_ids == coco.image_ids and hf.texts == coco.texts
    assert hf.text_image_index == coco.text_image_index
    test_ids = [i for n, i in enumerate(coco.image_ids) if n % 4 != 0]
    assert karpathy.image_ids == test_ids
    assert len(karpathy.texts) == sum(1 for o in coco.text_image_index if o % 4 != 0)
    for data in (coco, karpathy, hf):  # the same bytes behind each format
        assert data.images.load(1)[0] == (images / f"COCO_val2014_{data.image_ids[1]:012d}.jpg").read_bytes()


def test_hf_and_coco_runs_give_identical_metrics(coco_dataset: Path, tmp_path: Path) -> None:
    images = str(coco_dataset.parent / "val2014")
    by_coco = run_config(config({"format": "coco", "annotations": str(coco_dataset), "images": images}, tmp_path))
    by_hf = run_config(config({"format": "hf", "path": str(coco_to_hf(coco_dataset))}, tmp_path))
    a, b = by_coco.report["benchmarks"]["b"], by_hf.report["benchmarks"]["b"]
    assert a["metrics"] == b["metrics"]
    assert by_coco.report_path != by_hf.report_path


def test_karpathy_unknown_split_lists_the_splits(coco_dataset: Path, tmp_path: Path) -> None:
    cfg = config({"format": "karpathy", "annotations": str(coco_to_karpathy(coco_dataset)),
                  "images": str(coco_dataset.parent), "split": "val"}, tmp_path)
    with pytest.raises(DataError, match=r"no images in split 'val'; splits present: test, train"):
        load_retrieval_data(cfg.benchmarks[0].data)


def test_limit_keeps_first_images_and_their_captions(coco_dataset: Path, tmp_path: Path) -> None:
    cfg = config({"format": "coco", "annotations": str(coco_dataset), "images": str(coco_dataset.parent / "val2014"),
                  "limit": 5}, tmp_path)
    data = load_retrieval_data(cfg.benchmarks[0].data)
    assert data.image_ids == [1, 2, 3, 4, 5]
    assert len(data.texts) == 1 + 2 + 3 + 4 + 5 and len(data.images) == 5


def test_real_coco_files_load_and_run(shared_data: Path, tmp_path: Path) -> None:
    annotations = shared_data / "coco" / "images_captions.json"
    raw = json.loads(annotations.read_text())
    cfg = config({"format": "coco", "annotations": str(annotations), "images": str(shared_data / "coco" / "images")},
                 tmp_path)
    data = load_retrieval_data(cfg.benchmarks[0].data)
    assert len(data.image_ids) == len(raw["images"]) == 9
    assert len(data.texts) == len(raw["annotations"])
    for n in range(len(data.images)):
        _, image = data.images.load(n)
        assert image.mode == "RGB" and max(image.size) == 640
    outcome = run_config(cfg)
    bench = outcome.report["benchmarks"]["b"]
    assert bench["status"] == "complete" and bench["dataset"]["n_images"] == 9
    assert bench["dataset"]["n_texts"] == len(raw["annotations"])
    assert outcome.report_path.is_file()
