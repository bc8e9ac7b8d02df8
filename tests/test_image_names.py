"""File names that almost match (#14 item 6): `validate` and `run` say what the folder holds instead and the
setting that finds it; the coco format's `image_pattern` (as vqav2's) names files from image ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_coco_dataset
from PIL import Image
from test_runner import CountingEncoder, bench_config, runtime
from test_vqa import ColourAnswerer, context, vqa_config, vqav2_data
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.config.run import DataConfig
from mmeval.data.image_files import check_image_files
from mmeval.data.loaders import load_retrieval_data
from mmeval.errors import ConfigError, DataError
from mmeval.tasks.retrieval import run as retrieval
from mmeval.tasks.vqa import run as vqa


def _coco_data(annotations: Path, images: Path, **extra) -> DataConfig:
    return DataConfig(format="coco", annotations=annotations, images=images, **extra)


def _renamed(annotations: Path, rename) -> Path:
    """Rename every image file of a `make_coco_dataset` folder with `rename(image_id) -> new name`."""
    for image in json.loads(annotations.read_text())["images"]:
        folder = annotations.parent / "val2014"
        (folder / image["file_name"]).rename(folder / rename(image["id"]))
    return annotations.parent / "val2014"


def _message(cfg: DataConfig) -> str:
    """The warning (on_bad_image: skip) the check before the model pass gives for `cfg`."""
    return check_image_files(load_retrieval_data(cfg), cfg, warn=False) or ""


def test_other_prefix_suggests_an_image_pattern(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=12)
    images = _renamed(annotations, lambda i: f"{i:012d}.jpg")
    message = _message(_coco_data(annotations, images, on_bad_image="skip"))
    assert message.startswith("12 of 12 image file(s) missing (100.0%), e.g. ")
    assert message.endswith(f"{images} holds 000000000001.jpg for COCO_val2014_000000000001.jpg: set "
                            "data.image_pattern: '{image_id:012d}.jpg' (it finds 12 of 12 images)")
    fixed = _coco_data(annotations, images, image_pattern="{image_id:012d}.jpg")
    assert check_image_files(load_retrieval_data(fixed), fixed) is None  # the suggestion works


def test_other_extension_and_no_padding(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=5)
    images = _renamed(annotations, lambda i: f"photo-{i}.JPEG")
    assert _message(_coco_data(annotations, images, on_bad_image="skip")).endswith(
        "set data.image_pattern: 'photo-{image_id}.JPEG' (it finds 5 of 5 images)")


def test_same_names_in_a_sub_folder_suggest_data_images(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=4)  # the files are in tmp_path/val2014
    message = _message(_coco_data(annotations, tmp_path, on_bad_image="skip"))
    assert message.endswith(f"4 of 4 missing names checked are in {tmp_path / 'val2014'}: "
                            f"set data.images: {tmp_path / 'val2014'}")


def test_ids_unrelated_to_the_numbers_get_no_pattern(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=3)
    images = _renamed(annotations, lambda i: f"{i + 100:012d}.jpg")  # numbers that are not the ids
    raw = json.loads(annotations.read_text())
    raw["images"][0]["file_name"] = "COCO_val2014_000000000101.jpg"  # one annotation name shares a number
    annotations.write_text(json.dumps(raw))
    message = _message(_coco_data(annotations, images, on_bad_image="skip"))
    assert "data.image_pattern" not in message
    assert message.endswith(f"{images} holds 000000000101.jpg for COCO_val2014_000000000101.jpg: 1 of 3 missing "
                            "names have a file with the same number or stem; no {image_id} pattern finds them by "
                            "image id: rename the files")


def test_nothing_alike_gives_no_suggestion(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=3)
    images = tmp_path / "val2014"
    for path in images.iterdir():
        path.unlink()
    Image.new("RGB", (8, 8)).save(images / "cat.jpg")
    message = _message(_coco_data(annotations, images, on_bad_image="skip"))
    assert message == f"3 of 3 image file(s) missing (100.0%), e.g. {images / 'COCO_val2014_000000000001.jpg'}"


def test_formats_without_image_pattern_are_told_to_rename(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=3)
    images = _renamed(annotations, lambda i: f"{i:012d}.jpg")
    karpathy = tmp_path / "karpathy.json"
    karpathy.write_text(json.dumps({"images": [
        {"filename": f"COCO_val2014_{i:012d}.jpg", "cocoid": i, "split": "test", "sentences": [{"raw": f"box {i}"}]}
        for i in (1, 2, 3)]}))
    cfg = DataConfig(format="karpathy", annotations=karpathy, images=images, on_bad_image="skip")
    assert _message(cfg).endswith(f"{images} holds 000000000001.jpg for COCO_val2014_000000000001.jpg: 3 of 3 "
                                  "missing names have a file with the same number or stem; rename the files or the "
                                  "annotations' file names")


def test_run_fails_with_the_suggestion_and_the_pattern_fixes_it(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=6)
    reference = retrieval.run(CountingEncoder(), bench_config(annotations), runtime())
    images = _renamed(annotations, lambda i: f"{i:012d}.jpg")
    model = CountingEncoder()
    with pytest.raises(DataError, match=r"COCO_val2014_000000000001\.jpg: cannot read image \(No such file or "
                                        r"directory\); 6 of 6 image file\(s\) missing .* set data\.image_pattern: "
                                        r"'\{image_id:012d\}\.jpg' \(it finds 6 of 6 images\) \(set data\."
                                        r"on_bad_image: skip to skip such images\)$"):
        retrieval.run(model, bench_config(annotations), runtime())
    assert model.images_seen == 0  # refused before the pass
    fixed = retrieval.run(CountingEncoder(), bench_config(annotations, image_pattern="{image_id:012d}.jpg"),
                          runtime())
    assert {k: m["value"] for k, m in fixed.metrics.items()} == {k: m["value"] for k, m in reference.metrics.items()}
    assert fixed.dataset["n_images"] == 6 and images.is_dir()


def test_vqav2_gets_the_same_suggestion(tmp_path: Path) -> None:
    data = vqav2_data(tmp_path)
    del data["image_pattern"]  # the files are .png; the default pattern names .jpg
    with pytest.raises(DataError, match=r"set data\.image_pattern: 'COCO_val2014_\{image_id:012d\}\.png' "
                                        r"\(it finds 3 of 3 images\)"):
        vqa.run(ColourAnswerer(), vqa_config(tmp_path, data).benchmarks[0], context(tmp_path))


def test_coco_image_pattern_is_checked(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=2)
    with pytest.raises(DataError, match=r"data\.image_pattern: 'x\.jpg' has no \{image_id\} placeholder"):
        load_retrieval_data(_coco_data(annotations, tmp_path, image_pattern="x.jpg"))
    with pytest.raises(ConfigError, match=r"data\.image_pattern: not used by format 'karpathy'"):
        bench_config(annotations, format="karpathy", image_pattern="{image_id}.jpg")


def test_real_coco_subset_against_the_shared_images(shared_data: Path, tmp_path: Path) -> None:
    """The newcomer's case: the 9,600-image val2014 caption subset names COCO_val2014_<id>.jpg, the folder holds
    <id>.jpg for 9 of them."""
    coco = shared_data / "coco"
    cfg = _coco_data(coco / "captions_val2014_subset.json", coco / "images", on_bad_image="skip")
    message = _message(cfg)
    assert message.startswith("9,600 of 9,600 image file(s) missing (100.0%), e.g. ")
    assert message.endswith("set data.image_pattern: '{image_id:012d}.jpg' (it finds 9 of 9,600 images)")
    fixed = _coco_data(coco / "captions_val2014_subset.json", coco / "images", on_bad_image="skip",
                       image_pattern="{image_id:012d}.jpg")
    data = load_retrieval_data(fixed)
    present = [p for p in data.images.paths if p.is_file()]
    expected = {coco / "images" / image["file_name"]
                for image in json.loads((coco / "images_captions.json").read_text())["images"]}
    assert set(present) == expected and len(present) == 9



def test_real_images_under_original_names_run_with_the_pattern(shared_data: Path, tmp_path: Path) -> None:
    """The 9 real captioned JPEGs, annotated with their val2014 names: refused with the suggestion, then the
    suggested pattern gives the same run as annotations that name the files as they are."""
    coco = shared_data / "coco"
    raw = json.loads((coco / "images_captions.json").read_text())
    for image in raw["images"]:
        image["file_name"] = f"COCO_val2014_{image['id']:012d}.jpg"
    val2014 = tmp_path / "captions_val2014_names.json"
    val2014.write_text(json.dumps(raw))

    def bench(annotations: Path, **extra):
        return bench_config(annotations, images=str(coco / "images"), **extra)

    with pytest.raises(DataError, match=r"9 of 9 image file\(s\) missing .*set data\.image_pattern: "
                                        r"'\{image_id:012d\}\.jpg' \(it finds 9 of 9 images\)"):
        retrieval.run(CountingEncoder(), bench(val2014), runtime())
    fixed = retrieval.run(CountingEncoder(), bench(val2014, image_pattern="{image_id:012d}.jpg"), runtime())
    as_named = retrieval.run(CountingEncoder(), bench(coco / "images_captions.json"), runtime())
    assert fixed.dataset["n_images"] == as_named.dataset["n_images"] == 9
    assert fixed.metrics == as_named.metrics
    assert [r["rank"] for r in fixed.per_sample["t2i"]] == [r["rank"] for r in as_named.per_sample["t2i"]]


def test_validate_gives_the_suggestion(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=4)
    images = _renamed(annotations, lambda i: f"{i:012d}.jpg")

    def validate(**data) -> tuple[int, str]:
        raw = {"model": {"type": "reference"}, "benchmarks": [{"name": "coco", "task": "retrieval", "data": {
            "format": "coco", "annotations": str(annotations), "images": str(images), **data}}]}
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump(raw))
        done = CliRunner().invoke(app, ["validate", "--config", str(config)])
        return done.exit_code, done.output

    code, output = validate()
    assert code == 2, output
    flat = " ".join(output.split())
    assert "benchmarks[0].data: " in flat and "set data.image_pattern: '{image_id:012d}.jpg' (it finds 4 of 4 images)" \
        in flat and "Traceback" not in output
    code, output = validate(on_bad_image="skip")
    assert code == 0, output
    assert "4 of 4 image file(s) missing" in " ".join(output.split())
    code, output = validate(on_bad_image="skip", max_bad_fraction=0.5)
    assert code == 2 and "the fraction 1 is over data.max_bad_fraction 0.5" in " ".join(output.split()), output
    code, output = validate(image_pattern="{image_id:012d}.jpg")
    assert code == 0 and "missing" not in output, output
