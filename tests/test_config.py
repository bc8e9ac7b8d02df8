"""The run config: the documented example loads as written; every problem is reported at once, with its path."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from pydantic import ValidationError

from mmeval.config.file import apply_overrides, load_config
from mmeval.config.model import ModelConfig
from mmeval.config.run import DataConfig, RunConfig, validate_mapping
from mmeval.errors import ConfigError
from mmeval.registry import DATA_FORMATS, MODELS, TASKS

EXAMPLE = """\
model:
  type: open_clip
  arch: ViT-B-32
  checkpoint: checkpoints/vitb32.pt
benchmarks:
  - name: coco5k
    task: retrieval
    data:
      format: coco            # coco | karpathy | hf
      annotations: data/coco/captions_karpathy_test.json
      images: data/coco/val2014
runtime:
  device: auto
  precision: fp32
  batch_size: 256
output:
  dir: reports/
"""
DATA_KEYS = ", ".join(sorted(DataConfig.model_fields))  # the message lists every valid key, sorted


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files the example config names, relative to the current directory (the checkpoint is any bytes)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vitb32.pt").write_bytes(b"not really a checkpoint")
    (tmp_path / "data" / "coco" / "val2014").mkdir(parents=True)
    (tmp_path / "data" / "coco" / "captions_karpathy_test.json").write_text("{}")
    return tmp_path


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE)


def problems_of(edit: Callable[[dict[str, Any]], Any]) -> list[str]:
    """The problems reported for the example config after `edit` (which changes the raw mapping in place)."""
    raw = example()
    edit(raw)
    with pytest.raises(ConfigError) as info:
        validate_mapping(raw, "run.yaml")
    assert info.value.source == "run.yaml"
    return info.value.problems


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- the example loads ---------------------------------------------------------------------------------


def test_example_config_loads_as_written(workdir: Path) -> None:
    cfg = load_config(write(workdir / "run.yaml", EXAMPLE))
    assert cfg.model.type == "open_clip" and cfg.model.arch == "ViT-B-32"
    assert cfg.model.checkpoint == workdir / "checkpoints" / "vitb32.pt"  # resolved against the cwd
    (bench,) = cfg.benchmarks
    assert (bench.name, bench.task, bench.data.format) == ("coco5k", "retrieval", "coco")
    assert bench.data.annotations == workdir / "data" / "coco" / "captions_karpathy_test.json"
    assert bench.data.images == workdir / "data" / "coco" / "val2014"
    assert bench.data.on_bad_image == "fail"  # the documented default
    assert (cfg.runtime.device, cfg.runtime.precision, cfg.runtime.batch_size) == ("auto", "fp32", 256)
    assert cfg.output.dir == Path("reports")


def test_report_copy_of_data_shows_only_the_fields_the_format_reads(workdir: Path) -> None:
    data = load_config(write(workdir / "run.yaml", EXAMPLE)).model_dump(mode="json")["benchmarks"][0]["data"]
    assert set(data) == {"format", "annotations", "images", "on_bad_image", "limit", "decode", "image_pattern",
                         "max_bad_fraction"}


# --- unknown keys ---------------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_real_one(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw.update(runtme=raw.pop("runtime")))
    assert problems == ["runtme: unknown key. Did you mean 'runtime'? "
                        "Valid keys here: benchmarks, bootstrap, model, output, runtime"]


def test_unknown_nested_key_suggests_the_real_one(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["runtime"].update(batch_sze=raw["runtime"].pop("batch_size")))
    assert problems == ["runtime.batch_sze: unknown key. Did you mean 'batch_size'? "
                        "Valid keys here: batch_size, cache, cache_dir, chunk_size, device, num_workers, precision, seed, threads, warmup_batches"]


def test_unknown_key_inside_a_list_item(workdir: Path) -> None:
    data = lambda raw: raw["benchmarks"][0]["data"]  # noqa: E731
    problems = problems_of(lambda raw: data(raw).update(annotaions=data(raw).pop("annotations")))
    assert problems == [
        f"benchmarks[0].data.annotaions: unknown key. Did you mean 'annotations'? Valid keys here: {DATA_KEYS}",
        "benchmarks[0].data.annotations: required for format 'coco' (the annotation file: JSON; CSV for "
        "audiocaps, clotho, esc50 and csv; a JSONL manifest for nemo)",
    ]


def test_unknown_key_with_no_close_match_lists_the_valid_keys(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["output"].update(colour="red"))
    assert problems == ["output.colour: unknown key. Valid keys here: dir, name, per_sample"]


# --- every problem at once ------------------------------------------------------------------------------


def test_several_problems_are_all_reported_each_with_its_path(workdir: Path) -> None:
    def edit(raw: dict[str, Any]) -> None:
        raw["model"]["type"] = "open_clipp"
        raw["benchmarks"][0]["data"]["annotations"] = "data/coco/missing.json"
        raw["runtime"]["batch_sze"] = raw["runtime"].pop("batch_size")

    assert problems_of(edit) == [
        "model.type: unknown model type 'open_clipp'. Did you mean 'open_clip'? "
        f"Available: {', '.join(sorted(MODELS))}",
        "benchmarks[0].data.annotations: file not found: data/coco/missing.json",  # paths as the user gave them
        "runtime.batch_sze: unknown key. Did you mean 'batch_size'? "
        "Valid keys here: batch_size, cache, cache_dir, chunk_size, device, num_workers, precision, seed, threads, warmup_batches",
    ]


def test_cross_field_problems_are_reported_with_field_errors(workdir: Path) -> None:
    # pydantic skips "after" validators once a field fails; these checks must not wait for the next run.
    def edit(raw: dict[str, Any]) -> None:
        raw["benchmarks"].append(copy.deepcopy(raw["benchmarks"][0]))
        raw["benchmarks"][0]["data"]["n_images"] = 10
        raw["benchmarks"][1]["data"]["images"] = "data/coco/nowhere"
        raw["runtime"]["precision"] = "fp64"

    assert problems_of(edit) == [
        "benchmarks[0].data.n_images: not used by format 'coco' (it reads: annotations, decode, image_pattern, images, "
        "limit, max_bad_fraction, on_bad_image); remove it",
        "benchmarks[1].data.images: folder not found: data/coco/nowhere",
        "benchmarks[1].name: duplicate benchmark name 'coco5k' (also used by benchmarks[0]); names must be unique",
        "runtime.precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16' (got 'fp64'). Did you mean 'fp16'?",
    ]


def test_config_error_message_one_line_per_problem(workdir: Path) -> None:
    error = ConfigError("run.yaml", ["model.type: a", "runtime.seed: b"])
    assert error.lines() == ["run.yaml: model.type: a", "run.yaml: runtime.seed: b"]
    assert str(error) == "run.yaml: 2 problems in the config:\n  model.type: a\n  runtime.seed: b"
    assert str(ConfigError("run.yaml", ["model.type: a"])) == "run.yaml: model.type: a"


# --- names: did you mean, and what exists ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "typo", "expected"),
    [
        (("model", "type"), "open-clip", f"model.type: unknown model type 'open-clip'. Did you mean 'open_clip'? "
                                         f"Available: {', '.join(sorted(MODELS))}"),
        (("benchmarks", 0, "task"), "retreival", f"benchmarks[0].task: unknown task 'retreival'. Did you mean "
                                                 f"'retrieval'? Available: {', '.join(sorted(TASKS))}"),
        (("benchmarks", 0, "data", "format"), "cocoo", f"benchmarks[0].data.format: unknown data format 'cocoo'. "
                                                       "Did you mean 'coco'? "
                                                       f"Available: {', '.join(sorted(DATA_FORMATS))}"),
    ],
)
def test_unknown_name_suggests_and_lists_what_exists(workdir: Path, where: tuple, typo: str, expected: str) -> None:
    def edit(raw: dict[str, Any]) -> None:
        node = raw
        for part in where[:-1]:
            node = node[part]
        node[where[-1]] = typo

    assert problems_of(edit) == [expected]


def test_unknown_name_without_close_match_still_lists_what_exists(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["model"].update(type="blip2"))
    assert problems == [f"model.type: unknown model type 'blip2'. Available: {', '.join(sorted(MODELS))}"]


# --- which fields a format or model type reads -----------------------------------------------------------


def test_format_required_field(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["benchmarks"][0]["data"].pop("images"))
    assert problems == ["benchmarks[0].data.images: required for format 'coco' (the image folder)"]


def test_field_the_format_does_not_read_is_an_error(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["benchmarks"][0]["data"].update(n_images=100, split="test"))
    assert problems == [
        "benchmarks[0].data.n_images: not used by format 'coco' (it reads: annotations, decode, image_pattern, images, "
        "limit, max_bad_fraction, on_bad_image); remove it",
        "benchmarks[0].data.split: not used by format 'coco' (it reads: annotations, decode, image_pattern, images, "
        "limit, max_bad_fraction, on_bad_image); remove it",
    ]


def test_shapes_format_needs_no_files(workdir: Path) -> None:
    raw = example()
    raw["benchmarks"][0]["data"] = {"format": "shapes", "n_images": 20, "split": "test"}
    assert validate_mapping(raw).benchmarks[0].data.n_images == 20


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"type": "open_clip", "checkpoint": "checkpoints/vitb32.pt"},
         ["model.arch: required for model type 'open_clip' (an open_clip architecture name, e.g. ViT-B-32)"]),
        ({"type": "open_clip", "arch": "ViT-B-32"},
         ["model.checkpoint: model type 'open_clip' needs 'checkpoint' (a local file) or 'pretrained' (a tag)"]),
        ({"type": "open_clip", "arch": "ViT-B-32", "checkpoint": "checkpoints/vitb32.pt", "pretrained": "openai"},
         ["model.pretrained: set 'checkpoint' or 'pretrained', not both"]),
        ({"type": "reference", "arch": "ViT-B-32"},
         ["model.arch: not used by model type 'reference' (it reads: checkpoint, name, video_pooling); remove it"]),
        ({"type": "hf_clip"}, ["model.checkpoint: required for model type 'hf_clip' (checkpoint file or folder)"]),
        ({"type": "open_clip", "arch": "ViT-B-32", "checkpoint": "data/coco"},
         ["model.checkpoint: model type 'open_clip' needs a state-dict file, got a folder: data/coco"]),
        ({"type": "open_clip", "arch": "ViT-B-32", "checkpoint": "checkpoints/missing.pt"},
         ["model.checkpoint: checkpoint not found: checkpoints/missing.pt"]),
        ({"arch": "ViT-B-32"}, [f"model.type: required key is missing (the adapter: {', '.join(sorted(MODELS))})"]),
    ],
)
def test_model_fields_for_type(workdir: Path, model: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(lambda raw: raw.update(model=model)) == [e.format(cwd=workdir) for e in expected]


def test_standalone_validation_keeps_the_cross_field_checks(workdir: Path) -> None:
    raw = example()
    raw["benchmarks"].append(copy.deepcopy(raw["benchmarks"][0]))
    with pytest.raises(ValidationError, match="duplicate benchmark name 'coco5k'"):
        RunConfig.model_validate(raw)


# --- runtime and output values ----------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_valid_device_strings(workdir: Path, device: str) -> None:
    raw = example()
    raw["runtime"]["device"] = device
    assert validate_mapping(raw).runtime.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA", "cuda:"])
def test_bad_device_string(workdir: Path, device: str) -> None:
    problems = problems_of(lambda raw: raw["runtime"].update(device=device))
    assert problems == [f"runtime.device: expected auto, cpu, cuda or cuda:N (e.g. cuda:1), got {device!r}"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw["runtime"].update(precision="fp8"),
         "runtime.precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16' (got 'fp8')"),
        (lambda raw: raw["benchmarks"][0]["data"].update(on_bad_image="skp"),
         "benchmarks[0].data.on_bad_image: Input should be 'skip' or 'fail' (got 'skp'). Did you mean 'skip'?"),
        (lambda raw: raw["runtime"].update(batch_size=0), "runtime.batch_size: Input should be greater than 0 (got 0)"),
        (lambda raw: raw["runtime"].update(batch_size="many"),
         "runtime.batch_size: Input should be a valid integer, unable to parse string as an integer (got 'many')"),
        (lambda raw: raw["benchmarks"][0].update(name="coco 5k"),
         "benchmarks[0].name: use letters, digits, '_', '.' and '-', starting with a letter or digit (got 'coco 5k')"),
        (lambda raw: raw["benchmarks"][0].update(recall_k=[0, 5]),
         "benchmarks[0].recall_k: every k must be >= 1, got [0, 5]"),
        (lambda raw: raw.update(benchmarks=[]),
         "benchmarks: List should have at least 1 item after validation, not 0 (got [])"),
        (lambda raw: raw["benchmarks"][0]["data"].update(images=5),
         "benchmarks[0].data.images: expected a path (got 5)"),
        (lambda raw: raw["benchmarks"][0].pop("data"),
         "benchmarks[0].data: required key is missing (where the images and texts come from: format and its fields)"),
        (lambda raw: raw.update(model="open_clip"),
         f"model: expected a mapping with keys: {', '.join(ModelConfig.model_fields)} "  # grows with the adapters
         "(got 'open_clip')"),
    ],
)
def test_bad_values_say_what_was_expected(workdir: Path, edit: Callable, expected: str) -> None:
    assert problems_of(edit) == [expected]


def test_output_dir_that_is_a_file(workdir: Path) -> None:
    problems = problems_of(lambda raw: raw["output"].update(dir="checkpoints/vitb32.pt"))
    assert problems == ["output.dir: expected a folder (created if missing), got a file: checkpoints/vitb32.pt"]


# --- --set overrides ----------------------------------------------------------------------------------------


def test_overrides_apply_with_both_index_syntaxes(workdir: Path) -> None:
    path = write(workdir / "run.yaml", EXAMPLE)
    cfg = load_config(path, ["runtime.batch_size=8", "benchmarks[0].data.limit=5", "benchmarks.0.name=x",
                             "runtime.device=cpu", "output.per_sample=false", "model.name=my model"])
    assert cfg.runtime.batch_size == 8
    assert cfg.benchmarks[0].data.limit == 5
    assert cfg.benchmarks[0].name == "x"
    assert cfg.runtime.device == "cpu"
    assert cfg.output.per_sample is False  # parsed as YAML: a boolean, not the string "false"
    assert cfg.model.name == "my model"


def test_override_creates_missing_sections(workdir: Path) -> None:
    raw = apply_overrides({"model": {"type": "reference"}}, ["runtime.seed=3"])
    assert raw == {"model": {"type": "reference"}, "runtime": {"seed": 3}}


def test_overrides_are_validated_like_the_file(workdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(workdir / "run.yaml", EXAMPLE), ["runtime.batch_sze=8", "runtime.batch_size=0"])
    assert info.value.problems == [
        "runtime.batch_size: Input should be greater than 0 (got 0)",
        "runtime.batch_sze: unknown key. Did you mean 'batch_size'? "
        "Valid keys here: batch_size, cache, cache_dir, chunk_size, device, num_workers, precision, seed, threads, warmup_batches",
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("benchmarks[3].name=x", "benchmarks[3].name=x: index 3 is out of range: benchmarks has 1 item(s)"),
        ("benchmarks.1.name=x", "benchmarks.1.name=x: index 1 is out of range: benchmarks has 1 item(s)"),
        ("benchmarks.first.name=x",
         "benchmarks.first.name=x: benchmarks is a list; expected an index like benchmarks[0], got 'first'"),
        ("model.type.x=1", "model.type.x=1: model.type is a str, not a mapping or a list"),
        ("runtime.batch_size", "runtime.batch_size: expected key.path=value, e.g. runtime.batch_size=8 or "
                               "benchmarks[0].data.limit=5"),
        ("=3", "=3: expected key.path=value, e.g. runtime.batch_size=8 or benchmarks[0].data.limit=5"),
    ],
)
def test_bad_override_is_a_config_error(workdir: Path, override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(workdir / "run.yaml", EXAMPLE), [override])
    assert (info.value.source, info.value.problems) == ("--set", [expected])


def test_all_bad_overrides_are_reported_at_once(workdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(example(), ["benchmarks[2].name=x", "runtime.seed=[1", "runtime.seed=1"])
    assert len(info.value.problems) == 2
    assert info.value.problems[1].startswith("runtime.seed=[1: the value is not valid YAML (line 1, column 3:")


# --- the file itself ----------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_file_and_line(workdir: Path) -> None:
    path = write(workdir / "broken.yaml", "model:\n  type: open_clip\n arch: [ViT\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    (problem,) = info.value.problems
    assert problem.startswith("not valid YAML: line 3, column 2: ")
    assert str(info.value).startswith(f"{path}: not valid YAML: line 3")


def test_repeated_yaml_key_is_an_error_not_a_silent_override(workdir: Path) -> None:
    path = write(workdir / "twice.yaml", EXAMPLE + "runtime:\n  batch_size: 8\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "not valid YAML: line 18, column 1: duplicate key 'runtime'; each key may appear once"
    ]


def test_yaml_merge_keys_may_be_overridden(workdir: Path) -> None:
    text = EXAMPLE.replace("runtime:\n", "runtime:\n  <<: {batch_size: 4, seed: 7}\n")
    cfg = load_config(write(workdir / "merge.yaml", text))
    assert (cfg.runtime.batch_size, cfg.runtime.seed) == (256, 7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- model: x\n", "expected a mapping with keys: model, benchmarks, runtime, output, bootstrap; got a list"),
        ("just words\n", "expected a mapping with keys: model, benchmarks, runtime, output, bootstrap; got a string"),
        ("# nothing\n", "the config is empty; expected a mapping with keys: model, benchmarks, runtime, output, "
                        "bootstrap"),
    ],
)
def test_top_level_must_be_a_mapping(workdir: Path, text: str, expected: str) -> None:
    path = write(workdir / "odd.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.source, info.value.problems) == (str(path), [expected])


def test_missing_config_file(workdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Path("nope.yaml"))
    assert info.value.problems == ["config file not found: nope.yaml"]  # as given


def test_config_that_is_not_utf8(workdir: Path) -> None:
    path = workdir / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith("not a UTF-8 text file")


@pytest.mark.parametrize("where, raw", [
    ("model.checkpoint", {"model": {"type": "reference", "checkpoint": "~nobody-here/ckpt_*"}}),
    ("benchmarks[0].bias.attributes_file", {"model": {"type": "reference"}, "bias": {
        "attributes": ["background"], "attributes_file": "~nobody-here/a.csv"}}),
])  # fmt: skip
def test_unknown_home_directory_is_a_config_error(where: str, raw: dict) -> None:
    """`~user` of a user that does not exist: one config problem naming the field (pathlib raises RuntimeError)."""
    bench = {"name": "a", "task": "retrieval", "data": {"format": "shapes"}}
    if "bias" in raw:
        bench["bias"] = raw.pop("bias")
    with pytest.raises(ConfigError, match=rf"{re.escape(where)}: cannot expand '~nobody-here'"):
        validate_mapping({**raw, "benchmarks": [bench]})
