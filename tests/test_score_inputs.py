"""`mmeval score` on caption files that real tools write: annotation ids are optional, image ids are not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mmeval.errors import DataError
from mmeval.tasks.coco_captions.score import score_results


def _write(tmp_path: Path, images: list, annotations: list, results: list) -> tuple[Path, Path]:
    ann, res = tmp_path / "captions.json", tmp_path / "results.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations}))
    res.write_text(json.dumps(results))
    return ann, res


def test_annotations_without_ids_are_scored(tmp_path: Path) -> None:
    ann, res = _write(tmp_path, [{"id": 1}, {"id": 2}],
                      [{"image_id": 1, "caption": "a red car"}, {"image_id": 2, "caption": "a dog on grass"}],
                      [{"image_id": 1, "caption": "a red car"}, {"image_id": 2, "caption": "a cat"}])  # fmt: skip
    outcome = score_results(ann, res, tmp_path / "out", metrics=("Bleu",), tokenizer="python")
    rows = json.loads(outcome.samples_path.read_text())["results"]["captions"]
    # image 1: an exact match; image 2: "a" of "a cat" is in the reference (precision 1/2), and the 2-word
    # caption against a 4-word reference pays the brevity penalty exp(1 - 4/2)
    assert [r["Bleu_1"] for r in rows] == pytest.approx([1.0, 0.5 * math.exp(-1.0)], abs=1e-6)


def test_image_without_id_is_one_clear_error(tmp_path: Path) -> None:
    ann, res = _write(tmp_path, [{"file_name": "x.jpg"}], [{"image_id": 1, "caption": "a"}],
                      [{"image_id": 1, "caption": "a"}])  # fmt: skip
    with pytest.raises(DataError, match=r"captions.json: images\[0\] needs an 'id'"):
        score_results(ann, res, tmp_path / "out", metrics=("Bleu",), tokenizer="python")
