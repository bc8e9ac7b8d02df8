"""Annotation faults: malformed JSON, missing keys, duplicate ids, captions / questions that are empty or not
strings, in every file format (COCO, Karpathy, CSV / JSON labels, image folders, VQAv2, multiple choice).

Each case is one exact line: the loader's message in process, `<config>: benchmarks[n].data: <message>` from
`mmeval validate`, and the same lines from `mmeval run`, which checks every benchmark's annotations before it loads
the model (exit code 2, no traceback, nothing run and no report written).
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faults.conftest import error_lines, good_images, mmeval, shown, write_coco, write_config
from mmeval.config.run import validate_mapping
from mmeval.data.classification import load_labelled, resolve_classes
from mmeval.data.loaders import load_retrieval_data
from mmeval.errors import DataError
from mmeval.tasks.vqa.run import load_questions

COCO = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}, {"id": 2, "image_id": 2, "caption": "a dog"},
                        {"id": 3, "image_id": 2, "caption": "two dogs"}]}
KARPATHY = {"images": [{"filename": "a.jpg", "split": "test", "cocoid": 5, "sentences": [{"raw": "a cat"}]},
                       {"filename": "b.jpg", "split": "test", "cocoid": 6, "sentences": [{"raw": "a dog"}]}]}
QUESTIONS = {"questions": [{"image_id": 1, "question": "what is it?", "question_id": 10},
                           {"image_id": 1, "question": "how many?", "question_id": 11}]}
ANSWERS = {"annotations": [{"question_id": 10, "answer_type": "other", "answers": [{"answer": "cat"}] * 10},
                           {"question_id": 11, "answer_type": "number", "answers": [{"answer": "2"}] * 10}]}
MC = [{"image": "a.jpg", "question": "which?", "options": ["cat", "dog"], "answer": "A"},
      {"image": "b.jpg", "question": "colour?", "options": ["red", "blue"], "answer": "B"}]


def edited(base: Any, edit) -> Any:
    doc = copy.deepcopy(base)
    edit(doc)
    return doc


def json_error(text: str) -> str:
    """The standard library's own message for malformed JSON (what the error line quotes)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} is valid JSON")


@dataclass
class Case:
    """One broken annotation file: the benchmark reading it and the message, with {file} for the file's path."""

    task: str
    format: str
    content: Any  # written as JSON, or as it is when str / bytes
    expected: str
    suffix: str = ".json"
    fields: dict[str, Any] | None = None  # data fields besides the file (images: the case's folder)


CASES: dict[str, Case] = {
    # COCO captions
    "coco-malformed": Case("retrieval", "coco", '{"images": [{"id": 1,}',
                           "{file}: not valid JSON (" + json_error('{"images": [{"id": 1,}') + ")"),
    "coco-empty-file": Case("retrieval", "coco", "", "{file}: not valid JSON (" + json_error("") + ")"),
    "coco-not-utf8": Case("retrieval", "coco", b'{"images": "\xff"}', "{file}: not valid JSON ('utf-8' codec can't "
                          "decode byte 0xff in position 12: invalid start byte)"),
    "coco-no-annotations": Case("retrieval", "coco", {"images": COCO["images"]},
                                "{file}: expected a list under 'annotations' (COCO captions format)"),
    "coco-no-file-name": Case("retrieval", "coco", edited(COCO, lambda d: d["images"][1].pop("file_name")),
                              "{file}: images[1] needs 'id' and 'file_name'"),
    "coco-no-caption": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][2].pop("caption")),
                            "{file}: annotations[2] needs 'image_id' and 'caption'"),
    "coco-duplicate-ids": Case("retrieval", "coco", edited(COCO, lambda d: d["images"][1].update(id=1)),
                               "{file}: duplicate image ids: [1]"),
    "coco-float-id": Case("retrieval", "coco", edited(COCO, lambda d: d["images"][0].update(id=1.5)),
                          "{file}: images[0].id must be an integer or a string, got 1.5"),
    "coco-unknown-image": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][0].update(image_id=9)),
                               "{file}: captions refer to image ids missing from 'images': [9]"),
    "coco-empty-caption": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][2].update(caption="")),
                               "{file}: annotations[2].caption is empty (image_id 2)"),
    "coco-blank-caption": Case("coco_captions", "coco",
                               edited(COCO, lambda d: d["annotations"][1].update(caption=" \t")),
                               "{file}: annotations[1].caption is empty (image_id 2)"),
    "coco-caption-int": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][0].update(caption=7)),
                             "{file}: annotations[0].caption must be a string, got int"),
    "coco-caption-null": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][0].update(caption=None)),
                              "{file}: annotations[0].caption must be a string, got NoneType"),
    "coco-caption-list": Case("retrieval", "coco", edited(COCO, lambda d: d["annotations"][0].update(caption=["a"])),
                              "{file}: annotations[0].caption must be a string, got list"),
    # Karpathy splits
    "karpathy-duplicate-ids": Case("retrieval", "karpathy", edited(KARPATHY, lambda d: d["images"][1].update(cocoid=5)),
                                   "{file}: images[1]: duplicate image id 5 (also images[0], split 'test')"),
    "karpathy-empty-caption": Case("retrieval", "karpathy",
                                   edited(KARPATHY, lambda d: d["images"][1]["sentences"].append({"raw": ""})),
                                   "{file}: images[1].sentences[1].raw is empty (image id 6)"),
    "karpathy-caption-not-string": Case("retrieval", "karpathy",
                                        edited(KARPATHY, lambda d: d["images"][0]["sentences"][0].update(raw=3)),
                                        "{file}: images[0].sentences[0] needs a string 'raw'"),
    "karpathy-no-sentences": Case("retrieval", "karpathy", edited(KARPATHY, lambda d: d["images"][0].pop("sentences")),
                                  "{file}: images[0] needs 'filename', 'split' and 'sentences'"),
    # class labels: JSON and CSV files
    "labels-malformed": Case("zeroshot_classification", "json", '[{"image": "a.jpg"', "{file}: not valid JSON ("
                             + json_error('[{"image": "a.jpg"') + ")"),
    "labels-no-label": Case("zeroshot_classification", "json", [{"image": "a.jpg", "label": "cat"}, {"image": "b.jpg"}],
                            "{file} row 1: no 'label' value (data.label_column; columns: image)"),
    "labels-float": Case("zeroshot_classification", "json", [{"image": "a.jpg", "label": 1.5}],
                         "{file} row 0: label 1.5 must be a class name, an integer index into classnames, or "
                         "(multilabel) a list of them"),
    "labels-image-not-string": Case("zeroshot_classification", "json", [{"image": 3, "label": "cat"}],
                                    "{file} row 0: 'image' must be an image file name (a string), got 3"),
    "labels-duplicate-image": Case("zeroshot_classification", "csv", "image,label\na.jpg,cat\nb.jpg,dog\na.jpg,dog\n",
                                   "{file} row 4: image 'a.jpg' is also in row 2; give one row per image (several "
                                   "labels: multilabel: true with a list, or a|b in a CSV cell)", suffix=".csv"),
    "labels-empty-label": Case("zeroshot_classification", "csv", "image,label\na.jpg,cat\nb.jpg,\n",
                               "{file} row 3: no 'label' value (data.label_column; columns: image, label)",
                               suffix=".csv"),
    # VQAv2
    "vqa-malformed": Case("vqa", "vqav2", '{"questions": [', "{file}: not valid JSON ("
                          + json_error('{"questions": [') + ")"),
    "vqa-duplicate-question-ids": Case("vqa", "vqav2",
                                       edited(QUESTIONS, lambda d: d["questions"][1].update(question_id=10)),
                                       "{file}: question_id 10 appears more than once"),
    "vqa-empty-question": Case("vqa", "vqav2", edited(QUESTIONS, lambda d: d["questions"][1].update(question=" ")),
                               "{file}: questions[1].question is empty (question_id 11)"),
    "vqa-question-not-string": Case("vqa", "vqav2", edited(QUESTIONS, lambda d: d["questions"][0].update(question=5)),
                                    "{file}: questions[0] needs 'image_id', 'question_id' and a string 'question'"),
    "vqa-no-question-id": Case("vqa", "vqav2", edited(QUESTIONS, lambda d: d["questions"][0].pop("question_id")),
                               "{file}: questions[0] needs 'image_id', 'question_id' and a string 'question'"),
    "vqa-list-image-id": Case("vqa", "vqav2", edited(QUESTIONS, lambda d: d["questions"][0].update(image_id=[1])),
                              "{file}: questions[0].image_id must be an integer or a string, got [1]"),
    "vqa-answers-duplicate": Case("vqa", "vqav2", QUESTIONS, "{answers}: annotations[1].question_id 10 appears more "
                                  "than once", fields={"annotations": edited(ANSWERS, lambda d: d["annotations"][1]
                                                                              .update(question_id=10))}),
    "vqa-answers-missing-key": Case("vqa", "vqav2", QUESTIONS, "{answers}: annotations[0] needs 'question_id' and "
                                    "'answers'", fields={"annotations": edited(ANSWERS, lambda d: d["annotations"][0]
                                                                               .pop("answers"))}),
    "vqa-answer-type-not-string": Case("vqa", "vqav2", QUESTIONS, "{answers}: annotations[0].answer_type must be a "
                                       "string (yes/no, number, other), got int",
                                       fields={"annotations": edited(ANSWERS, lambda d: d["annotations"][0]
                                                                     .update(answer_type=3))}),
    # multiple choice (mmeval validate only: the reference model does not take multiple-choice prompts)
    "mc-duplicate-question-ids": Case("multiple_choice", "mc", [dict(row, question_id=1) for row in MC],
                                      "{file}: question_id 1 appears more than once (ids must be unique)"),
    "mc-empty-question": Case("multiple_choice", "mc", edited(MC, lambda d: d[1].update(question="")),
                              "{file}: question_id 1: needs a non-empty string 'question'"),
    "mc-list-question-id": Case("multiple_choice", "mc", edited(MC, lambda d: d[0].update(question_id=[1])),
                                "{file}: row 0: question_id must be an integer or a string, got [1]"),
}
RUN_CASES = [name for name, case in CASES.items() if case.task != "multiple_choice"]


def _write(path: Path, content: Any) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _benchmark(root: Path, name: str, case: Case) -> tuple[dict[str, Any], str]:
    """The case's files under root/name, its benchmark config and its expected message."""
    folder = root / name
    (folder / "images").mkdir(parents=True)
    file = _write(folder / f"ann{case.suffix}", case.content)
    data: dict[str, Any] = {"format": case.format}
    answers = None
    if case.format == "vqav2":
        data.update(questions=str(file), images=str(folder / "images"))
        answers = _write(folder / "answers.json", (case.fields or {}).get("annotations", ANSWERS))
        data["annotations"] = str(answers)
    else:
        data.update(annotations=str(file), images=str(folder / "images"))
    bench = {"name": name, "task": case.task, "data": data}
    if case.task == "zeroshot_classification":
        bench["classnames"] = ["cat", "dog"]
    return bench, case.expected.format(file=file, answers=answers)


def _load_as_task(bench) -> None:
    """Load a benchmark's data as its task does."""
    if bench.task == "zeroshot_classification":
        resolve_classes(load_labelled(bench.data, bench.multilabel), bench.classnames, bench.multilabel)
    elif bench.task in ("vqa", "multiple_choice"):
        load_questions(bench.data)
    else:
        load_retrieval_data(bench.data)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("annotation-faults")
    built = {name: _benchmark(root, name, case) for name, case in CASES.items()}
    good = write_coco(root / "good", {"a.jpg": good_images()["rgb.jpg"], "b.jpg": good_images()["gray.jpg"]})
    good_bench = {"name": "good", "task": "retrieval",
                  "data": {"format": "coco", "annotations": str(good), "images": str(root / "good" / "images")}}
    validate = write_config(root, "validate", [bench for bench, _ in built.values()])
    run = write_config(root, "run", [good_bench, *(built[name][0] for name in RUN_CASES)])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {"validate": pool.submit(mmeval, root, "validate", "--config", validate),
                   "run": pool.submit(mmeval, root, "run", "--config", run)}
        done = {name: future.result() for name, future in futures.items()}
    return {"root": root, "built": built, "validate_config": validate, **done}


@pytest.mark.parametrize("name", list(CASES))
def test_loader_raises_one_exact_line(world, name: str) -> None:
    bench, expected = world["built"][name]
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench]}).benchmarks[0]
    with pytest.raises(DataError) as caught:
        _load_as_task(cfg)
    assert str(caught.value) == expected


def test_validate_reports_every_broken_file_at_once(world) -> None:
    done = world["validate"]
    assert done.returncode == 2, shown(done)
    config = world["validate_config"]
    assert error_lines(done) == [f"{config}: benchmarks[{n}].data: {expected}"
                                 for n, (_, expected) in enumerate(world["built"].values())], shown(done)


def test_run_reports_each_broken_file_before_loading_the_model(world) -> None:
    # As `validate` does, before any model work: the good benchmark is benchmarks[0], the broken ones follow.
    done = world["run"]
    assert done.returncode == 2, shown(done)
    config = world["root"] / "run.yaml"
    assert error_lines(done) == [f"{config}: benchmarks[{n}].data: {world['built'][name][1]}"
                                 for n, name in enumerate(RUN_CASES, start=1)], shown(done)
    assert not (world["root"] / "reports-run").exists()  # nothing ran, so there is no report


def test_coco_annotation_ids_are_not_needed(tmp_path: Path) -> None:
    # pycocotools indexed captions by annotation id and crashed (KeyError) without one; mmeval does not use them.
    raw = edited(COCO, lambda d: [ann.pop("id") for ann in d["annotations"]])
    path = _write(tmp_path / "ann.json", raw)
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [
        {"name": "x", "task": "retrieval", "data": {"format": "coco", "annotations": str(path),
                                                     "images": str(tmp_path)}}]}).benchmarks[0]
    data = load_retrieval_data(cfg.data)
    assert (data.image_ids, data.texts, data.text_image_index) == ([1, 2], ["a cat", "a dog", "two dogs"], [0, 1, 1])


@pytest.mark.parametrize("column, rows, expected", [
    ("caption", {"caption": [["a cat"], ["a dog", " "]], "image_id": [1, 2]}, "[row 1].caption: empty caption"),
    ("image_id", {"caption": ["a cat", "a dog", "a cow"], "image_id": [1, 3, 3]},
     "[row 2].image_id: repeats image id 3 (one row per image, its captions as a list)"),
])
def test_hf_captions_and_ids(tmp_path: Path, column: str, rows: dict[str, list], expected: str) -> None:
    import datasets

    folder = tmp_path / "hf"
    datasets.Dataset.from_dict({"image": [b"x"] * len(rows["caption"]), **rows}).save_to_disk(str(folder))
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [
        {"name": "x", "task": "retrieval", "data": {"format": "hf", "path": str(folder),
                                                     "image_id_column": "image_id"}}]}).benchmarks[0]
    with pytest.raises(DataError) as caught:
        load_retrieval_data(cfg.data)
    assert str(caught.value) == f"{folder}{expected}"
