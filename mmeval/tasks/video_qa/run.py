"""Video question answering: each video decoded once, all its questions answered, answers saved, then scored.

Open-ended: exact match of the answer with any accepted answer after the official VQA normalisation
(`mmeval.metrics.vqa.normalize_answer`: punctuation, lower case, number words to digits, articles dropped,
contractions restored), overall and per question type. Multiple choice: the option read from the answer by
`mmeval.metrics.multiple_choice.extract_choice` (a letter, or an option's text), scored by `score_choices`.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from mmeval.errors import DataError, MmevalError
from mmeval.io.video_loading import answer_for_videos
from mmeval.metrics.multiple_choice import extract_choice, format_options, letters, score_choices
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import choice_statistic, vqa_statistic
from mmeval.metrics.vqa import normalize_answer
from mmeval.models.base import GenerationSettings
from mmeval.models.video_plugin import check_frame_count, recorded_prompts
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import check_attributes, sliced_only
from mmeval.tasks.judge_block import check_judge, judge_answers
from mmeval.tasks.video_block import (
    load_choice_questions,
    load_questions,
    query_texts,
    video_block,
    video_data,
    video_dataset,
)
from mmeval.tasks.video_qa import TASK

OPEN_TEMPLATE = "{question}\nAnswer the question using a single word or phrase."  # LLaVA-1.5's short-answer prompt
CHOICE_TEMPLATE = "{question}\n{options}\nAnswer with the option's letter from the given choices directly."
NORMALISATION = "vqa (official VQA answer processing: punctuation, lower case, number words, articles, contractions)"
_PLACEHOLDER = re.compile(r"\{(question|options)\}")


def load_data(bench) -> tuple[Any, str]:
    return (load_choice_questions if bench.style == "choice" else load_questions)(bench)


def exact_match(prediction: str, answers: list[str]) -> float:
    """1.0 when the normalised prediction equals any normalised accepted answer."""
    said = normalize_answer(prediction).lower()
    return float(any(said == normalize_answer(a).lower() for a in answers))


def _template(model, bench) -> str:
    template = bench.prompt_template
    if template is None:
        own = getattr(model, "video_question_template", None)
        template = own(bench.style) if own is not None else (CHOICE_TEMPLATE if bench.style == "choice" else OPEN_TEMPLATE)
    if "{question}" not in template:
        raise MmevalError(f"benchmarks '{bench.name}'.prompt_template: must contain {{question}} (got {template!r})")
    return template


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Ask every question about every readable video, save the answers, score them."""
    started = time.perf_counter()
    template = _template(model, bench)
    settings = GenerationSettings(**bench.generation.model_dump())
    if hasattr(model, "check_answer_settings"):  # refuse settings the model cannot use before reading data
        model.check_answer_settings(settings)
    check_frame_count(model, bench.frames.frames)
    check_judge(bench, ctx)
    data = ctx.load_data(video_data, bench, "choice_questions" if bench.style == "choice" else "questions")
    check_attributes(bench.bias, SimpleNamespace(image_ids=data.ids, attributes=data.attributes))
    if not data.questions:
        raise DataError(f"{data.split_note}: no questions")
    if bench.style == "choice" and data.choices is None:
        raise DataError(f"{data.split_note}: style: choice needs questions with choices")
    options = [dict(zip(letters(len(c)), c)) for c in data.choices] if bench.style == "choice" else None
    load_s = time.perf_counter() - started
    qid = lambda q: data.question_ids[q] if data.question_ids else q
    questions = query_texts(ctx, data.questions, [qid(q) for q in range(len(data.questions))])  # as asked

    def prompt(q: int) -> str:
        values = {"question": questions[q], "options": format_options(options[q]) if options else ""}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

    prompts_of: list[list[tuple[Any, str]]] = [[] for _ in range(len(data.videos))]
    for q, v in enumerate(data.video_index):
        prompts_of[v].append((q, prompt(q)))
    task = ctx.progress.add_task(f"{bench.name}: answers", total=len(data.videos))
    answers, videos = answer_for_videos(model, data.videos, prompts_of, ctx.runtime, bench.frames, settings,
                                        bench.data.on_bad_input, lambda n: ctx.progress.advance(task, n),
                                        ctx.perturbation)  # fmt: skip
    if not ctx.passes_done():
        return None
    asked = sorted(int(q) for q in answers)
    if not asked:
        raise DataError(f"{data.split_note}: no readable video with a question")
    metric_start = time.perf_counter()
    describe = getattr(model, "describe_video", None)
    extra: dict[str, Any] = {"video": video_block(bench.frames, videos, describe() if describe else None),
                             "prompt_template": template}
    prompts = recorded_prompts(model, settings)
    if prompts is not None:
        extra["prompts"] = prompts
    vid = lambda q: data.videos.ids[data.video_index[q]]
    rows = [{"question_id": qid(q), "video_id": vid(q), "type": data.types[q], "question": questions[q],
             "answer": answers[q]} for q in asked]  # fmt: skip
    if bench.style == "open":
        correct = [exact_match(answers[q], data.answers[q]) for q in asked]
        types = [data.types[q] for q in asked]
        values = _open_scores(correct, types)
        statistic = vqa_statistic(correct, types)
        renamed = lambda counts: {k.replace("vqa_accuracy", "exact_match"): v for k, v in statistic(counts).items()}
        extra["normalisation"] = NORMALISATION
        for row, ok, q in zip(rows, correct, asked):
            row.update(accepted=data.answers[q], correct=ok)
    else:
        truth = [letters(len(data.choices[q]))[data.choices[q].index(data.answers[q][0])] for q in asked]
        chosen = [extract_choice(answers[q], options[q]) for q in asked]
        values = score_choices(chosen, truth)
        renamed = choice_statistic(chosen, truth)
        for row, c, t in zip(rows, chosen, truth):
            row.update(choice=c, correct_answer=t, correct=float(c == t))
    if ctx.save_artifact is not None:
        extra["predictions_file"] = ctx.save_artifact("answers", rows).name
    metrics = {name: {"value": value, "higher_is_better": name != "unparseable_rate"} for name, value in values.items()}
    block = add_intervals(metrics, (len(asked),), renamed, ctx.bootstrap, "questions",
                          Clusters.from_labels([row["video_id"] for row in rows], name="videos"))  # fmt: skip
    if block is not None:
        extra["bootstrap"] = block
    if bench.judge is not None and bench.style == "open":
        judge_answers(bench, ctx, "video_answer", [(data.questions[q], answers[q], list(data.answers[q])) for q in asked],
                      [row["question_id"] for row in rows], [row["correct"] > 0 for row in rows],
                      "exact_match (VQA normalisation)", rows, metrics, extra,
                      ([row["video_id"] for row in rows], "videos"))  # fmt: skip
    if bench.bias is not None:
        correct_all = np.array([row["correct"] for row in rows], dtype=np.float64)
        head = "exact_match" if bench.style == "open" else "mc_accuracy"
        extra["bias"] = sliced_only(bench.bias, [row["video_id"] for row in rows], data.attributes,
                                    lambda r: {head: float(correct_all[r].mean())})  # fmt: skip
    dataset = video_dataset(data, videos, len(asked))
    dataset.update(n_questions=len(data.questions), n_skipped_questions=len(data.questions) - len(asked))
    timings = {"load_data_s": load_s, **videos.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}
    return BenchmarkResult(TASK.name, dataset, metrics, timings, {"answers": rows}, extra,
                           timers={"generate": videos.timer})


def _open_scores(correct: list[float], types: list[str]) -> dict[str, float]:
    values = {"exact_match": float(np.mean(correct))}
    for kind in sorted(set(types)):
        chosen = [c for c, t in zip(correct, types) if t == kind]
        values[f"exact_match_{kind}"] = float(np.mean(chosen))
    return values
