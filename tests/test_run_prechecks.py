"""`mmeval run` checks every benchmark's data before it loads the model; `--limit`; `validate --decode`.

In-process through the real CLI (typer's CliRunner): the model loader is replaced by one that records the call,
so a run that stops on bad data is seen not to have loaded anything; the data loaders are counted to show that
the pre-run checks hand their data to the benchmarks instead of reading it twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_coco_dataset
from PIL import Image
from typer.testing import CliRunner

import mmeval.data.loaders as loaders
import mmeval.engine.evaluate as evaluate
from mmeval.cli import app
from mmeval.io.decode_check import LISTED

SHAPES = {"format": "shapes", "split": "test", "n_images": 12, "seed": 4}


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def errors(done) -> list[str]:
    return [line.removeprefix("error: ") for line in done.output.splitlines() if line.startswith("error: ")]


def write_config(path: Path, benchmarks: list[dict[str, Any]], model: Any = None, **runtime: Any) -> Path:
    raw = {"model": model or {"type": "reference"}, "benchmarks": benchmarks,
           "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 4, "num_workers": 0, **runtime},
           "output": {"dir": str(path.parent / "reports"), "name": path.stem}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def coco_bench(name: str, annotations: Path, images: Path, **data: Any) -> dict[str, Any]:
    return {"name": name, "task": "retrieval",
            "data": {"format": "coco", "annotations": str(annotations), "images": str(images), **data}}


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Every model load of the run (the real loader still runs)."""
    calls: list[str] = []
    real = evaluate.load_model

    def counted(model_cfg, trust_checkpoint=False):
        calls.append(model_cfg.type)
        return real(model_cfg, trust_checkpoint)

    monkeypatch.setattr(evaluate, "load_model", counted)
    return calls


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    return make_coco_dataset(tmp_path / "coco", n_images=6, seed=5)


# --- bad data stops the run before the model loads -----------------------------------------------------------


def test_bad_annotations_and_missing_image_fail_before_the_model_loads(tmp_path: Path, coco: Path, loads) -> None:
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"images": [')
    missing = coco.parent / "val2014" / "COCO_val2014_000000000004.jpg"
    missing.unlink()
    config = write_config(tmp_path / "run.yaml", [
        {"name": "fine", "task": "retrieval", "data": SHAPES},
        coco_bench("broken", malformed, coco.parent / "val2014"),
        coco_bench("holes", coco, coco.parent / "val2014"),
    ])
    done = invoke("run", "-c", config)
    assert done.exit_code == 2, done.output
    assert loads == []  # the model was never loaded
    assert "Traceback" not in done.output
    lines = errors(done)
    assert len(lines) == 2, done.output
    assert lines[0].startswith(f"{config}: benchmarks[1].data: {malformed}: not valid JSON")
    assert lines[1].startswith(f"{config}: benchmarks[2].data") and str(missing) in lines[1]
    assert "image file(s) missing" in lines[1] and "(set data.on_bad_image: skip to skip" in lines[1]
    assert not (tmp_path / "reports").exists()


def test_missing_images_are_counted_not_fatal_when_the_benchmark_skips_them(tmp_path: Path, coco: Path,
                                                                             loads) -> None:  # fmt: skip
    (coco.parent / "val2014" / "COCO_val2014_000000000002.jpg").unlink()
    config = write_config(tmp_path / "run.yaml", [coco_bench("holes", coco, coco.parent / "val2014",
                                                             on_bad_image="skip")])
    done = invoke("run", "-c", config)
    assert done.exit_code == 0, done.output
    assert loads == ["reference"]
    warnings = [line for line in done.output.splitlines() if line.startswith("warning: ")]
    assert any("1 image file(s) missing" in line or "1 of 6 image file(s) missing" in line for line in warnings)
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    assert report["benchmarks"]["holes"]["dataset"]["n_skipped_images"] == 1
    assert report["benchmarks"]["holes"]["dataset"]["n_images"] == 5
    assert "data_limits" not in report and "--limit" not in done.output  # no limit, none reported


def test_the_checked_data_is_read_once_per_run(tmp_path: Path, monkeypatch, loads) -> None:
    # Two models (one run) and one benchmark: its scenes are made once, by the pre-run check, and both models
    # evaluate that same data.
    calls = []
    real = loaders.shapes_from_config

    def counted(cfg):
        calls.append(cfg.n_images)
        time.sleep(0.3)  # a slow annotation file: the time shows in the benchmark's load_data_s
        return real(cfg)

    monkeypatch.setattr(loaders, "shapes_from_config", counted)
    config = write_config(tmp_path / "run.yaml", [{"name": "r", "task": "retrieval", "data": SHAPES}],
                          model=[{"type": "reference", "name": "a"}, {"type": "reference", "name": "b"}])
    done = invoke("run", "-c", config)
    assert done.exit_code == 0, done.output
    assert loads == ["reference", "reference"]
    assert calls == [12]
    reports = [json.loads((tmp_path / "reports" / f"run-{name}.json").read_text()) for name in "ab"]
    assert [r["benchmarks"]["r"]["dataset"]["n_images"] for r in reports] == [12, 12]
    # the same model twice: the same numbers, whichever way the data reached it
    assert reports[0]["benchmarks"]["r"]["metrics"] == reports[1]["benchmarks"]["r"]["metrics"]
    # the loading is counted once, for the first model (as when the second one reuses a memoised load)
    assert reports[0]["benchmarks"]["r"]["timings"]["load_data_s"] >= 0.3
    assert reports[1]["benchmarks"]["r"]["timings"]["load_data_s"] < 0.3


# --- --limit ------------------------------------------------------------------------------------------------


def test_limit_applies_to_every_benchmark_and_is_recorded(tmp_path: Path, coco: Path) -> None:
    config = write_config(tmp_path / "run.yaml", [
        {"name": "scenes", "task": "retrieval", "data": {**SHAPES, "limit": 9}},
        coco_bench("coco", coco, coco.parent / "val2014"),
    ])
    checked = invoke("validate", "-c", config, "--limit", 4)
    assert checked.exit_code == 0, checked.output
    assert "benchmark 'scenes': 4 images, 20 texts" in checked.output  # overrides the config's limit of 9
    assert "benchmark 'coco': 4 images" in checked.output

    done = invoke("run", "-c", config, "--limit", 4)
    assert done.exit_code == 0, done.output
    assert "warning: --limit 4: every benchmark is evaluated on its first 4 images only" in done.output
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    assert report["data_limits"] == {"scenes": 4, "coco": 4}
    assert [b["dataset"]["n_images"] for b in report["benchmarks"].values()] == [4, 4]
    assert [b["data"]["limit"] for b in report["config"]["benchmarks"]] == [4, 4]

    # --limit N is the config's data.limit: N on every benchmark, nothing else
    same = invoke("run", "-c", config, "-o", tmp_path / "set", "--set", "benchmarks[0].data.limit=4",
                  "--set", "benchmarks[1].data.limit=4")
    assert same.exit_code == 0, same.output
    again = json.loads((tmp_path / "set" / "run.json").read_text())
    for name in ("scenes", "coco"):
        assert again["benchmarks"][name]["metrics"] == report["benchmarks"][name]["metrics"]
        assert again["benchmarks"][name]["dataset"]["sha256"] == report["benchmarks"][name]["dataset"]["sha256"]


def test_limit_must_be_positive(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", [{"name": "r", "task": "retrieval", "data": SHAPES}])
    done = invoke("validate", "-c", config, "--limit", 0)
    assert done.exit_code == 2 and "--limit" in done.output


# --- validate --decode --------------------------------------------------------------------------------------


def _break(folder: Path, numbers: list[int]) -> dict[int, Path]:
    """Make images `numbers` undecodable: odd ones not an image at all, even ones a JPEG cut in half."""
    broken = {}
    for number in numbers:
        path = folder / f"COCO_val2014_{number:012d}.jpg"
        data = path.read_bytes()
        path.write_bytes(b"not an image" if number % 2 else data[: len(data) // 2])
        broken[number] = path
    return broken


@pytest.mark.parametrize("workers", [0, 2])
def test_validate_decode_lists_the_images_that_do_not_decode(tmp_path: Path, workers: int) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=10, seed=6)
    folder = annotations.parent / "val2014"
    broken = _break(folder, [3, 8])
    config = write_config(tmp_path / "run.yaml", [coco_bench("c", annotations, folder)], num_workers=workers)

    plain = invoke("validate", "-c", config)
    assert plain.exit_code == 0, plain.output  # the files exist: without --decode nothing is decoded

    done = invoke("validate", "-c", config, "--decode")
    assert done.exit_code == 2, done.output
    head = f"{config}: benchmarks[0].data.images: 2 of 10 image(s) cannot be decoded (set data.on_bad_image: skip " \
           "to skip them): "
    assert errors(done) == [
        head + f"{broken[3]}: cannot decode image (not a recognised image format)",
        head + f"{broken[8]}: cannot decode image (truncated: the file ends before the image data does)",
    ]

    # the same images are what a run finds: it fails on the first one
    run = invoke("run", "-c", config)
    assert run.exit_code == 2 and str(broken[3]) in run.output


def test_validate_decode_caps_the_list_and_warns_when_the_benchmark_skips(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=LISTED + 5, seed=7)
    folder = annotations.parent / "val2014"
    broken = _break(folder, list(range(1, LISTED + 4)))  # LISTED + 3 bad images, 2 good ones
    config = write_config(tmp_path / "run.yaml", [coco_bench("c", annotations, folder, on_bad_image="skip")])
    done = invoke("validate", "-c", config, "--decode")
    assert done.exit_code == 0, done.output
    warnings = [line for line in done.output.splitlines() if line.startswith("warning: ")]
    assert warnings[0] == (f"warning: benchmark 'c': {LISTED + 3} of {LISTED + 5} image(s) cannot be decoded; a run "
                           "skips them (data.on_bad_image: skip):")
    assert [line.split(": ", 1)[1].split(":")[0].strip() for line in warnings[1:-1]] == \
        [str(broken[n]) for n in range(1, LISTED + 1)]
    assert warnings[-1] == "warning:   ... and 3 more"


def test_validate_decode_passes_good_images(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=5, seed=8)
    image = Image.open(annotations.parent / "val2014" / "COCO_val2014_000000000001.jpg")
    image.save(annotations.parent / "val2014" / "COCO_val2014_000000000001.jpg", format="PNG")  # a PNG named .jpg
    config = write_config(tmp_path / "run.yaml", [coco_bench("c", annotations, annotations.parent / "val2014"),
                                                  {"name": "s", "task": "retrieval", "data": SHAPES}])
    done = invoke("validate", "-c", config, "--decode")
    assert done.exit_code == 0, done.output
    assert "benchmark 'c': all 5 images decode" in done.output
    assert "benchmark 's': all 12 images decode" in done.output
