"""A task from outside mmeval: installed with pip into the test's own folder, it runs through every command.

tests/plugins/itm_task is a tiny package (image-text matching: does this caption fit this image? accuracy and
AUROC) that registers itself in the entry point group `mmeval.tasks`. Nothing in mmeval names it: the test proves
that run, validate, list, compare, gate and report --html handle it like a built-in task, and that the same task
named as "module:attr" in a config works without installing it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

PLUGIN = Path(__file__).parent / "plugins" / "itm_task"
BIASED = Path(__file__).parents[1] / "mmeval" / "assets" / "shapes-clip-biased"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin installed by pip into a folder of its own (not the test environment's site-packages)."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build") / "itm_task"
    shutil.copytree(PLUGIN, build)  # pip builds in place: keep the repository clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(build)], check=True)
    assert (target / "itm_task" / "__init__.py").is_file()
    return target


def mmeval(cwd: Path, pythonpath: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "mmeval", *args], cwd=cwd, env=env, capture_output=True, text=True)


def config(out: Path, name: str, task: str, model: dict, **settings) -> dict:
    bench = {"name": "itm", "task": task, "data": {"format": "shapes", "n_images": 40, "seed": 3}, **settings}
    return {"model": model, "benchmarks": [bench],
            "runtime": {"device": "cpu", "batch_size": 16, "num_workers": 0, "cache": "off"},
            "output": {"dir": str(out), "name": name}}


def write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def brute_force_auroc(scores: list[float], labels: list[int]) -> float:
    """P(score of a match > score of a mismatch) + half the ties, over every (match, mismatch) pair."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_installed_task_runs_through_every_command(site: Path, tmp_path: Path) -> None:
    listed = mmeval(tmp_path, site, "list")
    assert listed.returncode == 0, listed.stderr
    assert "image_text_matching" in listed.stdout and "itm_accuracy" in listed.stdout
    assert "entry point itm_task:TASK" in listed.stdout

    # a typo in the task's own field is reported with that task's own field list
    bad = write(tmp_path / "bad.yaml", config(tmp_path, "bad", "image_text_matching", {"type": "reference"},
                                              treshold=0.2))
    done = mmeval(tmp_path, site, "validate", "--config", str(bad))
    assert done.returncode == 2
    assert ("benchmarks[0].treshold: unknown key. Did you mean 'threshold'? Valid keys here: data, model, name, "
            "offset, perturb, task, threshold") in done.stderr

    good = write(tmp_path / "a.yaml", config(tmp_path, "a", "image_text_matching", {"type": "reference"}))
    assert mmeval(tmp_path, site, "validate", "--config", str(good)).returncode == 0
    for cfg_file, model in ((good, None), (tmp_path / "b.yaml", {"type": "reference", "checkpoint": str(BIASED)})):
        if model is not None:
            write(cfg_file, config(tmp_path, "b", "image_text_matching", model))
        done = mmeval(tmp_path, site, "run", "--config", str(cfg_file))
        assert done.returncode == 0, done.stderr
        assert "itm_auroc" in done.stdout

    report = json.loads((tmp_path / "a.json").read_text())
    bench = report["benchmarks"]["itm"]
    assert bench["task"] == "image_text_matching" and bench["status"] == "complete"
    rows = json.loads((tmp_path / "a.samples.json").read_text())["itm"]["pairs"]
    assert len(rows) == 2 * 40
    scores, labels = [r["score"] for r in rows], [r["label"] for r in rows]
    assert bench["metrics"]["itm_auroc"]["value"] == pytest.approx(brute_force_auroc(scores, labels), abs=1e-12)
    threshold = float(np.median(scores))
    accuracy = np.mean([(s > threshold) == (y == 1) for s, y in zip(scores, labels)])
    assert bench["metrics"]["itm_accuracy"]["value"] == pytest.approx(accuracy, abs=1e-12)
    assert "ci95" in bench["metrics"]["itm_auroc"] or "bootstrap" not in bench  # intervals only if the task adds them

    compared = mmeval(tmp_path, site, "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--format", "json")
    assert compared.returncode == 0, compared.stderr
    table = json.loads(compared.stdout)
    text = json.dumps(table)
    assert "itm_accuracy" in text and "itm_auroc" in text and "is not a mean of per-pair values" in text

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - metric: 'itm/itm_auroc'\n    min: 0.0\n  - metric: 'itm/itm_accuracy'\n"
                     "    max_drop: 1.0\n    significant: true\n")
    gated = mmeval(tmp_path, site, "gate", "--candidate", str(tmp_path / "b.json"), "--baseline",
                   str(tmp_path / "a.json"), "--rules", str(rules))
    assert gated.returncode == 0, gated.stdout + gated.stderr

    page = tmp_path / "page.html"
    shown = mmeval(tmp_path, site, "report", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--html", str(page))
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert "image_text_matching" in html and "itm_auroc" in html


def test_task_named_by_module_and_attribute_needs_no_install(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ref.yaml", config(tmp_path, "ref", "itm_task:TASK", {"type": "reference"}, offset=2))
    done = mmeval(tmp_path, PLUGIN, "run", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    bench = json.loads((tmp_path / "ref.json").read_text())["benchmarks"]["itm"]
    assert bench["task"] == "itm_task:TASK" and 0.0 <= bench["metrics"]["itm_auroc"]["value"] <= 1.0
    missing = write(tmp_path / "missing.yaml", config(tmp_path, "m", "no_such_pkg.tasks:TASK", {"type": "reference"}))
    done = mmeval(tmp_path, None, "validate", "--config", str(missing))
    assert done.returncode == 2 and "benchmarks[0].task: task 'no_such_pkg.tasks:TASK': cannot import" in done.stderr
