"""Text-video retrieval: every video and every caption embedded once, ranked as image retrieval ranks images.

Several captions per video are handled as image retrieval handles COCO's five: each caption is a text query
with one positive video; a video query's rank is that of its best-ranked caption. An image-text model embeds
videos by pooling its frames (`mmeval.models.frame_pooling`).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmeval.engine.runner import encode_texts
from mmeval.errors import DataError
from mmeval.io.video_loading import encode_videos
from mmeval.metrics.retrieval import compute_ranks, higher_is_better, metrics_from_ranks, saturated_recall_warnings
from mmeval.metrics.stats.bootstrap import Clusters, add_intervals
from mmeval.metrics.stats.bootstrap_metrics import retrieval_statistic
from mmeval.models.frame_pooling import as_video_encoder
from mmeval.models.video_plugin import check_frame_count
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import check_attributes, retrieval_bias
from mmeval.tasks.video_block import query_texts, video_block, video_data, video_dataset
from mmeval.tasks.video_retrieval import TASK
from mmeval.tasks.video_retrieval.rerank import RERANKERS, ranks_from_scores

log = logging.getLogger(__name__)


def video_names(values: dict[str, Any]) -> dict[str, Any]:
    """The image-retrieval metric names (t2i, i2t) of the shared metric functions as video names (t2v, v2t)."""
    return {name.replace("t2i_", "t2v_").replace("i2t_", "v2t_"): value for name, value in values.items()}


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` on the video retrieval benchmark `bench`."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    check_frame_count(model, bench.frames.frames)  # a model that takes a fixed number of frames: refuse early
    data = ctx.load_data(video_data, bench, "captions")
    check_attributes(bench.bias, SimpleNamespace(image_ids=data.ids, attributes=data.attributes))
    if not data.texts:
        raise DataError(f"{data.split_note}: no captions to retrieve with")
    load_s = time.perf_counter() - started
    encoder, described = as_video_encoder(model)

    task = progress.add_task(f"{bench.name}: videos", total=len(data.videos))
    video_emb, videos = encode_videos(encoder, data.videos, runtime, bench.frames, bench.data.on_bad_input,
                                      lambda n: progress.advance(task, n), ctx.perturbation)  # fmt: skip
    kept = set(videos.ok_indices)
    text_owner = data.text_video_index
    kept_texts = [t for t, owner in enumerate(text_owner) if owner in kept]
    if not kept_texts:
        raise DataError(f"{data.split_note}: no readable video has a caption")
    task = progress.add_task(f"{bench.name}: texts", total=len(kept_texts))
    all_texts = data.texts
    queries = query_texts(ctx, [all_texts[i] for i in kept_texts], kept_texts)  # sample id: the caption's index
    text_emb, text_timer = encode_texts(encoder, queries, runtime,
                                        lambda n: progress.advance(task, n))  # fmt: skip
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here, rank 0 computes the metrics
        return None

    metric_start = time.perf_counter()
    row_of = {index: row for row, index in enumerate(videos.ok_indices)}
    owner = [row_of[text_owner[i]] for i in kept_texts]
    ranks = compute_ranks(video_emb, text_emb.to(video_emb.device), owner)
    has_caption = np.bincount(owner, minlength=len(videos.ok_indices)) > 0
    ranks.i2t = ranks.i2t[has_caption]
    values = video_names(metrics_from_ranks(ranks, bench.recall_k))
    metrics = {name: {"value": value, "higher_is_better": higher_is_better(name)} for name, value in values.items()}
    extra: dict[str, Any] = {"video": video_block(bench.frames, videos, described)}
    warnings = [w.replace("image", "video") for w in
                saturated_recall_warnings(bench.recall_k, len(videos.ok_indices), len(kept_texts))]
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)
    if warnings:
        extra["warnings"] = warnings
    statistic = retrieval_statistic(ranks, bench.recall_k)
    block = add_intervals(metrics, (len(ranks.t2i), len(ranks.i2t)), lambda *c: video_names(statistic(*c)),
                          ctx.bootstrap, "queries: text queries for t2v, video queries for v2t, both for rsum",
                          Clusters.of_gallery(owner, has_caption, "videos"))  # a video and its captions: one cluster
    if block is not None:
        extra["bootstrap"] = block
    if bench.rerank is not None:
        extra["rerank"] = _reranked(bench, metrics, video_emb, text_emb, owner, has_caption)
    metric_s = time.perf_counter() - metric_start

    dataset = video_dataset(data, videos, len(kept_texts))
    dataset["n_videos_without_captions"] = int((~has_caption).sum())
    timings = {"load_data_s": load_s, **videos.timer.as_dict("videos"), **text_timer.as_dict("texts"),
               "metrics_s": metric_s, "total_s": time.perf_counter() - started}  # fmt: skip
    ok_ids = [data.videos.ids[i] for i in videos.ok_indices]
    per_sample = {
        "t2v": [{"text_index": t, "video_id": ok_ids[o], "rank": int(r)} for t, o, r in zip(kept_texts, owner, ranks.t2i)],
        "v2t": [{"video_id": i, "rank": int(r)} for i, r in zip(np.array(ok_ids, dtype=object)[has_caption], ranks.i2t)],
    }
    if bench.bias is not None:
        query_scores = None
        if bench.bias.queries:
            queries, _ = encode_texts(encoder, bench.bias.queries, runtime, lambda n: None)
            query_scores = (queries.to(video_emb.device) @ video_emb.T).float().cpu().numpy()
        extra["bias"] = _renamed(retrieval_bias(bench.bias, ok_ids, data.attributes, ranks, owner, has_caption,
                                                bench.recall_k, query_scores))  # fmt: skip
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra,
                           timers={"videos": videos.timer, "texts": text_timer})


def _reranked(bench, metrics: dict, video_emb: torch.Tensor, text_emb: torch.Tensor, owner: list[int],
              has_caption: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """The re-ranked metrics (dsl_ / isn_, added to `metrics`, marked) and the report's `rerank` note."""
    rerank, prefix = RERANKERS[bench.rerank]
    scores = F.normalize(text_emb.float(), dim=-1).cpu() @ F.normalize(video_emb.float(), dim=-1).cpu().T
    t = bench.rerank_temperature
    ranks = ranks_from_scores(rerank(scores, t, dim=0), rerank(scores, t, dim=1), owner)
    ranks.i2t = ranks.i2t[has_caption]
    for name, value in video_names(metrics_from_ranks(ranks, bench.recall_k)).items():
        if "_R@" in name or name == "rsum":
            metrics[f"{prefix}{name}"] = {"value": value, "higher_is_better": True, "reranked": bench.rerank}
    return {"method": bench.rerank, "temperature": t, "metrics_prefix": prefix,
            "note": "re-ranked with a softmax over all test queries at once: uses the test set's pairing, "
                    "not comparable with plain retrieval numbers"}


def _renamed(block: Any) -> Any:
    """The bias block with its image metric names (t2i_, i2t_) as video names, at every depth."""
    if isinstance(block, dict):
        return {(video_names({k: None}).popitem()[0] if isinstance(k, str) else k): _renamed(v) for k, v in block.items()}
    if isinstance(block, list):
        return [_renamed(v) for v in block]
    return block
