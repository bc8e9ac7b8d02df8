"""`mmeval report --html`: a self-contained page with the expected figures, built from hand-made reports that
follow the published schema (no model runs here). The numbers the page shows are checked against values worked
out independently: recall curves by brute force, best / worst captions by hand, thumbnails against the shapes
scenes rendered directly, table cells against the report's values.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmeval.data.shapes import load_shapes
from mmeval.tasks.coco_captions.gallery import best_and_worst, caption_gallery, thumbnail
from mmeval.reporting.html.report import load_runs, render_html, write_html_report
from mmeval.reporting.html.sections import rank_curve
from mmeval.reporting.report import validate_report

# ------------------------------------------------------------------------------------------- fixtures


def _metric(value: float, ci: tuple[float, float] | None = None, higher: bool = True) -> dict[str, Any]:
    return {"value": value, "higher_is_better": higher, **({"ci95": list(ci)} if ci else {})}


def _latency(calls_ms: list[float], rows: list[int], warmup: int = 1) -> dict[str, Any]:
    passes = {"images": {"n_batches": len(calls_ms), "warmup_batches_excluded": warmup, "calls_ms": calls_ms,
                         "calls_rows": rows, "cached": False},
              "texts": {"n_batches": 0, "cached": True}}
    breakdown = dict.fromkeys(("setup_s", "data_wait_s", "h2d_s", "model_s", "metrics_s", "unaccounted_s", "total_s"),
                              0.1)
    return {"warmup_batches": warmup, "passes": passes, "breakdown_s": breakdown, "peak_memory": {}}


def _dataset(n_images: int, n_texts: int, digest: str = "a" * 64) -> dict[str, Any]:
    return {"n_images": n_images, "n_texts": n_texts, "source": "shapes(test)", "sha256": digest}


SHAPES_DATA = {"format": "shapes", "split": "test", "n_images": 6, "seed": 0, "image_size": 64}
T2I_RANKS = [1, 1, 2, 3, 1, 5, 1, 2, 6, 1, 1, 4, 2, 1, 3, 1, 2, 1, 1, 6, 1, 2, 1, 1, 3, 2, 1, 1, 4, 5]  # 30 texts
I2T_RANKS = [1, 2, 1, 1, 3, 1]
CIDER = [1.5, 0.2, 3.1, 0.9, float("nan"), 2.4]  # image 4's score is not finite: never in the gallery


def _recall(ranks: list[int], k: int) -> float:
    return sum(r <= k for r in ranks) / len(ranks)


def make_report(name: str = "ckpt-a", captions_data: dict[str, Any] | None = None, shift: float = 0.0,
                failed: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """A report with retrieval (CIs, latency, a bias block), captioning and, if `failed`, a failed VQA benchmark,
    and its per-sample file."""
    retrieval_metrics = {f"t2i_R@{k}": _metric(_recall(T2I_RANKS, k) + shift, (0.1, 0.99) if k == 1 else None)
                         for k in (1, 5)}
    retrieval_metrics |= {f"i2t_R@{k}": _metric(_recall(I2T_RANKS, k) + shift) for k in (1, 5)}
    retrieval_metrics["t2i_mean_rank"] = _metric(float(np.mean(T2I_RANKS)), higher=False)
    sliced = {"t2i_R@1": {"per_group": {"dark": 0.4, "light": 0.7}, "group_sizes": {"dark": 15, "light": 15},
                          "n_missing": 0, "worst_group": "dark", "worst_value": 0.4, "gap": 0.3,
                          "min_max_ratio": 4 / 7}}
    benchmarks: dict[str, Any] = {
        "ret": {"status": "complete", "task": "retrieval", "dataset": _dataset(6, 30), "timings": {"total_s": 1.0},
                "metrics": retrieval_metrics, "latency": _latency([50.0, 10.0, 12.0, 30.0], [4, 4, 4, 2]),
                "bias": {"attributes": {"background": {"sliced": sliced}}}},
        "cap": {"status": "complete", "task": "coco_captions", "dataset": _dataset(6, 30), "timings": {"total_s": 1.0},
                "metrics": {"Bleu_4": _metric(0.41, (0.35, 0.47)), "CIDEr": _metric(1.62, (1.4, 1.8))}},
    }
    config_benchmarks = [{"name": "ret", "task": "retrieval", "data": SHAPES_DATA},
                         {"name": "cap", "task": "coco_captions", "data": captions_data or SHAPES_DATA}]
    if failed:
        benchmarks["vqa"] = {"status": "failed", "task": "vqa", "error": "questions.json: not valid JSON"}
        config_benchmarks.append({"name": "vqa", "task": "vqa", "data": {"format": "shapes_vqa"}})
    report = {
        "schema_version": "1.1.0", "mmeval_version": "0.1.0", "created_at": "2026-01-02T03:04:05+00:00",
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "command": None, "config_path": None,
        "config": {"model": {"type": "reference"}, "benchmarks": config_benchmarks},
        "model": {"adapter": "reference", "name": name, "checkpoint": None, "sha256": None, "n_parameters": 1234},
        "environment": {"python": "3.11", "torch": "2", "device": "cpu", "device_name": "Test CPU", "cuda": None},
        "status": "partial" if failed else "complete", "benchmarks": benchmarks, "per_sample_file": None,
    }
    validate_report(report)  # the fixture is a report mmeval could have written
    ids = [f"test-{i:06d}" for i in range(6)]
    samples = {
        "ret": {"t2i": [{"text_index": t, "image_id": ids[t // 5], "rank": r} for t, r in enumerate(T2I_RANKS)],
                "i2t": [{"image_id": ids[i], "rank": r} for i, r in enumerate(I2T_RANKS)]},
        "cap": {"captions": [{"image_id": ids[i], "caption": f"caption {i}", "Bleu_4": 0.4, "CIDEr": c}
                             for i, c in enumerate(CIDER)]},
    }
    return report, samples


def write_run(folder: Path, report: dict[str, Any], samples: dict[str, Any] | None, stem: str = "run") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if samples is not None:
        (folder / f"{stem}.samples.json").write_text(json.dumps(samples))
        report = {**report, "per_sample_file": f"{stem}.samples.json"}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(report))
    return path


class Page(HTMLParser):
    """Every tag's attributes, the section (benchmark) each image is in, and the text per section."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.section = "header"
        self.plots: dict[str, list[str]] = {}
        self.images: dict[str, list[str]] = {}
        self.text: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attrs))
        if tag == "h2":
            self.section = attrs.get("id", "").removeprefix("b-") or attrs.get("id", "h2")
        if tag == "img" and "data-plot" in attrs:
            self.plots.setdefault(self.section, []).append(attrs["data-plot"])
        elif tag == "img":
            self.images.setdefault(self.section, []).append(attrs["src"])

    def handle_data(self, data):
        self.text[self.section] = self.text.get(self.section, "") + data


def decode(uri: str) -> Image.Image:
    kind, payload = uri.split(",", 1)
    assert kind in ("data:image/png;base64", "data:image/jpeg;base64"), kind
    return Image.open(io.BytesIO(base64.b64decode(payload)))


# -------------------------------------------------------------------------------------------- pure parts


def test_rank_curve_is_recall_at_every_k():
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 40, size=500)
    ks, recall = rank_curve(ranks)
    assert list(ks) == list(range(1, ranks.max() + 1))
    brute = [sum(1 for r in ranks if r <= k) / len(ranks) for k in ks]
    assert np.allclose(recall, brute, atol=0, rtol=0)
    assert rank_curve([])[0].size == 0


def test_best_and_worst_by_hand():
    rows = [{"image_id": i, "CIDEr": c} for i, c in enumerate([0.5, 2.0, float("nan"), 2.0, 0.1, 1.0, None])]
    best, worst = best_and_worst(rows, "CIDEr", 2)
    assert [r["image_id"] for r in best] == [1, 3]  # tie at 2.0 broken by image id
    assert [r["image_id"] for r in worst] == [4, 0]  # worst first
    best, worst = best_and_worst(rows, "CIDEr", 4)  # 5 finite scores < 2 x 4: the ranked list is split in two
    assert [r["image_id"] for r in best] == [1, 3, 5] and [r["image_id"] for r in worst] == [4, 0]


def test_thumbnail_is_a_small_jpeg_of_the_image():
    image = Image.new("RGB", (400, 200), (10, 200, 30))
    small = decode(thumbnail(image))
    assert small.format == "JPEG" and small.size == (128, 64)
    assert np.abs(np.asarray(small, dtype=int) - [10, 200, 30]).max() <= 4


def test_gallery_shows_the_rendered_scenes_and_their_references():
    rows = make_report()[1]["cap"]["captions"]
    gallery = caption_gallery(rows, SHAPES_DATA, n=2)
    assert gallery.note is None and gallery.metric == "CIDEr"
    assert [item.image_id for item in gallery.best] == ["test-000002", "test-000005"]  # CIDEr 3.1, 2.4
    assert [item.image_id for item in gallery.worst] == ["test-000001", "test-000003"]  # 0.2, 0.9
    data = load_shapes(split="test", n_images=6, seed=0, image_size=64)
    for item in gallery.best + gallery.worst:
        index = data.image_ids.index(item.image_id)
        expected = [t for t, owner in zip(data.texts, data.text_image_index) if owner == index]
        assert item.references == expected and len(expected) == 5
        shown = np.asarray(decode(item.thumbnail).convert("RGB"), dtype=float)
        truth = np.asarray(data.images.load(index)[1], dtype=float)
        assert shown.shape == truth.shape and np.abs(shown - truth).mean() < 6  # the same scene, JPEG-compressed


def test_gallery_without_images_keeps_captions_and_says_why(tmp_path):
    rows = make_report()[1]["cap"]["captions"]
    coco = {"format": "coco", "annotations": str(tmp_path / "gone.json"), "images": str(tmp_path / "gone")}
    gallery = caption_gallery(rows, coco, n=2)
    assert "images not shown" in gallery.note and "not found" in gallery.note
    assert [item.caption for item in gallery.best] == ["caption 2", "caption 5"]
    assert all(item.thumbnail is None for item in gallery.best + gallery.worst)


# ----------------------------------------------------------------------------------------------- pages


def _assert_self_contained(page: Page, text: str) -> None:
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "poster"):
            value = attrs.get(key, "")
            assert not value.lower().startswith(("http:", "https:", "//", "file:")), (tag, key, value[:80])
            if key == "href" and value:
                assert value.startswith("#"), value  # only links within the page
        if tag == "img":
            assert attrs["src"].startswith("data:image/"), attrs["src"][:80]
    assert "url(" not in text and "@import" not in text  # no CSS fetches either


def test_one_report_page(tmp_path):
    report, samples = make_report()
    out = write_html_report([write_run(tmp_path, report, samples)], tmp_path / "out" / "page.html")
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    _assert_self_contained(page, text)
    assert page.plots == {"ret": ["metrics", "curves", "latency", "bias"], "cap": ["metrics"]}
    for uri in [attrs["src"] for _, attrs in page.tags if "data-plot" in attrs]:
        figure = decode(uri)
        assert figure.format == "PNG" and 500 < figure.size[0] <= 1100
    assert len(page.images["cap"]) == 5  # one thumbnail per card: the 5 images with a finite score
    header = page.text["header"]
    for expected in ("ckpt-a", "2026-01-02T03:04:05+00:00", "Test CPU", "0.1.0", "0123456789ab"):
        assert expected in header, expected
    table = page.text["headline"]
    t2i_r1 = _recall(T2I_RANKS, 1)
    assert f"{t2i_r1:.4f} [0.1000, 0.9900]" in table  # value and CI
    assert f"{_recall(I2T_RANKS, 5):.4f}" in table and "1.6200 [1.4000, 1.8000]" in table


def test_gallery_cards_follow_the_scores(tmp_path):
    report, samples = make_report()
    text = render_html(load_runs([write_run(tmp_path, report, samples)]))
    cap = text[text.index('id="b-cap"'):]
    best = cap[cap.index('data-gallery="best"'):cap.index('data-gallery="worst"')]
    worst = cap[cap.index('data-gallery="worst"'):]
    # 5 finite CIDEr scores, fewer than 6 cards a side: the ranked list is split, best 3.1, 2.4, 1.5 and worst
    # (worst first) 0.2, 0.9
    positions = [best.find(f"test-{i:06d}") for i in (2, 5, 0)]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    positions = [worst.find(f"test-{i:06d}") for i in (1, 3)]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert "test-000004" not in cap  # its score is NaN
    assert best.count('class="card"') == 3 and worst.count('class="card"') == 2
    assert "CIDEr 3.1000" in best and "caption 2" in best


def test_failed_benchmark_and_missing_samples(tmp_path):
    report, _ = make_report(failed=True)
    text = render_html(load_runs([write_run(tmp_path, report, None)]))
    page = Page(text)
    _assert_self_contained(page, text)
    assert "vqa" not in page.plots and "questions.json: not valid JSON" in page.text["vqa"]
    assert page.plots["ret"] == ["metrics", "curves", "latency", "bias"]  # curves from the report's own R@k
    assert "no per-sample ranks" in page.text["ret"]
    assert "no per-image caption scores" in page.text["cap"] and "cap" not in page.images
    assert "per-sample curves and gallery not shown" in page.text["header"]


def test_several_reports(tmp_path):
    first, samples = make_report("ckpt-a")
    second, _ = make_report("ckpt-b", shift=-0.05, failed=True)
    third, _ = make_report("ckpt-a")  # the same model name twice: told apart by file name
    third["benchmarks"]["ret"]["dataset"]["sha256"] = "b" * 64
    paths = [write_run(tmp_path / "a", first, samples, "a1"), write_run(tmp_path / "b", second, None, "b1"),
             write_run(tmp_path / "c", third, samples, "c1")]
    runs = load_runs(paths)
    assert [run.label for run in runs] == ["ckpt-a (a1)", "ckpt-b", "ckpt-a (c1)"]
    assert len({run.colour for run in runs}) == 3
    text = render_html(runs)
    page = Page(text)
    _assert_self_contained(page, text)
    assert page.plots["ret"] == ["metrics", "curves", "latency", "bias"]  # one figure per kind, all checkpoints
    assert page.plots["cap"] == ["metrics"] and "vqa" not in page.plots
    assert "different data" in page.text["ret"]
    assert len(page.images["cap"]) == 10  # two galleries with images; ckpt-b has no per-sample file
    table = page.text["headline"]
    assert f"{_recall(T2I_RANKS, 5) - 0.05:.4f}" in table and "failed" in table and "not run" in table


def test_bench_report_with_many_metrics_and_passes(tmp_path):
    """`mmeval bench` reports: a metric per (pass, batch size) on its own scale and a latency pass each."""
    report, _ = make_report()
    keys = [f"images/fp32/bs{b}" for b in (1, 8, 32)] + [f"texts/fp32/bs{b}" for b in (1, 8, 32)]
    metrics = {f"{k}/{m}": _metric(float(i + 1), higher=m.startswith("throughput"))
               for i, k in enumerate(keys) for m in ("throughput_per_s", "p50_ms")}
    latency = _latency([5.0, 4.0, 4.5], [1, 1, 1])
    latency["passes"] = {k: dict(latency["passes"]["images"]) for k in keys}
    report["benchmarks"] = {"bench": {"status": "complete", "task": "bench", "dataset": _dataset(32, 32),
                                      "timings": {"total_s": 1.0}, "metrics": metrics, "latency": latency}}
    validate_report(report)
    text = render_html(load_runs([write_run(tmp_path, report, None)]))
    page = Page(text)
    assert page.plots == {"bench": ["metrics", "latency"]}
    assert f"{4.0:.4f}" in page.text["headline"] and "p50_ms \u2193" in page.text["headline"]
    latency_png = decode(next(a["src"] for _, a in page.tags if a.get("data-plot") == "latency"))
    assert latency_png.size[1] > 1.5 * latency_png.size[0] / 3  # 6 passes: 2 rows of 3 panels, not 1 squeezed row


# ------------------------------------------------------------------------------------------------- CLI


def _mmeval(cwd: Path, *args: Any) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}  # wide: an error line is never wrapped
    return subprocess.run([sys.executable, "-m", "mmeval", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env, check=False)


@pytest.mark.parametrize("case", ["missing", "not json", "not a report"])
def test_cli_bad_input(tmp_path, case):
    path = tmp_path / "r.json"
    if case == "not json":
        path.write_text("{oops")
    elif case == "not a report":
        path.write_text("[1, 2]")
    done = _mmeval(tmp_path, "report", path, "--html", tmp_path / "x.html")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("error: "))
    assert str(path) in line and {"missing": "not found", "not json": "not valid JSON",
                                  "not a report": "not an mmeval report"}[case] in line
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_the_page(tmp_path):
    report, samples = make_report()
    run = write_run(tmp_path, report, samples)
    done = _mmeval(tmp_path, "report", run, run, "--html", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    assert "html report:" in done.stderr
    assert Page((tmp_path / "page.html").read_text()).plots["ret"] == ["metrics", "curves", "latency", "bias"]
