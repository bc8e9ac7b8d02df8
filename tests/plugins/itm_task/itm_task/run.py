"""Run image-text matching with mmeval's engine: each image and caption embedded once, pairs scored by cosine."""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import roc_auc_score

from mmeval.data.loaders import load_retrieval_data
from mmeval.engine.runner import encode_images, encode_texts
from mmeval.reporting.sample_values import PairedValues, no_test, rows_of, single
from mmeval.tasks.base import BenchmarkResult, RunContext, dataset_summary

from itm_task import TASK


def pairs_of(ok_indices: list[int], text_image_index: list[int], offset: int) -> list[tuple[int, int, int]]:
    """(row of the image among readable images, caption index, label): own first caption 1, image i+offset's 0."""
    first_caption = {}
    for t, owner in enumerate(text_image_index):
        first_caption.setdefault(owner, t)
    rows = [row for row, index in enumerate(ok_indices) if index in first_caption]
    pairs = []
    for n, row in enumerate(rows):
        other = rows[(n + offset) % len(rows)]
        pairs.append((row, first_caption[ok_indices[row]], 1))
        pairs.append((row, first_caption[ok_indices[other]], 0))
    return pairs


def run(model, bench, ctx: RunContext) -> BenchmarkResult | None:
    started = time.perf_counter()
    data = ctx.load_data(load_retrieval_data, bench.data)
    image_emb, images = encode_images(model, data.images, ctx.runtime, bench.data.on_bad_image, lambda n: None)
    pairs = pairs_of(images.ok_indices, data.text_image_index, bench.offset)
    captions = sorted({t for _, t, _ in pairs})
    text_emb, text_timer = encode_texts(model, [data.texts[t] for t in captions], ctx.runtime, lambda n: None)
    if not ctx.passes_done():
        return None
    column = {t: n for n, t in enumerate(captions)}
    rows = np.array([r for r, _, _ in pairs])
    cols = np.array([column[t] for _, t, _ in pairs])
    scores = (image_emb[rows] * text_emb.to(image_emb.device)[cols]).sum(-1).float().cpu().numpy()
    labels = np.array([label for _, _, label in pairs])
    threshold = bench.threshold if bench.threshold is not None else float(np.median(scores))
    correct = (scores > threshold) == (labels == 1)
    metrics = {"itm_accuracy": float(correct.mean()), "itm_auroc": float(roc_auc_score(labels, scores))}
    ids = [data.image_ids[i] for i in images.ok_indices]
    per_sample = {"pairs": [{"pair_id": n, "image_id": ids[r], "text_index": t, "label": int(label),
                             "score": float(s), "correct": bool(c)}
                            for n, ((r, t, label), s, c) in enumerate(zip(pairs, scores, correct))]}
    return BenchmarkResult(TASK.name, dataset_summary(data, images, len(captions)),
                           {k: {"value": v, "higher_is_better": True} for k, v in metrics.items()},
                           {"total_s": time.perf_counter() - started}, per_sample, {"threshold": threshold},
                           timers={"images": images.timer, "texts": text_timer})


def paired_values(metric: str, a: dict, b: dict, names: list[str]) -> PairedValues:
    """itm_accuracy is a mean of per-pair correctness; AUROC is not a per-pair mean (no test)."""
    ra, rb = rows_of(a, "pairs"), rows_of(b, "pairs")
    if ra is None or rb is None:
        return no_test("no per-pair rows")
    if metric == "itm_accuracy":
        return single(ra, rb, lambda r: r.get("pair_id"), lambda r: float(bool(r.get("correct"))))
    return no_test(f"{metric} is not a mean of per-pair values")
