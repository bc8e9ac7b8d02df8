"""The opt-in judge in a task: verdicts, the judge metric beside the rule-based ones, and their agreement.

A task with `judge:` set calls `judge_answers` (binary verdicts; metric `judge_accuracy`, agreement with a binary
rule: accuracy and Cohen's kappa) or `judge_captions` (1-5 scores; metric `judge_score`, the mean score;
agreement with a per-caption rule value such as CIDEr-D: Spearman, and accuracy / kappa after the binarisation
of mmeval.metrics.judge_agreement). The report's `judge` block holds the judge's model id, prompt version,
counts, cache hits and misses, the named failures and the agreement. The judge metric gets a percentile
bootstrap interval over the judged items like the rule-based metrics, drawing a VQA image's or a video's
questions together as they do (the block's `bootstrap` says how).

Failed judge requests are never silently scored. With the judge's `on_failed_request: fail` (the default) the
judge metric and agreement are withheld (`judge.status: failed`, the failures named, a warning) while the
benchmark's rule-based metrics stay: the judge is an opt-in second opinion, and a failure of it must not lose
what was computed. With `score_as_wrong` each failed request is scored as the lowest verdict (no / 1) and
counted. Unparseable replies are left out of the judge metric, counted and named.

The judge grades clean runs only: in a robustness re-run (`ctx.perturbation` set) it is not called, so a grid
of perturbations costs no judge requests (the robustness block covers the rule-based metrics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from mmeval.errors import ModelLoadError
from mmeval.tasks.base import RunContext

log = logging.getLogger(__name__)


def check_judge(bench, ctx: RunContext) -> None:
    """Before any data is read: the configured judge answers GET /models and serves its model (else one clear
    ModelLoadError naming `judge.base_url` / `judge.model`). Nothing to do without a judge or in a re-run."""
    if getattr(bench, "judge", None) is None or ctx.perturbation is not None:
        return
    from mmeval.models.served.judge import check_judge as check

    check(bench.judge)


def _verdicts(bench, ctx: RunContext, kind: str, items: list[tuple[str, str, list[str]]], ids: list[Any],
              extra: dict[str, Any]) -> tuple[list[Any], dict[str, Any]] | None:
    """The judge's verdicts with failed requests handled per its `on_failed_request`; None when there is no
    judge metric to report (a robustness re-run, or failures under `fail`)."""
    if ctx.perturbation is not None:
        return None
    from mmeval.models.served.judge import PROMPTS, judge  # httpx only when a judge is configured

    cache_root = ctx.runtime.cache.root if ctx.runtime.cache is not None else None
    started = time.perf_counter()
    try:
        verdicts, failed_at, block = judge(bench.judge, items, cache_root, kind, ids)
    except ModelLoadError as exc:  # the judge went away since check_judge: keep the rule-based metrics
        extra["judge"] = {"model": bench.judge.model, "base_url": bench.judge.base_url, "kind": kind,
                          "prompt_version": PROMPTS[kind].version, "status": "failed",
                          "error": f"{exc}; judge metrics withheld"}
        log.warning("%s: %s", bench.name, extra["judge"]["error"])
        extra.setdefault("warnings", []).append(extra["judge"]["error"])
        return None
    block["wall_s"] = time.perf_counter() - started
    extra["judge"] = block
    if failed_at:
        first = block["failed"][0]
        what = (f"{len(failed_at)} of {len(items)} judge request(s) to {bench.judge.base_url} failed after "
                f"retries (first: item {first['item']!r}: {first['error']}, {first['attempts']} tries)")
        if bench.judge.on_failed_request == "fail":
            kept = ("the verdicts received are cached: a rerun sends only the rest" if cache_root is not None
                    else "the cache is off, so a rerun asks again")
            block.update(status="failed", error=f"{what}; judge metrics withheld (judge.on_failed_request: fail); "
                                                f"{kept}")
            log.warning("%s: %s", bench.name, block["error"])
            extra.setdefault("warnings", []).append(block["error"])
            return None
        log.warning("%s: %s; scored as the lowest verdict (judge.on_failed_request: score_as_wrong)", bench.name, what)
        extra.setdefault("warnings", []).append(f"{what}; scored as the lowest verdict")
        block["failed_scored_as"] = PROMPTS[kind].lowest
        for n in failed_at:
            verdicts[n] = PROMPTS[kind].lowest
    block["status"] = "complete"
    return verdicts, block


def judge_answers(bench, ctx: RunContext, kind: str, items: list[tuple[str, str, list[str]]], ids: list[Any],
                  rule_correct: Sequence[bool], rule_name: str, rows: list[dict], metrics: dict,
                  extra: dict[str, Any], clusters: tuple[Sequence[Any], str] | None = None) -> None:
    """Yes/no verdicts on (question, answer, references) items: `judge_accuracy` (the share judged correct among
    the judged items) and its agreement with `rule_correct` on the same items; each row gets its `judge`.
    `clusters`: (each item's cluster label, what a cluster is), e.g. its image: the interval then resamples those,
    as the task's rule-based intervals do."""
    from mmeval.metrics.judge_agreement import binary_agreement

    got = _verdicts(bench, ctx, kind, items, ids, extra)
    if got is None:
        return
    verdicts, block = got
    for row, value in zip(rows, verdicts):
        row["judge"] = value
    judged = [n for n, v in enumerate(verdicts) if v is not None]
    pairs = [(bool(verdicts[n]), bool(rule_correct[n])) for n in judged]
    if pairs:
        metrics["judge_accuracy"] = {"value": sum(v for v, _ in pairs) / len(pairs), "higher_is_better": True}
        labels = ([clusters[0][n] for n in judged], clusters[1]) if clusters is not None else None
        _interval(ctx, metrics, "judge_accuracy", [float(v) for v, _ in pairs], "judged answers", block, labels)
    block["rule"] = rule_name
    block["agreement"] = binary_agreement([v for v, _ in pairs], [r for _, r in pairs])


def judge_captions(bench, ctx: RunContext, medium: str, ids: list[Any], captions: list[str],
                   references: list[list[str]], rule_values: Sequence[float] | None, rule_name: str | None,
                   rows: list[dict], metrics: dict, extra: dict[str, Any]) -> None:
    """1-5 scores of each caption against its references: `judge_score` (the mean over judged captions) and the
    agreement with the per-caption `rule_values` (e.g. CIDEr-D) on the same captions; each row gets its `judge`."""
    from mmeval.metrics.judge_agreement import graded_agreement

    items = [("", caption, list(refs)) for caption, refs in zip(captions, references)]
    got = _verdicts(bench, ctx, f"{medium}_caption", items, ids, extra)
    if got is None:
        return
    verdicts, block = got
    for row, value in zip(rows, verdicts):
        row["judge"] = value
    judged = [n for n, v in enumerate(verdicts) if v is not None]
    if judged:
        metrics["judge_score"] = {"value": sum(verdicts[n] for n in judged) / len(judged), "higher_is_better": True}
        _interval(ctx, metrics, "judge_score", [float(verdicts[n]) for n in judged], "judged captions", block)
    if rule_values is not None:
        block["rule"] = f"per-caption {rule_name}"
        block["agreement"] = graded_agreement([verdicts[n] for n in judged], [float(rule_values[n]) for n in judged])


def _interval(ctx: RunContext, metrics: dict, name: str, values: list[float], unit: str, block: dict,
              labels: tuple[list[Any], str] | None = None) -> None:  # fmt: skip
    """The judge metric's percentile bootstrap interval (a mean over the judged items, resampled with the run's
    bootstrap settings: by cluster when `labels` (each judged item's cluster, what a cluster is) are given, else
    one by one) beside its value; the judge block records how (`bootstrap`)."""
    import numpy as np

    from mmeval.metrics.stats.bootstrap import Clusters, add_intervals, mean

    judged = np.asarray(values, dtype=np.float64)
    clusters = Clusters.from_labels(labels[0], name=labels[1]) if labels is not None else None
    done = add_intervals({name: metrics[name]}, (len(judged),), lambda counts: {name: mean(counts, judged)},
                         ctx.bootstrap, unit, clusters)  # fmt: skip
    if done is not None:
        block["bootstrap"] = done


RULE_ORDER = ("SPIDEr", "CIDEr", "METEOR", "ROUGE_L", "Bleu_4", "SPICE")  # the rule a caption judge is compared with


def rule_per_caption(per_item: dict[str, dict[Any, float]], ids: list[Any]) -> tuple[str | None, list[float] | None]:
    """The per-caption rule-based values the caption judge's agreement is computed against: the task's headline
    caption metric, SPIDEr (audio, when SPICE ran) or CIDEr-D, when computed, else the first computed of METEOR,
    ROUGE_L, Bleu_4, SPICE."""
    for name in RULE_ORDER:
        if name in per_item:
            return ("CIDEr-D" if name == "CIDEr" else name), [float(per_item[name][i]) for i in ids]
    return None, None
