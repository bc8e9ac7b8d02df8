"""Zero-shot video classification: each class's prompts embedded and averaged, each video scored against them.

The metric functions are image zero-shot classification's (`mmeval.metrics.classification`); only the inputs
differ (videos, pooled by `frame_pooling` for an image-text model).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch.nn.functional as F

from mmeval.engine.runner import encode_texts
from mmeval.errors import DataError
from mmeval.io.video_loading import encode_videos
from mmeval.metrics import classification as metrics
from mmeval.metrics.stats import bootstrap_metrics
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.models.frame_pooling import as_video_encoder
from mmeval.models.video_plugin import check_frame_count
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import check_attributes, classification_bias
from mmeval.tasks.video_block import query_texts, video_block, video_data, video_dataset
from mmeval.tasks.video_zeroshot import TASK

log = logging.getLogger(__name__)
DEFAULT_TEMPERATURE = 100.0
DEFAULT_TEMPLATES = ("a video of {c}.", "a video of a shape {c}.", "{c}.")


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` on the zero-shot video classification benchmark `bench`."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    check_frame_count(model, bench.frames.frames)  # a model that takes a fixed number of frames: refuse early
    data = ctx.load_data(video_data, bench, "classes")
    check_attributes(bench.bias, SimpleNamespace(image_ids=data.ids, attributes=data.attributes))
    classes = list(bench.classnames or data.classnames)
    if len(classes) != len(data.classnames):
        raise DataError(f"benchmarks '{bench.name}'.classnames: {len(classes)} names given, the data has "
                        f"{len(data.classnames)} classes ({', '.join(data.classnames[:5])} ...)")
    templates = list(bench.templates or DEFAULT_TEMPLATES)
    temperature, temperature_from = bench.temperature, "config"
    if temperature is None:
        scale = getattr(getattr(model, "module", None), "logit_scale", None)
        temperature, temperature_from = ((float(scale.detach().float().exp()), "model logit_scale")
                                         if scale is not None and scale.numel() == 1 else (DEFAULT_TEMPERATURE, "default"))
    load_s = time.perf_counter() - started
    encoder, described = as_video_encoder(model)

    task = progress.add_task(f"{bench.name}: videos", total=len(data.videos))
    video_emb, videos = encode_videos(encoder, data.videos, runtime, bench.frames, bench.data.on_bad_input,
                                      lambda n: progress.advance(task, n), ctx.perturbation)  # fmt: skip
    if not videos.ok_indices:
        raise DataError(f"{data.split_note}: no readable video to classify")
    prompts = [template.format(c=name) for name in classes for template in templates]
    prompts = query_texts(ctx, prompts, list(range(len(prompts))))  # sample id: the prompt's index
    task = progress.add_task(f"{bench.name}: class prompts", total=len(prompts))
    text_emb, text_timer = encode_texts(encoder, prompts, runtime, lambda n: progress.advance(task, n))
    if not ctx.passes_done():
        return None

    metric_start = time.perf_counter()
    text_emb = F.normalize(text_emb.to(video_emb.device).float(), dim=-1)
    weights = F.normalize(text_emb.view(len(classes), len(templates), -1).mean(dim=1), dim=-1)
    scores = (F.normalize(video_emb.float(), dim=-1) @ weights.T).cpu().numpy()
    labels = np.asarray(data.labels)[videos.ok_indices]
    ids = [data.videos.ids[i] for i in videos.ok_indices]
    values = metrics.single_label_metrics(scores, labels, temperature)
    reported = {name: {"value": value, "higher_is_better": TASK.higher_is_better(name)} for name, value in values.items()}
    block = add_intervals(reported, (len(ids),), bootstrap_metrics.single_label_statistic(scores, labels, temperature),
                          ctx.bootstrap, "videos")  # fmt: skip
    predictions = scores.argmax(axis=1)
    confusion = metrics.class_confusion(labels, predictions, len(classes))
    recall = metrics.per_class_recall(confusion)
    ranks = metrics.label_ranks(scores, labels)
    rows = [{"video_id": i, "label": classes[t], "prediction": classes[p], "rank": int(r)}
            for i, t, p, r in zip(ids, labels, predictions, ranks)]
    warnings = []
    if len(classes) <= 5:
        warnings.append(f"top5: only {len(classes)} classes, so every label is within the top 5 (top5 = 1.0)")
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)
    extra: dict[str, Any] = {
        "video": video_block(bench.frames, videos, described),
        "classification": {"classes": classes, "templates": templates, "temperature": temperature,
                           "temperature_from": temperature_from,
                           "per_class": [{"class": c, "n_videos": int(confusion[k].sum()), "accuracy": float(recall[k])}
                                         for k, c in enumerate(classes)]},
    }  # fmt: skip
    if warnings:
        extra["warnings"] = warnings
    if block is not None:
        extra["bootstrap"] = block
    if bench.bias is not None:
        def score(rows: np.ndarray) -> dict[str, float]:
            return metrics.single_label_metrics(scores[rows], labels[rows], temperature)

        extra["bias"] = classification_bias(bench.bias, ids, data.attributes, labels, predictions, classes, score)
    metric_s = time.perf_counter() - metric_start
    dataset = {**video_dataset(data, videos, len(prompts)), "n_classes": len(classes)}
    timings = {"load_data_s": load_s, **videos.timer.as_dict("videos"), **text_timer.as_dict("texts"),
               "metrics_s": metric_s, "total_s": time.perf_counter() - started}  # fmt: skip
    per_sample = {"predictions": rows}
    return BenchmarkResult(TASK.name, dataset, reported, timings, per_sample, extra,
                           timers={"videos": videos.timer, "texts": text_timer})
