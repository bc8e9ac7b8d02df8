"""The demo (configs/demo.yaml) against its golden report, tests/golden/demo.json, to the last digit.

The golden holds what the demo measures and nothing volatile: every metric value and interval, each dataset's
size and sha256, the model's sha256, and the sha256 of the per-sample and predictions files (normalized by
scripts/report_diff.py). The fast test checks that the README's demo table and sentences print the golden's
values at their precision; the slow test runs the demo on the CPU and compares it with the golden.

Regenerate the golden only when a change is meant to change the demo's results (a retrained reference model,
a new shapes generator, a metric fixed on purpose), never to make a failing refactor pass; say why in the
commit and update the README's numbers with it:

    MMEVAL_UPDATE_GOLDEN=1 python -m pytest tests/test_demo_golden.py -m slow
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_script

GOLDEN = ROOT / "tests" / "golden" / "demo.json"
README = ROOT / "README.md"
report_diff = load_script("report_diff")


# Metrics that measure speed, not results (speech recognition's real-time factor): left out of the golden.
SPEED_METRICS = {"rtfx"}


def golden_view(report: dict, folder: Path) -> dict:
    """What the golden keeps of a demo report: results and their provenance, no timings, paths or machine facts."""
    files = report_diff.side_files(report, folder)
    return {
        "schema_version": report["schema_version"],
        "model": {key: report["model"][key] for key in ("adapter", "name", "sha256", "n_parameters")},
        "benchmarks": {
            name: {
                "task": bench["task"],
                "status": bench["status"],
                "dataset": bench["dataset"],
                "metrics": {key: value for key, value in bench["metrics"].items() if key not in SPEED_METRICS},
                "bootstrap": {key: value for key, value in bench.get("bootstrap", {}).items() if key != "seconds"},
            }
            for name, bench in report["benchmarks"].items()
        },
        "files_sha256": {label: _json_sha256(path) for label, path in sorted(files.items())},
    }


def _json_sha256(path: Path) -> str:
    content = report_diff.normalize(json.loads(path.read_text()))
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


# --- the README prints the golden's values ------------------------------------------------------------------


def demo_section() -> str:
    text = README.read_text()
    start = text.index("## The demo\n")
    return text[start:text.index("\n## ", start + 1)]


def printed(value: float, like: str) -> str:
    """`value` written with as many decimals as `like` has."""
    decimals = len(like.split(".")[1]) if "." in like else 0
    return f"{value:.{decimals}f}"


def table_rows(section: str) -> list[dict[str, str]]:
    """The demo's (first) results table as one dict per row, keyed by the header's cells."""
    all_lines = section.splitlines()
    first = next(n for n, line in enumerate(all_lines) if line.startswith("|"))
    lines = []
    for line in all_lines[first:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "").split()) == {"---"}, "the demo table's second line is its separator"
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


# README sentence fragments -> the golden numbers they print, in order: (benchmark, metric, "value" | "low" | "high")
PROSE = [
    (r"greedy captions score CIDEr ([\d.]+), Bleu_4 ([\d.]+), METEOR ([\d.]+), ROUGE_L ([\d.]+)",
     [("shapes-captions", m, "value") for m in ("CIDEr", "Bleu_4", "METEOR", "ROUGE_L")]),
    (r"VQA accuracy is \*\*([\d.]+)\*\* \(yes/no ([\d.]+), number ([\d.]+), other\s+([\d.]+)\)",
     [("shapes-vqa", m, "value") for m in ("vqa_accuracy", "vqa_accuracy_yes/no", "vqa_accuracy_number",
                                            "vqa_accuracy_other")]),
]
PROSE += [
    (r"exact match ([\d.]+) \(direction ([\d.]+), speed ([\d.]+), shape ([\d.]+), colour ([\d.]+)\)",
     [("video-qa", m, "value") for m in ("exact_match", "exact_match_direction", "exact_match_speed",
                                         "exact_match_shape", "exact_match_color")]),
    (r"t2a R@1 ([\d.]+), R@10 ([\d.]+), DCASE t2a mAP@10 ([\d.]+)",
     [("audio-retrieval", m, "value") for m in ("t2a_R@1", "t2a_R@10", "t2a_mAP@10")]),
    (r"WER ([\d.]+) with the set's JSGF grammar .*? and ([\d.]+)\s+with its general language model",
     [("speech-grammar", "wer", "value"), ("speech-general-lm", "wer", "value")]),
    (r"accuracy ([\d.]+) spoken vs ([\d.]+) for the same questions as text, a loss of\s+([\d.]+) due to speech "
     r"\(question WER ([\d.]+)\)",
     [("spoken-vqa", m, "value") for m in ("spoken_accuracy", "text_accuracy", "speech_loss", "question_wer")]),
]
CI_SENTENCE = (r"t2i R@1 ([\d.]+) \[([\d.]+), ([\d.]+)\], i2t R@1 ([\d.]+)\s+\[([\d.]+), ([\d.]+)\], "
               r"CIDEr ([\d.]+) \[([\d.]+), ([\d.]+)\], VQA accuracy ([\d.]+) \[([\d.]+), ([\d.]+)\]")
CI_FIELDS = [(bench, metric, field) for bench, metric in (("shapes-retrieval", "t2i_R@1"),
                                                          ("shapes-retrieval", "i2t_R@1"),
                                                          ("shapes-captions", "CIDEr"), ("shapes-vqa", "vqa_accuracy"))
             for field in ("value", "low", "high")]


def golden_number(golden: dict, bench: str, metric: str, field: str) -> float:
    entry = golden["benchmarks"][bench]["metrics"][metric]
    return {"value": entry["value"], "low": entry["ci95"][0], "high": entry["ci95"][1]}[field]


def test_readme_demo_table_prints_the_golden_values() -> None:
    golden = json.loads(GOLDEN.read_text())
    retrieval = golden["benchmarks"]["shapes-retrieval"]
    directions = {"text -> image": ("t2i", "n_texts", "captions"), "image -> text": ("i2t", "n_images", "images")}
    rows = table_rows(demo_section())
    assert [row["direction"].split(" (")[0] for row in rows] == list(directions)
    for row in rows:
        prefix, count, unit = directions[row["direction"].split(" (")[0]]
        assert f"({retrieval['dataset'][count]:,} {unit})" in row["direction"]
        for column, cell in row.items():
            if column.startswith("R@") or column == "median rank":
                metric = f"{prefix}_{column.replace('median rank', 'median_rank')}"
                assert cell == printed(retrieval["metrics"][metric]["value"], cell), (row["direction"], column)
        assert row["chance R@1"] == printed(1 / retrieval["dataset"]["n_images"], row["chance R@1"])
    assert set(rows[0]) == {"direction", "R@1", "R@5", "R@10", "median rank", "chance R@1"}


def test_readme_demo_sentences_print_the_golden_values() -> None:
    golden = json.loads(GOLDEN.read_text())
    section = demo_section()
    for pattern, fields in PROSE:
        found = re.search(pattern, section, re.S)
        assert found, f"README demo section lost the sentence matching {pattern!r}"
        for text, (bench, metric, field) in zip(found.groups(), fields, strict=True):
            assert text == printed(golden_number(golden, bench, metric, field), text), (bench, metric)
    intervals = re.search(CI_SENTENCE, README.read_text())
    assert intervals, "README's Confidence intervals section lost the demo's intervals sentence"
    for text, (bench, metric, field) in zip(intervals.groups(), CI_FIELDS, strict=True):
        assert text == printed(golden_number(golden, bench, metric, field), text), (bench, metric, field)
    assert f"On {golden['benchmarks']['shapes-captions']['dataset']['n_images']} held-out scenes" in section
    assert f"on {golden['benchmarks']['shapes-vqa']['dataset']['n_questions']:,} held-out questions" in section


def test_printed_rounds_like_the_readme() -> None:
    assert printed(0.36859, "0.369") == "0.369" and printed(2.0, "2") == "2" and printed(0.1, "0.100") == "0.100"
    assert printed(1.870835820557328, "1.871") == "1.871" and printed(1.8702, "1.871") != "1.871"


# --- the demo itself ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_equals_the_golden_report(tmp_path: Path) -> None:
    # The README's numbers are CPU fp32 ones (device: auto picks CUDA + bf16 where there is a GPU).
    command = [sys.executable, "-m", "mmeval", "run", "-c", "configs/demo.yaml", "--no-cache", "-o", str(tmp_path),
               "--set", "runtime.device=cpu", "--set", "runtime.precision=fp32"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (report_path,) = [path for path in tmp_path.glob("*.json") if path.name.count(".") == 1]
    fresh = golden_view(json.loads(report_path.read_text()), tmp_path)
    if os.environ.get("MMEVAL_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(fresh, indent=2) + "\n")
        pytest.skip(f"rewrote {GOLDEN.relative_to(ROOT)}: review `git diff` and the README's demo numbers")
    golden = json.loads(GOLDEN.read_text())
    assert report_diff.differences(golden, fresh) == []
    # the same, spelled out for the numbers the README prints (exact float equality: last digit)
    for name, bench in golden["benchmarks"].items():
        assert fresh["benchmarks"][name]["dataset"]["sha256"] == bench["dataset"]["sha256"]
        for metric, entry in bench["metrics"].items():
            assert fresh["benchmarks"][name]["metrics"][metric] == entry, (name, metric)
