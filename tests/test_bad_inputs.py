"""Unreadable images (#14 item 5): a few warnings then a count, one summary line, the full list in the report,
and `data.max_bad_fraction`, which fails the benchmark past a threshold while the others still run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import make_coco_dataset
from test_runner import CountingEncoder, bench_config, runtime

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import evaluate_model
from mmeval.errors import ConfigError, DataError, TooManyBadInputs
from mmeval.io.bad_inputs import SHOWN, bad_fraction_problem, record_bad, skipped_line
from mmeval.reporting.report import new_report, validate_report
from mmeval.tasks.retrieval import run as retrieval

N_IMAGES, N_BAD = 20, 15
BAD_IDS = list(range(3, 3 + N_BAD))  # image ids 3..17 (the files are COCO_val2014_{id:012d}.jpg)


def _image(annotations: Path, image_id: int) -> Path:
    return annotations.parent / "val2014" / f"COCO_val2014_{image_id:012d}.jpg"


def _dataset(root: Path, damage: str) -> Path:
    """20 images, 15 of them deleted (`missing`) or overwritten with bytes that are no image (`corrupt`)."""
    annotations = make_coco_dataset(root, n_images=N_IMAGES, seed=4)
    for image_id in BAD_IDS:
        if damage == "missing":
            _image(annotations, image_id).unlink()
        else:
            _image(annotations, image_id).write_bytes(b"not an image at all" * 10)
    return annotations


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


def test_record_bad_logs_the_first_few_then_only_counts(caplog: pytest.LogCaptureFixture) -> None:
    bad: list[tuple[int, str]] = []
    with caplog.at_level(logging.WARNING):
        for index in range(N_BAD):
            record_bad(bad, index, f"img{index}.jpg: cannot read image", "skip")
    shown = _warnings(caplog, "mmeval.io.bad_inputs")
    assert SHOWN == 5
    assert shown[:5] == [f"skipping image: img{i}.jpg: cannot read image" for i in range(5)]
    assert len(shown) == 6 and "counted, not shown one by one" in shown[5]
    assert bad == [(i, f"img{i}.jpg: cannot read image") for i in range(N_BAD)]  # every one is kept
    with pytest.raises(DataError, match=r"^x\.jpg: broken \(set data\.on_bad_image: skip to skip such images\)$"):
        record_bad([], 0, "x.jpg: broken", "fail")


def test_summary_line_and_threshold_by_hand() -> None:
    assert skipped_line(15, 20) == "skipped 15 of 20 images (75.0%)"
    assert skipped_line(9_591, 9_600) == "skipped 9,591 of 9,600 images (99.9%)"
    assert bad_fraction_problem(15, 20, 0.5) == ("15 of 20 images unreadable (75.0%): the fraction 0.75 is over "
                                                 "data.max_bad_fraction 0.5")
    assert bad_fraction_problem(15, 20, 0.8) is None
    assert bad_fraction_problem(10, 20, 0.5) is None  # exactly the threshold is allowed
    assert bad_fraction_problem(11, 20, 0.5) is not None
    assert bad_fraction_problem(1, 9_600, 0.0) is not None  # 0: no unreadable image at all
    assert bad_fraction_problem(20, 20, None) is None  # no limit set


def test_missing_images_are_warned_capped_summarised_and_all_listed(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    annotations = _dataset(tmp_path, "missing")
    model = CountingEncoder()
    with caplog.at_level(logging.WARNING):
        result = retrieval.run(model, bench_config(annotations, on_bad_image="skip"), runtime(batch_size=4))
    per_image = _warnings(caplog, "mmeval.io.bad_inputs")
    assert len(per_image) == SHOWN + 1  # five files named, then one line saying the rest are counted
    assert all(_image(annotations, i).name in line for i, line in zip(BAD_IDS[:SHOWN], per_image))
    assert _warnings(caplog, "mmeval.tasks.base") == [
        "b: skipped 15 of 20 images (75.0%); the report lists each under dataset.skipped_images"]
    before = _warnings(caplog, "mmeval.data.image_files")  # the check before the pass: one line
    assert len(before) == 1 and before[0].startswith("15 of 20 image file(s) missing (75.0%), e.g. ")
    assert model.images_seen == N_IMAGES - N_BAD
    assert result.dataset["n_images"] == 5 and result.dataset["n_skipped_images"] == N_BAD
    assert [row["image_id"] for row in result.dataset["skipped_images"]] == BAD_IDS
    assert all("cannot read image" in row["reason"] for row in result.dataset["skipped_images"])


def test_max_bad_fraction_fails_missing_files_before_any_image_is_encoded(tmp_path: Path) -> None:
    annotations = _dataset(tmp_path, "missing")
    model = CountingEncoder()
    with pytest.raises(DataError, match=r"15 of 20 image file\(s\) missing \(75\.0%\), e\.g\. .*: the fraction 0\.75 "
                                        r"is over data\.max_bad_fraction 0\.5"):
        retrieval.run(model, bench_config(annotations, on_bad_image="skip", max_bad_fraction=0.5), runtime())
    assert model.images_seen == 0
    result = retrieval.run(model, bench_config(annotations, on_bad_image="skip", max_bad_fraction=0.8), runtime())
    assert result.dataset["n_skipped_images"] == N_BAD and model.images_seen == 5


def test_max_bad_fraction_fails_after_the_pass_for_corrupt_files(tmp_path: Path) -> None:
    annotations = _dataset(tmp_path, "corrupt")
    with pytest.raises(TooManyBadInputs, match=r"15 of 20 images unreadable \(75\.0%\): the fraction 0\.75 is over "
                                               r"data\.max_bad_fraction 0\.5") as caught:
        retrieval.run(CountingEncoder(), bench_config(annotations, on_bad_image="skip", max_bad_fraction=0.5),
                      runtime())
    assert [row["image_id"] for row in caught.value.dataset["skipped_images"]] == BAD_IDS
    assert caught.value.dataset["n_images"] == 5 and caught.value.dataset["n_skipped_images"] == N_BAD
    result = retrieval.run(CountingEncoder(), bench_config(annotations, on_bad_image="skip", max_bad_fraction=0.8),
                           runtime())
    assert result.dataset["n_skipped_images"] == N_BAD
    assert all("cannot decode image" in row["reason"] for row in result.dataset["skipped_images"])


def test_a_benchmark_over_the_threshold_fails_alone_and_its_report_entry_keeps_the_list(tmp_path: Path) -> None:
    corrupt = _dataset(tmp_path / "corrupt", "corrupt")
    clean = make_coco_dataset(tmp_path / "clean", n_images=8, seed=5)

    def data(annotations: Path, **extra) -> dict:
        return {"format": "coco", "annotations": str(annotations), "images": str(annotations.parent / "val2014"),
                **extra}

    cfg = validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [
            {"name": "strict", "task": "retrieval", "data": data(corrupt, on_bad_image="skip", max_bad_fraction=0.5)},
            {"name": "lenient", "task": "retrieval", "data": data(corrupt, on_bad_image="skip", max_bad_fraction=0.8)},
            {"name": "clean", "task": "retrieval", "data": data(clean)},
        ],
        "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
        "output": {"dir": str(tmp_path / "reports"), "name": "run", "per_sample": False},
    })
    model, ctx = CountingEncoder(), runtime()
    outcome = evaluate_model(cfg, model, ctx.runtime, new_report(cfg.model_dump(mode="json"), model.info, ctx.runtime,
                                                                 None), "run")  # fmt: skip
    report = json.loads(outcome.report_path.read_text())
    validate_report(report)
    strict = report["benchmarks"]["strict"]
    assert strict["status"] == "failed" and "the fraction 0.75 is over data.max_bad_fraction 0.5" in strict["error"]
    assert [row["image_id"] for row in strict["dataset"]["skipped_images"]] == BAD_IDS
    assert report["benchmarks"]["lenient"]["status"] == "complete"
    assert report["benchmarks"]["lenient"]["dataset"]["n_skipped_images"] == N_BAD
    assert report["benchmarks"]["clean"]["status"] == "complete"
    assert report["status"] == "partial" and len(outcome.errors) == 1


@pytest.mark.parametrize(("data", "expected"), [
    ({"on_bad_image": "skip", "max_bad_fraction": 1.5}, "max_bad_fraction: Input should be less than or equal to 1"),
    ({"on_bad_image": "skip", "max_bad_fraction": -0.1},
     "max_bad_fraction: Input should be greater than or equal to 0"),
    ({"on_bad_image": "skip", "max_bad_fraction": float("nan")}, "max_bad_fraction: Input should be a finite number"),
    ({"max_bad_fraction": 0.1}, "max_bad_fraction: applies only with on_bad_image: skip"),
    ({"on_bad_image": "fail", "max_bad_fraction": 0.1}, "max_bad_fraction: applies only with on_bad_image: skip"),
])
def test_max_bad_fraction_is_checked_in_the_config(tmp_path: Path, data: dict, expected: str) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=2)
    with pytest.raises(ConfigError) as caught:
        bench_config(annotations, **data)
    assert any(f"benchmarks[0].data.{expected}" in problem for problem in caught.value.problems), caught.value.problems


def test_max_bad_fraction_bounds_are_accepted(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=2)
    assert bench_config(annotations, on_bad_image="skip", max_bad_fraction=0).data.max_bad_fraction == 0
    assert bench_config(annotations, on_bad_image="skip", max_bad_fraction=1).data.max_bad_fraction == 1
    assert bench_config(annotations).data.max_bad_fraction is None


def test_no_readable_image_fails_and_keeps_the_list(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=3)
    for image_id in (1, 2, 3):
        _image(annotations, image_id).write_bytes(b"")
    with pytest.raises(TooManyBadInputs, match=r"ann\.json: no image could be read \(3 of 3 unreadable\)$") as caught:
        retrieval.run(CountingEncoder(), bench_config(annotations, on_bad_image="skip"), runtime())
    assert [row["image_id"] for row in caught.value.dataset["skipped_images"]] == [1, 2, 3]
