"""Bad input through the real `mmeval` command: one `error:` line saying what, where and what was expected,
exit code 2 and no traceback (unless --debug). Also `validate`, `list` and every command's `--help`.

The runs that load a model (about 10 s each, mostly importing open_clip) are started together once per
module; the config and data cases run `mmeval` without a model, which takes well under a second.
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_OPEN_CLIP, make_coco_dataset

from mmeval.registry import DATA_FORMATS, MODELS, TASKS

# A narrow terminal: an error line that rich wrapped at the width would be split and not found below.
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
ENV.update(COLUMNS="60", NO_COLOR="1", OMP_NUM_THREADS="1")
ERROR = "error: "


def mmeval(cwd: Path, *args: Any, columns: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmeval", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**ENV, "COLUMNS": str(columns)}, timeout=300)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line.removeprefix(ERROR) for line in done.stderr.splitlines() if line.startswith(ERROR)]


def shown(done: subprocess.CompletedProcess) -> str:
    return f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def assert_bad_input(done: subprocess.CompletedProcess, *expected: str) -> list[str]:
    """Exit code 2, no traceback, and the first error line holds every expected fragment; returns the lines."""
    assert done.returncode == 2, shown(done)
    assert "Traceback" not in done.stderr, shown(done)
    lines = error_lines(done)
    assert lines, shown(done)
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in the first error line\n{shown(done)}"
    return lines


# --- configs and data -----------------------------------------------------------------------------------


@dataclass
class World:
    root: Path  # the working directory of every command
    model: dict[str, str]  # a model section that loads (tiny open_clip)
    annotations: Path  # a good 40-image COCO dataset
    images: Path
    cases: dict[str, "DataCase"] = field(default_factory=dict)

    def config(self, name: str, benchmarks: list[dict[str, Any]], model: dict[str, Any] | None = None,
               **sections: Any) -> Path:
        raw = {
            "model": model or self.model,
            "benchmarks": benchmarks,
            "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 8, "num_workers": 0},
            "output": {"dir": f"reports-{Path(name).stem}", "name": Path(name).stem},
        }
        raw.update(sections)
        path = self.root / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def good_benchmark(self, name: str = "coco", **data: Any) -> dict[str, Any]:
        return benchmark(name, self.annotations, self.images, **data)


def benchmark(name: str, annotations: Path, images: Path, **data: Any) -> dict[str, Any]:
    return {"name": name, "task": "retrieval",
            "data": {"format": "coco", "annotations": str(annotations), "images": str(images), **data}}


@dataclass
class DataCase:
    """Benchmark data that is wrong in one way, and the fragments the error line must hold."""

    annotations: Path
    images: Path
    where: str  # the file the message must name
    run_expects: str  # what `mmeval run` says was expected
    validate_expects: str | None  # what `mmeval validate` says (None: validate does not decode images)


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def _data_cases(root: Path, annotations: Path, images: Path) -> dict[str, DataCase]:
    good = json.loads(annotations.read_text())
    caption_int = copy.deepcopy(good)
    caption_int["annotations"][0]["caption"] = 7
    files = {
        "json_list": (_write_json(root / "list.json", good["annotations"]),
                      "expected a COCO captions object, got a JSON list"),
        "no_annotations": (_write_json(root / "no_annotations.json", {"images": good["images"]}),
                           "expected a list under 'annotations' (COCO captions format)"),
        "caption_not_string": (_write_json(root / "caption_int.json", caption_int),
                               "annotations[0].caption must be a string, got int"),
        "malformed_json": (root / "malformed.json", "not valid JSON (Expecting"),
    }
    (root / "malformed.json").write_text('{"images": [{"id": 1,}')
    cases = {name: DataCase(path, images, str(path), expects, expects) for name, (path, expects) in files.items()}

    missing_ann = make_coco_dataset(root / "missing", n_images=6, seed=2)
    missing = root / "missing" / "val2014" / "COCO_val2014_000000000002.jpg"
    missing.unlink()
    cases["missing_image"] = DataCase(missing_ann, missing.parent, str(missing), "cannot read image (No such file",
                                      "1 of 6 image file(s) missing (16.7%), e.g.")
    corrupt_ann = make_coco_dataset(root / "corrupt", n_images=10, seed=1)
    corrupt = root / "corrupt" / "val2014" / "COCO_val2014_000000000003.jpg"
    corrupt.write_bytes(b"\xff\xd8 these bytes are not a JPEG" * 20)
    cases["corrupt_image"] = DataCase(corrupt_ann, corrupt.parent, str(corrupt),
                                      "cannot decode image (not a recognised image format)", None)
    return cases


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_open_clip, coco_dataset) -> World:
    root = tmp_path_factory.mktemp("cli")
    model = {"type": "open_clip", "arch": str(tiny_open_clip["arch"]),
             "arch_config": str(tiny_open_clip["arch_config"]), "checkpoint": str(tiny_open_clip["checkpoint"])}
    w = World(root, model, coco_dataset, coco_dataset.parent / "val2014")
    w.cases = _data_cases(root, w.annotations, w.images)
    return w


def _narrow_checkpoint(folder: Path, tower: str) -> Path:
    """A tiny open_clip model whose `tower` ("vision" or "text") has width 32, saved as a state dict: it does not
    fit the width-64 'tiny-clip'."""
    import open_clip
    import torch

    narrow = copy.deepcopy(TINY_OPEN_CLIP)
    narrow[f"{tower}_cfg"]["width"] = 32
    config = folder / f"tiny-clip-narrow-{tower}.json"
    config.write_text(json.dumps(narrow))
    open_clip.add_model_config(config)
    path = folder / f"narrow-{tower}.pt"
    torch.manual_seed(0)
    torch.save(open_clip.create_model(config.stem).state_dict(), path)
    return path


def _skip_configs(w: World) -> Path:
    """One run, two benchmarks: the corrupt dataset with on_bad_image skip, and the same data without that image."""
    case = w.cases["corrupt_image"]
    raw = json.loads(case.annotations.read_text())
    raw["images"] = [image for image in raw["images"] if image["id"] != 3]
    raw["annotations"] = [ann for ann in raw["annotations"] if ann["image_id"] != 3]
    clean = _write_json(w.root / "without_3.json", raw)
    return w.config("skip.yaml", [benchmark("skip", case.annotations, case.images, on_bad_image="skip"),
                                  benchmark("clean", clean, case.images)])


# What `run` finds before it loads the model (annotations, image files), as `validate` does
PRECHECKED = ("json_list", "no_annotations", "caption_not_string", "malformed_json", "missing_image")


@pytest.fixture(scope="module")
def model_runs(world: World) -> dict[str, subprocess.CompletedProcess]:
    """The commands that import torch or load a model, run in parallel (each is mostly import time)."""
    bad_data = world.config("bad_data.yaml", [benchmark(name, c.annotations, c.images)
                                              for name, c in world.cases.items() if name in PRECHECKED])
    corrupt = world.cases["corrupt_image"]
    late = world.config("late.yaml", [world.good_benchmark("good"),
                                      benchmark("corrupt_image", corrupt.annotations, corrupt.images)])
    misfit = world.config("misfit.yaml", [world.good_benchmark()],
                          model={**world.model, "checkpoint": str(_narrow_checkpoint(world.root, "vision"))})
    commands = {
        "bad_data": ["run", "--config", bad_data],
        "late": ["run", "--config", late],
        "skip": ["run", "--config", _skip_configs(world)],
        "misfit": ["run", "-c", misfit],
        "list": ["list"],
        "cuda": ["validate", "-c", world.config("cuda.yaml", [world.good_benchmark()],
                                                runtime={"device": "cuda:15", "batch_size": 8})],
    }
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        futures = {name: pool.submit(mmeval, world.root, *args, columns=200 if name == "list" else 60)
                   for name, args in commands.items()}
        return {name: future.result() for name, future in futures.items()}


# --- config errors (no model is loaded) -------------------------------------------------------------------


CONFIG_CASES = {
    "unknown_model_type": (lambda raw: raw["model"].update(type="open_clipp"),
                           "model.type: unknown model type 'open_clipp'. Did you mean 'open_clip'? Available: "
                           + ", ".join(sorted(MODELS))),
    "unknown_task": (lambda raw: raw["benchmarks"][0].update(task="retreival"),
                     "benchmarks[0].task: unknown task 'retreival'. Did you mean 'retrieval'? Available: "
                     + ", ".join(sorted(TASKS))),
    "unknown_format": (lambda raw: raw["benchmarks"][0]["data"].update(format="cocoo"),
                       "benchmarks[0].data.format: unknown data format 'cocoo'. Did you mean 'coco'? Available: "
                       + ", ".join(sorted(DATA_FORMATS))),
    "missing_annotations": (lambda raw: raw["benchmarks"][0]["data"].update(annotations="nowhere/ann.json"),
                            "benchmarks[0].data.annotations: file not found: nowhere/ann.json"),  # as given
    "config_typo": (lambda raw: raw["runtime"].update(batch_sze=raw["runtime"].pop("batch_size")),
                    "runtime.batch_sze: unknown key. Did you mean 'batch_size'? Valid keys here: batch_size, cache, "
                    "cache_dir, chunk_size, device, num_workers, precision, seed, threads, warmup_batches"),
    "bad_device": (lambda raw: raw["runtime"].update(device="gpu"),
                   "runtime.device: expected auto, cpu, cuda or cuda:N (e.g. cuda:1), got 'gpu'"),
}


def _edited_config(world: World, name: str, edit) -> Path:
    path = world.config(name, [world.good_benchmark()])
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_error_is_one_line_with_its_path(world: World, case: str) -> None:
    edit, expected = CONFIG_CASES[case]
    path = _edited_config(world, f"{case}.yaml", edit)
    lines = assert_bad_input(mmeval(world.root, "run", "--config", path.name),
                             f"{path.name}: {expected.format(root=world.root)}")
    assert len(lines) == 1


def test_validate_reports_every_problem_at_once(world: World) -> None:
    def edit(raw: dict[str, Any]) -> None:
        for name in ("unknown_model_type", "missing_annotations", "config_typo"):
            CONFIG_CASES[name][0](raw)

    path = _edited_config(world, "three.yaml", edit)
    done = mmeval(world.root, "validate", "--config", path.name)
    lines = assert_bad_input(done)
    expected = [CONFIG_CASES[name][1] for name in ("unknown_model_type", "missing_annotations", "config_typo")]
    assert lines == [f"three.yaml: {e.format(root=world.root)}" for e in expected], shown(done)


def test_debug_shows_the_traceback(world: World) -> None:
    path = _edited_config(world, "debug.yaml", CONFIG_CASES["config_typo"][0])
    quiet = mmeval(world.root, "run", "--config", path.name)
    loud = mmeval(world.root, "--debug", "run", "--config", path.name)
    assert_bad_input(quiet, "runtime.batch_sze: unknown key")
    assert loud.returncode == 2, shown(loud)
    assert "Traceback" in loud.stderr, shown(loud)
    assert error_lines(loud) == error_lines(quiet)


def test_yaml_syntax_error_names_the_file_and_line(world: World) -> None:
    (world.root / "broken.yaml").write_text("model:\n  type: open_clip\n arch: [ViT\n")
    assert_bad_input(mmeval(world.root, "validate", "-c", "broken.yaml"),
                     "broken.yaml: not valid YAML: line 3, column 2: expected <block end>")


def test_missing_config_file(world: World) -> None:
    assert_bad_input(mmeval(world.root, "run", "-c", "nope.yaml"),
                     "nope.yaml: config file not found: nope.yaml")  # the path as the user gave it


def test_validate_accepts_a_good_config_with_overrides(world: World) -> None:
    path = world.config("good.yaml", [world.good_benchmark()])
    done = mmeval(world.root, "validate", "-c", path.name, "--set", "runtime.batch_size=8",
                  "--set", "benchmarks[0].data.limit=5", "--set", "benchmarks.0.name=x")
    assert done.returncode == 0, shown(done)
    assert "ok: good.yaml is valid" in done.stdout
    assert "benchmark 'x': 5 images" in done.stderr  # both index syntaxes were applied


def test_bad_override_index(world: World) -> None:
    path = world.config("good.yaml", [world.good_benchmark()])
    assert_bad_input(mmeval(world.root, "validate", "-c", path.name, "--set", "benchmarks[3].name=x"),
                     "--set: benchmarks[3].name=x: index 3 is out of range: benchmarks has 1 item(s)")


# --- data errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["json_list", "no_annotations", "caption_not_string", "malformed_json",
                                  "missing_image"])
def test_validate_checks_annotation_and_image_files(world: World, case: str) -> None:
    data = world.cases[case]
    path = world.config(f"validate_{case}.yaml", [benchmark(case, data.annotations, data.images)])
    assert_bad_input(mmeval(world.root, "validate", "-c", path.name),
                     f"{path.name}: benchmarks[0].data", data.where, data.validate_expects)


@pytest.mark.parametrize("case", PRECHECKED)
def test_run_checks_every_benchmarks_data_before_loading_the_model(world: World, model_runs, case: str) -> None:
    # One run holds every bad benchmark: each gets its own error line, in config order, as `validate` reports
    # them, and the run stops before the model is loaded, so no report is written.
    done = model_runs["bad_data"]
    lines = assert_bad_input(done)
    assert len(lines) == len(PRECHECKED), shown(done)
    n = PRECHECKED.index(case)
    line = lines[n]
    data = world.cases[case]
    for fragment in (f"bad_data.yaml: benchmarks[{n}].data", data.where, data.validate_expects):
        assert fragment in line, shown(done)
    if case == "missing_image":
        assert "(set data.on_bad_image: skip to skip such images)" in line
    assert not (world.root / "reports-bad_data").exists()


def test_an_image_that_fails_late_fails_its_benchmark_and_the_others_are_kept(world: World, model_runs) -> None:
    # A corrupt image is found only when decoded (the pre-run checks do not decode): its benchmark fails with
    # one line, the report keeps the benchmark that finished.
    done = model_runs["late"]
    lines = assert_bad_input(done)
    assert len(lines) == 1, shown(done)
    data = world.cases["corrupt_image"]
    for fragment in ("benchmark 'corrupt_image': ", data.where, data.run_expects,
                     "(set data.on_bad_image: skip to skip such images)"):
        assert fragment in lines[0], shown(done)
    report = json.loads((world.root / "reports-late" / "late.json").read_text())
    assert report["status"] == "partial"
    assert {name: bench["status"] for name, bench in report["benchmarks"].items()} == {
        "good": "complete", "corrupt_image": "failed"}


def test_corrupt_image_skipped_and_counted(world: World, model_runs) -> None:
    done = model_runs["skip"]
    assert done.returncode == 0, shown(done)
    corrupt = world.cases["corrupt_image"].where
    assert any(line.startswith("warning: skipping image: ") and corrupt in line for line in done.stderr.splitlines())
    report = json.loads((world.root / "reports-skip" / "skip.json").read_text())
    skip, clean = report["benchmarks"]["skip"], report["benchmarks"]["clean"]
    assert skip["dataset"]["n_skipped_images"] == 1
    assert [entry["image_id"] for entry in skip["dataset"]["skipped_images"]] == [3]
    assert corrupt in skip["dataset"]["skipped_images"][0]["reason"]
    assert clean["dataset"]["n_skipped_images"] == 0
    # The metrics are those of the dataset without the corrupt image and its captions.
    for key in ("n_images", "n_texts"):
        assert skip["dataset"][key] == clean["dataset"][key]
    assert skip["dataset"]["n_images"] == 9
    assert skip["metrics"].keys() == clean["metrics"].keys()
    for metric, entry in skip["metrics"].items():
        assert entry["value"] == pytest.approx(clean["metrics"][metric]["value"], abs=1e-6), metric
    samples = json.loads((world.root / "reports-skip" / "skip.samples.json").read_text())["skip"]
    assert 3 not in {row["image_id"] for row in samples["i2t"]}
    assert len(samples["t2i"]) == skip["dataset"]["n_texts"]


def test_checkpoint_that_does_not_fit(world: World, model_runs) -> None:
    done = model_runs["misfit"]
    lines = assert_bad_input(done, "model.checkpoint: ", str(world.root / "narrow-vision.pt"),
                             "does not fit open_clip architecture 'tiny-clip'", "size mismatch for")
    assert len(lines) == 1


def test_checkpoint_with_another_text_width_does_not_fit(world: World) -> None:
    # In-process (the CLI prints the same message): a text tower of another width trips an assert in open_clip.
    from mmeval.config.run import validate_mapping
    from mmeval.engine.evaluate import load_model
    from mmeval.errors import ModelLoadError

    checkpoint = _narrow_checkpoint(world.root, "text")
    cfg = validate_mapping({"model": {**world.model, "checkpoint": str(checkpoint)},
                            "benchmarks": [world.good_benchmark()]})
    with pytest.raises(ModelLoadError, match=f"model.checkpoint: {checkpoint} does not fit open_clip architecture"):
        load_model(cfg.model)


def test_validate_checks_the_device_exists(model_runs) -> None:
    import torch

    done = model_runs["cuda"]
    if torch.cuda.device_count() > 15:
        assert done.returncode == 0, shown(done)
    else:
        assert_bad_input(done, "cuda.yaml: runtime.device: 'cuda:15' asked for, but ")


# --- list and help ------------------------------------------------------------------------------------------


def test_list_shows_adapters_tasks_and_formats(model_runs) -> None:
    done = model_runs["list"]
    assert done.returncode == 0, shown(done)
    for name in [*MODELS, *TASKS, *DATA_FORMATS]:
        assert f" {name} " in done.stdout, name
    for title in ("model adapters (model.type)", "tasks (benchmarks[].task)",
                  "data formats (benchmarks[].data.format)"):
        assert title in done.stdout


HELP = {
    (): ["--debug", "--version", "run", "validate", "list", "Evaluate vision-language checkpoints"],
    ("run",): ["--config", "--set", "--output", "benchmarks[0].data.limit=100", "Exit codes", "A config names",
               "mmeval --debug run"],
    ("validate",): ["--config", "--set", "--load-model", "Every problem is reported at once", "A config names"],
    ("list",): ["List model adapters, tasks, data formats and metrics"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "mmeval")
def test_help(world: World, command: tuple[str, ...]) -> None:
    done = mmeval(world.root, *command, "--help", columns=200)
    assert done.returncode == 0, shown(done)
    for text in HELP[command]:
        assert text in done.stdout, text
