"""Image-text retrieval: every image and every text encoded exactly once, then ranked in chunks."""

from __future__ import annotations

import logging
import time

import numpy as np

from mmeval.data.image_files import check_image_files
from mmeval.data.loaders import load_retrieval_data
from mmeval.engine.runner import encode_images, encode_texts
from mmeval.errors import DataError
from mmeval.metrics.retrieval import compute_ranks, higher_is_better, metrics_from_ranks, saturated_recall_warnings
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import retrieval_statistic
from mmeval.perturb import apply_cell
from mmeval.tasks.base import BenchmarkResult, RunContext, check_skipped, dataset_summary
from mmeval.tasks.bias_block import check_attributes, retrieval_bias
from mmeval.tasks.retrieval import TASK

log = logging.getLogger(__name__)


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` on the retrieval benchmark described by `bench` (a BenchmarkConfig)."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    data = ctx.load_data(load_retrieval_data, bench.data)
    check_attributes(bench.bias, data)
    check_image_files(data, bench.data)
    if not data.texts:
        raise DataError(f"{data.source}: no captions to retrieve with")
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: images", total=len(data.image_ids))
    image_emb, images = encode_images(model, data.images, runtime, bench.data.on_bad_image,
                                      lambda n: progress.advance(task, n), bench.data.decode, ctx.perturbation)
    check_skipped(bench, data, images)  # every rank has the pass's findings: all fail alike, before the texts
    kept_texts = _texts_of(images.ok_indices, data.text_image_index)
    if not kept_texts:
        raise DataError(f"{data.source}: no readable image has a caption")
    task = progress.add_task(f"{bench.name}: texts", total=len(kept_texts))
    queries = [apply_cell(ctx.perturbation, "text", data.texts[i], i) for i in kept_texts]  # robustness re-runs
    text_emb, text_timer = encode_texts(model, queries, runtime, lambda n: progress.advance(task, n))
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None

    metric_start = time.perf_counter()
    row_of = {index: row for row, index in enumerate(images.ok_indices)}
    owner = [row_of[data.text_image_index[i]] for i in kept_texts]
    ranks = compute_ranks(image_emb, text_emb.to(image_emb.device), owner, tie_policy=bench.tie_policy,
                          ks=bench.recall_k)
    has_caption = np.bincount(owner, minlength=len(images.ok_indices)) > 0
    ranks.i2t = ranks.i2t[has_caption]  # an image without a caption has no positive to find
    if ranks.hits is not None:
        ranks.hits["i2t"] = ranks.hits["i2t"][has_caption]
    values = metrics_from_ranks(ranks, bench.recall_k)
    metrics = {name: {"value": value, "higher_is_better": higher_is_better(name)} for name, value in values.items()}
    extra: dict = {"tie_policy": bench.tie_policy}
    warnings = saturated_recall_warnings(bench.recall_k, len(images.ok_indices), len(kept_texts))
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)
    if warnings:
        extra["warnings"] = warnings
    image_clusters = Clusters.of_gallery(owner, has_caption)  # an image and its captions form one cluster
    block = add_intervals(metrics, (len(ranks.t2i), len(ranks.i2t)), retrieval_statistic(ranks, bench.recall_k),
                          ctx.bootstrap, "queries: text queries for t2i, image queries for i2t, both for rsum",
                          image_clusters)
    if block is not None:
        extra["bootstrap"] = block
    metric_s = time.perf_counter() - metric_start

    dataset = dataset_summary(data, images, len(kept_texts))
    dataset["n_images_without_captions"] = int((~has_caption).sum())
    timings = {
        "load_data_s": load_s,
        **images.timer.as_dict("images"),
        **text_timer.as_dict("texts"),
        "metrics_s": metric_s,
        "total_s": time.perf_counter() - started,
    }
    ok_ids = [data.image_ids[i] for i in images.ok_indices]
    per_sample = {
        "t2i": [{"text_index": t, "image_id": ok_ids[o], "rank": int(r)} for t, o, r in zip(kept_texts, owner, ranks.t2i)],
        "i2t": [{"image_id": i, "rank": int(r)} for i, r in zip(np.array(ok_ids, dtype=object)[has_caption], ranks.i2t)],
    }
    if ranks.hits is not None:  # topk tie policy: recall@k hits are torch.topk's, not rank <= k
        for direction, rows in per_sample.items():
            for row, hit in zip(rows, ranks.hits[direction]):
                row["hits"] = {str(k): bool(h) for k, h in zip(ranks.hit_ks, hit)}
    if bench.bias is not None:
        query_scores = None
        if bench.bias.queries:
            queries, _ = encode_texts(model, bench.bias.queries, runtime, lambda n: None)
            query_scores = (queries.to(image_emb.device) @ image_emb.T).float().cpu().numpy()
        extra["bias"] = retrieval_bias(bench.bias, ok_ids, data.attributes, ranks, owner, has_caption, bench.recall_k,
                                       query_scores)  # fmt: skip
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra,
                           timers={"images": images.timer, "texts": text_timer})


def _texts_of(image_indices: list[int], text_image_index: list[int]) -> list[int]:
    kept = set(image_indices)
    return [t for t, owner in enumerate(text_image_index) if owner in kept]
