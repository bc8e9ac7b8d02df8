"""What `mmeval` prints on the terminal (issue #14, items 11 and 12), through the real command (in process).

Ctrl-C while the model loads is one line and exit code 130; transformers' "Loading weights" bars stay out of
mmeval's output; `bench` leaves no `0/?` bar; `run` names every file it writes; `score --skip-unknown` says how
many ids it left out and `--gender-bias` prints the headline numbers (checked against a hand count); ids in
messages sort numerically; a file where a folder must go gets one wording whichever option or key named it;
a typo in `--set` is blamed on `--set`; paths are shown as given; no blank lines; one line per gate problem.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmeval.config.file import load_config
from mmeval.errors import ConfigError
from mmeval.ids import natural_sorted, show_ids
from mmeval.reporting.gate import _one_line_per_problem

ROOT = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}

PLUGIN = '''
import torch


def to_pixels(image):
    return torch.zeros(3, 4, 4) + image.size[0]


class Encoder:
    def __init__(self):
        self.module = torch.nn.Linear(3, 4)
        self.image_transform = to_pixels

    def tokenize(self, texts):
        return torch.tensor([[float(len(t))] for t in texts])

    def encode_image(self, pixels):
        return self.module(pixels.mean(dim=(2, 3)))

    def encode_text(self, tokens):
        return tokens.repeat(1, 4)


def make():
    return Encoder()


def interrupt():
    raise KeyboardInterrupt
'''


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def mmeval(cwd: Path, *args: Any) -> Done:
    """`mmeval ARGS` run in this process from `cwd` (whose plugin module is importable): the command's own code
    path and output, without a new interpreter importing torch for each call."""
    from typer.testing import CliRunner

    from mmeval.cli import app

    old, sys_path = Path.cwd(), list(sys.path)
    os.chdir(cwd)
    sys.path.insert(0, str(cwd))
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)
        sys.path[:] = sys_path
        sys.modules.pop("tiny_plugin", None)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def shown(done: Done) -> str:
    return f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def no_blank_lines(done: Done) -> None:
    for name, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        assert all(line.strip() for line in text.splitlines()), f"a blank line in {name}\n{shown(done)}"


def write_config(root: Path, name: str = "run.yaml", entry: str = "tiny_plugin:make", **sections: Any) -> Path:
    (root / "tiny_plugin.py").write_text(PLUGIN)
    raw = {"model": {"type": "plugin", "entry": entry},
           "benchmarks": [{"name": "ret", "task": "retrieval",
                           "data": {"format": "shapes", "split": "test", "n_images": 4, "seed": 0}}],
           "runtime": {"device": "cpu", "batch_size": 4}, "output": {"dir": "out"}}
    raw.update(sections)
    path = root / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- item 11 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "bench"])
def test_ctrl_c_while_the_model_loads_is_one_line_and_exit_130(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, entry="tiny_plugin:interrupt")  # the factory raises KeyboardInterrupt
    done = mmeval(tmp_path, command, "--config", config)
    assert done.returncode == 130, shown(done)
    assert done.stderr.splitlines() == ["error: interrupted while loading the model; nothing was computed"], shown(done)
    assert done.stdout == "" and not list(tmp_path.glob("out/*")), shown(done)  # nothing computed, nothing written


def test_bench_leaves_no_unknown_total_bar_and_no_blank_line(tmp_path: Path) -> None:
    done = mmeval(tmp_path, "bench", "--config", write_config(tmp_path), "--batch-sizes", "1", "--iterations", "1")
    assert done.returncode == 0, shown(done)
    lines = done.stderr.splitlines()  # the spinner went away: only the report's path is left
    assert len(lines) == 1 and lines[0].startswith("report: out/tiny_plugin_make-bench-"), shown(done)
    assert "0/?" not in done.stderr
    no_blank_lines(done)


def test_run_names_every_file_it_writes(tmp_path: Path) -> None:
    """The reference model captions and answers: each of the four files in output.dir is named on stderr."""
    raw = {"model": {"type": "reference"},
           "benchmarks": [{"name": "cap", "task": "coco_captions", "metrics": ["Bleu"],
                           "data": {"format": "shapes", "split": "test", "n_images": 3, "seed": 0},
                           "generation": {"max_new_tokens": 4}},
                          {"name": "vqa", "task": "vqa", "generation": {"max_new_tokens": 2},
                           "data": {"format": "shapes_vqa", "split": "test", "n_images": 2, "seed": 0}}],
           "runtime": {"device": "cpu", "batch_size": 8}, "output": {"dir": "out", "name": "r"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    done = mmeval(tmp_path, "run", "--config", "run.yaml")
    assert done.returncode == 0, shown(done)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["r.cap.captions.json", "r.json", "r.samples.json", "r.vqa.answers.json"]
    named = {line.rpartition(": ")[2] for line in done.stderr.splitlines() if ": out/" in line}
    assert named == {f"out/{name}" for name in written}, shown(done)
    assert "captions: out/r.cap.captions.json" in done.stderr and "answers: out/r.vqa.answers.json" in done.stderr
    no_blank_lines(done)


def test_transformers_loading_bars_stay_out_of_the_output(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_hf import save_clip

    save_clip(tmp_path / "clip")
    config = write_config(tmp_path, model={"type": "hf_clip", "checkpoint": "clip"})
    done = mmeval(tmp_path, "validate", "--config", config, "--load-model")
    assert done.returncode == 0, shown(done)
    assert "Loading" not in done.stderr and "it/s" not in done.stderr and "%|" not in done.stderr, shown(done)
    assert "model: clip (hf_clip)" in done.stderr
    no_blank_lines(done)


def test_the_bars_are_switched_back_as_they_were() -> None:
    pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    from mmeval.models.hf_common import no_progress_bars

    for before in (True, False):
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
        with no_progress_bars():
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled() is before
    hf_logging.enable_progress_bar()


def _write_scoring_files(root: Path) -> tuple[Path, Path]:
    """Four annotated images (two with men, two with women in their references) and results for them plus three
    ids that are not annotated (10, 2, 1: listed in numeric order)."""
    refs = {1: "a man riding a horse", 2: "a man on a bench", 3: "a woman holding a cup", 4: "a woman with a dog"}
    annotations = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in refs],
                   "annotations": [{"id": n, "image_id": i, "caption": c} for n, (i, c) in enumerate(refs.items())]}
    # by hand: image 1 man -> man (correct), 2 man -> woman (wrong), 3 woman -> woman (correct), 4 woman -> none
    results = [{"image_id": 1, "caption": "a man on a horse"}, {"image_id": 2, "caption": "a woman on a bench"},
               {"image_id": 3, "caption": "a woman with a cup"}, {"image_id": 4, "caption": "a dog on grass"},
               {"image_id": 110, "caption": "x"}, {"image_id": 12, "caption": "x"}, {"image_id": 11, "caption": "x"}]
    (root / "ann.json").write_text(json.dumps(annotations))
    (root / "res.json").write_text(json.dumps(results))
    return root / "ann.json", root / "res.json"


def test_score_says_which_ids_it_refuses_in_numeric_order(tmp_path: Path) -> None:
    _write_scoring_files(tmp_path)
    done = mmeval(tmp_path, "score", "-a", "ann.json", "-r", "res.json", "--tokenizer", "python", "--metrics", "CIDEr")
    assert done.returncode == 2, shown(done)
    assert "3 result image id(s) are not in ann.json (11, 12, 110)" in done.stderr, shown(done)


def test_score_counts_skipped_ids_and_summarises_gender_bias(tmp_path: Path) -> None:
    _write_scoring_files(tmp_path)
    done = mmeval(tmp_path, "score", "-a", "ann.json", "-r", "res.json", "--tokenizer", "python", "--metrics",
                  "CIDEr", "--skip-unknown", "--gender-bias", "-o", "out")
    assert done.returncode == 0, shown(done)
    assert "--skip-unknown: left out 3 result image id(s) not in ann.json; scored 4" in done.stderr, shown(done)
    summary = next(line for line in done.stdout.splitlines() if line.startswith("gender bias"))
    # Hand count: 4 gendered images (2 man, 2 woman); 1 of 4 captions names the other gender; captions name a
    # woman twice and a man once (2.0) while the references have 2 and 2 (1.0); each group is named right once.
    for part in ("over 4 images", "(2 man, 2 woman; 0 other images left out)", "error 0.250", "woman:man ratio "
                 "2.000 in the captions vs 1.000 in the references", "named correctly: man 0.500, woman 0.500",
                 "CIDEr man "):
        assert part in summary, summary
    report = json.loads(next((tmp_path / "out").glob("*scored*[0-9].json")).read_text())
    block = next(iter(report["benchmarks"].values()))["bias"]["attributes"]["gender"]
    cider = block["sliced"]["CIDEr"]
    assert f"CIDEr man {cider['per_group']['man']:.3f}, woman {cider['per_group']['woman']:.3f}" in summary
    no_blank_lines(done)


def test_natural_order_of_ids() -> None:
    assert natural_sorted([10, 2, 1, -3]) == [-3, 1, 2, 10]
    assert natural_sorted(["img10", "img2", "img1", "b", "a"]) == ["a", "b", "img1", "img2", "img10"]
    assert natural_sorted([10, "9", 2]) == [2, "9", 10]  # a mix of types still sorts, by number
    assert show_ids(range(12, 0, -1)) == "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 ..."


# --- item 12 -------------------------------------------------------------------------------------------------

FOLDER = "expected a folder (created if missing), got a file: "


def test_a_file_where_a_folder_must_go_has_one_wording(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    config = write_config(tmp_path)
    in_file = write_config(tmp_path, "in_file.yaml", output={"dir": "taken/sub"})
    cases = {
        ("run", "-c", config.name, "--output", "taken"): f"--output: {FOLDER}taken",
        ("bench", "-c", config.name, "-o", "taken/x"): f"--output: {FOLDER}taken",
        ("run", "-c", config.name, "--set", "output.dir=taken"): f"--set: output.dir: {FOLDER}taken",
        ("validate", "-c", in_file.name): f"in_file.yaml: output.dir: {FOLDER}taken",
        ("report", "r.json", "--html", "taken/page.html"): f"--html: {FOLDER}taken",
        ("score", "-a", "run.yaml", "-r", "run.yaml", "-o", "taken"): f"--output: {FOLDER}taken",
    }
    for args, expected in cases.items():
        done = mmeval(tmp_path, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, shown(done)
        assert done.stderr.splitlines() == [f"error: {expected}"], shown(done)


def test_a_typo_in_set_is_blamed_on_set_and_one_in_the_file_on_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, runtime={"device": "cpu", "batch_sise": 4})
    with pytest.raises(ConfigError) as caught:
        load_config(config, ["runtime.batchsize=8", "benchmarks[0].data.n_images=2", "runtime.seed=0"])
    lines = caught.value.lines()
    assert len(lines) == 2, lines
    assert any(line.startswith("--set: runtime.batchsize: unknown key. Did you mean 'batch_size'?") for line in lines)
    assert any(line.startswith(f"{config}: runtime.batch_sise: unknown key.") for line in lines)
    with pytest.raises(ConfigError) as caught:  # a whole section set at once: its keys are --set's too
        load_config(write_config(tmp_path, "ok.yaml"), ["runtime={device: cpu, batchsize: 8}"])
    assert caught.value.lines()[0].startswith("--set: runtime.batchsize: unknown key.")
    done = mmeval(tmp_path, "validate", "-c", "ok.yaml", "--set", "output.nmae=x")
    assert done.returncode == 2 and done.stderr.startswith("error: --set: output.nmae: unknown key."), shown(done)


def test_paths_are_printed_as_the_user_gave_them(tmp_path: Path) -> None:
    missing_data = write_config(tmp_path, "data.yaml", benchmarks=[
        {"name": "c", "task": "retrieval", "data": {"format": "coco", "annotations": "data/nope.json",
                                                     "images": "data/images"}}])
    for args, expected in ((("validate", "-c", "nope.yaml"), "nope.yaml: config file not found: nope.yaml"),
                           (("validate", "-c", missing_data.name), "file not found: data/nope.json"),
                           (("score", "-a", "a.json", "-r", "r.json"), "--annotations: file not found: a.json")):
        done = mmeval(tmp_path, *args)
        assert done.returncode == 2 and expected in done.stderr, shown(done)
        assert str(tmp_path) not in done.stderr, shown(done)
        no_blank_lines(done)


def test_one_line_per_gate_problem() -> None:
    problems = ["rules[0] (a/x): compares with the baseline; pass --baseline",
                "rules[0] (b/x): compares with the baseline; pass --baseline",
                "rules[1].metric: 'z/*' matches no benchmark/metric of the reports (there are: a/x)",
                "rules[2] (a/images): r.json has no latency for this pass",
                "rules[2] (b/images): r.json has no latency for this pass",
                "rules[0] (a/x): compares with the baseline; pass --baseline"]
    assert _one_line_per_problem(problems) == [
        "rules[0] (a/x, b/x): compares with the baseline; pass --baseline",
        "rules[1].metric: 'z/*' matches no benchmark/metric of the reports (there are: a/x)",
        "rules[2] (a/images, b/images): r.json has no latency for this pass"]


def test_gate_without_its_baseline_says_so_once_per_rule(tmp_path: Path) -> None:
    from test_html_report import make_report

    report, _ = make_report()
    (tmp_path / "r.json").write_text(json.dumps(report))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [{"metric": "ret/*_R@*", "max_drop": 0.1}]}))
    done = mmeval(tmp_path, "gate", "--candidate", "r.json", "--rules", "rules.yaml")
    assert done.returncode == 2, shown(done)
    assert done.stderr.splitlines() == ["error: rules[0] (ret/t2i_R@1, ret/t2i_R@5, ret/i2t_R@1, ret/i2t_R@5): "
                                        "compares with the baseline; pass --baseline"], shown(done)
