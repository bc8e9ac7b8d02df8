"""VQA: the official accuracy and answer normalisation, the VQAv2 / HF loaders and the benchmark.
(The end-to-end `mmeval run` of both question tasks is in test_multiple_choice.py.)"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SmallPixels
from PIL import Image

from mmeval.config.run import RuntimeConfig, validate_mapping
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import ConfigError, DataError, MmevalError
from mmeval.io.images import FileImages
from mmeval.metrics.vqa import normalize_answer, score_vqa, vqa_accuracy
from mmeval.models.base import Answerer, ModelInfo, capabilities_of
from mmeval.reporting.report import write_json_no_clobber
from mmeval.tasks.base import RunContext
from mmeval.tasks.vqa import run as vqa

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}

# --- the metric ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (5, 1.0), (10, 1.0)])
def test_accuracy_for_k_agreeing_annotators(k: int, expected: float) -> None:
    assert vqa_accuracy("2", ["2"] * k + ["3"] * (10 - k)) == pytest.approx(expected, abs=1e-12)


def _reference_accuracy(prediction: str, answers: list[str]) -> float:
    """The rule written out independently: every 9-annotator subset, min(1, matches / 3), averaged."""
    subsets = list(itertools.combinations(range(len(answers)), len(answers) - 1))
    return float(np.mean([min(1.0, sum(answers[i] == prediction for i in subset) / 3) for subset in subsets]))


def test_accuracy_equals_the_subset_definition_on_random_cases() -> None:
    rng = random.Random(0)
    words = ["yes", "no", "2", "3", "red", "blue"]
    for _ in range(300):
        answers = [rng.choice(words) for _ in range(10)]
        prediction = rng.choice(words)
        assert vqa_accuracy(prediction, answers) == pytest.approx(_reference_accuracy(prediction, answers), abs=1e-12)


@pytest.mark.parametrize(("raw", "normalised"), [
    ("Two", "2"), ("ten", "10"), ("none", "0"),              # number words -> digits
    ("the dog.", "dog"), ("an apple", "apple"), ("A cat", "cat"),  # articles, trailing period
    ("dont", "don't"), ("isnt", "isn't"), ("whats", "what's"),     # contractions restored
    ("1,000", "1000"),                                       # a comma between digits: all punctuation deleted
    ("yes, it is", "yes it is"),                             # a mark next to a space is deleted
    ("black/white", "black white"), ("hot-dog", "hot dog"),  # otherwise it becomes a space
    ("3.5", "3.5"), ("3.", "3"),                             # periods go unless a digit follows
    ("  Red\tcar\n", "red car"),                             # tabs, newlines, ends, case
])
def test_normalisation_follows_the_official_rules(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


@pytest.mark.parametrize(("prediction", "answers"), [
    ("Two", ["2"] * 4 + ["3"] * 6),
    ("the dog.", ["dog"] * 5 + ["puppy"] * 5),
    ("dont", ["don't"] * 4 + ["no"] * 6),
    ("1,000", ["1000"] * 4 + ["100"] * 6),
])
def test_normalised_predictions_score_when_annotators_disagree(prediction: str, answers: list[str]) -> None:
    assert vqa_accuracy(prediction, answers) == 1.0


# The fixture that separates the three published normalisations. Expected values worked out by hand from
# GT-Vision-Lab/VQA vqaEval.py: `eval_server` = the file before commit a013f00 (Mar 2021, = Cloud-CV's server),
# `gtvision_2021` = the file since. Comparison is exact string equality in both.
SEPARATING_FIXTURE = [
    # prediction, human answers,                 eval_server, gtvision_2021, normalise_both
    ("two", ["2"] * 10,                          1.0, 0.0, 1.0),  # unanimous: 2021 normalises nothing
    ("Yes.", ["yes"] * 10,                       1.0, 0.0, 1.0),  # server: prediction -> "yes" always
    ("the dog", ["the dog"] * 10,                0.0, 1.0, 1.0),  # server: "dog" vs unnormalised humans
    ("dog", ["the dog"] * 4 + ["cat"] * 6,       0.0, 1.0, 1.0),  # server: humans only lose punctuation
    ("yes", ["Yes"] * 4 + ["no"] * 6,            0.0, 1.0, 1.0),  # server: humans keep their case
    ("Red", ["red"] * 10,                        1.0, 0.0, 1.0),  # 2021: no lower-casing when unanimous
    ("two", ["2"] * 4 + ["3"] * 6,               1.0, 1.0, 1.0),
    ("yes, it is", ["yes it is"] * 2 + ["no"] * 8, 0.6, 0.6, 0.6),
    (" 2 ", [" 2"] * 10,                         0.0, 1.0, 1.0),  # server never strips human answers
]


@pytest.mark.parametrize(("prediction", "answers", "server", "gtvision", "both"), SEPARATING_FIXTURE)
def test_three_normalisations_match_the_published_scripts(prediction: str, answers: list[str], server: float,
                                                          gtvision: float, both: float) -> None:
    assert vqa_accuracy(prediction, answers) == pytest.approx(server)  # the default is the server's
    assert vqa_accuracy(prediction, answers, "eval_server") == pytest.approx(server)
    assert vqa_accuracy(prediction, answers, "gtvision_2021") == pytest.approx(gtvision)
    assert vqa_accuracy(prediction, answers, "normalise_both") == pytest.approx(both)


def test_an_unknown_normalisation_is_refused() -> None:
    with pytest.raises(ValueError, match="eval_server"):
        vqa_accuracy("a", ["a"] * 10, "lenient")  # type: ignore[arg-type]


def test_scores_by_answer_type() -> None:
    scores, per_question = score_vqa(["yes", "2", "red"], [["yes"] * 10, ["3"] * 10, ["red"] * 2 + ["x"] * 8],
                                     ["yes/no", "number", "other"])
    assert per_question == pytest.approx([1.0, 0.0, 0.6])
    assert scores == pytest.approx({"vqa_accuracy": 1.6 / 3, "vqa_accuracy_yes/no": 1.0,
                                    "vqa_accuracy_number": 0.0, "vqa_accuracy_other": 0.6})


# --- data ---------------------------------------------------------------------------------------------------


def make_vqa_dataset(root: Path) -> tuple[Path, Path, Path]:
    """Three solid-colour COCO-named images, three questions each (other, number, yes/no), 10 answers each."""
    images = root / "val2014"
    images.mkdir(parents=True, exist_ok=True)
    questions, annotations = [], []
    numbers = {1: ["2"] * 4 + ["3"] * 6, 2: ["2"] * 2 + ["4"] * 8, 3: ["3"] * 10}
    for image_id, colour in enumerate(COLOURS, start=1):
        Image.new("RGB", (24, 20), COLOURS[colour]).save(images / f"COCO_val2014_{image_id:012d}.png")
        for n, (text, answers, kind) in enumerate([
            ("What colour is the picture?", [colour] * 10, "other"),
            ("How many squares are there?", numbers[image_id], "number"),
            ("Is it red?", ["yes" if colour == "red" else "no"] * 10, "yes/no"),
        ]):
            qid = image_id * 10 + n
            questions.append({"image_id": image_id, "question": text, "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "answer_type": kind,
                                "question_type": text.split()[0].lower(), "multiple_choice_answer": answers[0],
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                            for i, a in enumerate(answers)]})
    random.Random(0).shuffle(questions)  # questions of one image need not be adjacent
    (root / "questions.json").write_text(json.dumps({"questions": questions}))
    (root / "annotations.json").write_text(json.dumps({"annotations": annotations}))
    return root / "questions.json", root / "annotations.json", images


EXPECTED_NUMBER = (1.0 + 0.6 + 0.0) / 3  # "two" against the three number questions above
EXPECTED_OVERALL = (3 + 3 * EXPECTED_NUMBER + 3) / 9


def colour_answer(colour: str, question: str) -> str:
    """The test answerers' rule. VQA: the colour, "two", yes/no. Multiple choice: the colour option's letter,
    else "maybe". (Also the source of the plugin answerer in test_multiple_choice.py.)"""
    options = dict(line.split(". ", 1) for line in question.splitlines() if line[1:3] == ". ")
    if options:
        letter = [k for k, v in options.items() if v == colour]
        return f"The answer is {letter[0]}." if letter else "maybe"
    if "colour" in question:
        return colour.capitalize()
    if "How many" in question:
        return "two"
    return "yes" if colour == "red" else "no"


class ColourAnswerer:
    """Answers from the image's dominant channel; counts its calls and the prompts it saw."""

    def __init__(self):
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(8)
        self.info = ModelInfo("test", "colour-answerer", None, None, 0)
        self.prompts: list[str] = []
        self.rows: list[int] = []

    def answer(self, pixels: torch.Tensor, questions: list[str], settings) -> list[str]:
        self.prompts += questions
        self.rows.append(len(questions))
        colours = [list(COLOURS)[int(p.mean((1, 2)).argmax())] for p in pixels]
        return [colour_answer(colour, question) for colour, question in zip(colours, questions)]


def vqa_config(tmp_path: Path, data: dict, **bench) -> object:
    return validate_mapping({
        "model": {"type": "plugin", "entry": "x:y"},
        "benchmarks": [{"name": "vqa", "task": "vqa", "data": data, **bench}],
        "output": {"dir": str(tmp_path / "out")},
    })


def vqav2_data(tmp_path: Path, **extra) -> dict:
    questions, annotations, images = make_vqa_dataset(tmp_path / "vqa")
    return {"format": "vqav2", "questions": str(questions), "annotations": str(annotations), "images": str(images),
            "image_pattern": "COCO_val2014_{image_id:012d}.png", **extra}


def context(tmp_path: Path, batch_size: int = 4) -> RunContext:
    runtime = resolve_runtime(RuntimeConfig(device="cpu", batch_size=batch_size, num_workers=0))
    return RunContext(runtime, save_artifact=lambda kind, payload: write_json_no_clobber(
        payload, tmp_path, "run.vqa", f".{kind}.json"))


def test_vqa_benchmark_scores_and_decodes_each_image_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real_load = FileImages.load
    monkeypatch.setattr(FileImages, "load", lambda self, i: (loads.append(i), real_load(self, i))[1])
    model = ColourAnswerer()
    assert isinstance(model, Answerer) and capabilities_of(model) == {"answerer"}
    cfg = vqa_config(tmp_path, vqav2_data(tmp_path))
    result = vqa.run(model, cfg.benchmarks[0], context(tmp_path, batch_size=4))

    assert sorted(loads) == [0, 1, 2]  # 3 images, 9 questions: every image read once
    assert model.rows == [4, 4, 1]  # question rows per model call, at most batch_size
    assert result.metrics["vqa_accuracy"]["value"] == pytest.approx(EXPECTED_OVERALL)
    assert result.metrics["vqa_accuracy_number"]["value"] == pytest.approx(EXPECTED_NUMBER)
    assert result.metrics["vqa_accuracy_yes/no"]["value"] == 1.0 and result.metrics["vqa_accuracy_other"]["value"] == 1.0
    assert all(m["higher_is_better"] for m in result.metrics.values())
    assert all(p.endswith("\nAnswer the question using a single word or phrase.") for p in model.prompts)
    saved = json.loads((tmp_path / result.extra["predictions_file"]).read_text())
    assert [set(row) for row in saved] == [{"question_id", "answer"}] * 9  # the official results format
    assert {row["question_id"]: row["answer"] for row in saved}[11] == "two"
    assert result.dataset["n_questions"] == 9 and result.dataset["n_images"] == 3
    assert {row["question_id"]: row["accuracy"] for row in result.per_sample["answers"]}[21] == pytest.approx(0.6)


def test_custom_prompt_template_and_its_placeholder(tmp_path: Path) -> None:
    model = ColourAnswerer()
    cfg = vqa_config(tmp_path, vqav2_data(tmp_path), prompt_template='Q: {question} {"json": 1} A:')
    vqa.run(model, cfg.benchmarks[0], context(tmp_path))
    assert 'Q: Is it red? {"json": 1} A:' in model.prompts
    cfg = vqa_config(tmp_path, vqav2_data(tmp_path), prompt_template="Answer briefly.")
    with pytest.raises(MmevalError, match=r"prompt_template: must contain \{question\}"):
        vqa.run(model, cfg.benchmarks[0], context(tmp_path))
    assert len(model.prompts) == 9  # refused before any question was asked


def test_missing_image_fails_or_is_skipped_with_its_questions(tmp_path: Path) -> None:
    data = vqav2_data(tmp_path)
    missing = Path(data["images"]) / "COCO_val2014_000000000002.png"
    missing.unlink()
    with pytest.raises(DataError, match=f"{missing}: cannot read image .*on_bad_image: skip"):
        vqa.run(ColourAnswerer(), vqa_config(tmp_path, data).benchmarks[0], context(tmp_path))

    result = vqa.run(ColourAnswerer(), vqa_config(tmp_path, {**data, "on_bad_image": "skip"}).benchmarks[0],
                     context(tmp_path))
    assert result.dataset["n_skipped_images"] == 1 and result.dataset["skipped_images"][0]["image_id"] == 2
    assert result.dataset["n_skipped_questions"] == 3 and result.dataset["n_texts"] == 6
    assert result.metrics["vqa_accuracy_number"]["value"] == pytest.approx((1.0 + 0.0) / 2)
    saved = json.loads((tmp_path / result.extra["predictions_file"]).read_text())
    assert sorted(row["question_id"] for row in saved) == [10, 11, 12, 30, 31, 32]


def test_answers_survive_a_scoring_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise MmevalError("scoring broke")

    monkeypatch.setattr(vqa, "score_vqa", broken)
    with pytest.raises(MmevalError, match="scoring broke"):
        vqa.run(ColourAnswerer(), vqa_config(tmp_path, vqav2_data(tmp_path)).benchmarks[0], context(tmp_path))
    assert len(json.loads((tmp_path / "run.vqa.answers.json").read_text())) == 9


def test_without_annotations_answers_are_saved_not_scored(tmp_path: Path) -> None:
    data = vqav2_data(tmp_path)
    del data["annotations"]
    result = vqa.run(ColourAnswerer(), vqa_config(tmp_path, data).benchmarks[0], context(tmp_path))
    assert result.metrics == {} and "not scored" in result.extra["warnings"][0]
    assert len(json.loads((tmp_path / result.extra["predictions_file"]).read_text())) == 9


def _edit_annotations(path: Path, edit) -> None:
    raw = json.loads(path.read_text())
    edit(raw["annotations"])
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda anns: anns[4]["answers"].pop(), r"annotations.json: question_id 21: expected 10 human answers, got 9 "),
    (lambda anns: anns[0]["answers"].append({"answer": "x"}), r"question_id 10: expected 10 human answers, got 11"),
    (lambda anns: anns.pop(8), r"annotations.json: question_id 32: no annotation for this question of .*questions"),
    (lambda anns: anns[1]["answers"].__setitem__(0, {"answer": 3}), r"question_id 11: every answer must be a string"),
])
def test_bad_annotations_are_one_line_errors(tmp_path: Path, edit, expected: str) -> None:
    data = vqav2_data(tmp_path)
    _edit_annotations(Path(data["annotations"]), edit)
    with pytest.raises(DataError, match=expected) as caught:
        vqa.run(ColourAnswerer(), vqa_config(tmp_path, data).benchmarks[0], context(tmp_path))
    assert len(caught.value.lines()) == 1


def test_bad_image_pattern(tmp_path: Path) -> None:
    for pattern, expected in (("image.png", "has no {image_id} placeholder"),
                              ("{image_id:012d}_{split}.png", "cannot be filled in with image id")):
        with pytest.raises(DataError, match=f"data.image_pattern: .*{expected}"):
            vqa.run(ColourAnswerer(), vqa_config(tmp_path, vqav2_data(tmp_path, image_pattern=pattern)).benchmarks[0],
                    context(tmp_path))


def test_limit_keeps_the_first_images_and_all_their_questions(tmp_path: Path) -> None:
    result = vqa.run(ColourAnswerer(), vqa_config(tmp_path, vqav2_data(tmp_path, limit=2)).benchmarks[0],
                     context(tmp_path))
    assert result.dataset["n_images"] == 2 and result.dataset["n_questions"] == 6


def test_hf_vqa_groups_rows_by_image_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    from mmeval.data.hf import HFImages

    questions, annotations, images = make_vqa_dataset(tmp_path / "vqa")
    answers = {a["question_id"]: a for a in json.loads(annotations.read_text())["annotations"]}
    rows: dict[str, list] = {"image": [], "question": [], "answers": [], "question_id": [], "image_id": [],
                             "answer_type": []}
    for q in json.loads(questions.read_text())["questions"]:
        rows["image"].append(str(images / f"COCO_val2014_{q['image_id']:012d}.png"))
        rows["question"].append(q["question"])
        rows["answers"].append([a["answer"] for a in answers[q["question_id"]]["answers"]])  # plain strings
        rows["question_id"].append(q["question_id"])
        rows["image_id"].append(q["image_id"])
        rows["answer_type"].append(answers[q["question_id"]]["answer_type"])
    folder = tmp_path / "hf"
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).save_to_disk(str(folder))
    loads: list[int] = []
    real_load = HFImages.load
    monkeypatch.setattr(HFImages, "load", lambda self, i: (loads.append(i), real_load(self, i))[1])

    cfg = vqa_config(tmp_path, {"format": "hf_vqa", "path": str(folder)})
    result = vqa.run(ColourAnswerer(), cfg.benchmarks[0], context(tmp_path))
    assert len(loads) == 3  # 9 rows, 3 distinct image ids
    assert result.metrics["vqa_accuracy"]["value"] == pytest.approx(EXPECTED_OVERALL)
    assert result.metrics["vqa_accuracy_number"]["value"] == pytest.approx(EXPECTED_NUMBER)

    short = datasets.Dataset.from_dict({**rows, "answers": [a[:3] for a in rows["answers"]]})
    short.cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "short"))
    first = rows["question_id"][0]
    with pytest.raises(DataError, match=rf"short\[row 0\] \(question_id {first}\).answers: expected 10 human "
                                        "answers, got 3"):
        vqa.run(ColourAnswerer(), vqa_config(tmp_path, {"format": "hf_vqa", "path": str(tmp_path / "short")})
                .benchmarks[0], context(tmp_path))


# --- config ---------------------------------------------------------------------------------------------------


def test_config_refuses_fields_and_formats_of_other_tasks(tmp_path: Path) -> None:
    data = vqav2_data(tmp_path)
    with pytest.raises(ConfigError) as caught:
        validate_mapping({
            "model": {"type": "plugin", "entry": "x:y"},
            "benchmarks": [
                {"name": "a", "task": "vqa", "data": {"format": "shapes"}},
                {"name": "b", "task": "retrieval", "data": data},
                {"name": "c", "task": "retrieval", "prompt_template": "{question}", "data": {"format": "shapes"}},
                {"name": "d", "task": "vqa", "data": {**data, "caption_column": "x"}},
                {"name": "e", "task": "vqa", "data": {"format": "vqav2", "images": data["images"]}},
            ],
        })
    assert caught.value.problems == [
        "benchmarks[0].data.format: format 'shapes' holds no questions; task 'vqa' reads: hf_vqa, shapes_vqa, vqav2",
        ("benchmarks[1].data.format: format 'vqav2' holds VQA questions; task 'retrieval' reads: coco, hf, "
         "karpathy, shapes"),
        "benchmarks[2].prompt_template: not used by task 'retrieval' (it reads: bias, perturb, recall_k, tie_policy); remove it",
        ("benchmarks[3].data.caption_column: not used by format 'vqav2' (it reads: annotations, decode, image_pattern, "
         "images, limit, max_bad_fraction, on_bad_image, questions); remove it"),
        "benchmarks[4].data.questions: required for format 'vqav2' (vqav2: the questions JSON)",
    ]
    with pytest.raises(ConfigError, match="task 'vqa' needs a model with capability 'answerer', but model type "
                                          "'open_clip' provides: image_text_encoder"):
        validate_mapping({"model": {"type": "open_clip", "arch": "a", "pretrained": "b"},
                          "benchmarks": [{"name": "a", "task": "vqa", "data": data}]})
