"""The README's quick start and COCO walk-through agree with the shipped config and the CLI they describe."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from conftest import ROOT
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.config.file import load_config

README = (ROOT / "README.md").read_text()
COCO_CONFIG = ROOT / "configs" / "coco_open_clip.yaml"


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


def test_the_readme_coco_config_is_the_shipped_file() -> None:
    section = _section("Evaluate your own checkpoint on COCO")
    block = re.search(r"\(this is `configs/coco_open_clip.yaml`\):\n\n\s*```yaml\n(.*?)```", section, re.S)
    assert block, "the README lost the config block of configs/coco_open_clip.yaml"
    assert yaml.safe_load(block.group(1)) == yaml.safe_load(COCO_CONFIG.read_text())


def test_the_karpathy_file_name_is_the_same_in_the_text_and_the_config() -> None:
    annotations = Path(yaml.safe_load(COCO_CONFIG.read_text())["benchmarks"][0]["data"]["annotations"])
    assert annotations.name == "coco_test_karpathy.json"  # the name CLIP_benchmark downloads it under
    for text in (_section("Evaluate your own checkpoint on COCO"), _section("Quick start")):
        assert f"`{annotations}`" in text or f"in {annotations}," in text
        names = set(re.findall(r"[\w.-]*karpathy[\w.-]*\.json", text))
        assert names == {annotations.name}, names


def test_the_shipped_coco_config_is_valid_with_its_files_in_place(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vitb32.pt").write_bytes(b"weights")
    (tmp_path / "data" / "coco" / "val2014").mkdir(parents=True)
    (tmp_path / "data" / "coco" / "coco_test_karpathy.json").write_text("{}")
    cfg = load_config(COCO_CONFIG)
    assert cfg.benchmarks[0].data.annotations == tmp_path / "data" / "coco" / "coco_test_karpathy.json"


def test_the_quick_start_comes_first_and_its_commands_exist() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0] == "Quick start"
    commands = re.findall(r"^(?:bash |mmeval )(.+?)(?:\s+#.*)?$", _section("Quick start"), re.M)
    assert len(commands) >= 5
    for line in commands:
        for path in re.findall(r"(?:configs|scripts)/[\w.-]+", line):
            assert (ROOT / path).is_file(), path
    helps = {name: CliRunner().invoke(app, [name, "--help"], terminal_width=200).output for name in ("run", "validate")}
    assert "--limit" in helps["run"] and "--limit" in helps["validate"] and "--decode" in helps["validate"]


def test_the_demo_time_is_one_figure() -> None:
    # The quick start and the demo section state the same time (scripts/demo.sh, median of 3 runs on 2 cores).
    quick = re.search(r"about (\d+) s on 2 CPU cores", _section("Quick start"))
    demo = re.search(r"The whole demo run .*? takes\s+about (\d+) s on 2 CPU cores", _section("The demo"), re.S)
    assert quick and demo and quick.group(1) == demo.group(1)
