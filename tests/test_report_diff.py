"""scripts/report_diff.py: every non-volatile difference between two reports is printed, volatile ones are not."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

from conftest import ROOT, load_script

report_diff = load_script("report_diff")
GOLDEN = ROOT / "tests" / "golden"


def two_copies(tmp_path: Path) -> tuple[Path, Path, dict]:
    """The v1.1.0 golden report and its per-sample file, copied into folders a/ and b/."""
    report = json.loads((GOLDEN / "golden-v1.1.0.json").read_text())
    paths = []
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        shutil.copy(GOLDEN / "golden-v1.1.0.samples.json", tmp_path / side / report["per_sample_file"])
        paths.append(tmp_path / side / "report.json")
        paths[-1].write_text(json.dumps(report))
    return paths[0], paths[1], report


def test_a_report_equals_itself_and_volatile_fields_are_ignored(tmp_path: Path, capsys) -> None:
    a, b, report = two_copies(tmp_path)
    assert report_diff.main([str(a), str(b)]) == 0
    changed = copy.deepcopy(report)
    changed.update(created_at="2030-01-01T00:00:00+00:00", git_commit="0" * 40, command="mmeval run -c x.yaml")
    changed["model"]["checkpoint"] = "/elsewhere/shapes-clip"
    changed["model"]["load_s"] = 99.0
    for bench in changed["benchmarks"].values():
        bench["timings"] = {"total_s": 123.0}
        bench.pop("latency", None)
        if "bootstrap" in bench:
            bench["bootstrap"]["seconds"] = 7.0
    b.write_text(json.dumps(changed))
    assert report_diff.main([str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip().endswith("equal (volatile fields ignored)")


def test_one_ulp_in_a_metric_or_a_per_sample_row_is_a_difference(tmp_path: Path, capsys) -> None:
    a, b, report = two_copies(tmp_path)
    changed = copy.deepcopy(report)
    entry = changed["benchmarks"]["caps"]["metrics"]["CIDEr"]
    entry["value"] = math.nextafter(entry["value"], math.inf)
    changed["benchmarks"]["retr"]["dataset"]["sha256"] = "f" * 64
    b.write_text(json.dumps(changed))
    samples_path = b.parent / report["per_sample_file"]
    samples = json.loads(samples_path.read_text())
    samples["retr"]["t2i"][3]["rank"] += 1
    samples_path.write_text(json.dumps(samples))
    assert report_diff.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith(("report:", "per-sample"))] == [
        f"report: benchmarks.retr.dataset.sha256: {json.dumps(report['benchmarks']['retr']['dataset']['sha256'])} "
        f"!= \"{'f' * 64}\"",
        f"report: benchmarks.caps.metrics.CIDEr.value: {json.dumps(report['benchmarks']['caps']['metrics']['CIDEr']['value'])} "
        f"!= {json.dumps(entry['value'])}",
        f"per-sample file: retr.t2i[3].rank: {samples['retr']['t2i'][3]['rank'] - 1} != {samples['retr']['t2i'][3]['rank']}",
    ]
    assert out[-1] == "3 differences"


def test_differences_see_types_missing_keys_and_lengths() -> None:
    assert report_diff.differences({"n": 1}, {"n": 1.0}) == ["n: 1 != 1.0"]
    assert report_diff.differences({"a": 1}, {"b": 1}) == ["a: only in A (1)", "b: only in B (1)"]
    assert report_diff.differences([1, 2], [1, 3, 4]) == [": length 2 != 3", "[1]: 2 != 3"]
    assert report_diff.normalize({"f": "/abs/x.json", "g": "m-20260101-120000.json", "timings": {}}) == {
        "f": "<path>", "g": "m-<stamp>.json"}


def test_a_missing_report_is_exit_2(tmp_path: Path, capsys) -> None:
    assert report_diff.main([str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no such report" in capsys.readouterr().err
