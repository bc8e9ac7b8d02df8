"""`mmeval score` for question answering: an existing results file in the official VQA format
([{"question_id", "answer"}], what `mmeval run` saves and the evaluation server takes) scored against the
questions and annotations, with no model. VQA: official accuracy (the chosen `answer_normalisation`);
multiple choice (mmeval/tasks/multiple_choice/score.py): the letter read from each answer. Same metrics,
clustered bootstrap intervals and per-sample rows as `mmeval run`; the report has run's format."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mmeval.config.run import BootstrapConfig
from mmeval.data.coco import read_json
from mmeval.data.vqa_data import QuestionData, load_vqav2
from mmeval.engine.evaluate import RunOutcome, write_outputs
from mmeval.errors import DataError
from mmeval.ids import show_ids
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import vqa_statistic
from mmeval.metrics.vqa import NORMALISATIONS, score_vqa
from mmeval.models.base import ModelInfo, sha256_of_path
from mmeval.reporting.report import new_report
from mmeval.tasks.vqa import TASK


def read_answers(path: Path, data: QuestionData) -> dict[Any, str]:
    """{question_id: answer} from a results file; every question needs exactly one answer, no unknown ids."""
    raw = read_json(path)
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a VQA results list [{{\"question_id\": ..., \"answer\": ...}}], "
                        f"got a JSON {type(raw).__name__}")
    answers: dict[Any, str] = {}
    for n, row in enumerate(raw):
        if not isinstance(row, dict) or "question_id" not in row or not isinstance(row.get("answer"), str):
            raise DataError(f"{path}: results[{n}] needs a 'question_id' and a string 'answer'")
        if row["question_id"] in answers:
            raise DataError(f"{path}: results[{n}]: question_id {row['question_id']!r} answered more than once")
        answers[row["question_id"]] = row["answer"]
    known = {q.question_id for q in data.questions}
    unknown = [i for i in answers if i not in known]
    missing = [q.question_id for q in data.questions if q.question_id not in answers]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} question id(s) not in {data.source} ({show_ids(unknown)})")
    if missing:  # the official loadRes asserts the same: results must cover every question
        raise DataError(f"{path}: no answer for {len(missing)} question(s) of {data.source} ({show_ids(missing)})")
    return answers


def write_scored(task: str, bench_name: str, results: Path, sources: list[Path], config: dict[str, Any],
                 data: QuestionData, metrics: dict, extra: dict, rows: list[dict], output: Path,
                 started: float) -> RunOutcome:
    """The report and per-sample file of a scored results file, as `run` writes them."""
    info = ModelInfo("results-file", results.stem, str(results), sha256_of_path(results), 0)
    report = new_report(config, info, None, None)
    digest = hashlib.sha256("".join(sha256_of_path(p) for p in [*sources, results]).encode()).hexdigest()
    report["benchmarks"][bench_name] = {
        "status": "complete", "task": task,
        "dataset": {"n_images": len(data.image_ids), "n_texts": len(data.questions), "n_questions": len(data.questions),
                    "n_skipped_questions": 0, "source": data.source, "sha256": digest},
        "metrics": metrics, "timings": {"metrics_s": time.perf_counter() - started},
        "predictions_file": str(results), **extra,
    }
    outcome = RunOutcome(report)
    stem = f"{bench_name}-scored-{time.strftime('%Y%m%d-%H%M%S')}"
    write_outputs(report, {bench_name: {"answers": rows}}, output, stem, True, outcome)
    return outcome


def score_vqa_results(questions: Path, annotations: Path, results: Path, output: Path,
                      normalisation: str = "eval_server", bootstrap: BootstrapConfig | None = None,
                      name: str | None = None) -> RunOutcome:
    """Score a VQA results file against VQAv2 questions + annotations and write a report to `output`."""
    if normalisation not in NORMALISATIONS:
        raise DataError(f"--answer-normalisation: expected one of {', '.join(NORMALISATIONS)}, got {normalisation!r}")
    bootstrap = bootstrap or BootstrapConfig()
    started = time.perf_counter()
    cfg = SimpleNamespace(questions=questions, annotations=annotations, images=Path("."), image_pattern=None,
                          limit=None)
    data = load_vqav2(cfg)
    answers = read_answers(results, data)
    qs = data.questions
    values, per_question = score_vqa([answers[q.question_id] for q in qs], [q.answers for q in qs],
                                     [q.answer_type for q in qs], normalisation)
    metrics = {k: {"value": v, "higher_is_better": True} for k, v in values.items()}
    extra: dict[str, Any] = {"answer_normalisation": normalisation}
    block = add_intervals(metrics, (len(qs),), vqa_statistic(per_question, [q.answer_type for q in qs]), bootstrap,
                          "questions", Clusters.from_labels([q.image for q in qs]))
    if block is not None:
        extra["bootstrap"] = block
    rows = [{"question_id": q.question_id, "image_id": data.image_ids[q.image], "question": q.text,
             "answer": answers[q.question_id], "accuracy": a, "answer_type": q.answer_type}
            for q, a in zip(qs, per_question)]
    config = {"command": "score", "task": TASK.name, "questions": str(questions), "annotations": str(annotations),
              "results": str(results), "answer_normalisation": normalisation, "bootstrap": bootstrap.model_dump()}
    return write_scored(TASK.name, name or results.stem, results, [questions, annotations], config, data, metrics,
                        extra, rows, output, started)
