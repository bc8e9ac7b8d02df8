"""A benchmark with its own model (`benchmarks[].model`): numbers equal to that model run alone, its report
block, one load shared by equal entries and freed, config errors with their path, failures kept to that
benchmark, outputs cached under that model, several top-level models, `mmeval validate`, compare."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import yaml
from conftest import importable_module, make_coco_dataset
from rich.console import Console
from test_multi_model import tiny_reference

import mmeval.data.coco as coco_module
import mmeval.engine.evaluate as evaluate_module
from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.engine.multi import run_models
from mmeval.errors import ConfigError
from mmeval.reporting.compare import compare, load_for_comparison
from mmeval.reporting.console import results_table
from mmeval.reporting.html.report import load_runs, render_html


@pytest.fixture
def world(tmp_path: Path) -> dict:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=10)
    return {"data": {"format": "coco", "annotations": str(annotations), "images": str(tmp_path / "coco" / "val2014")},
            "main": {"type": "reference", "checkpoint": str(tiny_reference(tmp_path / "ckpt" / "main", seed=1))},
            "other": {"type": "reference", "name": "other",
                      "checkpoint": str(tiny_reference(tmp_path / "ckpt" / "other", seed=2))},
            "third": {"type": "reference", "checkpoint": str(tiny_reference(tmp_path / "ckpt" / "third", seed=3))}}


def raw_config(tmp_path: Path, model, benchmarks: list[dict], cache: str = "off", out: str = "out") -> dict:
    return {"model": model, "benchmarks": benchmarks,
            "runtime": {"device": "cpu", "batch_size": 16, "num_workers": 0, "cache": cache},
            "output": {"dir": str(tmp_path / out)}, "bootstrap": {"n": 0}}  # no intervals: faster


def bench(name: str, data: dict, model: dict | None = None) -> dict:
    return {"name": name, "task": "retrieval", "data": data, **({"model": model} if model else {})}


def test_benchmark_runs_on_its_own_model(tmp_path: Path, world: dict) -> None:
    data = world["data"]
    mixed = run_config(validate_mapping(raw_config(
        tmp_path, world["main"], [bench("own", data, world["other"]), bench("plain", data)])))
    alone_other = run_config(validate_mapping(raw_config(tmp_path, world["other"], [bench("own", data)], out="a")))
    alone_main = run_config(validate_mapping(raw_config(tmp_path, world["main"], [bench("plain", data)], out="b")))
    report = json.loads(mixed.report_path.read_text())  # as written: schema-checked
    assert report["status"] == "complete" and not mixed.errors
    assert report["benchmarks"]["own"]["metrics"] == alone_other.report["benchmarks"]["own"]["metrics"]
    assert report["benchmarks"]["plain"]["metrics"] == alone_main.report["benchmarks"]["plain"]["metrics"]
    assert report["benchmarks"]["own"]["metrics"] != report["benchmarks"]["plain"]["metrics"]  # two models
    block = report["benchmarks"]["own"]["model"]
    assert {k: block[k] for k in ("adapter", "name", "checkpoint", "sha256", "n_parameters", "loaded_with")} == \
        {k: alone_other.report["model"][k] for k in ("adapter", "name", "checkpoint", "sha256", "n_parameters",
                                                     "loaded_with")}  # fmt: skip
    assert block["name"] == "other" and block["checkpoint"] == world["other"]["checkpoint"] and block["load_s"] >= 0
    assert "model" not in report["benchmarks"]["plain"]
    assert report["model"]["sha256"] == alone_main.report["model"]["sha256"]  # the run's model stays on top
    assert report["config"]["benchmarks"][0]["model"]["name"] == "other"
    console = Console(width=200, record=True)
    console.print(results_table(report))
    model_row = next(line for line in console.export_text().splitlines() if line.startswith("│ model "))
    assert [cell.strip() for cell in model_row.split("│")[1:-1]] == ["model", "other", "main"]  # own, the run's
    html = render_html(load_runs([mixed.report_path]))
    assert "model other (reference)" in html and html.count("model main (reference)") == 0


def test_equal_entries_share_one_load_and_one_model_is_held(tmp_path: Path, world: dict, monkeypatch) -> None:
    data = world["data"]
    loaded: list[weakref.ref] = []
    alive_at_load: list[int] = []
    real = evaluate_module.load_model

    def spy(cfg, trust_checkpoint=False, where="model"):
        gc.collect()
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        model = real(cfg, trust_checkpoint, where)
        if where != "model":
            loaded.append(weakref.ref(model))
        return model

    monkeypatch.setattr(evaluate_module, "load_model", spy)
    order = [("a", "other"), ("b", "other"), ("c", "third"), ("d", None), ("e", "other")]
    outcome = run_config(validate_mapping(raw_config(
        tmp_path, world["main"], [bench(n, {**data, "limit": 4 + k % 2}, world[m] if m else None)
                                  for k, (n, m) in enumerate(order)])))
    assert outcome.report["status"] == "complete"
    assert len(loaded) == 3  # other (a, b), third (c), other again (e): d ran on the run's model
    assert alive_at_load == [0, 0, 0, 0]  # the run's model, then each benchmark model after the last was freed
    gc.collect()
    assert all(ref() is None for ref in loaded)  # and the last one when the run ended
    names = {n: outcome.report["benchmarks"][n].get("model", {}).get("name") for n, _ in order}
    assert names == {"a": "other", "b": "other", "c": "third", "d": None, "e": "other"}


CONFIG_ERRORS = {
    "typo": ({"checkpont": "x"}, "benchmarks[0].model.checkpont: unknown key. Did you mean 'checkpoint'?"),
    "adapter_field": ({"arch": "ViT-B-32"}, "benchmarks[0].model.arch: not used by model type 'reference'"),
    "missing_checkpoint": ({"checkpoint": "nowhere"}, "benchmarks[0].model.checkpoint: checkpoint not found: nowhere"),
    "capability": ({"type": "hf_captioner", "checkpoint": None},
                   ("benchmarks[0].model.type: task 'retrieval' needs a model with capability 'image_text_encoder', "
                    "but this benchmark's model type 'hf_captioner' provides")),
    "pattern": ({"checkpoint": "ckpt/*"}, "benchmarks[0].model: a benchmark's model takes one checkpoint"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors_name_the_benchmark_model(tmp_path: Path, world: dict, case: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    edit, expected = CONFIG_ERRORS[case]
    model = {k: v for k, v in {**world["other"], **edit}.items() if v is not None}
    if case == "capability":
        model["checkpoint"] = world["other"]["checkpoint"]
    with pytest.raises(ConfigError) as caught:
        validate_mapping(raw_config(tmp_path, world["main"], [bench("own", world["data"], model)]))
    assert any(expected in line for line in caught.value.problems), caught.value.problems


def test_validate_command_checks_the_benchmark_model(tmp_path: Path, world: dict) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw_config(tmp_path, world["main"], [
        bench("own", world["data"], {**world["other"], "arch": "x"})])))
    done = subprocess.run([sys.executable, "-m", "mmeval", "validate", "-c", str(path)], capture_output=True,
                          text=True, cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert "benchmarks[0].model.arch: not used by model type 'reference'" in done.stderr
    assert "Traceback" not in done.stderr


LACKING = '''
from mmeval.models.reference import load_folder


def factory(checkpoint):
    model = load_folder(checkpoint)
    model.capabilities = {"captioner"}  # claims to caption only: cannot run retrieval
    return model
'''


def test_lacking_capability_fails_before_data_is_loaded(tmp_path: Path, world: dict, monkeypatch) -> None:
    importable_module(tmp_path, monkeypatch, "lacking_plugin", LACKING)
    reads: list[str] = []
    real = coco_module.load_coco
    monkeypatch.setattr(coco_module, "load_coco", lambda *a, **k: reads.append("coco") or real(*a, **k))
    model = {"type": "plugin", "entry": "lacking_plugin:factory", "checkpoint": world["other"]["checkpoint"],
             "name": "lacking"}
    outcome = run_config(validate_mapping(raw_config(tmp_path, world["main"], [bench("own", world["data"], model)])))
    failed = outcome.report["benchmarks"]["own"]
    assert failed["status"] == "failed" and reads == []
    assert "task 'retrieval' needs a model with capability 'image_text_encoder'; lacking (reference) has: captioner" \
        in failed["error"]
    assert failed["model"]["name"] == "lacking"


def test_a_benchmark_model_that_does_not_load_fails_only_its_benchmark(tmp_path: Path, world: dict) -> None:
    broken = tmp_path / "broken"
    tiny_reference(broken, seed=4)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    outcome = run_config(validate_mapping(raw_config(tmp_path, world["main"], [
        bench("own", world["data"], {"type": "reference", "checkpoint": str(broken)}), bench("plain", world["data"])])))
    report = json.loads(outcome.report_path.read_text())
    assert report["status"] == "partial"
    assert report["benchmarks"]["own"]["status"] == "failed"
    assert report["benchmarks"]["own"]["error"].startswith("benchmarks[0].model: cannot read reference weights"), report["benchmarks"]
    assert str(broken) in report["benchmarks"]["own"]["error"]
    assert report["benchmarks"]["plain"]["status"] == "complete"
    assert len(outcome.errors) == 1 and "benchmark 'own'" in outcome.errors[0]


def test_ctrl_c_while_loading_a_benchmark_model_keeps_finished_benchmarks(tmp_path: Path, world: dict,
                                                                          monkeypatch) -> None:
    real = evaluate_module.load_model

    def interrupted(cfg, trust_checkpoint=False, where="model"):
        if where != "model":
            raise KeyboardInterrupt
        return real(cfg, trust_checkpoint, where)

    monkeypatch.setattr(evaluate_module, "load_model", interrupted)
    outcome = run_config(validate_mapping(raw_config(tmp_path, world["main"], [
        bench("plain", world["data"]), bench("own", world["data"], world["other"])])))
    assert outcome.interrupted and outcome.report["status"] == "interrupted"
    assert outcome.report["benchmarks"]["plain"]["status"] == "complete"
    assert outcome.report["benchmarks"]["own"]["status"] == "interrupted"
    assert outcome.report_path is not None


def test_outputs_are_cached_under_the_benchmark_model(tmp_path: Path, world: dict) -> None:
    """Same data, two models, cache on: a second run reads each benchmark's outputs from the cache, and the
    benchmark model's entries never stand in for the run's model's (their numbers stay different)."""
    raw = raw_config(tmp_path, world["main"], [bench("own", world["data"], world["other"]),
                                               bench("plain", world["data"])], cache="on")
    first = run_config(validate_mapping(raw)).report
    second = run_config(validate_mapping(raw)).report
    for name in ("own", "plain"):
        assert second["benchmarks"][name]["metrics"] == first["benchmarks"][name]["metrics"]
        assert second["benchmarks"][name]["dataset"]["pixels_from"] == "output cache"
    assert first["benchmarks"]["own"]["metrics"] != first["benchmarks"]["plain"]["metrics"]


def test_several_top_level_models_each_run_the_benchmark_model(tmp_path: Path, world: dict) -> None:
    raw = raw_config(tmp_path, [world["main"], world["third"]],
                     [bench("own", world["data"], world["other"]), bench("plain", world["data"])], cache="on")
    result = run_models(validate_mapping(raw))
    reports = [run.outcome.report for run in result.runs]
    assert [r["status"] for r in reports] == ["complete", "complete"]
    assert reports[0]["benchmarks"]["own"]["metrics"] == reports[1]["benchmarks"]["own"]["metrics"]
    assert reports[1]["benchmarks"]["own"]["dataset"]["pixels_from"] == "output cache"  # computed once
    assert {r["benchmarks"]["own"]["model"]["name"] for r in reports} == {"other"}
    assert reports[0]["benchmarks"]["plain"]["metrics"] != reports[1]["benchmarks"]["plain"]["metrics"]


def test_compare_says_when_benchmark_models_differ(tmp_path: Path, world: dict) -> None:
    data = world["data"]
    plain = run_config(validate_mapping(raw_config(tmp_path, world["main"], [bench("x", data)], out="a")))
    own = run_config(validate_mapping(raw_config(tmp_path, world["main"], [bench("x", data, world["other"])],
                                                 out="b")))
    comparison = compare(load_for_comparison([plain.report_path, own.report_path]), n_resamples=200)
    assert any("benchmark 'x': model main in" in w and "vs other in" in w for w in comparison.warnings), \
        comparison.warnings
    same = compare(load_for_comparison([plain.report_path, plain.report_path]), n_resamples=200)
    assert not any("own model" in w for w in same.warnings)


COUNTED = '''
from mmeval.models.reference import load_folder

CALLS = []  # rows of each image batch the benchmark model encodes
STOP_AT = [None]  # Ctrl-C at this call (1-based), once


class Counted:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_image(self, pixels):
        CALLS.append(len(pixels))
        if STOP_AT[0] == len(CALLS):
            STOP_AT[0] = None
            raise KeyboardInterrupt
        return self._inner.encode_image(pixels)


def factory(checkpoint):
    return Counted(load_folder(checkpoint))
'''


def test_resume_redoes_only_the_rest_of_the_benchmark_models_pass(tmp_path: Path, world: dict, monkeypatch) -> None:
    importable_module(tmp_path, monkeypatch, "counted_plugin", COUNTED)
    import counted_plugin

    model = {"type": "plugin", "entry": "counted_plugin:factory", "checkpoint": world["other"]["checkpoint"]}
    raw = raw_config(tmp_path, world["main"], [bench("plain", world["data"]), bench("own", world["data"], model)],
                     cache="pixels")  # no output cache: only the resume chunks can spare model calls
    raw["runtime"]["batch_size"] = raw["runtime"]["chunk_size"] = 4
    whole = run_config(validate_mapping(raw)).report
    assert sum(counted_plugin.CALLS) == 10
    counted_plugin.CALLS.clear()
    counted_plugin.STOP_AT[0] = 3  # batches of 4: two chunks (8 images) kept, then Ctrl-C
    stopped = run_config(validate_mapping(raw))
    assert stopped.interrupted and stopped.report["benchmarks"]["own"]["status"] == "interrupted"
    counted_plugin.CALLS.clear()
    resumed = run_config(validate_mapping(raw), resume=True).report
    assert counted_plugin.CALLS == [2]  # only the last 2 images encoded again by the benchmark's model
    assert resumed["benchmarks"]["own"]["metrics"] == whole["benchmarks"]["own"]["metrics"]
    assert resumed["benchmarks"]["plain"]["metrics"] == whole["benchmarks"]["plain"]["metrics"]
