"""The HTML report (issue #14, item 15): reports of one checkpoint told apart by the settings that differ, no
"0 parameters" for a scored results file, `score --images` giving the gallery its images, and best / worst
galleries that never share an image, split evenly on small sets (checked against a brute-force selection).
"""

from __future__ import annotations

import json
import os
import random
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_html_report import make_report, write_run
from typer.testing import CliRunner

from mmeval.cli import app
from mmeval.reporting.html.report import _header, load_runs
from mmeval.tasks.coco_captions.gallery import best_and_worst, thumbnail

# --- labels -------------------------------------------------------------------------------------------------


def _with(report: dict[str, Any], precision: str = "fp32", batch_size: int = 64,
          created: str = "2026-01-02T03:04:05+00:00") -> dict[str, Any]:
    runtime = {"device": "cpu", "precision": precision, "batch_size": batch_size, "num_workers": 0, "seed": 0,
               "warmup_batches": 1, "world_size": 1, "distributed_backend": None}
    return {**report, "runtime": runtime, "created_at": created}


@pytest.mark.parametrize("settings, expected", [
    ([{"precision": "fp32"}, {"precision": "bf16"}], ["ckpt-a (fp32)", "ckpt-a (bf16)"]),
    ([{"batch_size": 1}, {"batch_size": 256}], ["ckpt-a (bs 1)", "ckpt-a (bs 256)"]),
    ([{"created": "2026-01-02T03:04:05+00:00"}, {"created": "2026-02-03T10:11:12+00:00"}],
     ["ckpt-a (2026-01-02 03:04)", "ckpt-a (2026-02-03 10:11)"]),
    ([{"precision": "fp16", "batch_size": 8}, {"precision": "fp32", "batch_size": 8}, {"precision": "fp32"}],
     ["ckpt-a (fp16, bs 8)", "ckpt-a (fp32, bs 8)", "ckpt-a (fp32, bs 64)"]),
    ([{}, {}], ["ckpt-a (r0)", "ckpt-a (r1)"]),  # nothing differs: the file names
    ([{"precision": "bf16"}, {}, {}], ["ckpt-a (bf16)", "ckpt-a (fp32, r1)", "ckpt-a (fp32, r2)"]),
])
def test_reports_of_one_checkpoint_are_told_apart_by_their_settings(tmp_path: Path, settings, expected) -> None:
    base, _ = make_report("ckpt-a")
    other, _ = make_report("ckpt-b")
    paths = [write_run(tmp_path, _with(base, **s), None, f"r{n}") for n, s in enumerate(settings)]
    paths.append(write_run(tmp_path, _with(other), None, "other"))
    runs = load_runs(paths)
    assert [run.label for run in runs] == [*expected, "ckpt-b"]  # a label of its own is left alone
    header = _text(_header(runs, ["ret"]))  # the page's header only: no figures drawn
    for label in expected:
        assert label in header


def _text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.images: list[tuple[str, dict[str, str]]] = []  # (the gallery it is in, attributes)
        self.gallery = ""

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if "data-gallery" in attrs:
            self.gallery = attrs["data-gallery"]
        if tag == "img" and "data-plot" not in attrs:
            self.images.append((self.gallery, attrs))

    def handle_data(self, data):
        self.parts.append(data)


def test_no_parameter_count_for_a_results_file(tmp_path: Path) -> None:
    report, _ = make_report("scored")
    report["model"] = {**report["model"], "adapter": "results-file", "n_parameters": 0}
    text = _text(_header(load_runs([write_run(tmp_path, report, None)]), ["ret"]))
    assert "parameters" not in text and "results-file" in text
    report["model"]["n_parameters"] = 1234
    assert "1,234 parameters" in _text(_header(load_runs([write_run(tmp_path, report, None)]), ["ret"]))


# --- score --images -----------------------------------------------------------------------------------------


def _invoke(cwd: Path, *args: Any):
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def test_score_with_images_gives_the_gallery_its_images(shared_data: Path, tmp_path: Path) -> None:
    coco = shared_data / "coco"
    annotations = json.loads((coco / "images_captions.json").read_text())
    files = {image["id"]: image["file_name"] for image in annotations["images"]}
    results = [{"image_id": i, "caption": f"a photo number {n}"} for n, i in enumerate(files)]
    (tmp_path / "res.json").write_text(json.dumps(results))
    args = ("score", "-a", coco / "images_captions.json", "-r", "res.json", "--tokenizer", "python", "--metrics",
            "Bleu,CIDEr")
    done = _invoke(tmp_path, *args, "--images", coco / "images", "-o", "with")
    assert done.exit_code == 0, done.output
    plain = _invoke(tmp_path, *args, "-o", "without")
    assert plain.exit_code == 0, plain.output
    bad = _invoke(tmp_path, *args, "--images", "res.json")
    assert bad.exit_code == 2 and "--images: expected a folder of images, got a file: res.json" in bad.stderr

    for folder in ("with", "without"):
        report = next((tmp_path / folder).glob("*scored*[0-9].json"))
        page_path = tmp_path / f"{folder}.html"
        assert _invoke(tmp_path, "report", report, "--html", page_path).exit_code == 0
        parser = _Text()
        parser.feed(page_path.read_text())
        text = " ".join(parser.parts)
        if folder == "without":
            assert parser.images == [] and "does not record this benchmark's data config" in text
            continue
        assert "images not shown" not in text
        # 9 images, 6 per gallery: split 5 best / 4 worst; each card's thumbnail is its own image file's
        assert [g for g, _ in parser.images].count("best") == 5 and [g for g, _ in parser.images].count("worst") == 4
        for _, attrs in parser.images:
            image_id = int(attrs["alt"].removeprefix("image "))
            with Image.open(coco / "images" / files[image_id]) as image:
                assert attrs["src"] == thumbnail(image)


# --- best and worst -----------------------------------------------------------------------------------------


def test_best_and_worst_never_overlap_and_split_small_sets_evenly() -> None:
    rng = random.Random(0)
    for size in range(0, 15):
        scores = rng.sample(range(1000), size)  # distinct: the expected choice is unambiguous
        rows = [{"image_id": f"img{i}", "CIDEr": s / 10} for i, s in enumerate(scores)]
        for n in range(1, 7):
            best, worst = best_and_worst(rows, "CIDEr", n)
            # brute force: rank by hand, give best the larger half when there are fewer than 2n rows
            ranked = [r["image_id"] for r in sorted(rows, key=lambda r: r["CIDEr"], reverse=True)]
            n_best = min(n, (size + 1) // 2)
            n_worst = min(n, size - n_best)
            assert [r["image_id"] for r in best] == ranked[:n_best]
            assert [r["image_id"] for r in worst] == ranked[::-1][:n_worst]
            assert not {r["image_id"] for r in best} & {r["image_id"] for r in worst}
            if size <= 2 * n:
                assert len(best) + len(worst) == size and len(best) - len(worst) in (0, 1)


def test_ties_are_broken_by_image_id_in_numeric_order() -> None:
    rows = [{"image_id": i, "CIDEr": 1.0} for i in (10, 2, 1)] + [{"image_id": 30, "CIDEr": 0.5}]
    best, worst = best_and_worst(rows, "CIDEr", 2)
    assert [r["image_id"] for r in best] == [1, 2] and [r["image_id"] for r in worst] == [30, 10]
