"""Zero-shot audio classification, the CLAP recipe: each class is the normalised mean of its normalised prompt
embeddings, each clip is embedded once, a clip's class scores are cosine similarities. Scored with
`metrics.classification` (top-1 / top-5, mean per-class recall, macro F1, ECE), overall and per fold (ESC-50).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mmeval.data.audio_formats import audio_dataset_summary, load_audio_data
from mmeval.engine.audio_passes import encode_audio
from mmeval.engine.runner import encode_texts
from mmeval.errors import DataError
from mmeval.metrics import classification as metrics
from mmeval.metrics.stats import bootstrap_metrics
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.perturb import apply_cell
from mmeval.tasks.audio_zeroshot import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import attribute_columns, classification_bias
from mmeval.tasks.zeroshot_classification.run import DEFAULT_TEMPERATURE, class_embeddings, model_logit_scale

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = ("this is the sound of {c}.",)  # the prompt of the CLAP paper's zero-shot ESC-50 evaluation


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` (an audio_text_encoder) on the zero-shot audio classification benchmark `bench`."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    data = ctx.load_data(load_audio_data, bench.data, "labels")
    classes = list(bench.classnames or data.classnames)
    if len(classes) != len(data.classnames):
        raise DataError(f"{bench.name}: {len(bench.classnames)} classnames given for data with "
                        f"{len(data.classnames)} classes ({data.source})")  # fmt: skip
    templates = list(bench.templates or DEFAULT_TEMPLATES)
    temperature, temperature_from = bench.temperature, "config"
    if temperature is None:
        scale = model_logit_scale(model)
        temperature, temperature_from = (scale, "model logit_scale") if scale else (DEFAULT_TEMPERATURE, "default")
    if bench.bias is not None:  # an attribute on no clip: said before any model work
        attribute_columns(data.ids, data.attributes, bench.bias)
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: clips", total=len(data.ids))
    audio_emb, clips = encode_audio(model, data.audio, runtime, bench.audio, bench.data.on_bad_input,
                                    lambda n: progress.advance(task, n), ctx.perturbation)  # fmt: skip
    if not clips.ok_indices:
        raise DataError(f"{data.source}: no readable clip to classify")
    # a text robustness re-run perturbs each class prompt (sample id: class and template positions)
    prompts = [apply_cell(ctx.perturbation, "text", template.format(c=name), (c, k))
               for c, name in enumerate(classes) for k, template in enumerate(templates)]  # fmt: skip
    task = progress.add_task(f"{bench.name}: class prompts", total=len(prompts))
    text_emb, text_timer = encode_texts(model, prompts, runtime, lambda n: progress.advance(task, n))
    if not ctx.passes_done():
        return None

    metric_start = time.perf_counter()
    weights = class_embeddings(text_emb.to(audio_emb.device), len(classes), len(templates))
    scores = (audio_emb @ weights.T).float().cpu().numpy()
    labels = np.array(data.labels)[clips.ok_indices]
    ids = [data.ids[i] for i in clips.ok_indices]
    values = metrics.single_label_metrics(scores, labels, temperature)
    reported = {
        name: {"value": value, "higher_is_better": TASK.higher_is_better(name)} for name, value in values.items()
    }
    block = add_intervals(reported, (len(ids),), bootstrap_metrics.single_label_statistic(scores, labels, temperature),
                          ctx.bootstrap, "clips")  # fmt: skip
    predictions = scores.argmax(axis=1)
    ranks = metrics.label_ranks(scores, labels)
    confidence = metrics.softmax(scores, temperature).max(axis=1)
    rows = [{"clip_id": i, "label": classes[t], "prediction": classes[p], "rank": int(r), "confidence": float(c)}
            for i, t, p, r, c in zip(ids, labels, predictions, ranks, confidence)]  # fmt: skip
    confusion = metrics.class_confusion(labels, predictions, len(classes))
    recall = metrics.per_class_recall(confusion)
    per_class = [{"class": name, "n_clips": int(confusion[c].sum()), "accuracy": float(recall[c])}
                 for c, name in enumerate(classes)]  # fmt: skip
    extra: dict[str, Any] = {
        "classification": {
            "classes": classes,
            "templates": templates,
            "temperature": temperature,
            "temperature_from": temperature_from,
            "per_class": per_class,
        }
    }
    if data.folds is not None:
        folds = np.array(data.folds)[clips.ok_indices]
        extra["per_fold"] = {int(f): metrics.single_label_metrics(scores[folds == f], labels[folds == f], temperature)
                             for f in sorted(set(folds.tolist()))}  # fmt: skip
        for row, fold in zip(rows, folds):
            row["fold"] = int(fold)
    warnings = [f"top5: only {len(classes)} classes, so every label is within the top 5 (top5 = 1.0)"] \
        if len(classes) <= 5 else []  # fmt: skip
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)
    if warnings:
        extra["warnings"] = warnings
    if block is not None:
        extra["bootstrap"] = block
    if bench.bias is not None:
        extra["bias"] = classification_bias(
            bench.bias, ids, data.attributes, labels, predictions, classes,
            lambda rows: metrics.single_label_metrics(scores[rows], labels[rows], temperature),
        )  # fmt: skip
    metric_s = time.perf_counter() - metric_start

    dataset = {**audio_dataset_summary(data, clips, len(prompts)), "n_classes": len(classes)}
    timings = {"load_data_s": load_s, **clips.timer.as_dict("clips"), **text_timer.as_dict("texts"),
               "metrics_s": metric_s, "total_s": time.perf_counter() - started}  # fmt: skip
    per_sample = {
        "predictions": rows,
        "confusion_matrix": [{"class": n, "predicted": confusion[c].tolist()} for c, n in enumerate(classes)],
    }
    return BenchmarkResult(TASK.name, dataset, reported, timings, per_sample, extra,
                           timers={"clips": clips.timer, "texts": text_timer})  # fmt: skip
