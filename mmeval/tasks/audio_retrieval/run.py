"""Audio-text retrieval: every clip and every caption encoded exactly once, then ranked in chunks (no N x N)."""

from __future__ import annotations

import logging
import time

import numpy as np

from mmeval.data.audio_formats import audio_dataset_summary, load_audio_data
from mmeval.engine.audio_passes import encode_audio
from mmeval.engine.runner import encode_texts
from mmeval.errors import DataError
from mmeval.metrics.audio_retrieval import audio_ranks, audio_retrieval_metrics, higher_is_better, map_at_k
from mmeval.metrics.retrieval import RetrievalRanks, saturated_recall_warnings
from mmeval.metrics.stats.bootstrap import Clusters, Statistic, add_intervals, mean
from mmeval.metrics.stats.bootstrap_metrics import retrieval_statistic
from mmeval.perturb import apply_cell
from mmeval.tasks.audio_retrieval import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import attribute_columns, sliced_only

log = logging.getLogger(__name__)


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Evaluate `model` (an audio_text_encoder) on the audio retrieval benchmark `bench`."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    data = ctx.load_data(load_audio_data, bench.data, "captions")
    if not data.texts:
        raise DataError(f"{data.source}: no captions to retrieve with")
    if bench.bias is not None:  # an attribute on no clip: said before any model work
        attribute_columns(data.ids, data.attributes, bench.bias)
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: clips", total=len(data.ids))
    audio_emb, clips = encode_audio(model, data.audio, runtime, bench.audio, bench.data.on_bad_input,
                                    lambda n: progress.advance(task, n), ctx.perturbation)  # fmt: skip
    kept = set(clips.ok_indices)
    owners = data.text_owner
    kept_texts = [t for t, owner in enumerate(owners) if owner in kept]
    if not kept_texts:
        raise DataError(f"{data.source}: no readable clip has a caption")
    texts = data.texts
    task = progress.add_task(f"{bench.name}: captions", total=len(kept_texts))
    queries = [apply_cell(ctx.perturbation, "text", texts[t], t) for t in kept_texts]  # robustness re-runs
    text_emb, text_timer = encode_texts(model, queries, runtime, lambda n: progress.advance(task, n))
    if not ctx.passes_done():  # data-parallel: ranks other than 0 stop here
        return None

    metric_start = time.perf_counter()
    row_of = {index: row for row, index in enumerate(clips.ok_indices)}
    owner = [row_of[owners[t]] for t in kept_texts]
    ranks = audio_ranks(audio_emb, text_emb.to(audio_emb.device), owner)
    has_caption = np.bincount(owner, minlength=len(clips.ok_indices)) > 0
    ranks.i2t = ranks.i2t[has_caption]  # a clip without a caption has no positive to find
    values = audio_retrieval_metrics(ranks, bench.recall_k, bench.map_k)
    metrics = {name: {"value": value, "higher_is_better": higher_is_better(name)} for name, value in values.items()}
    extra: dict = {"tie_policy": "ties counted against the model (a clip scoring as high as the relevant one "
                                 "ranks above it)"}  # fmt: skip
    warnings = [w.replace("t2i", "t2a").replace("i2t", "a2t").replace("images", "clips").replace("image", "clip")
                for w in saturated_recall_warnings(bench.recall_k, len(clips.ok_indices), len(kept_texts))]  # fmt: skip
    for warning in warnings:
        log.warning("%s: %s", bench.name, warning)
    if warnings:
        extra["warnings"] = warnings
    block = add_intervals(
        metrics,
        (len(ranks.t2i), len(ranks.i2t)),
        _statistic(ranks, bench.recall_k, bench.map_k),
        ctx.bootstrap,
        "queries: captions for t2a and mAP, clips for a2t, both for rsum",
        Clusters.of_gallery(owner, has_caption, "clips"),  # a clip and its captions: one cluster
    )
    if block is not None:
        extra["bootstrap"] = block
    if bench.bias is not None:
        ok_ids = [data.ids[i] for i in clips.ok_indices]

        def score(rows: np.ndarray) -> dict[str, float]:
            sub = ranks.t2i[rows]
            out = {f"t2a_R@{k}": float(np.mean(sub <= k)) for k in bench.recall_k}
            out[f"t2a_mAP@{bench.map_k}"] = map_at_k(sub, bench.map_k)
            return out

        extra["bias"] = sliced_only(bench.bias, [ok_ids[o] for o in owner], data.attributes, score, higher_is_better)
    metric_s = time.perf_counter() - metric_start

    dataset = audio_dataset_summary(data, clips, len(kept_texts))
    dataset["n_clips_without_captions"] = int((~has_caption).sum())
    timings = {"load_data_s": load_s, **clips.timer.as_dict("clips"), **text_timer.as_dict("texts"),
               "metrics_s": metric_s, "total_s": time.perf_counter() - started}  # fmt: skip
    ok_ids = [data.ids[i] for i in clips.ok_indices]
    per_sample = {
        "t2a": [
            {"text_index": t, "clip_id": ok_ids[o], "rank": int(r)} for t, o, r in zip(kept_texts, owner, ranks.t2i)
        ],
        "a2t": [{"clip_id": i, "rank": int(r)} for i, r in zip(np.array(ok_ids, dtype=object)[has_caption], ranks.i2t)],
    }
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra,
                           timers={"clips": clips.timer, "texts": text_timer})  # fmt: skip


def _statistic(ranks: RetrievalRanks, ks: list[int], map_k: int) -> Statistic:
    """The bootstrap statistic of `metrics.retrieval` with audio names, plus t2a mAP@k over the caption draws."""
    base = retrieval_statistic(ranks, ks)
    ap = np.where(ranks.t2i <= map_k, 1.0 / ranks.t2i, 0.0)[:, None]

    def statistic(text_counts: np.ndarray, clip_counts: np.ndarray) -> dict[str, np.ndarray]:
        out = {
            name.replace("t2i", "t2a").replace("i2t", "a2t"): v for name, v in base(text_counts, clip_counts).items()
        }
        out[f"t2a_mAP@{map_k}"] = mean(text_counts, ap)[:, 0]
        return out

    return statistic
