"""Zero-shot classification, the CLIP recipe: each class is the normalised mean of its normalised prompt
embeddings (one prompt per template), each image is embedded once, and an image's class scores are cosine
similarities. Scored as top-1 / top-5 accuracy, mean per-class recall, macro F1 and calibration (ECE), or
mAP for multi-label data.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmeval.config.benchmark import read_list_file
from mmeval.data.classification import load_labelled, resolve_classes
from mmeval.data.image_files import check_image_files
from mmeval.engine.runner import encode_images, encode_texts
from mmeval.errors import DataError
from mmeval.metrics.stats import bootstrap_metrics
from mmeval.metrics import classification as metrics
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.perturb import apply_cell
from mmeval.perturb.text import TEMPLATE_PERTURBATIONS
from mmeval.tasks.zeroshot_classification import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext, check_skipped, dataset_summary
from mmeval.tasks.bias_block import check_attributes, classification_bias, sliced_only

log = logging.getLogger(__name__)

# open_clip's SIMPLE_IMAGENET_TEMPLATES: the 7 prompts the CLIP authors selected as a small ensemble.
DEFAULT_TEMPLATES = (
    "itap of a {c}.",
    "a bad photo of the {c}.",
    "a origami {c}.",
    "a photo of the large {c}.",
    "a {c} in a video game.",
    "art of the {c}.",
    "a photo of the small {c}.",
)
DEFAULT_TEMPERATURE = 100.0  # CLIP's trained logit scale (it is clamped there), for models that expose none


def model_logit_scale(model) -> float | None:
    """exp(logit_scale) of a CLIP-style module (open_clip, transformers CLIP / SigLIP, reference), if any."""
    scale = getattr(getattr(model, "module", None), "logit_scale", None)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1 and torch.isfinite(scale).all():
        return float(scale.detach().float().exp())
    return None


def class_embeddings(text_emb: torch.Tensor, n_classes: int, n_templates: int) -> torch.Tensor:
    """(n_classes * n_templates, d) normalised prompt embeddings, class-major -> (n_classes, d) unit rows."""
    return F.normalize(text_emb.view(n_classes, n_templates, -1).mean(dim=1), dim=-1)


def class_prompts(cell, classes: list[str], templates: list[str]) -> list[str]:
    """Every class's prompt for every template, class-major. In a text robustness re-run, a template perturbation
    (template_variant) swaps each template (sample id: its position); any other perturbs each prompt (sample id:
    the class and template positions)."""
    on_templates = cell is not None and cell.name in TEMPLATE_PERTURBATIONS
    if on_templates:
        templates = [apply_cell(cell, "text", template, k) for k, template in enumerate(templates)]
    return [template.format(c=name) if on_templates else apply_cell(cell, "text", template.format(c=name), (c, k))
            for c, name in enumerate(classes) for k, template in enumerate(templates)]


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` on the zero-shot classification benchmark `bench` (a BenchmarkConfig)."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    given = bench.classnames if bench.classnames_file is None else read_list_file(bench.classnames_file)
    templates = bench.templates if bench.templates_file is None else read_list_file(bench.templates_file)
    templates = list(templates or DEFAULT_TEMPLATES)
    data = ctx.load_data(load_labelled, bench.data, bench.multilabel)
    check_attributes(bench.bias, data)
    check_image_files(data, bench.data)
    classes, targets = resolve_classes(data, given, bench.multilabel)
    temperature, temperature_from = bench.temperature, "config"
    if temperature is None:
        scale = model_logit_scale(model)
        temperature, temperature_from = (scale, "model logit_scale") if scale else (DEFAULT_TEMPERATURE, "default")
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: images", total=len(data.image_ids))
    image_emb, images = encode_images(model, data.images, runtime, bench.data.on_bad_image,
                                      lambda n: progress.advance(task, n), bench.data.decode, ctx.perturbation)
    check_skipped(bench, data, images)  # every rank has the pass's findings: all fail alike, before the prompts
    if not images.ok_indices:
        raise DataError(f"{data.source}: no readable image to classify")
    prompts = class_prompts(ctx.perturbation, classes, templates)
    task = progress.add_task(f"{bench.name}: class prompts", total=len(prompts))
    text_emb, text_timer = encode_texts(model, prompts, runtime, lambda n: progress.advance(task, n))
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None

    metric_start = time.perf_counter()
    weights = class_embeddings(text_emb.to(image_emb.device), len(classes), len(templates))
    scores = (image_emb @ weights.T).float().cpu().numpy()
    targets = targets[images.ok_indices]
    ids = [data.image_ids[i] for i in images.ok_indices]
    if bench.multilabel:
        values, per_class, per_sample, warnings = _multilabel(scores, targets, classes, ids)
    else:
        values, per_class, per_sample, warnings = _single_label(scores, targets, classes, ids, temperature)
    reported = {name: {"value": value, "higher_is_better": TASK.higher_is_better(name)}
                for name, value in values.items()}
    statistic = (bootstrap_metrics.multilabel_statistic(scores, targets) if bench.multilabel
                 else bootstrap_metrics.single_label_statistic(scores, targets, temperature))
    block = add_intervals(reported, (len(ids),), statistic, ctx.bootstrap, "images")
    bias = None
    if bench.bias is not None:
        bias = _bias(bench, data, ids, scores, targets, classes, temperature)
    metric_s = time.perf_counter() - metric_start
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)

    dataset = {**dataset_summary(data, images, len(prompts)), "n_classes": len(classes)}
    timings = {"load_data_s": load_s, **images.timer.as_dict("images"), **text_timer.as_dict("texts"),
               "metrics_s": metric_s, "total_s": time.perf_counter() - started}
    extra: dict[str, Any] = {"classification": {
        "classes": classes, "templates": templates, "multilabel": bench.multilabel,
        "temperature": temperature, "temperature_from": temperature_from, "per_class": per_class}}
    if warnings:
        extra["warnings"] = warnings
    if bias is not None:
        extra["bias"] = bias
    if block is not None:
        extra["bootstrap"] = block
    return BenchmarkResult(TASK.name, dataset, reported, timings, per_sample, extra,
                           timers={"images": images.timer, "texts": text_timer})


def _single_label(scores: np.ndarray, labels: np.ndarray, classes: list[str], ids: list[Any],
                  temperature: float) -> tuple[dict, list, dict, list[str]]:
    """Headline metrics, per-class rows, per-image rows + confusion matrix, and warnings."""
    values = metrics.single_label_metrics(scores, labels, temperature)
    predictions = scores.argmax(axis=1)
    confusion = metrics.class_confusion(labels, predictions, len(classes))
    recall = metrics.per_class_recall(confusion)
    predicted = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, np.diag(confusion) / predicted, np.nan)
    per_class = [{"class": name, "n_images": int(confusion[c].sum()), "accuracy": float(recall[c]),
                  "precision": float(precision[c]), "n_predicted": int(predicted[c])}
                 for c, name in enumerate(classes)]
    confidence = metrics.softmax(scores, temperature).max(axis=1)
    ranks = metrics.label_ranks(scores, labels)
    best = metrics.top_k(scores, 5)
    rows = [{"image_id": i, "label": classes[t], "prediction": classes[p], "rank": int(r),
             "confidence": float(conf), "top5": [classes[c] for c in top]}
            for i, t, p, r, conf, top in zip(ids, labels, predictions, ranks, confidence, best)]
    per_sample = {"predictions": rows,
                  "confusion_matrix": [{"class": name, "predicted": confusion[c].tolist()}
                                       for c, name in enumerate(classes)]}
    warnings = []
    if len(classes) <= 5:
        warnings.append(f"top5: only {len(classes)} classes, so every label is within the top 5 (top5 = 1.0)")
    empty = [name for name, row in zip(classes, per_class) if row["n_images"] == 0]
    if empty:
        warnings.append(f"{len(empty)} class(es) have no evaluated image ({', '.join(empty[:5])}"
                        f"{', ...' if len(empty) > 5 else ''}); mean_per_class_recall averages the others")
    return values, per_class, per_sample, warnings


def _bias(bench, data, ids: list[Any], scores: np.ndarray, targets: np.ndarray, classes: list[str],
          temperature: float) -> dict[str, Any]:
    """The `bias` block: headline metrics per group; for single-label data also fairness of the predictions."""
    if bench.multilabel:
        def score(rows: np.ndarray) -> dict[str, float]:
            return {"mAP": metrics.mean_average_precision(scores[rows], targets[rows])}

        return sliced_only(bench.bias, ids, data.attributes, score, TASK.higher_is_better)

    def score(rows: np.ndarray) -> dict[str, float]:
        return metrics.single_label_metrics(scores[rows], targets[rows], temperature)

    return classification_bias(bench.bias, ids, data.attributes, targets, scores.argmax(axis=1), classes, score)


def _multilabel(scores: np.ndarray, targets: np.ndarray, classes: list[str],
                ids: list[Any]) -> tuple[dict, list, dict, list[str]]:
    """mAP, per-class average precision, per-image rows and warnings for multi-label targets."""
    ap = metrics.average_precision_per_class(scores, targets)
    values = {"mAP": float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")}  # mean_average_precision
    per_class = [{"class": name, "n_positives": int(targets[:, c].sum()), "average_precision": float(ap[c])}
                 for c, name in enumerate(classes)]
    best = metrics.top_k(scores, 5)
    rows = [{"image_id": i, "labels": [classes[c] for c in np.flatnonzero(row)], "top5": [classes[c] for c in top]}
            for i, row, top in zip(ids, targets, best)]
    empty = [name for name, row in zip(classes, per_class) if row["n_positives"] == 0]
    warnings = [(f"{len(empty)} class(es) have no positive image ({', '.join(empty[:5])}"
                f"{', ...' if len(empty) > 5 else ''}); mAP averages the others")] if empty else []
    return values, per_class, {"predictions": rows}, warnings


def load_data(bench) -> tuple[Any, str]:
    """The labelled data as `run` reads it, and a one-line summary (`mmeval validate`)."""
    given = bench.classnames if bench.classnames_file is None else read_list_file(bench.classnames_file)
    data = load_labelled(bench.data, bench.multilabel)
    classes, _ = resolve_classes(data, given, bench.multilabel)
    return data, f"{len(data.image_ids)} images, {len(classes)} classes"
