"""Multiple-choice questions about images: the prompt lists lettered options, the answer's letter is scored.

The letter is read from the generated text by the rule in `mmeval.metrics.multiple_choice.extract_choice`;
an answer it cannot read counts as wrong and in `unparseable_rate`. Raw answers and the letters read from
them are written next to the report at once ([{"question_id", "answer", "choice"}]).
"""

from __future__ import annotations

import time
from typing import Any

from mmeval.data.vqa_data import Question
from mmeval.metrics.multiple_choice import extract_choice, format_options, score_choices
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import choice_statistic
from mmeval.tasks.multiple_choice import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext, check_skipped
from mmeval.tasks.vqa.run import answered_summary, ask, load_questions, prepare, question_text, render

# LLaVA-1.5's multiple-choice (MMBench / ScienceQA) instruction.
DEFAULT_TEMPLATE = "{question}\n{options}\nAnswer with the option's letter from the given choices directly."


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Ask every question with its options, save the answers, read a letter from each and score."""
    started = time.perf_counter()
    template, settings = prepare(model, bench, DEFAULT_TEMPLATE, ("question", "options"))
    data = ctx.load_data(load_questions, bench.data)
    load_s = time.perf_counter() - started

    def prompt(question: Question) -> str:
        return render(template, {"question": question_text(ctx, question), "options": format_options(question.options)})

    answers, images = ask(model, bench, ctx, data, settings, prompt)
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None
    check_skipped(bench, data, images)
    answered = sorted(answers)
    questions = [data.questions[n] for n in answered]
    dataset = answered_summary(data, images, answered)

    metric_start = time.perf_counter()
    choices = [extract_choice(answers[n], q.options) for n, q in zip(answered, questions)]
    extra: dict[str, Any] = {"prompt_template": template}
    if ctx.save_artifact is not None:
        rows = [{"question_id": q.question_id, "answer": answers[n], "choice": c}
                for n, q, c in zip(answered, questions, choices)]
        extra["predictions_file"] = ctx.save_artifact("answers", rows).name
    values = score_choices(choices, [q.answer for q in questions])
    metrics = {name: {"value": value, "higher_is_better": TASK.higher_is_better(name)} for name, value in values.items()}
    block = add_intervals(metrics, (len(questions),), choice_statistic(choices, [q.answer for q in questions]),
                          ctx.bootstrap, "questions", Clusters.from_labels([q.image for q in questions]))
    if block is not None:
        extra["bootstrap"] = block
    per_sample = {"answers": [
        {"question_id": q.question_id, "image_id": data.image_ids[q.image], "answer": answers[n], "choice": c,
         "correct_answer": q.answer, "correct": c == q.answer}
        for n, q, c in zip(answered, questions, choices)
    ]}
    timings = {"load_data_s": load_s, **images.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra,
                           timers={"generate": images.timer})
