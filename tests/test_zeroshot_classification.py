"""Zero-shot classification: parity with CLIP_benchmark 1.6.2's CLI, the issue's YAML through `mmeval run`,
every data format, and bad input reported as one line naming the file or field."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmeval.config.run import validate_mapping
from mmeval.data.classification import load_labelled, resolve_classes
from mmeval.engine.evaluate import run_config
from mmeval.errors import ConfigError, DataError
from mmeval.reporting.report import validate_report

PALETTE = [(220, 40, 40), (40, 170, 60), (40, 90, 230), (240, 210, 40), (150, 60, 190), (245, 140, 30),
           (20, 20, 20), (230, 230, 230)]


def make_imagefolder(root: Path, counts: list[int], seed: int = 0, names: list[str] | None = None) -> list[str]:
    """root/<class>/<image>: class c has counts[c] images of boxes tinted with its colour, JPEG and PNG mixed."""
    rng = random.Random(seed)
    names = names or [f"n{c:02d}" for c in range(len(counts))]
    for c, (name, count) in enumerate(zip(names, counts)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = Image.new("RGB", (40 + 6 * (i % 3), 36 + 4 * (i % 2)), PALETTE[(c + i % 2) % len(PALETTE)])
            draw = ImageDraw.Draw(image)
            for _ in range(3):
                x, y = rng.randrange(0, 24), rng.randrange(0, 20)
                draw.rectangle([x, y, x + 12, y + 10], fill=PALETTE[rng.randrange(len(PALETTE))])
            image.save(root / name / f"img{i:03d}.{'png' if i % 3 == 0 else 'jpg'}")
    return names


def reference_run(tmp_path: Path, *benchmarks: dict[str, Any], **runtime: Any) -> dict[str, Any]:
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": list(benchmarks),
                            "runtime": {"device": "cpu", "num_workers": 0, "batch_size": 16, **runtime},
                            "output": {"dir": str(tmp_path / "reports")}})
    outcome = run_config(cfg)
    validate_report(outcome.report)
    return outcome.report["benchmarks"]


# --- parity with CLIP_benchmark ---------------------------------------------------------------------------

# CLIP_benchmark 1.6.2's `accuracy()` calls float() on a 1-element array, which numpy >= 2.4 refuses ("only
# 0-dimensional arrays can be converted to Python scalars"). Only inside this subprocess, the same function
# is replaced by one that sums to a 0-d value; the project's numpy is left as it is.
CLIP_BENCHMARK_CLI = """
import sys, numpy, open_clip
open_clip.add_model_config(sys.argv[1])
from clip_benchmark.metrics import zeroshot_classification as zs
if tuple(int(p) for p in numpy.__version__.split(".")[:2]) >= (2, 4):
    def accuracy(output, target, topk=(1,)):
        pred = output.topk(max(topk), 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [float(correct[:k].reshape(-1).float().sum()) / len(target) for k in topk]
    zs.accuracy = accuracy
from clip_benchmark.cli import main
sys.argv = ["clip_benchmark"] + sys.argv[2:]
main()
"""
DATASET = "imagenet1k-unverified"  # CLIP_benchmark's plain ImageFolder over ROOT/val
CLASSNAMES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray",
              "rooster"]
TEMPLATES = ["a photo of a {c}.", "a drawing of a {c}.", "itap of a {c}."]


def run_clip_benchmark(tiny_open_clip, root: Path, tmp_path: Path) -> dict[str, float]:
    classnames, templates = tmp_path / "classnames.json", tmp_path / "templates.json"
    classnames.write_text(json.dumps({DATASET: CLASSNAMES}))
    templates.write_text(json.dumps({DATASET: TEMPLATES}))
    out = tmp_path / "peer.json"
    command = [
        sys.executable, "-c", CLIP_BENCHMARK_CLI, str(tiny_open_clip["arch_config"]),
        "eval", "--dataset", DATASET, "--dataset_root", str(root), "--model", str(tiny_open_clip["arch"]),
        "--pretrained", str(tiny_open_clip["checkpoint"]), "--task", "zeroshot_classification",
        "--custom_classname_file", str(classnames), "--custom_template_file", str(templates), "--no_amp",
        "--batch_size", "16", "--num_workers", "0", "--output", str(out),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())["metrics"]


@pytest.fixture(scope="module")
def spread_open_clip(tiny_open_clip, tmp_path_factory) -> dict[str, Path | str]:
    """The tiny open_clip checkpoint with its vision class token and position embeddings zeroed: at random
    init those constants dominate every image embedding, so one class would win every image."""
    import torch

    state = torch.load(tiny_open_clip["checkpoint"], weights_only=True)
    state["visual.class_embedding"].zero_()
    state["visual.positional_embedding"].zero_()
    checkpoint = tmp_path_factory.mktemp("spread") / "tiny-spread.pt"
    torch.save(state, checkpoint)
    return {**tiny_open_clip, "checkpoint": checkpoint}


@pytest.mark.slow
def test_zeroshot_matches_clip_benchmark(spread_open_clip, tmp_path) -> None:
    tiny_open_clip = spread_open_clip
    counts = [3, 12, 5, 9, 14, 4, 10, 7]  # 64 images, uneven classes
    make_imagefolder(tmp_path / "root" / "val", counts, seed=1)
    (tmp_path / "classnames.txt").write_text("\n".join(CLASSNAMES) + "\n")
    peer = run_clip_benchmark(tiny_open_clip, tmp_path / "root", tmp_path)
    cfg = validate_mapping({
        "model": {"type": "open_clip", "arch": tiny_open_clip["arch"],
                  "arch_config": str(tiny_open_clip["arch_config"]), "checkpoint": str(tiny_open_clip["checkpoint"])},
        "benchmarks": [{"name": "parity", "task": "zeroshot_classification",
                        "data": {"format": "imagefolder", "root": str(tmp_path / "root" / "val")},
                        "classnames_file": str(tmp_path / "classnames.txt"), "templates": TEMPLATES}],
        "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 7, "num_workers": 0},
        "output": {"dir": str(tmp_path / "reports")},
    })
    ours = run_config(cfg).report["benchmarks"]["parity"]
    values = {name: entry["value"] for name, entry in ours["metrics"].items()}

    assert ours["dataset"]["n_images"] == sum(counts) and ours["dataset"]["n_classes"] == 8
    assert values["top1"] == pytest.approx(peer["acc1"], abs=1e-6)
    assert values["top5"] == pytest.approx(peer["acc5"], abs=1e-6)
    assert values["mean_per_class_recall"] == pytest.approx(peer["mean_per_class_recall"], abs=1e-6)
    # a random tiny model: neither trivial nor perfect, nor one class predicted for every image
    assert 0 < values["top1"] < values["top5"] < 1 and values["top1"] != values["mean_per_class_recall"]
    predicted = ours["classification"]["per_class"]
    assert sum(row["n_predicted"] > 0 for row in predicted) >= 4
    print(f"parity: ours {values} vs CLIP_benchmark {peer}")


# --- the issue's YAML through the real command -------------------------------------------------------------

ISSUE_YAML = """
model:
  type: reference
benchmarks:
  - name: shapes-zs
    task: zeroshot_classification
    data:
      format: imagefolder
      root: data/shapes/val                  # root/<class>/*.jpg
    classnames: [circle, square, triangle]   # sorted folder order; default: the folder names
    templates: ["a photo of a {c}.", "a drawing of a {c}."]
runtime: {device: cpu, num_workers: 0}
output: {dir: reports}
"""


def make_shapes_folder(root: Path, per_class: int = 8) -> None:
    """Single-shape scenes rendered by mmeval's shapes generator, one folder per kind."""
    from mmeval.data.shapes import BACKGROUNDS, COLORS, Scene, Shape, render_scene

    rng = random.Random(0)
    for kind in ("circle", "square", "triangle"):
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            shape = Shape(kind, rng.choice(list(COLORS)), rng.choice(["small", "large"]), rng.randrange(3),
                          rng.randrange(3), 0.0, 0.0)
            render_scene(Scene((shape,), rng.choice(list(BACKGROUNDS)))).save(root / kind / f"{i}.jpg", quality=95)


def mmeval_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mmeval", *args], check=False, cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow
def test_issue_yaml_runs_through_the_cli(tmp_path) -> None:
    make_shapes_folder(tmp_path / "data" / "shapes" / "val")
    (tmp_path / "zs.yaml").write_text(ISSUE_YAML)
    done = mmeval_cli(tmp_path, "validate", "--config", "zs.yaml")
    assert done.returncode == 0 and "is valid" in done.stdout, done.stderr
    done = mmeval_cli(tmp_path, "run", "--config", "zs.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "top1" in done.stdout and "mean_per_class_recall" in done.stdout

    (report_path,) = (tmp_path / "reports").glob("*[0-9].json")
    report = json.loads(report_path.read_text())
    validate_report(report)
    bench = report["benchmarks"]["shapes-zs"]
    assert bench["task"] == "zeroshot_classification" and bench["status"] == "complete"
    assert bench["dataset"]["n_images"] == 24 and bench["dataset"]["n_texts"] == 6  # 3 classes x 2 templates
    assert set(bench["metrics"]) == {"top1", "top5", "mean_per_class_recall", "macro_f1", "ece"}
    assert bench["metrics"]["ece"]["higher_is_better"] is False and bench["metrics"]["top1"]["higher_is_better"]
    assert bench["metrics"]["top5"]["value"] == 1.0 and any("top5" in w for w in bench["warnings"])
    block = bench["classification"]
    assert block["classes"] == ["circle", "square", "triangle"] and block["temperature_from"] == "model logit_scale"
    assert [row["n_images"] for row in block["per_class"]] == [8, 8, 8]
    samples = json.loads((tmp_path / "reports" / report["per_sample_file"]).read_text())["shapes-zs"]
    assert len(samples["predictions"]) == 24 and samples["predictions"][0]["image_id"] == "circle/0.jpg"
    confusion = np.array([row["predicted"] for row in samples["confusion_matrix"]])
    assert confusion.sum() == 24 and np.trace(confusion) / 24 == pytest.approx(bench["metrics"]["top1"]["value"])


def test_bad_template_is_one_cli_line(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(ISSUE_YAML.replace('"a drawing of a {c}."', '"a drawing"')
                                       .replace("data/shapes/val", str(tmp_path)))
    done = mmeval_cli(tmp_path, "run", "--config", "bad.yaml")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert errors == [("error: bad.yaml: benchmarks[0].templates: templates[1]: template 'a drawing' needs '{c}' "
                      "(the class name) and no other braces")]


# --- formats ----------------------------------------------------------------------------------------------


def test_csv_integer_labels_json_multilabel_and_skipped_images(tmp_path) -> None:
    names = make_imagefolder(tmp_path / "imgs", [6, 5, 4], seed=2)
    files = sorted((tmp_path / "imgs").rglob("img*"))
    labels = [names.index(f.parent.name) for f in files]
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not an image")
    rows = "".join(f"{f.relative_to(tmp_path / 'imgs')},{y}\n" for f, y in zip(files, labels))
    (tmp_path / "labels.csv").write_text("image,label\n" + rows + "broken.jpg,1\n")
    (tmp_path / "names.txt").write_text("red thing\n\ngreen thing\nblue thing\n")  # blank lines are ignored
    multi = [{"file": f"imgs/{f.relative_to(tmp_path / 'imgs')}", "tags": ["warm"] + (["dark"] if y == 2 else [])}
             for f, y in zip(files, labels)]
    (tmp_path / "multi.json").write_text(json.dumps(multi))
    result = reference_run(
        tmp_path,
        {"name": "csv", "task": "zeroshot_classification", "classnames_file": str(tmp_path / "names.txt"),
         "data": {"format": "csv", "annotations": str(tmp_path / "labels.csv"), "images": str(tmp_path / "imgs"),
                  "on_bad_image": "skip"}, "templates": ["a {c}."], "temperature": 50},
        {"name": "multi", "task": "zeroshot_classification", "multilabel": True,
         "data": {"format": "json", "annotations": str(tmp_path / "multi.json"), "image_column": "file",
                  "label_column": "tags"}})
    csv_result, multi_result = result["csv"], result["multi"]
    assert csv_result["dataset"]["n_images"] == 15 and csv_result["dataset"]["n_skipped_images"] == 1
    assert csv_result["classification"]["classes"] == ["red thing", "green thing", "blue thing"]
    assert csv_result["classification"]["temperature"] == 50 and csv_result["metrics"]["top1"]["value"] is not None
    assert multi_result["classification"]["classes"] == ["dark", "warm"]  # sorted label names
    assert list(multi_result["metrics"]) == ["mAP"] and multi_result["metrics"]["mAP"]["value"] > 0
    assert multi_result["classification"]["templates"][0] == "itap of a {c}."  # the default ensemble


def test_hf_classlabel_and_shapes(tmp_path) -> None:
    import datasets

    names = make_imagefolder(tmp_path / "imgs", [4, 3], seed=3)
    files = sorted((tmp_path / "imgs").rglob("img*"))
    features = datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=["cat", "dog"])})
    datasets.Dataset.from_dict({"img": [str(f) for f in files], "y": [names.index(f.parent.name) for f in files]},
                               features=features).save_to_disk(str(tmp_path / "ds"))
    result = reference_run(
        tmp_path,
        {"name": "hf", "task": "zeroshot_classification", "templates": ["a {c}."],
         "data": {"format": "hf", "path": str(tmp_path / "ds"), "image_column": "img", "label_column": "y"}},
        {"name": "color", "task": "zeroshot_classification", "templates": ["a {c} shape."],
         "data": {"format": "shapes", "label_column": "color", "n_images": 40}},
        {"name": "kinds", "task": "zeroshot_classification", "multilabel": True, "templates": ["a {c}."],
         "data": {"format": "shapes", "n_images": 40, "limit": 30}})
    assert result["hf"]["classification"]["classes"] == ["cat", "dog"] and result["hf"]["dataset"]["n_images"] == 7
    assert [r["n_images"] for r in result["hf"]["classification"]["per_class"]] == [4, 3]
    assert result["color"]["dataset"]["n_classes"] == 6 and result["color"]["metrics"]["top1"]["value"] > 0.3
    assert result["kinds"]["dataset"]["n_images"] == 30 and "mAP" in result["kinds"]["metrics"]


def test_shapes_labels_follow_the_scenes() -> None:
    from mmeval.config.run import DataConfig
    from mmeval.data.shapes import scene_attributes

    data = load_labelled(DataConfig(format="shapes", n_images=30))
    classes = data.classes
    assert all(len(scene.shapes) == 1 and classes[label[0]] == scene.shapes[0].kind
               for scene, label in zip(data.images.scenes, data.labels))
    colors = load_labelled(DataConfig(format="shapes", n_images=30, label_column="color"))
    assert [colors.classes[y[0]] for y in colors.labels] == [
        scene_attributes(s)["dominant_color"] for s in colors.images.scenes]
    assert colors.image_ids[:3] == ["test-000000", "test-000001", "test-000002"]


def test_each_image_and_prompt_is_encoded_once(tmp_path) -> None:
    from mmeval.engine.evaluate import load_model
    from mmeval.engine.runtime import place_model, resolve_runtime
    from mmeval.tasks.base import RunContext
    from mmeval.tasks.zeroshot_classification.run import model_logit_scale, run

    make_imagefolder(tmp_path / "f", [5, 2, 3])
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [
        {"name": "x", "task": "zeroshot_classification", "data": {"format": "imagefolder", "root": str(tmp_path / "f")},
         "templates": ["a {c}.", "the {c}."]}], "runtime": {"device": "cpu", "num_workers": 0, "batch_size": 4}})
    model = load_model(cfg.model)
    runtime = resolve_runtime(cfg.runtime)
    place_model(model, runtime)
    seen = {"images": 0, "texts": 0}

    def counted(kind: str, encode):
        def wrapper(batch):
            seen[kind] += len(batch)
            return encode(batch)
        return wrapper

    model.encode_image, model.encode_text = counted("images", model.encode_image), counted("texts", model.encode_text)
    result = run(model, cfg.benchmarks[0], RunContext(runtime))
    assert seen == {"images": 10, "texts": 6}
    assert result.extra["classification"]["temperature"] == pytest.approx(model_logit_scale(model))
    assert model_logit_scale(object()) is None


# --- bad input --------------------------------------------------------------------------------------------


def _config_errors(bench: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_mapping({"model": {"type": "reference"}, "benchmarks": [{"name": "b", **bench}]})
    return caught.value.problems


def test_config_errors(tmp_path) -> None:
    zs = {"task": "zeroshot_classification", "data": {"format": "imagefolder", "root": str(tmp_path)}}
    assert _config_errors({**zs, "templates": []}) == ["benchmarks[0].templates: no templates given; list at least one"]
    (tmp_path / "t.txt").write_text("a {c}\n\na photo\n")
    assert _config_errors({**zs, "templates_file": str(tmp_path / "t.txt")}) == [
        (f"benchmarks[0].templates_file: {tmp_path / 't.txt'} line 2: template 'a photo' needs '{{c}}' (the class "
        "name) and no other braces")]
    assert _config_errors({**zs, "classnames": ["a", "b", "a"]}) == [
        "benchmarks[0].classnames: class names must be unique; repeated: a"]
    (tmp_path / "c.txt").write_text("a\n")
    assert _config_errors({**zs, "classnames": ["a"], "classnames_file": str(tmp_path / "c.txt")}) == [
        "benchmarks[0].classnames_file: set 'classnames' or 'classnames_file', not both"]
    assert _config_errors({**zs, "multilabel": True, "recall_k": [1]}) == [
        ("benchmarks[0].multilabel: format 'imagefolder' has one class per image; multi-label data needs csv, json, "
        "hf or shapes"),
        ("benchmarks[0].recall_k: not used by task 'zeroshot_classification' (it reads: bias, classnames, "
        "classnames_file, multilabel, perturb, temperature, templates, templates_file); remove it")]
    assert _config_errors({"task": "retrieval", "data": zs["data"]}) == [
        ("benchmarks[0].data.format: format 'imagefolder' holds class labels, not captions; task 'retrieval' reads: "
        "coco, hf, karpathy, shapes")]
    assert _config_errors({**zs, "data": {"format": "imagefolder"}}) == [
        ("benchmarks[0].data.root: required for format 'imagefolder' (imagefolder: the folder with one sub-folder "
        "of images per class)")]


def test_data_errors_name_the_file_or_field(tmp_path) -> None:
    from mmeval.config.run import DataConfig

    make_imagefolder(tmp_path / "f", [2, 2, 2])
    (tmp_path / "f" / "empty").mkdir()
    with pytest.raises(DataError, match=f"^{tmp_path / 'f' / 'empty'}: class folder has no images"):
        load_labelled(DataConfig(format="imagefolder", root=tmp_path / "f"))
    (tmp_path / "f" / "empty").rmdir()
    data = load_labelled(DataConfig(format="imagefolder", root=tmp_path / "f"))
    with pytest.raises(DataError, match=r"^classnames: 2 name\(s\) for the 3 classes of imagefolder:.* \(n00, n01, "):
        resolve_classes(data, ["a", "b"], False)

    (tmp_path / "l.csv").write_text("image,label\nf/n00/img000.png,cat\nf/n00/img001.jpg,dgo\nf/n01/img000.png,7\n")
    data = load_labelled(DataConfig(format="csv", annotations=tmp_path / "l.csv"))
    with pytest.raises(DataError, match=r"l\.csv: image f/n00/img001\.jpg: label 'dgo' is not one of the 2 classes "
                                        r"\(cat, dog\) nor an index into them \(and 1 more\)"):
        resolve_classes(data, ["cat", "dog"], False)
    assert resolve_classes(data, ["cat", "dog", "dgo", "x", "y", "z", "w", "v"], False)[1].tolist() == [0, 2, 7]
    (tmp_path / "n.csv").write_text("image,label\nf/n00/img000.png,3\n")
    with pytest.raises(DataError, match="integer labels need benchmarks"):
        resolve_classes(load_labelled(DataConfig(format="json", annotations=_json(tmp_path, [3]))), None, False)
    (tmp_path / "d.csv").write_text("\ufeffimage,label\na.jpg,cat\nb.jpg,dog\na.jpg,dog\n")  # BOM: still "image"
    with pytest.raises(DataError, match=r"d\.csv row 4: image 'a\.jpg' is also in row 2; give one row per image"):
        load_labelled(DataConfig(format="csv", annotations=tmp_path / "d.csv"))
    (tmp_path / "m.csv").write_text("image,lab\nf/n00/img000.png,3\n")
    with pytest.raises(DataError, match=r"m\.csv row 2: no 'label' value \(data\.label_column; columns: image, lab\)"):
        load_labelled(DataConfig(format="csv", annotations=tmp_path / "m.csv"))
    with pytest.raises(DataError, match="has 2 labels; single-label classification needs exactly one"):
        resolve_classes(load_labelled(DataConfig(format="json", annotations=_json(tmp_path, [["a", "b"]]))), None,
                        False)
    with pytest.raises(DataError, match="data.label_column: shapes labels are 'shape'"):
        load_labelled(DataConfig(format="shapes", label_column="size"))


def _json(tmp_path: Path, labels: list[Any]) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps([{"image": f"x{i}.jpg", "label": y} for i, y in enumerate(labels)]))
    return path


def test_a_corrupt_image_fails_with_its_path_unless_skipped(tmp_path) -> None:
    make_imagefolder(tmp_path / "f", [3, 2])
    (tmp_path / "f" / "n01" / "zz.jpg").write_bytes(b"\xff\xd8 truncated")
    bench = {"name": "b", "task": "zeroshot_classification", "templates": ["a {c}."],
             "data": {"format": "imagefolder", "root": str(tmp_path / "f")}}
    failed = reference_run(tmp_path, bench)["b"]
    assert failed["status"] == "failed"
    assert f"{tmp_path / 'f' / 'n01' / 'zz.jpg'}: cannot decode image" in failed["error"]
    skipped = reference_run(tmp_path, {**bench, "data": {**bench["data"], "on_bad_image": "skip"}})["b"]
    assert skipped["dataset"]["n_images"] == 5 and skipped["dataset"]["skipped_images"][0]["image_id"] == "n01/zz.jpg"
