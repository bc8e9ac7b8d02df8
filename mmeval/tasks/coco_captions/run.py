"""COCO-style captioning: one caption per image, scored with pycocoevalcap's metrics (and CLIPScore).

Captions are written next to the report in the COCO results format as soon as they are generated, so a
failure while scoring never loses them; `mmeval score` can re-score that file later.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mmeval.data.image_files import check_image_files
from mmeval.data.loaders import load_retrieval_data
from mmeval.engine.runner import encode_images, encode_texts, generate_captions
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.caption.scores import score_captions
from mmeval.metrics.clipscore import clip_s, ref_clip_s
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.metrics.stats.bootstrap_metrics import caption_statistic
from mmeval.models.base import GenerationSettings
from mmeval.tasks.coco_captions import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext, check_skipped, dataset_summary
from mmeval.tasks.bias_block import (
    caption_subset_scorer,
    captioning_bias,
    check_attributes,
    with_reference_groups,
)
from mmeval.tasks.judge_block import check_judge, judge_captions, rule_per_caption

log = logging.getLogger(__name__)
TOKENIZERS = {"auto": "ptb", "ptb": "ptb", "python": "python"}


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Caption every image of the benchmark once, save the captions, then score them."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    settings = GenerationSettings(**bench.generation.model_dump())
    if hasattr(model, "check_settings"):  # e.g. a prompt the model needs: refuse before any data is read
        model.check_settings(settings)
    check_judge(bench, ctx)
    data = ctx.load_data(load_retrieval_data, bench.data)
    attributes = with_reference_groups(bench.bias, data)
    check_attributes(bench.bias, data, attributes)
    check_image_files(data, bench.data)
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: captions", total=len(data.image_ids))
    captions, images = generate_captions(model, data.images, runtime, settings, bench.data.on_bad_image,
                                         lambda n: progress.advance(task, n), bench.data.decode, ctx.perturbation)
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None
    check_skipped(bench, data, images)
    ids = [data.image_ids[i] for i in images.ok_indices]
    predictions = [{"image_id": image_id, "caption": caption} for image_id, caption in zip(ids, captions)]
    extra: dict[str, Any] = {}
    if ctx.save_artifact is not None:
        extra["predictions_file"] = ctx.save_artifact("captions", predictions).name

    references: dict[Any, list[str]] = {image_id: [] for image_id in ids}
    row_of = {index: row for row, index in enumerate(images.ok_indices)}
    for text, owner in zip(data.texts, data.text_image_index):
        if owner in row_of:
            references[ids[row_of[owner]]].append(text)
    scored = [image_id for image_id in ids if references[image_id]]
    if not scored:
        raise DataError(f"{data.source}: no readable image has a reference caption to score against")
    if len(scored) < len(ids):
        log.warning("%s: %d image(s) have no reference caption and are not scored", bench.name, len(ids) - len(scored))

    metric_start = time.perf_counter()
    caption_of = dict(zip(ids, captions))
    if bench.tokenizer == "ptb":
        from mmeval.metrics.caption.tokenize import ptb_available

        if not ptb_available():
            raise MmevalError(f"benchmarks '{bench.name}'.tokenizer: 'ptb' needs Java and pycocoevalcap's PTB jar; "
                              "install Java or set tokenizer: auto (falls back to Python, with a warning)")
    scores = score_captions({i: references[i] for i in scored}, {i: caption_of[i] for i in scored},
                            metrics=bench.metrics, spice_jars=bench.spice_jars, tokenizer=TOKENIZERS[bench.tokenizer])
    for warning in scores.warnings:
        log.warning("%s: %s", bench.name, warning)
    values = dict(scores.scores)
    per_image = {name: dict(zip(scores.image_ids, array)) for name, array in scores.per_image.items()}
    if bench.scorer is not None:
        clip_values = _clipscore(bench, data, images.ok_indices, [caption_of[i] for i in ids], references, ids, ctx)
        for name, array in clip_values.items():
            values[name] = float(np.nanmean(array))
            per_image[name] = dict(zip(ids, array))
    metrics = {name: {"value": value, "higher_is_better": True} for name, value in values.items()}
    clip = {name: np.array([per_image[name][i] for i in scored], dtype=np.float64)
            for name in values if name not in scores.scores}  # CLIPScore, RefCLIPScore: of the scored images
    block = add_intervals(metrics, (len(scored),), caption_statistic(scores, clip), ctx.bootstrap, "images")
    if block is not None:
        extra["bootstrap"] = block
    if bench.bias is not None:
        extra["bias"] = captioning_bias(bench.bias, scored, attributes, [caption_of[i] for i in scored],
                                        references, caption_subset_scorer(scores))  # fmt: skip
    metric_s = time.perf_counter() - metric_start

    dataset = dataset_summary(data, images, sum(len(references[i]) for i in scored))
    dataset["n_scored_images"] = len(scored)
    dataset["n_empty_predictions"] = scores.n_empty_predictions
    extra.update({"tokenizer": scores.tokenizer, "skipped_metrics": scores.skipped, "warnings": scores.warnings})
    timings = {"load_data_s": load_s, **images.timer.as_dict("generate"), "metrics_s": metric_s,
               "total_s": time.perf_counter() - started}
    per_sample = {"captions": [
        {"image_id": image_id, "caption": caption_of[image_id],
         **{name: float(values_of[image_id]) for name, values_of in per_image.items()}}
        for image_id in scored
    ]}
    if bench.judge is not None:
        rule, rule_values = rule_per_caption(per_image, scored)
        judge_captions(bench, ctx, "image", scored, [caption_of[i] for i in scored], [references[i] for i in scored],
                       rule_values, rule, per_sample["captions"], metrics, extra)
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra,
                           timers={"generate": images.timer})


def _clipscore(bench, data, ok_indices, captions, references, ids, ctx: RunContext) -> dict[str, np.ndarray]:
    """CLIP-S and RefCLIP-S of each caption with the configured scorer model (its own preprocessing)."""
    from mmeval.engine.cache import held_for_benchmark
    from mmeval.engine.evaluate import lacking, load_model
    from mmeval.engine.runtime import place_model
    from mmeval.io.images import SubsetImages

    scorer = held_for_benchmark(f"scorer {bench.scorer.model_dump_json()}", lambda: load_model(bench.scorer))
    problem = lacking(scorer, "image_text_encoder", "a CLIPScore scorer")
    if problem:
        raise MmevalError(f"benchmarks '{bench.name}'.scorer: {problem}")
    place_model(scorer, ctx.runtime)
    prefix = bench.clipscore_prefix.strip()
    prefix = prefix + " " if prefix else ""
    task = ctx.progress.add_task(f"{bench.name}: CLIPScore", total=len(ids))
    image_emb, _ = encode_images(scorer, SubsetImages(data.images, ok_indices), ctx.runtime, "fail",
                                 lambda n: ctx.progress.advance(task, n))
    caption_emb, _ = encode_texts(scorer, [prefix + c for c in captions], ctx.runtime, lambda n: None)
    caption_emb = caption_emb.to(image_emb.device)
    scores = clip_s(image_emb, caption_emb)
    refs = [(n, prefix + r) for n, image_id in enumerate(ids) for r in references[image_id]]
    ref_emb, _ = encode_texts(scorer, [text for _, text in refs], ctx.runtime, lambda n: None)
    ref_scores = ref_clip_s(scores, caption_emb, ref_emb.to(image_emb.device), [n for n, _ in refs])
    return {"CLIPScore": scores, "RefCLIPScore": ref_scores}
