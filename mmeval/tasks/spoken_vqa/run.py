"""Spoken VQA: the benchmark's recogniser transcribes each spoken question, the run's model (an answerer) answers
the transcript about its image; the same model also answers the reference text of every question, in the same
image pass, so the accuracy lost to speech is one number computed on identical questions and images.

Design: the pipeline is a benchmark-level `recognizer:` model (as captioning's CLIPScore `scorer:`), not a new
model kind: the run's model stays one answerer that compare / gate / leaderboard know, and any recogniser
adapter (PocketSphinx, Whisper, CTC) plugs in unchanged.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmeval.data.vqa_data import QuestionData
from mmeval.engine.audio_passes import transcribe
from mmeval.engine.runner import generate_answers
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.stats.bootstrap import add_intervals, mean
from mmeval.metrics.text_norm import get_normaliser
from mmeval.metrics.vqa import vqa_accuracy
from mmeval.metrics.wer import summarise, utterance_errors
from mmeval.models.base import GenerationSettings
from mmeval.registry import DATA_FORMATS, resolve
from mmeval.tasks.base import BenchmarkResult, RunContext, dataset_summary
from mmeval.tasks.spoken_vqa import TASK
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
                              lambda n: ctx.progress.advance(task, n))  # fmt: skip
    transcript = {index: text for index, (text, _) in zip(clips.ok_indices, heard)}
    questions = data.questions.questions
    prompts_of: list[list[tuple[Any, str]]] = [[] for _ in data.image_ids]
    for n, q in enumerate(questions):
        prompts_of[q.image].append((("text", n), render(template, {"question": q.text})))
        if n in transcript:
            prompts_of[q.image].append((("spoken", n), render(template, {"question": transcript[n]})))
    task = ctx.progress.add_task(f"{bench.name}: answers", total=len(data.image_ids))
    answers, images = generate_answers(model, data.questions.images, prompts_of, ctx.runtime, settings, "fail",
                                       lambda n: ctx.progress.advance(task, n))  # fmt: skip
    if not ctx.passes_done():
        return None

    metric_start = time.perf_counter()
    scored = [n for n in range(len(questions)) if n in transcript]
    if not scored:
        raise DataError(f"{data.source}: no spoken question could be decoded")
    normalise = get_normaliser(bench.normalizer)
    errors = utterance_errors(
        [normalise(questions[n].text) for n in scored], [normalise(transcript[n]) for n in scored]
    )
    rows = []
    for n, counts in zip(scored, errors):
        q = questions[n]
        spoken, text = answers[("spoken", n)], answers[("text", n)]
        rows.append({"question_id": q.question_id, "image_id": data.image_ids[q.image], "question": q.text,
                     "transcript": transcript[n], "answer_spoken": spoken, "answer_text": text,
                     "spoken_accuracy": vqa_accuracy(spoken, q.answers), "text_accuracy": vqa_accuracy(text, q.answers),
                     "word_errors": counts.errors, "reference_words": counts.reference_length})  # fmt: skip
    spoken_acc = np.array([r["spoken_accuracy"] for r in rows])
    text_acc = np.array([r["text_accuracy"] for r in rows])
    wer = summarise(errors)
    values = {"spoken_accuracy": float(spoken_acc.mean()), "text_accuracy": float(text_acc.mean()),
              "speech_loss": float(text_acc.mean() - spoken_acc.mean()), "question_wer": wer["rate"]}  # fmt: skip
    metrics = {
        name: {"value": value, "higher_is_better": TASK.higher_is_better(name)} for name, value in values.items()
    }
    per_item = np.stack([spoken_acc, text_acc, text_acc - spoken_acc], axis=1)
    word = np.array([[r["word_errors"], r["reference_words"]] for r in rows], dtype=np.float64)

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        means, sums = mean(counts, per_item), counts @ word
        return {"spoken_accuracy": means[:, 0], "text_accuracy": means[:, 1], "speech_loss": means[:, 2],
                "question_wer": sums[:, 0] / np.maximum(sums[:, 1], 1)}  # fmt: skip

    extra: dict[str, Any] = {"prompt_template": template, "normalizer": normalise.describe(),
                             "recognizer": {"adapter": recognizer.info.adapter, "name": recognizer.info.name,
                                            "checkpoint": recognizer.info.checkpoint, "sha256": recognizer.info.sha256},
                             "wer": {k: v for k, v in wer.items() if k != "per_utterance"}}  # fmt: skip
    block = add_intervals(metrics, (len(rows),), statistic, ctx.bootstrap, "questions")
    if block is not None:
        extra["bootstrap"] = block
    dataset = dataset_summary(data.questions, images, len(rows))
    dataset.update({"n_questions": len(questions), "n_skipped_questions": len(questions) - len(rows),
                    "n_clips": len(clips.ok_indices), "skipped_clips": [{"clip_id": data.speech.ids[i], "reason": r}
                                                                       for i, r in clips.bad],
                    "decoder": clips.decoder})  # fmt: skip
    timings = {"load_data_s": load_s, **clips.timer.as_dict("transcribe"), **images.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}  # fmt: skip
    return BenchmarkResult(TASK.name, dataset, metrics, timings, {"questions": rows}, extra,
                           timers={"transcribe": clips.timer, "generate": images.timer})  # fmt: skip
