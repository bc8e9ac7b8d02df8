"""Retrieval under text perturbations of its caption queries: the image embeddings of the clean run are reused,
only the perturbed captions are encoded again; per perturbation and severity every recall metric, and the
summary of mmeval/metrics/robustness.py (relative robustness, worst case, mCE against a baseline report)."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from mmeval.engine.runner import encode_texts
from mmeval.errors import DataError
from mmeval.metrics.retrieval import compute_ranks, metrics_from_ranks
from mmeval.metrics.robustness import corruption_errors, relative_robustness, worst_case
from mmeval.perturb import apply

log = logging.getLogger(__name__)
HEADLINE = ("t2i_R@1", "i2t_R@1")  # errors for mCE: E = 1 - recall@1


def robustness_block(model, bench, ctx, captions: list[str], text_ids: list[int], image_emb, owner: list[int],
                     has_caption: np.ndarray, clean: dict[str, float]) -> dict[str, Any]:
    """The report's `robustness` block of a retrieval benchmark."""
    cfg = bench.perturb
    grid: dict[str, dict[str, list[float]]] = {}
    for name in cfg.text:
        per_severity = []
        for severity in cfg.severities:
            texts = [apply("text", name, t, severity, cfg.seed, i) for t, i in zip(captions, text_ids)]
            emb, _ = encode_texts(model, texts, ctx.runtime, lambda n: None)
            ranks = compute_ranks(image_emb, emb.to(image_emb.device), owner, tie_policy=bench.tie_policy,
                                  ks=bench.recall_k)
            ranks.i2t = ranks.i2t[has_caption]
            if ranks.hits is not None:
                ranks.hits["i2t"] = ranks.hits["i2t"][has_caption]
            per_severity.append(metrics_from_ranks(ranks, bench.recall_k))
        grid[name] = {metric: [m[metric] for m in per_severity] for metric in clean}
    block: dict[str, Any] = {"severities": cfg.severities, "seed": cfg.seed, "clean": clean, "grid": grid,
                             "relative": {}, "worst": {}}
    for metric in clean:
        by_name = {name: grid[name][metric] for name in grid}
        better = "rank" not in metric
        block["relative"][metric] = relative_robustness(clean[metric], by_name)
        block["worst"][metric] = worst_case(by_name, better)
    if cfg.baseline is not None:
        try:
            block["mce"] = _mce(cfg.baseline, bench.name, block)
        except DataError as exc:  # late in the run: keep every computed number, say why mCE is missing
            log.warning("%s: %s", bench.name, exc)
            block["mce"] = {"baseline": str(cfg.baseline), "error": str(exc)}
    return block


def _mce(path, bench_name: str, block: dict[str, Any]) -> dict[str, Any]:
    try:
        other = json.loads(path.read_text())["benchmarks"][bench_name]["robustness"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"perturb.baseline {path}: expected a report with a robustness block for benchmark "
                        f"'{bench_name}' ({type(exc).__name__}: {exc})") from None
    if other.get("severities") != block["severities"]:
        raise DataError(f"perturb.baseline {path}: severities {other.get('severities')} differ from "
                        f"{block['severities']}")
    out: dict[str, Any] = {"baseline": str(path)}
    for metric in HEADLINE:
        errors = {n: [1 - v for v in g[metric]] for n, g in block["grid"].items()}
        try:
            base = {n: [1 - v for v in g[metric]] for n, g in other["grid"].items()}
            out[metric] = corruption_errors(errors, base, 1 - block["clean"][metric], 1 - other["clean"][metric])
        except (KeyError, ValueError) as exc:
            raise DataError(f"perturb.baseline {path}: {exc}") from None
    return out
