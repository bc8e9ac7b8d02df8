"""`mmeval score` for multiple choice: a results file [{"question_id", "answer"}] against the `mc` questions file
(the letter is read from each answer as `run` reads it); see mmeval/tasks/vqa/score.py."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mmeval.config.run import BootstrapConfig
from mmeval.data.vqa_data import load_mc
from mmeval.engine.evaluate import RunOutcome
from mmeval.metrics.multiple_choice import extract_choice, score_choices
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import choice_statistic
from mmeval.tasks.multiple_choice import TASK
from mmeval.tasks.vqa.score import read_answers, write_scored


def score_mc_results(annotations: Path, results: Path, output: Path, bootstrap: BootstrapConfig | None = None,
                     name: str | None = None) -> RunOutcome:
    """Score a multiple-choice results file against its questions file and write a report to `output`."""
    bootstrap = bootstrap or BootstrapConfig()
    started = time.perf_counter()
    data = load_mc(SimpleNamespace(annotations=annotations, images=Path("."), limit=None))
    answers = read_answers(results, data)
    qs = data.questions
    choices = [extract_choice(answers[q.question_id], q.options) for q in qs]
    truth = [q.answer for q in qs]
    metrics = {k: {"value": v, "higher_is_better": TASK.higher_is_better(k)}
               for k, v in score_choices(choices, truth).items()}
    extra: dict[str, Any] = {}
    block = add_intervals(metrics, (len(qs),), choice_statistic(choices, truth), bootstrap, "questions",
                          Clusters.from_labels([q.image for q in qs]))
    if block is not None:
        extra["bootstrap"] = block
    rows = [{"question_id": q.question_id, "image_id": data.image_ids[q.image], "answer": answers[q.question_id],
             "choice": c, "correct_answer": q.answer, "correct": c == q.answer} for q, c in zip(qs, choices)]
    config = {"command": "score", "task": TASK.name, "annotations": str(annotations), "results": str(results),
              "bootstrap": bootstrap.model_dump()}
    return write_scored(TASK.name, name or results.stem, results, [annotations], config, data, metrics, extra, rows,
                        output, started)
