"""`mmeval score` for VQA results files (official format, with questions and annotations) and multiple-choice
results: the values `run` computes, the normalisation choice and clustered intervals in the report, and bad
input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_multiple_choice import ROWS
from test_vqa import COLOURS, EXPECTED_NUMBER, EXPECTED_OVERALL, colour_answer, make_vqa_dataset
from typer.testing import CliRunner

from mmeval.cli import app


def vqa_results(tmp_path: Path) -> tuple[Path, Path, Path]:
    questions, annotations, _ = make_vqa_dataset(tmp_path / "vqa")
    colour_of = dict(enumerate(COLOURS, start=1))
    rows = [{"question_id": q["question_id"], "answer": colour_answer(colour_of[q["image_id"]], q["question"])}
            for q in json.loads(questions.read_text())["questions"]]
    results = tmp_path / "answers.json"
    results.write_text(json.dumps(rows))
    return questions, annotations, results


@pytest.mark.parametrize(("normalisation", "expected"), [
    ("eval_server", EXPECTED_OVERALL),
    ("gtvision_2021", (0 + 3 * EXPECTED_NUMBER + 3) / 9),  # "Red" vs ten "red": unanimous, so not lower-cased
])
def test_score_a_vqa_results_file(tmp_path: Path, normalisation: str, expected: float) -> None:
    questions, annotations, results = vqa_results(tmp_path)
    done = CliRunner().invoke(app, ["score", "--questions", str(questions), "-a", str(annotations), "-r", str(results),
                                    "-o", str(tmp_path / "out"), "--answer-normalisation", normalisation])
    assert done.exit_code == 0, done.output
    [path] = (tmp_path / "out").glob("*-scored-*[0-9].json")
    bench = json.loads(path.read_text())["benchmarks"]["answers"]
    assert bench["task"] == "vqa" and bench["metrics"]["vqa_accuracy"]["value"] == pytest.approx(expected)
    assert bench["answer_normalisation"] == normalisation
    assert bench["bootstrap"]["resampled"] == "clusters" and "ci95" in bench["metrics"]["vqa_accuracy"]
    assert bench["metrics"]["vqa_accuracy_yes/no"]["value"] == 1.0


def test_score_a_multiple_choice_results_file(tmp_path: Path) -> None:
    questions = tmp_path / "mc.json"
    questions.write_text(json.dumps(ROWS))
    results = tmp_path / "mc_answers.json"
    results.write_text(json.dumps([{"question_id": 1, "answer": "The answer is B."}, {"question_id": 2, "answer": "B"},
                                   {"question_id": 3, "answer": "B"},  # its answer is index 1 = B
                                   {"question_id": 4, "answer": "no idea"}]))
    done = CliRunner().invoke(app, ["score", "--mc", "-a", str(questions), "-r", str(results), "-o", str(tmp_path)])
    assert done.exit_code == 0, done.output
    [path] = tmp_path.glob("*-scored-*[0-9].json")
    metrics = json.loads(path.read_text())["benchmarks"]["mc_answers"]["metrics"]
    assert metrics["mc_accuracy"]["value"] == pytest.approx(2 / 4) and metrics["unparseable_rate"]["value"] == 0.25


def test_bad_vqa_results_exit_2_with_the_file_and_ids(tmp_path: Path) -> None:
    questions, annotations, results = vqa_results(tmp_path)
    rows = json.loads(results.read_text())
    results.write_text(json.dumps(rows[1:]))
    done = CliRunner().invoke(app, ["score", "--questions", str(questions), "-a", str(annotations), "-r", str(results)])
    assert done.exit_code == 2 and "no answer for 1 question(s)" in done.output and "answers.json" in done.output
    results.write_text(json.dumps([{"question_id": 10}]))
    done = CliRunner().invoke(app, ["score", "--questions", str(questions), "-a", str(annotations), "-r", str(results)])
    assert done.exit_code == 2 and "results[0] needs a 'question_id' and a string 'answer'" in done.output
    done = CliRunner().invoke(app, ["score", "--questions", str(questions), "-a", str(annotations), "-r", str(results),
                                    "--answer-normalisation", "lenient"])
    assert done.exit_code == 2 and "eval_server" in done.output
