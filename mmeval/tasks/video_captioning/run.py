"""Video captioning: one caption per video, saved at once, scored with coco_captions' pycocoevalcap metrics.

The caption file next to the report is `[{"video_id", "caption"}]`; `mmeval score` re-scores such a file against
MSR-VTT-style annotations (`{"videos": [...], "sentences": [{"video_id", "caption"}]}`) with no model.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

from mmeval.errors import DataError, MmevalError
from mmeval.io.video_loading import generate_for_videos
from mmeval.metrics.caption.scores import score_captions
from mmeval.metrics.stats.bootstrap import add_intervals
from mmeval.metrics.stats.bootstrap_metrics import caption_statistic
from mmeval.models.base import GenerationSettings
from mmeval.models.video_plugin import check_frame_count, recorded_prompts
from mmeval.tasks.base import BenchmarkResult, RunContext
from mmeval.tasks.bias_block import caption_subset_scorer, captioning_bias, check_attributes
from mmeval.tasks.coco_captions.run import TOKENIZERS
from mmeval.tasks.judge_block import check_judge, judge_captions, rule_per_caption
from mmeval.tasks.video_block import video_block, video_data, video_dataset
from mmeval.tasks.video_captioning import TASK

log = logging.getLogger(__name__)


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    """Caption every readable video once, save the captions, then score them against the references."""
    started = time.perf_counter()
    settings = GenerationSettings(**bench.generation.model_dump())
    if hasattr(model, "check_settings"):  # e.g. a prompt the model needs: refuse before any data is read
        model.check_settings(settings)
    check_frame_count(model, bench.frames.frames)
    check_judge(bench, ctx)
    data = ctx.load_data(video_data, bench, "captions")
    check_attributes(bench.bias, SimpleNamespace(image_ids=data.ids, attributes=data.attributes))
    load_s = time.perf_counter() - started

    task = ctx.progress.add_task(f"{bench.name}: captions", total=len(data.videos))
    captions, videos = generate_for_videos(model, data.videos, ctx.runtime, bench.frames, settings,
                                           bench.data.on_bad_input, lambda n: ctx.progress.advance(task, n),
                                           ctx.perturbation)  # fmt: skip
    if not ctx.passes_done():
        return None
    ids = [data.videos.ids[i] for i in videos.ok_indices]
    extra: dict[str, Any] = {"video": video_block(bench.frames, videos, _describe(model))}
    prompts = recorded_prompts(model, settings)
    if prompts is not None:
        extra["prompts"] = prompts
    if ctx.save_artifact is not None:
        extra["predictions_file"] = ctx.save_artifact(
            "captions", [{"video_id": v, "caption": c} for v, c in zip(ids, captions)]).name
    references = {v: list(data.captions[i]) for v, i in zip(ids, videos.ok_indices)}
    scored = [v for v in ids if references[v]]
    if not scored:
        raise DataError(f"{data.split_note}: no readable video has a reference caption to score against")
    if bench.tokenizer == "ptb":
        from mmeval.metrics.caption.tokenize import ptb_available

        if not ptb_available():
            raise MmevalError(f"benchmarks '{bench.name}'.tokenizer: 'ptb' needs Java and pycocoevalcap's PTB jar; "
                              "install Java or set tokenizer: auto (falls back to Python, with a warning)")
    metric_start = time.perf_counter()
    caption_of = dict(zip(ids, captions))
    scores = score_captions({v: references[v] for v in scored}, {v: caption_of[v] for v in scored},
                            metrics=bench.metrics, spice_jars=bench.spice_jars, tokenizer=TOKENIZERS[bench.tokenizer])
    for warning in scores.warnings:
        log.warning("%s: %s", bench.name, warning)
    metrics = {name: {"value": value, "higher_is_better": True} for name, value in scores.scores.items()}
    block = add_intervals(metrics, (len(scored),), caption_statistic(scores), ctx.bootstrap, "videos")
    if block is not None:
        extra["bootstrap"] = block
    if bench.bias is not None:
        extra["bias"] = captioning_bias(bench.bias, scored, data.attributes, [caption_of[v] for v in scored],
                                        references, caption_subset_scorer(scores))  # fmt: skip
    extra.update({"tokenizer": scores.tokenizer, "skipped_metrics": scores.skipped, "warnings": scores.warnings})
    dataset = video_dataset(data, videos, sum(len(references[v]) for v in scored))
    dataset.update(n_scored_videos=len(scored), n_empty_predictions=scores.n_empty_predictions)
    timings = {"load_data_s": load_s, **videos.timer.as_dict("generate"),
               "metrics_s": time.perf_counter() - metric_start, "total_s": time.perf_counter() - started}
    per_video = {name: dict(zip(scores.image_ids, array)) for name, array in scores.per_image.items()}
    per_sample = {"captions": [{"video_id": v, "caption": caption_of[v],
                                **{name: float(values[v]) for name, values in per_video.items()}} for v in scored]}
    if bench.judge is not None:
        rule, rule_values = rule_per_caption(per_video, scored)
        judge_captions(bench, ctx, "video", scored, [caption_of[v] for v in scored], [references[v] for v in scored],
                       rule_values, rule, per_sample["captions"], metrics, extra)
    return BenchmarkResult(TASK.name, dataset, metrics, timings, per_sample, extra, timers={"generate": videos.timer})


def _describe(model) -> dict[str, Any] | None:
    describe = getattr(model, "describe_video", None)
    return describe() if describe is not None else None
