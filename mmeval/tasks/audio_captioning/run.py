"""Audio captioning: one caption per clip, scored with the caption metrics of coco_captions (pycocoevalcap's
BLEU, METEOR, ROUGE_L, CIDEr-D, SPICE), plus SPIDEr = (CIDEr-D + SPICE) / 2 per clip when SPICE ran.

Captions are written next to the report as soon as they are generated, so a failure while scoring never loses
them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mmeval.data.audio_formats import audio_dataset_summary, load_audio_data
from mmeval.engine.audio_passes import generate_audio_captions
from mmeval.errors import DataError, MmevalError
from mmeval.metrics.caption.scores import CaptionScores, score_captions
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.metrics.stats.bootstrap_metrics import caption_statistic
from mmeval.models.base import GenerationSettings
from mmeval.tasks.audio_captioning import TASK
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.coco_captions.run import TOKENIZERS
from mmeval.tasks.judge_block import check_judge, judge_captions, rule_per_caption

log = logging.getLogger(__name__)


def spider(scores: CaptionScores) -> np.ndarray | None:
    """Per-clip SPIDEr, (CIDEr-D + SPICE) / 2 (Liu et al. 2017; DCASE task 6a), or None unless both ran."""
    if "CIDEr" not in scores.per_image or "SPICE" not in scores.per_image:
        return None
    return (np.asarray(scores.per_image["CIDEr"], dtype=np.float64) + np.asarray(scores.per_image["SPICE"])) / 2


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Caption every clip once, save the captions, then score them against the clip's references."""
    runtime, progress = ctx.runtime, ctx.progress
    started = time.perf_counter()
    settings = GenerationSettings(**bench.generation.model_dump())
    check_judge(bench, ctx)
    data = ctx.load_data(load_audio_data, bench.data, "captions")
    load_s = time.perf_counter() - started

    task = progress.add_task(f"{bench.name}: captions", total=len(data.ids))
    generated, clips = generate_audio_captions(model, data.audio, runtime, bench.audio, settings,
                                               bench.data.on_bad_input, lambda n: progress.advance(task, n),
                                               ctx.perturbation)  # fmt: skip
    if not ctx.passes_done():
        return None
    ids = [data.ids[i] for i in clips.ok_indices]
    caption_of = {clip_id: text for clip_id, (text, _) in zip(ids, generated)}
    extra: dict[str, Any] = {}
    if ctx.save_artifact is not None:
        rows = [{"clip_id": clip_id, "caption": caption_of[clip_id]} for clip_id in ids]
        extra["predictions_file"] = ctx.save_artifact("audio_captions", rows).name
    references = {data.ids[i]: data.captions[i] for i in clips.ok_indices}
    scored = [clip_id for clip_id in ids if references[clip_id]]
    if not scored:
        raise DataError(f"{data.source}: no readable clip has a reference caption to score against")

    metric_start = time.perf_counter()
    if bench.tokenizer == "ptb":
        from mmeval.metrics.caption.tokenize import ptb_available

        if not ptb_available():
            raise MmevalError(
                f"benchmarks '{bench.name}'.tokenizer: 'ptb' needs Java and pycocoevalcap's PTB jar; "
                "install Java or set tokenizer: auto (falls back to Python, with a warning)"
            )
    scores = score_captions(
        {i: references[i] for i in scored},
        {i: caption_of[i] for i in scored},
        metrics=bench.metrics,
        spice_jars=bench.spice_jars,
        tokenizer=TOKENIZERS[bench.tokenizer],
    )
    for warning in scores.warnings:
        log.warning("%s: %s", bench.name, warning)
    values = dict(scores.scores)
    per_clip = {name: np.asarray(array, dtype=np.float64) for name, array in scores.per_image.items()}
    more: dict[str, np.ndarray] = {}
    spider_values = spider(scores)
    if spider_values is not None:
        values["SPIDEr"] = float(spider_values.mean())
        per_clip["SPIDEr"] = more["SPIDEr"] = spider_values
    else:
        scores.skipped.setdefault("SPIDEr", "needs CIDEr and SPICE (SPICE did not run)")
    metrics = {name: {"value": value, "higher_is_better": True} for name, value in values.items()}
    block = add_intervals(metrics, (len(scored),), caption_statistic(scores, more), ctx.bootstrap, "clips")
    if block is not None:
        extra["bootstrap"] = block
    metric_s = time.perf_counter() - metric_start

    dataset = audio_dataset_summary(data, clips, sum(len(references[i]) for i in scored))
    dataset["n_scored_clips"] = len(scored)
    dataset["n_empty_predictions"] = scores.n_empty_predictions
    extra.update({"tokenizer": scores.tokenizer, "skipped_metrics": scores.skipped, "warnings": scores.warnings})
    timings = {"load_data_s": load_s, **clips.timer.as_dict("generate"), "metrics_s": metric_s,
               "total_s": time.perf_counter() - started}  # fmt: skip
    order = {clip_id: n for n, clip_id in enumerate(scores.image_ids)}
    per_sample = {"captions": [{"clip_id": clip_id, "caption": caption_of[clip_id],
                                **{name: float(array[order[clip_id]]) for name, array in per_clip.items()}}
                               for clip_id in scored]}  # fmt: skip
    if bench.judge is not None:
        rule, rule_values = rule_per_caption({k: dict(zip(scores.image_ids, a)) for k, a in per_clip.items()}, scored)
        judge_captions(bench, ctx, "audio", scored, [caption_of[i] for i in scored], [references[i] for i in scored],
                       rule_values, rule, per_sample["captions"], metrics, extra)
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra, timers={"generate": clips.timer})
