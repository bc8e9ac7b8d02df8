"""Spoken VQA, two modes (`mode:` in the benchmark, config.py).

pipeline: the benchmark's recogniser transcribes each spoken question, the run's model (an answerer) answers
the transcript about its image; the same model also answers the reference text of every question, in the same
image pass, so the accuracy lost to speech is one number computed on identical questions and images.
one_model: the run's model takes the image and the question's audio together (one_model.py).

Design: the pipeline is a benchmark-level `recognizer:` model (as captioning's CLIPScore `scorer:`), not a new
model kind: the run's model stays one model that compare / gate / leaderboard know, and any recogniser
adapter (PocketSphinx, Whisper, CTC) plugs in unchanged.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from mmeval.data.vqa_data import QuestionData
from mmeval.engine.audio_passes import transcribe
from mmeval.engine.runner import generate_answers
from mmeval.errors import DataError, MmevalError
from mmeval.models.base import GenerationSettings
from mmeval.registry import DATA_FORMATS, resolve
from mmeval.tasks.base import BenchmarkResult, RunContext, dataset_summary
from mmeval.tasks.spoken_vqa import TASK
from mmeval.tasks.spoken_vqa.one_model import NOT_MEASURED, also_can, answer_spoken
from mmeval.tasks.spoken_vqa.scoring import score
from mmeval.tasks.vqa.run import DEFAULT_TEMPLATE, prepare, render


@dataclass
class SpokenQuestions:
    """Spoken questions (the speech data, one clip per question) joined to the questions about images."""

    speech: Any  # SpeechData: audio, reference texts, ids
    questions: QuestionData  # only the questions that were spoken, in clip order
    source: str

    @property
    def image_ids(self) -> list[Any]:
        return self.questions.image_ids

    @property
    def audio(self) -> Any:
        """The question clips (what `mmeval validate` checks for missing files)."""
        return self.speech.audio


def load_spoken(cfg) -> SpokenQuestions:
    """The manifest's question clips, each linked (image_id, question_id) to its shapes_vqa question."""
    from mmeval.data.shapes_vqa import load_shapes_vqa
    from mmeval.data.vqa_data import Question

    speech = resolve("data format", cfg.format, DATA_FORMATS)(cfg)
    keep = [
        n for n, clip in enumerate(speech.ids) if speech.attributes.get(clip, {}).get("kind", "question") == "question"
    ]
    if not keep:
        raise DataError(f"{speech.source}: no spoken questions (manifest rows with kind 'question')")
    params = speech.attributes[speech.ids[keep[0]]].get("shapes_vqa")
    if not isinstance(params, dict):
        raise DataError(f"{speech.source}: question clips need a 'shapes_vqa' entry naming their images")
    asked = load_shapes_vqa(params["split"], params["n_images"], params["seed"],
                            questions_per_image=params.get("questions_per_image", 3))  # fmt: skip
    by_id = {q.question_id: q for q in asked.questions}
    questions = []
    for n in keep:
        attrs = speech.attributes[speech.ids[n]]
        q = by_id.get(attrs.get("question_id"))
        if q is None or asked.image_ids[q.image] != attrs.get("image_id") or q.text != speech.texts[n]:
            raise DataError(f"{speech.audio.describe(n)}: question {attrs.get('question_id')} does not match the "
                            f"shapes_vqa question of image {attrs.get('image_id')}")  # fmt: skip
        questions.append(Question(q.question_id, q.image, q.text, q.answers, q.answer_type))
    speech = speech.__class__(speech.audio.subset(keep), [speech.texts[n] for n in keep], [speech.ids[n] for n in keep],
                              [speech.speakers[n] for n in keep], speech.source, speech.annotation_digest,
                              {speech.ids[n]: speech.attributes[speech.ids[n]] for n in keep})  # fmt: skip
    data = QuestionData(asked.image_ids, asked.images, questions, asked.source,
                        hashlib.sha256((asked.annotation_digest + speech.annotation_digest).encode()).hexdigest(),
                        asked.attributes)  # fmt: skip
    return SpokenQuestions(speech, data, f"{speech.source} + {asked.source}")


def load_data(bench) -> tuple[SpokenQuestions, str]:
    data = load_spoken(bench.data)
    return data, f"{len(data.questions.questions)} spoken questions about {len(data.image_ids)} images"


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """The benchmark in its mode: pipeline (recogniser -> answerer) or one model hearing the questions."""
    return (_one_model if bench.mode == "one_model" else _pipeline)(model, bench, ctx)


def _pipeline(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Transcribe, answer transcripts and reference texts, score accuracy, WER and the loss due to speech."""
    from mmeval.engine.evaluate import lacking, load_model
    from mmeval.engine.runtime import place_model

    started = time.perf_counter()
    template, settings = prepare(model, bench, DEFAULT_TEMPLATE, ("question",))
    data = ctx.load_data(load_spoken, bench.data)
    recognizer = load_model(bench.recognizer)
    problem = lacking(recognizer, "speech_recognizer", "a spoken_vqa recognizer")
    if problem:
        raise MmevalError(f"benchmarks '{bench.name}'.recognizer: {problem}")
    place_model(recognizer, ctx.runtime)
    load_s = time.perf_counter() - started

    task = ctx.progress.add_task(f"{bench.name}: transcripts", total=len(data.speech.ids))
    heard, clips = transcribe(recognizer, data.speech.audio, ctx.runtime, bench.audio,
                              GenerationSettings(**bench.recognizer_generation.model_dump()), bench.data.on_bad_input,
                              lambda n: ctx.progress.advance(task, n), perturbation=ctx.perturbation)  # fmt: skip
    transcript = {index: text for index, (text, _) in zip(clips.ok_indices, heard)}
    questions = data.questions.questions
    prompts_of: list[list[tuple[Any, str]]] = [[] for _ in data.image_ids]
    for n, q in enumerate(questions):
        prompts_of[q.image].append((("text", n), render(template, {"question": q.text})))
        if n in transcript:
            prompts_of[q.image].append((("spoken", n), render(template, {"question": transcript[n]})))
    task = ctx.progress.add_task(f"{bench.name}: answers", total=len(data.image_ids))
    answers, images = generate_answers(model, data.questions.images, prompts_of, ctx.runtime, settings, "fail",
                                       lambda n: ctx.progress.advance(task, n),
                                       perturbation=ctx.perturbation)  # fmt: skip
    if not ctx.passes_done():
        return None

    metric_start = time.perf_counter()
    scored = [n for n in range(len(questions)) if n in transcript]
    if not scored:
        raise DataError(f"{data.source}: no spoken question could be decoded")
    spoken = {n: answers[("spoken", n)] for n in scored}
    text = {n: answers[("text", n)] for n in scored}
    metrics, rows, scores = score(data, scored, spoken, text, transcript, bench.normalizer, ctx.bootstrap)
    extra: dict[str, Any] = {"mode": "pipeline", "prompt_template": template,
                             "recognizer": {"adapter": recognizer.info.adapter, "name": recognizer.info.name,
                                            "checkpoint": recognizer.info.checkpoint, "sha256": recognizer.info.sha256},
                             **scores}  # fmt: skip
    dataset = _dataset(data, images, clips, rows)
    timings = {"load_data_s": load_s, **clips.timer.as_dict("transcribe"), **images.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}  # fmt: skip
    return BenchmarkResult(TASK.name, dataset, metrics, timings, {"questions": rows}, extra,
                           timers={"transcribe": clips.timer, "generate": images.timer})  # fmt: skip


def _one_model(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """One model answers from image + audio; the same model's text accuracy (if it answers text) and transcripts
    (if it transcribes) give the loss due to speech and the questions' WER."""
    started = time.perf_counter()
    can = also_can(model)
    settings = GenerationSettings(**bench.generation.model_dump())
    if hasattr(model, "check_answer_settings"):  # refuse settings the model cannot use before reading data
        model.check_answer_settings(settings)
    template = None
    if can["answerer"]:
        template, settings = prepare(model, bench, DEFAULT_TEMPLATE, ("question",))
    data = ctx.load_data(load_spoken, bench.data)
    load_s = time.perf_counter() - started
    questions = data.questions.questions

    task = ctx.progress.add_task(f"{bench.name}: spoken answers", total=len(questions))
    spoken, clips = answer_spoken(model, bench, ctx, data, settings, lambda n: ctx.progress.advance(task, n))
    timers = {"generate": clips.timer}
    text, images = None, None
    if can["answerer"]:
        prompts_of: list[list[tuple[Any, str]]] = [[] for _ in data.image_ids]
        for n, q in enumerate(questions):
            prompts_of[q.image].append((n, render(template, {"question": q.text})))
        task = ctx.progress.add_task(f"{bench.name}: text answers", total=len(data.image_ids))
        text, images = generate_answers(model, data.questions.images, prompts_of, ctx.runtime, settings, "fail",
                                        lambda n: ctx.progress.advance(task, n),
                                        perturbation=ctx.perturbation)  # fmt: skip
        timers["text_answers"] = images.timer
    transcript = None
    if can["speech_recognizer"] and bench.measure_wer:
        task = ctx.progress.add_task(f"{bench.name}: transcripts", total=len(questions))
        heard, heard_clips = transcribe(model, data.speech.audio, ctx.runtime, bench.audio,
                                        GenerationSettings(**bench.recognizer_generation.model_dump()),
                                        bench.data.on_bad_input, lambda n: ctx.progress.advance(task, n),
                                        perturbation=ctx.perturbation)  # fmt: skip
        transcript = {index: t for index, (t, _) in zip(heard_clips.ok_indices, heard)}
        timers["transcribe"] = heard_clips.timer
    if not ctx.passes_done():
        return None

    metric_start = time.perf_counter()
    scored = [n for n in range(len(questions)) if n in spoken and (transcript is None or n in transcript)]
    if not scored:
        raise DataError(f"{data.source}: no spoken question could be decoded")
    metrics, rows, scores = score(data, scored, spoken, text, transcript, bench.normalizer, ctx.bootstrap)
    extra: dict[str, Any] = {
        "mode": "one_model", "spoken_prompt": bench.spoken_prompt, **({"prompt_template": template} if template else {}),
        "text_questions": "answered by the same model" if text is not None
        else "not measured: the model cannot answer text questions (no answerer capability), so no speech_loss",
        **scores,
    }  # fmt: skip
    if transcript is None:
        extra["question_wer"] = NOT_MEASURED if bench.measure_wer or not can["speech_recognizer"] \
            else "not measured: measure_wer is false"  # fmt: skip
    else:
        extra["question_wer_source"] = "the same model's transcribe() of the question clips (a separate pass)"
    dataset = _dataset(data, images, clips, rows)
    timings = {"load_data_s": load_s, **{k: v for name, t in timers.items() for k, v in t.as_dict(name).items()},
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}  # fmt: skip
    return BenchmarkResult(TASK.name, dataset, metrics, timings, {"questions": rows}, extra, timers=timers)


def _dataset(data: SpokenQuestions, images: Any, clips: Any, rows: list[dict]) -> dict[str, Any]:
    questions = data.questions.questions
    if images is not None:
        dataset = dataset_summary(data.questions, images, len(rows))
    else:  # one model without a text pass: the images were read with the clips
        dataset = {"n_images": len({q.image for q in questions}), "n_texts": len(rows), "n_skipped_images": 0,
                   "skipped_images": [], "source": data.source, "sha256": data.questions.annotation_digest,
                   "pixels_from": "float"}  # the model's image_transform, once per image, with the clips  # fmt: skip
    dataset.update({"n_questions": len(questions), "n_skipped_questions": len(questions) - len(rows),
                    "n_clips": len(clips.ok_indices), "skipped_clips": [{"clip_id": data.speech.ids[i], "reason": r}
                                                                       for i, r in clips.bad],
                    "decoder": clips.decoder})  # fmt: skip
    return dataset
