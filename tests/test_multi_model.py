"""Several checkpoints in one run: per-model reports equal to single runs, data read and decoded once (spied),
models loaded one at a time, failures recorded while the others run, the leaderboard, and config errors."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from conftest import make_coco_dataset

import mmeval.data.coco as coco_module
import mmeval.engine.evaluate as evaluate_module
import mmeval.io.images as images_module
from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.engine.multi import run_models
from mmeval.errors import ConfigError, MmevalError
from mmeval.models.reference import save_reference
from mmeval.models.reference_arch import SPECIAL_TOKENS, ReferenceCLIP, ReferenceConfig
from mmeval.tasks.retrieval import run as retrieval

VOCAB = [*SPECIAL_TOKENS, "a", "box", "on", "red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def tiny_reference(folder: Path, seed: int, image_size: int = 16) -> Path:
    """A random tiny reference checkpoint folder (its own weights per seed)."""
    torch.manual_seed(seed)
    config = ReferenceConfig(vocab=VOCAB, image_size=image_size, patch_size=8, width=32, layers=1, heads=2,
                             text_width=32, text_layers=1, text_heads=2, context_length=12, embed_dim=16)
    save_reference(ReferenceCLIP(config).eval(), folder)
    return folder


@pytest.fixture
def coco(tmp_path: Path) -> dict[str, str]:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=12)
    return {"format": "coco", "annotations": str(annotations), "images": str(tmp_path / "coco" / "val2014")}


def config(tmp_path: Path, model, data: dict, cache: str = "off", **bench):
    """Two retrieval benchmarks on the same images: all of them, and the first 5 (another data config)."""
    return validate_mapping({
        "model": model,
        "benchmarks": [{"name": "all", "task": "retrieval", "data": data, **bench},
                       {"name": "first5", "task": "retrieval", "data": {**data, "limit": 5}}],
        "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0, "cache": cache},
        "output": {"dir": str(tmp_path / "out")},
    })


def _metrics(report: dict) -> dict:
    return {name: bench["metrics"] for name, bench in report["benchmarks"].items()}


def test_per_model_reports_equal_single_runs(tmp_path: Path, coco: dict) -> None:
    folders = [tiny_reference(tmp_path / "ckpt" / f"step_{n}", seed=n) for n in (1, 2, 3)]
    models = [{"type": "reference", "checkpoint": str(f)} for f in folders]
    result = run_models(config(tmp_path, models, coco))
    assert [run.status for run in result.runs] == ["complete"] * 3 and not result.errors
    alone = [run_config(config(tmp_path / f"alone{n}", m, coco)) for n, m in enumerate(models)]
    for run, single, folder in zip(result.runs, alone, folders):
        report = json.loads(run.outcome.report_path.read_text())
        assert _metrics(report) == _metrics(single.report)  # exactly: the same pixels reach the same model
        assert report["model"]["sha256"] == single.report["model"]["sha256"]
        assert report["model"]["checkpoint"] == str(folder) and report["model"]["name"] == folder.name
        assert report["config"]["model"]["checkpoint"] == str(folder)  # its own model only: rerunnable alone
        assert report["schema_version"] == single.report["schema_version"]
        assert {b["dataset"]["sha256"] for b in report["benchmarks"].values()} == \
            {b["dataset"]["sha256"] for b in single.report["benchmarks"].values()}
    assert len({r.outcome.report["model"]["sha256"] for r in result.runs}) == 3
    assert len({json.dumps(_metrics(r.outcome.report)) for r in result.runs}) == 3  # three different models


def test_annotations_read_once_and_images_decoded_once_per_preprocessing(tmp_path: Path, coco: dict,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three models, two of them with the same preprocessing (16 px) and one with another (24 px), with the
    cache off: each data config is loaded once, and every image is decoded once per preprocessing."""
    calls = {"load": 0, "decode": 0}
    real_load, real_decode = coco_module.load_coco, images_module.decode_image

    def counting_load(cfg):
        calls["load"] += 1
        return real_load(cfg)

    def counting_decode(data, where):
        calls["decode"] += 1
        return real_decode(data, where)

    monkeypatch.setattr(coco_module, "load_coco", counting_load)
    monkeypatch.setattr(images_module, "decode_image", counting_decode)
    models = [{"type": "reference", "checkpoint": str(tiny_reference(tmp_path / "a", 1))},
              {"type": "reference", "checkpoint": str(tiny_reference(tmp_path / "b", 2))},
              {"type": "reference", "checkpoint": str(tiny_reference(tmp_path / "c", 3, image_size=24))}]
    result = run_models(config(tmp_path, models, coco))
    assert all(run.status == "complete" for run in result.runs)
    assert calls["load"] == 2  # two distinct data configs (all, first5), whatever the number of models
    assert calls["decode"] == (12 + 5) * 2  # two preprocessings
    froms = [[b["dataset"]["pixels_from"] for b in r.outcome.report["benchmarks"].values()] for r in result.runs]
    assert froms == [["uint8", "uint8"], ["cache", "cache"], ["uint8", "uint8"]]

    calls.update(load=0, decode=0)  # the same three models run one by one: every run reads and decodes again
    for n, model in enumerate(models):
        run_config(config(tmp_path / f"alone{n}", model, coco))
    assert calls == {"load": 2 * 3, "decode": (12 + 5) * 3}


def test_models_are_loaded_one_at_a_time(tmp_path: Path, coco: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[weakref.ref] = []
    real_load = evaluate_module.load_model

    def spying_load(model_cfg, *args, **kwargs):
        gc.collect()
        assert all(ref() is None for ref in loaded), "the previous model is still in memory"
        model = real_load(model_cfg, *args, **kwargs)
        loaded.append(weakref.ref(model.module))
        return model

    monkeypatch.setattr(evaluate_module, "load_model", spying_load)
    models = [{"type": "reference", "checkpoint": str(tiny_reference(tmp_path / f"m{n}", n))} for n in range(3)]
    result = run_models(config(tmp_path, models, coco))
    assert len(loaded) == 3 and all(run.status == "complete" for run in result.runs)


def test_a_failing_model_or_benchmark_does_not_stop_the_others(tmp_path: Path, coco: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    good = [tiny_reference(tmp_path / name, n) for n, name in enumerate(["good", "flaky", "last"])]
    (tmp_path / "broken").mkdir()  # a folder without config.json: the model cannot load
    models = [{"type": "reference", "checkpoint": str(folder)}
              for folder in (good[0], tmp_path / "broken", good[1], good[2])]
    real_run = retrieval.run

    def flaky_run(model, bench, ctx):
        if model.info.name == "flaky" and bench.name == "first5":
            raise MmevalError("simulated benchmark failure")
        return real_run(model, bench, ctx)

    monkeypatch.setattr(retrieval, "run", flaky_run)
    result = run_models(config(tmp_path, models, coco))
    assert [run.status for run in result.runs] == ["complete", "failed", "partial", "complete"]
    assert result.runs[1].outcome is None and "config.json" in result.runs[1].error
    assert result.errors == [f"model 'broken': {result.runs[1].error}",
                             "model 'flaky': benchmark 'first5': simulated benchmark failure"]
    flaky = json.loads(result.runs[2].outcome.report_path.read_text())
    assert flaky["benchmarks"]["all"]["status"] == "complete" and flaky["benchmarks"]["first5"]["status"] == "failed"
    board = json.loads(result.leaderboard_path.read_text())
    assert board["status"] == "partial"
    assert [(m["name"], m["status"], m["report"] is not None) for m in board["models"]] == [
        ("good", "complete", True), ("broken", "failed", False), ("flaky", "partial", True), ("last", "complete", True)]


def test_ctrl_c_keeps_the_finished_models(tmp_path: Path, coco: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [{"type": "reference", "checkpoint": str(tiny_reference(tmp_path / f"m{n}", n))} for n in range(3)]
    real_run = retrieval.run

    def interrupted_run(model, bench, ctx):
        if model.info.name == "m1":
            raise KeyboardInterrupt
        return real_run(model, bench, ctx)

    monkeypatch.setattr(retrieval, "run", interrupted_run)
    result = run_models(config(tmp_path, models, coco))
    assert result.interrupted
    assert [run.status for run in result.runs] == ["complete", "interrupted", "not run"]
    assert json.loads(result.runs[0].outcome.report_path.read_text())["status"] == "complete"
    assert json.loads(result.runs[1].outcome.report_path.read_text())["status"] == "interrupted"
    assert json.loads(result.leaderboard_path.read_text())["status"] == "interrupted"


def test_leaderboard_marks_the_best_of_each_metric(tmp_path: Path, coco: dict) -> None:
    models = [{"type": "reference", "checkpoint": str(tiny_reference(tmp_path / f"m{n}", n + 5))} for n in range(3)]
    result = run_models(config(tmp_path, models, coco))
    board = json.loads(result.leaderboard_path.read_text())
    reports = {m["name"]: json.loads((result.leaderboard_path.parent / m["report"]).read_text())
               for m in board["models"]}
    assert set(reports) == {"m0", "m1", "m2"}
    for bench in ("all", "first5"):
        for metric in ("t2i_R@1", "rsum", "t2i_mean_rank", "i2t_median_rank"):
            values = {name: r["benchmarks"][bench]["metrics"][metric]["value"] for name, r in reports.items()}
            best = (max if metric.endswith(("R@1", "rsum")) else min)(values.values())
            assert board["best"][bench][metric] == [n for n in ("m0", "m1", "m2") if values[n] == best], metric
    assert board["benchmarks"]["all"] == {"task": "retrieval", "headline": ["t2i_R@1", "i2t_R@1", "rsum"]}
    markdown = result.markdown_path.read_text()
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {board['best']['all']['rsum'][0]} |"))
    rsum = reports[board["best"]["all"]["rsum"][0]]["benchmarks"]["all"]["metrics"]["rsum"]["value"]
    assert f"**{rsum:.4f}**" in row
    assert all(f"[{m['report']}]({m['report']})" in markdown for m in board["models"])


# --- config: lists, patterns, names, errors ------------------------------------------------------------------


def _problems(tmp_path: Path, model) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, model, {"format": "shapes", "n_images": 4})
    return caught.value.problems


def test_checkpoint_pattern_expands_in_natural_order(tmp_path: Path, coco: dict) -> None:
    for step in (10, 2, 1):
        tiny_reference(tmp_path / "runs" / f"epoch_{step}", step)
    (tmp_path / "runs" / "notes.txt").write_text("not a match")
    cfg = config(tmp_path, {"type": "reference", "checkpoint": str(tmp_path / "runs" / "epoch_*")}, coco)
    assert cfg.is_multi
    assert [(m.name, m.checkpoint) for m in cfg.models] == [
        (f"epoch_{s}", tmp_path / "runs" / f"epoch_{s}") for s in (1, 2, 10)]
    named = config(tmp_path, {"type": "reference", "name": "run", "checkpoint": str(tmp_path / "runs" / "epoch_?")},
                   coco)
    assert [m.name for m in named.models] == ["run-epoch_1", "run-epoch_2"]
    result = run_models(cfg)
    assert [r.outcome.report["model"]["name"] for r in result.runs] == ["epoch_1", "epoch_2", "epoch_10"]
    assert [r.outcome.report["config"]["model"]["name"] for r in result.runs] == ["epoch_1", "epoch_2", "epoch_10"]


def test_names_are_distinct_and_single_configs_are_unchanged(tmp_path: Path) -> None:
    for run in ("a", "b"):
        (tmp_path / run / "last").mkdir(parents=True)
    cfg = config(tmp_path, [{"type": "reference", "checkpoint": str(tmp_path / "a" / "last")},
                            {"type": "reference", "checkpoint": str(tmp_path / "b" / "last")},
                            {"type": "reference"}], {"format": "shapes", "n_images": 4})
    assert [m.name for m in cfg.models] == ["a-last", "b-last", "shapes-clip"]
    one = config(tmp_path, {"type": "reference"}, {"format": "shapes", "n_images": 4})
    assert not one.is_multi and one.model.name is None and one.model_dump()["model"]["type"] == "reference"


def test_config_errors_name_the_list_entry_and_the_pattern(tmp_path: Path) -> None:
    pattern = tmp_path / "ckpt" / "epoch_*.pt"
    assert _problems(tmp_path, {"type": "open_clip", "arch": "ViT-B-32", "checkpoint": str(pattern)}) == [
        f"model.checkpoint: no file or folder matches the pattern {pattern}"]
    problems = _problems(tmp_path, [{"type": "reference"}, {"type": "referense"},
                                    {"type": "open_clip", "checkpoint": str(pattern)}])
    assert problems == [
        ("model[1].type: unknown model type 'referense'. Did you mean 'reference'? Available: hf_captioner, "
         "hf_clip, open_clip, openai, plugin, reference"),
        f"model[2].checkpoint: no file or folder matches the pattern {pattern}",
        "model[2].arch: required for model type 'open_clip' (an open_clip architecture name, e.g. ViT-B-32)"]
    assert _problems(tmp_path, [{"type": "reference", "name": "x"}, {"type": "reference", "name": "x"}]) == [
        ("model: model[0] and model[1] (counted after expanding patterns) are both named 'x'; give each a distinct "
         "'name'")]
    assert _problems(tmp_path, []) == ["model: an empty list; give one model mapping, or a list of one or more"]
    assert _problems(tmp_path, [{"type": "reference"}, "shapes-clip"])[0].startswith(
        "model[1]: expected a mapping with keys: type, arch")


def _mmeval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmeval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200"}, check=False)


@pytest.mark.slow
def test_cli_run_and_validate_with_a_failing_model(tmp_path: Path, coco: dict) -> None:
    for n in (1, 2):
        tiny_reference(tmp_path / "runs" / f"step_{n}", n)
    (tmp_path / "runs" / "step_3").mkdir()  # matches the pattern, but holds no checkpoint
    (tmp_path / "run.yaml").write_text(json.dumps({
        "model": {"type": "reference", "checkpoint": "runs/step_*"},
        "benchmarks": [{"name": "ret", "task": "retrieval", "data": coco}],
        "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0}, "output": {"dir": "out"}}))
    checked = _mmeval("validate", "--config", "run.yaml", "--load-model", cwd=tmp_path)
    assert checked.returncode == 2, checked.stderr
    assert "model[0] (step_1): step_1 (reference)" in checked.stderr
    assert f"error: run.yaml: model[2] (step_3): reference checkpoint config {tmp_path}/runs/step_3/config.json" \
        in checked.stderr
    ran = _mmeval("run", "--config", "run.yaml", cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    assert "mmeval leaderboard: 3 models (partial)" in ran.stdout and "step_2" in ran.stdout
    assert "error: model 'step_3': reference checkpoint config" in ran.stderr
    [board_file] = (tmp_path / "out").glob("*.leaderboard.json")
    assert board_file.with_suffix(".md").is_file()
    board = json.loads(board_file.read_text())
    assert [(m["name"], m["status"]) for m in board["models"]] == [
        ("step_1", "complete"), ("step_2", "complete"), ("step_3", "failed")]
    for model in board["models"][:2]:
        report = json.loads((tmp_path / "out" / model["report"]).read_text())
        assert report["model"]["name"] == model["name"] and report["status"] == "complete"
