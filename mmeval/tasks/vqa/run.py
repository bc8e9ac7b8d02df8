"""Visual question answering (VQAv2 and alike): a generated short answer per question, official VQA accuracy.

Each image is read once and all of its questions are asked from the same pixels. Answers are written next
to the report at once, in the official VQA results format ([{"question_id", "answer"}]), so a failure
while scoring never loses them and the file can be submitted to the evaluation server as is. Without an
annotations file (e.g. test-dev) the answers are only saved.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mmeval.data.image_files import check_image_files
from mmeval.data.vqa_data import Question, QuestionData
from mmeval.engine.runner import ImagePass, generate_answers
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import vqa_statistic
from mmeval.metrics.vqa import score_vqa
from mmeval.models.base import GenerationSettings
from mmeval.perturb import apply_cell
from mmeval.registry import DATA_FORMATS, resolve
from mmeval.tasks.vqa import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext, check_skipped, dataset_summary
from mmeval.tasks.bias_block import check_attributes, sliced_only
from mmeval.tasks.judge_block import check_judge, judge_answers

log = logging.getLogger(__name__)
DEFAULT_TEMPLATE = "{question}\nAnswer the question using a single word or phrase."  # LLaVA-1.5's VQAv2 prompt
_PLACEHOLDER = re.compile(r"\{(question|options)\}")


def render(template: str, values: dict[str, str]) -> str:
    """Fill `{question}` / `{options}` in one pass (other braces are kept, so a template may contain JSON)."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def prepare(model, bench, default_template: str, needs: tuple[str, ...]) -> tuple[str, GenerationSettings]:
    """The prompt template and decoding settings, refused before any data is read if the model cannot use them."""
    if bench.prompt_template is None and hasattr(model, "question_template"):
        default_template = model.question_template(bench.task)  # a model trained on another form of question
    template = bench.prompt_template or default_template
    missing = [name for name in needs if "{" + name + "}" not in template]
    if missing:
        raise MmevalError(f"benchmarks '{bench.name}'.prompt_template: must contain "
                          f"{' and '.join('{' + m + '}' for m in missing)} (got {template!r})")
    settings = GenerationSettings(**bench.generation.model_dump())
    if hasattr(model, "check_answer_settings"):  # e.g. a prompted model without a chat template needs a prompt
        model.check_answer_settings(settings)
    return template, settings


def ask(model, bench, ctx: RunContext, data: QuestionData, settings: GenerationSettings,
        prompt_of: Callable[[Question], str]) -> tuple[dict[int, str], ImagePass]:
    """Every question of every readable image, answered: {question position: answer} and the image pass."""
    check_image_files(data, bench.data)
    prompts_of = [[(n, prompt_of(data.questions[n])) for n in group] for group in data.questions_by_image()]
    task = ctx.progress.add_task(f"{bench.name}: answers", total=len(data.image_ids))
    return generate_answers(model, data.images, prompts_of, ctx.runtime, settings, bench.data.on_bad_image,
                            lambda n: ctx.progress.advance(task, n), bench.data.decode, ctx.perturbation)


def question_text(ctx: RunContext, question: Question) -> str:
    """The question as asked: perturbed (before the prompt template) in a text robustness re-run."""
    return apply_cell(ctx.perturbation, "text", question.text, question.question_id)


def answered_summary(data: QuestionData, images: ImagePass, answered: list[int]) -> dict[str, Any]:
    """The report's dataset block, with question counts (questions of skipped images are not answered)."""
    dataset = dataset_summary(data, images, len(answered))
    dataset["n_questions"] = len(data.questions)
    dataset["n_skipped_questions"] = len(data.questions) - len(answered)
    if not answered:
        raise DataError(f"{data.source}: no question could be asked (no readable image)")
    if dataset["n_skipped_questions"]:
        log.warning("%d question(s) of unreadable images were not asked and are not scored",
                    dataset["n_skipped_questions"])
    return dataset


def load_questions(cfg) -> QuestionData:
    """The benchmark's questions, by the data format's registered loader (which applies `limit`)."""
    data = resolve("data format", cfg.format, DATA_FORMATS)(cfg)
    if not isinstance(data, QuestionData):
        raise MmevalError(f"data.format '{cfg.format}' holds no questions")
    return data


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Answer every question, save the answers in the official results format, then score them."""
    started = time.perf_counter()
    template, settings = prepare(model, bench, DEFAULT_TEMPLATE, ("question",))
    check_judge(bench, ctx)
    data = ctx.load_data(load_questions, bench.data)
    check_attributes(bench.bias, data)
    load_s = time.perf_counter() - started

    answers, images = ask(model, bench, ctx, data, settings, lambda q: render(template, {"question": question_text(ctx, q)}))
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None
    check_skipped(bench, data, images)
    answered = sorted(answers)
    questions = [data.questions[n] for n in answered]
    predictions = [{"question_id": q.question_id, "answer": answers[n]} for n, q in zip(answered, questions)]
    dataset = answered_summary(data, images, answered)
    extra: dict[str, Any] = {"prompt_template": template, "answer_normalisation": bench.answer_normalisation}
    if ctx.save_artifact is not None:
        extra["predictions_file"] = ctx.save_artifact("answers", predictions).name

    metric_start = time.perf_counter()
    metrics: dict[str, dict[str, Any]] = {}
    rows = [{"question_id": q.question_id, "image_id": data.image_ids[q.image], "question": q.text,
             "answer": answers[n]} for n, q in zip(answered, questions)]
    if all(q.answers is not None for q in questions):
        values, per_question = score_vqa([answers[n] for n in answered], [q.answers for q in questions],
                                         [q.answer_type for q in questions], bench.answer_normalisation)
        metrics = {name: {"value": value, "higher_is_better": True} for name, value in values.items()}
        statistic = vqa_statistic(per_question, [q.answer_type for q in questions])
        block = add_intervals(metrics, (len(questions),), statistic, ctx.bootstrap, "questions",
                              Clusters.from_labels([q.image for q in questions]))
        if block is not None:
            extra["bootstrap"] = block
        for row, q, accuracy in zip(rows, questions, per_question):
            row.update(accuracy=accuracy, answer_type=q.answer_type)
        if bench.judge is not None:
            _judge(bench, ctx, questions, rows, per_question, metrics, extra)
        if bench.bias is not None:
            accuracy = np.asarray(per_question, dtype=float)
            extra["bias"] = sliced_only(bench.bias, [row["image_id"] for row in rows], data.attributes,
                                        lambda sub: {"vqa_accuracy": float(accuracy[sub].mean())})  # fmt: skip
    else:
        extra["warnings"] = ["no annotations: answers were generated and saved, not scored"]
        log.warning("%s: no annotations: answers were generated and saved, not scored", bench.name)
    timings = {"load_data_s": load_s, **images.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}
    return BenchmarkResult(TASK.name, dataset, metrics, timings, {"answers": rows}, extra, timers={"generate": images.timer})


def load_data(bench) -> tuple[Any, str]:
    """The questions as `run` reads them, and a one-line summary (`mmeval validate`)."""
    data = load_questions(bench.data)
    return data, f"{len(data.image_ids)} images, {len(data.questions)} questions"


def _judge(bench, ctx: RunContext, questions: list[Question], rows: list[dict], per_question: list[float],
           metrics: dict, extra: dict) -> None:  # fmt: skip
    """The opt-in judge's verdicts (`judge_accuracy`) and their agreement with the rule-based score, which counts
    an answer correct when its VQA accuracy is above 0 (at least one annotator gave it)."""
    items = [(q.text, row["answer"], list(q.answers)) for q, row in zip(questions, rows)]
    judge_answers(bench, ctx, "image_answer", items, [row["question_id"] for row in rows],
                  [accuracy > 0 for accuracy in per_question], "VQA accuracy > 0", rows, metrics, extra,
                  ([q.image for q in questions], "images"))  # fmt: skip
