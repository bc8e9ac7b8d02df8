"""Multiple choice: the letter-extraction rule, the JSON / CSV / TSV / HF loaders and the benchmark; and an
end-to-end `mmeval run` of both question tasks (vqa, multiple_choice) with a plugin answerer in tmp_path."""

from __future__ import annotations

import csv
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PLUGIN_HEADER
from PIL import Image
from test_vqa import COLOURS, EXPECTED_OVERALL, ColourAnswerer, colour_answer, context, vqav2_data

from mmeval.config.run import validate_mapping
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.multiple_choice import extract_choice, format_options, score_choices
from mmeval.reporting.report import validate_report
from mmeval.tasks.multiple_choice import run as multiple_choice

OPTIONS = {"A": "a cat", "B": "a dog", "C": "red", "D": "dark red"}


@pytest.mark.parametrize(("text", "expected"), [
    # 1. the whole answer is a letter
    ("B", "B"), ("b", "B"), (" B. ", "B"), ("(B)", "B"), ("B)", "B"), ("B:", "B"),
    # 2. a marked letter first
    ("B) a dog", "B"), ("B. a dog", "B"), ("(B) a dog", "B"), ("C: red", "C"),
    # 3. an answer / option / choice phrase
    ("Answer: B", "B"), ("The answer is B.", "B"), ("the correct option is (D)", "D"), ("Choice: A", "A"),
    ("I think the answer is C because it is red.", "C"),
    # 4. one parenthesised letter anywhere
    ("I would pick (A) here", "A"),
    # 5. option text: equal, or the only option inside the answer (case and punctuation ignored)
    ("A dog.", "B"), ("It is a cat!", "A"), ("DARK RED", "D"),
    # unparseable: no rule applies, an ambiguous option text, a letter that is not an option
    ("maybe", None), ("", None), ("It is red, dark red maybe", None), ("E", None), ("The answer is E.", None),
    ("either (A) or (B)", None), ("the answer is a dog or a cat", None),
])
def test_extraction_rule(text: str, expected: str | None) -> None:
    assert extract_choice(text, OPTIONS) == expected


def test_letter_outside_the_options_falls_through_to_the_next_rule() -> None:
    assert extract_choice("E) a dog", OPTIONS) == "B"  # E is no option; the text names option B


def test_format_options_and_scores() -> None:
    assert format_options({"A": "yes", "B": "no"}) == "A. yes\nB. no"
    assert score_choices(["A", None, "B", "C"], ["A", "B", "B", "D"]) == {"mc_accuracy": 0.5, "unparseable_rate": 0.25}


# --- data and benchmark ----------------------------------------------------------------------------------------


def make_images(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for colour, rgb in COLOURS.items():
        Image.new("RGB", (20, 20), rgb).save(root / f"{colour}.png")
    return root


class LetterAnswerer(ColourAnswerer):
    """Answers with the letter of the option naming the image's colour, in a different style per call."""

    styles = ("{}", "({})", "The answer is {}.", "Answer: {}")

    def answer(self, pixels, questions, settings) -> list[str]:
        self.prompts += questions
        self.rows.append(len(questions))
        out = []
        for n, (pixel, prompt) in enumerate(zip(pixels, questions)):
            colour = list(COLOURS)[int(pixel.mean((1, 2)).argmax())]
            options = dict(line.split(". ", 1) for line in prompt.splitlines() if line[1:3] == ". ")
            letters = [k for k, v in options.items() if v == colour]
            out.append(self.styles[n % 4].format(letters[0]) if letters else "no idea")
        return out


def mc_config(tmp_path: Path, data: dict, **bench):
    return validate_mapping({
        "model": {"type": "plugin", "entry": "x:y"},
        "benchmarks": [{"name": "mc", "task": "multiple_choice", "data": data, **bench}],
    }).benchmarks[0]


ROWS = [
    {"question_id": 1, "image": "red.png", "question": "Colour?", "options": ["green", "red", "blue"], "answer": "B"},
    {"question_id": 2, "image": "green.png", "question": "Colour?", "options": {"A": "green", "B": "red"},
     "answer": "A"},
    {"question_id": 3, "image": "blue.png", "question": "Colour?", "A": "blue", "B": "red", "C": "", "answer": 1},
    {"question_id": 4, "image": "red.png", "question": "Shape?", "options": ["square", "circle"], "answer": "a"},
]


def test_benchmark_prompts_extracts_and_scores(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images")
    (tmp_path / "mc.json").write_text(json.dumps({"questions": ROWS}))
    model = LetterAnswerer()
    bench = mc_config(tmp_path, {"format": "mc", "annotations": str(tmp_path / "mc.json"), "images": str(images)})
    result = multiple_choice.run(model, bench, context(tmp_path, batch_size=8))
    assert model.prompts[0] == ("Colour?\nA. green\nB. red\nC. blue\n"
                                "Answer with the option's letter from the given choices directly.")
    assert model.rows == [4]  # 3 images, 4 questions, one model call
    # 1: B correct; 2: A correct; 3: A read, B expected (the answer index 1); 4: unparseable ("no idea")
    assert result.metrics["mc_accuracy"] == {"value": 0.5, "higher_is_better": True, "ci95": [0.0, 1.0]}
    assert result.metrics["unparseable_rate"]["value"] == 0.25
    assert result.metrics["unparseable_rate"]["higher_is_better"] is False
    saved = json.loads((tmp_path / result.extra["predictions_file"]).read_text())
    assert [(r["question_id"], r["choice"]) for r in saved] == [(1, "B"), (2, "A"), (3, "A"), (4, None)]
    assert result.dataset["n_images"] == 3 and result.dataset["n_questions"] == 4


def test_csv_and_tsv_with_letter_columns(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images")
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"mc{suffix}"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, ["question_id", "image", "question", "A", "B", "C", "answer"],
                                    delimiter=delimiter)
            writer.writeheader()
            writer.writerow({"question_id": "q1", "image": "red.png", "question": "Which colour, really?",
                             "A": "blue", "B": "red", "C": "", "answer": "B"})
            writer.writerow({"question_id": "q2", "image": "blue.png", "question": "Colour?", "A": "blue",
                             "B": "red", "C": "green", "answer": "C"})
        result = multiple_choice.run(LetterAnswerer(), mc_config(
            tmp_path, {"format": "mc", "annotations": str(path), "images": str(images)}), context(tmp_path))
        assert result.metrics["mc_accuracy"]["value"] == 0.5, suffix
        assert [row["correct_answer"] for row in result.per_sample["answers"]] == ["B", "C"]


@pytest.mark.parametrize(("row", "expected"), [
    ({"answer": "E"}, (r"question_id 7: answer must be one of the option letters A, B, C \(or a 0-based index\), "
                       "got 'E'")),
    ({"options": ["only one"]}, "question_id 7: needs at least 2 options"),
    ({"options": {"1": "x", "2": "y"}}, "option keys must be letters A-Z"),
    ({"image": None}, "question_id 7: needs 'image', an image file name under data.images"),
    ({"question": ""}, "question_id 7: needs a non-empty string 'question'"),
])
def test_bad_rows_are_one_line_errors_naming_file_and_question(tmp_path: Path, row: dict, expected: str) -> None:
    images = make_images(tmp_path / "images")
    good = {"question_id": 7, "image": "red.png", "question": "Colour?", "options": ["a", "b", "c"], "answer": "A"}
    (tmp_path / "mc.json").write_text(json.dumps([{**good, **row}]))
    bench = mc_config(tmp_path, {"format": "mc", "annotations": str(tmp_path / "mc.json"), "images": str(images)})
    with pytest.raises(DataError, match=expected) as caught:
        multiple_choice.run(LetterAnswerer(), bench, context(tmp_path))
    assert str(tmp_path / "mc.json") in str(caught.value) and len(caught.value.lines()) == 1


def test_template_must_list_the_options(tmp_path: Path) -> None:
    images = make_images(tmp_path / "images")
    (tmp_path / "mc.json").write_text(json.dumps(ROWS))
    bench = mc_config(tmp_path, {"format": "mc", "annotations": str(tmp_path / "mc.json"), "images": str(images)},
                      prompt_template="{question} Answer with a letter.")
    with pytest.raises(MmevalError, match=r"prompt_template: must contain \{options\}"):
        multiple_choice.run(LetterAnswerer(), bench, context(tmp_path))


def test_hf_mc_with_index_answers_and_letter_columns(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    images = make_images(tmp_path / "images")
    listed = {"image": [str(images / "red.png"), str(images / "blue.png")], "question": ["Colour?", "Colour?"],
              "options": [["red", "blue"], ["red", "blue"]], "answer": [0, 0]}
    datasets.Dataset.from_dict(listed).cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "listed"))
    lettered = {"image": listed["image"], "question": listed["question"], "A": ["red", "red"], "B": ["blue", "blue"],
                "answer": ["A", "B"], "question_id": ["x1", "x2"]}
    datasets.Dataset.from_dict(lettered).cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "lettered"))

    result = multiple_choice.run(LetterAnswerer(), mc_config(tmp_path, {"format": "hf_mc", "path": str(tmp_path / "listed")}),
                                 context(tmp_path))
    assert result.metrics["mc_accuracy"]["value"] == 0.5  # both answers are index 0 ("red")
    result = multiple_choice.run(LetterAnswerer(), mc_config(tmp_path, {"format": "hf_mc", "path": str(tmp_path / "lettered")}),
                                 context(tmp_path))
    assert result.metrics["mc_accuracy"]["value"] == 1.0
    assert [row["question_id"] for row in result.per_sample["answers"]] == ["x1", "x2"]


# --- end to end -----------------------------------------------------------------------------------------------

PLUGIN = PLUGIN_HEADER + "\n\n" + inspect.getsource(colour_answer) + '''

COLOURS = ["red", "green", "blue"]


class Answerer:
    def __init__(self):
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(8)

    def answer(self, pixels, questions, settings):
        return [colour_answer(COLOURS[int(p.mean((1, 2)).argmax())], q) for p, q in zip(pixels, questions)]


def make():
    return Answerer()
'''


def test_run_vqa_and_multiple_choice_end_to_end_with_a_plugin(tmp_path: Path) -> None:
    """config -> plugin answerer -> answers files -> scores -> schema-valid report, through the real CLI."""
    data = vqav2_data(tmp_path)
    rows = []
    for n, colour in enumerate(COLOURS, start=1):
        name = f"COCO_val2014_{n:012d}.png"
        rows.append({"question_id": f"c{n}", "image": name, "question": "Which colour?",
                     "options": ["blue", "red", "green"], "answer": "ABC"[["blue", "red", "green"].index(colour)]})
        rows.append({"question_id": f"b{n}", "image": name, "question": "Is it bright?", "A": "yes", "B": "no",
                     "answer": "B"})
    (tmp_path / "mc.json").write_text(json.dumps(rows))
    (tmp_path / "my_answerer.py").write_text(PLUGIN)
    (tmp_path / "run.yaml").write_text(f"""
model: {{type: plugin, entry: "my_answerer:make"}}
benchmarks:
  - name: vqa9
    task: vqa
    data: {json.dumps(data)}
  - name: mc6
    task: multiple_choice
    data: {{format: mc, annotations: mc.json, images: {data['images']}}}
runtime: {{device: cpu, batch_size: 4, num_workers: 0}}
output: {{dir: reports, name: answers-run}}
""")
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "reports" / "answers-run.json").read_text())
    validate_report(report)
    bench = report["benchmarks"]["vqa9"]
    assert bench["task"] == "vqa" and bench["metrics"]["vqa_accuracy"]["value"] == pytest.approx(EXPECTED_OVERALL)
    assert bench["answer_normalisation"] == "eval_server"  # the scoring choice is named in the report
    answers = json.loads((tmp_path / "reports" / bench["predictions_file"]).read_text())
    assert len(answers) == 9 and set(answers[0]) == {"question_id", "answer"}
    mc = report["benchmarks"]["mc6"]
    assert {name: (m["value"], m["higher_is_better"]) for name, m in mc["metrics"].items()} == {
        "mc_accuracy": (0.5, True), "unparseable_rate": (0.5, False)}
    choices = json.loads((tmp_path / "reports" / mc["predictions_file"]).read_text())
    assert {row["question_id"]: row["choice"] for row in choices} == {"c1": "B", "c2": "C", "c3": "A", "b1": None,
                                                                     "b2": None, "b3": None}
    assert "vqa_accuracy" in done.stdout and "mc_accuracy" in done.stdout

    checked = subprocess.run([sys.executable, "-m", "mmeval", "validate", "-c", "run.yaml"], cwd=tmp_path, text=True,
                             capture_output=True, timeout=300, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "benchmark 'vqa9': 3 images, 9 questions" in checked.stderr
    assert "benchmark 'mc6': 3 images, 6 questions" in checked.stderr
