"""Each task's headline metrics as bootstrap statistics: count matrices of resamples in, replicates out.

Every function here returns a `Statistic` for `mmeval.metrics.stats.bootstrap.replicates`: given the (b, n_items)
count matrix of b resamples it recomputes each metric as its own module defines it, so a row of all ones
(the data itself) gives back the reported value (tested). What is resampled, per task:
- retrieval: text queries (t2i metrics) and image queries (i2t), two independent count matrices per replicate;
- captioning: images, carrying each image's sufficient statistics: BLEU's clipped n-gram matches, n-gram
  totals, candidate and closest-reference lengths (corpus BLEU recomputed); METEOR's 23 alignment statistics
  (corpus METEOR recomputed with the jar's aggregate formula); per-image ROUGE_L, SPICE and CLIPScore (the
  corpus score is their mean, so the mean is exact); per-image CIDEr-D with the idf of the whole evaluated set
  (see `caption_statistic`);
- classification, VQA, multiple choice: samples (images or questions); per-class recall, macro F1, ECE and
  average precision are recomputed from per-class sums of each resample, not averaged from per-sample values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmeval.metrics.caption.bleu import _bleu as bleu_formula  # pycocoevalcap's corpus formula on summed statistics
from mmeval.metrics.caption.scores import SCORE_NAMES, CaptionScores
from mmeval.metrics.classification import ECE_BINS, label_ranks, softmax
from mmeval.metrics.retrieval import RetrievalRanks
from mmeval.metrics.stats.bootstrap import GroupSums, Statistic, masked_mean, mean, weighted_median

# METEOR 1.5 "-l en" (default task) parameters, as the jar applies them to summed statistics
METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA, METEOR_DELTA = 0.85, 0.20, 0.60, 0.75
METEOR_MODULE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)  # exact, stem, synonym, paraphrase


def retrieval_statistic(ranks: RetrievalRanks, ks: Sequence[int]) -> Statistic:
    """R@k, mean and median rank per direction, and rsum (both directions of the same replicate)."""
    def statistic(text_counts: np.ndarray, image_counts: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for direction, rank, counts in (("t2i", ranks.t2i, text_counts), ("i2t", ranks.i2t, image_counts)):
            rank = np.asarray(rank, dtype=np.float64)
            hits = [ranks.hit(direction, k) for k in ks]  # under the tie policy the ranks were computed with
            sums = mean(counts, np.stack(hits + [rank], axis=1).astype(np.float64))
            for j, k in enumerate(ks):
                out[f"{direction}_R@{k}"] = sums[:, j]
            out[f"{direction}_mean_rank"] = sums[:, -1]
            out[f"{direction}_median_rank"] = weighted_median(counts, rank)
        out["rsum"] = sum(out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks)
        return out

    return statistic


def meteor_stats_matrix(lines: Sequence[str]) -> np.ndarray:
    """(n_images, 23) METEOR statistics from the jar's lines: lengths, function words, 4 stages x (test
    content, reference content, test function, reference function) matches, chunks, word matches."""
    return np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64).reshape(len(lines), -1)


def meteor_from_sums(stats: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(b,) corpus METEOR of each resample: the jar's aggregate formula (MeteorStats.addStats, then
    MeteorScorer.computeMetrics) on the summed statistics; equal to the jar's EVAL to ~1e-16 (tested)."""
    stages = stats[:, 4:20].reshape(len(stats), 4, 4)
    test_total = stages[:, :, 0].sum(1) + stages[:, :, 2].sum(1)
    ref_total = stages[:, :, 1].sum(1) + stages[:, :, 3].sum(1)
    # addStats leaves out the chunk of a segment that matched completely in one chunk
    perfect = (test_total == stats[:, 0]) & (ref_total == stats[:, 1]) & (stats[:, 20] == 1)
    chunk_col = np.where(perfect, 0.0, stats[:, 20])
    s = counts @ np.column_stack([stats, chunk_col, test_total, ref_total])  # (b, 23 + 3)
    d = METEOR_DELTA
    test_len = d * (s[:, 0] - s[:, 2]) + (1 - d) * s[:, 2]
    ref_len = d * (s[:, 1] - s[:, 3]) + (1 - d) * s[:, 3]
    test_matches = sum(s[:, 4 + 4 * i] * w * d for i, w in enumerate(METEOR_MODULE_WEIGHTS))
    test_matches = test_matches + sum(s[:, 6 + 4 * i] * w * (1 - d) for i, w in enumerate(METEOR_MODULE_WEIGHTS))
    ref_matches = sum(s[:, 5 + 4 * i] * w * d for i, w in enumerate(METEOR_MODULE_WEIGHTS))
    ref_matches = ref_matches + sum(s[:, 7 + 4 * i] * w * (1 - d) for i, w in enumerate(METEOR_MODULE_WEIGHTS))
    precision, recall = test_matches / test_len, ref_matches / ref_len
    f_mean = 1.0 / ((1.0 - METEOR_ALPHA) / precision + METEOR_ALPHA / recall)
    chunks = s[:, 23]
    whole = (s[:, 24] == s[:, 0]) & (s[:, 25] == s[:, 1]) & (chunks == 1)
    frag = np.where(whole, 0.0, chunks / ((s[:, 21] + s[:, 22]) / 2))
    score = f_mean * (1.0 - METEOR_GAMMA * frag**METEOR_BETA)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def caption_statistic(scores: CaptionScores, extra: dict[str, np.ndarray] | None = None) -> Statistic:
    """Every computed caption metric of `scores`, plus per-image means in `extra` (CLIPScore; NaN = unscored).

    CIDEr-D keeps the idf of the whole evaluated set. The idf says how informative an n-gram is among the
    references of the benchmark, a property of the dataset that pycocoevalcap computes once; a resample that
    draws an image twice holds no new reference document, so recomputing df over the resample (counting the
    copy as a second document) would change every image's weights through an artefact of resampling. With
    the idf fixed, each image's CIDEr-D is fixed and a replicate is the mean over the drawn images (what
    CIDEr-D's corpus mean is). The idf's own sampling noise is left out; over 5,000 images and 25,000
    references it is small next to the per-image spread (scripts/bench_bootstrap.py measures both widths).
    """
    wanted = set(scores.scores)
    extra = extra or {}

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if scores.bleu is not None and "Bleu_1" in wanted:
            b = scores.bleu
            order = b.correct.shape[1]
            sums = counts @ np.column_stack([b.correct, b.guess, b.testlen, b.reflen]).astype(np.float64)
            bleu = bleu_formula(sums[:, :order], sums[:, order:2 * order], sums[:, -2], sums[:, -1])
            out.update(zip(SCORE_NAMES["Bleu"][:order], bleu.T))
        if scores.meteor is not None and "METEOR" in wanted:
            out["METEOR"] = meteor_from_sums(meteor_stats_matrix(scores.meteor.stats), counts)
        for name in ("ROUGE_L", "CIDEr", "SPICE"):
            if name in wanted:
                out[name] = mean(counts, np.asarray(scores.per_image[name], dtype=np.float64))
        for name, values in extra.items():
            out[name] = masked_mean(counts, np.asarray(values, dtype=np.float64))
        return out

    return statistic


def single_label_statistic(scores: np.ndarray, labels: np.ndarray, temperature: float) -> Statistic:
    """top1, top5, mean per-class recall, macro F1 and ECE, as `classification.single_label_metrics`."""
    n_classes = scores.shape[1]
    ranks = label_ranks(scores, labels)
    top = np.column_stack([ranks <= 1, ranks <= min(5, n_classes)]).astype(np.float64)
    predictions = scores.argmax(axis=1)
    correct = (predictions == labels).astype(np.float64)
    confidence = softmax(scores, temperature).max(axis=1)
    # the bins of classification.expected_calibration_error: equal width, (lo, hi], 0 in the first
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, ECE_BINS - 1)
    by_label, by_prediction, by_bin = GroupSums(labels, n_classes), GroupSums(predictions, n_classes), \
        GroupSums(bins, ECE_BINS)

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        n = counts.sum(axis=1)  # the resample's size
        tops = counts @ top / n[:, None]
        label_counts = by_label.sorted_counts(counts)
        true, hits = by_label.sums(label_counts), by_label.sums(label_counts, correct)
        predicted = by_prediction.sums(by_prediction.sorted_counts(counts))
        recall = np.where(true > 0, hits / np.where(true > 0, true, 1), np.nan)
        present = (true > 0) | (predicted > 0)  # sklearn's macro average runs over labels in y_true or y_pred
        f1 = np.where(present, 2 * hits / np.where(present, true + predicted, 1), 0.0)  # = 2tp / (2tp + fp + fn)
        bin_counts = by_bin.sorted_counts(counts)
        ece = np.abs(by_bin.sums(bin_counts, correct) - by_bin.sums(bin_counts, confidence)).sum(axis=1) / n
        return {"top1": tops[:, 0], "top5": tops[:, 1], "mean_per_class_recall": np.nanmean(recall, axis=1),
                "macro_f1": f1.sum(axis=1) / present.sum(axis=1), "ece": ece}

    return statistic


def average_precision(counts_t: np.ndarray, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(b,) sklearn's average precision of one class on each resample, from the transposed (n_items, b) counts.

    A drawn item counts as often as it was drawn; copies share a score, so they fall in one threshold, as
    sklearn's sample_weight (or duplicated rows) gives. AP = sum over thresholds of recall gain x precision, and
    recall only grows at thresholds holding a positive, so only those are evaluated: the counts are summed per
    segment between them (`np.add.reduceat`) instead of a running sum over every item (50x faster on 5,000
    images x 80 classes). NaN when no positive was drawn.
    """
    order = np.argsort(-scores, kind="stable")
    ordered, positive = scores[order], targets[order] > 0
    if not positive.any():
        return np.full(counts_t.shape[1], np.nan)
    group = np.r_[0, np.cumsum(ordered[1:] != ordered[:-1])]  # the distinct-score group of each sorted item
    cuts = np.unique(group[positive])
    last = np.searchsorted(group, cuts, side="right")  # one past the last item of each group holding a positive
    seen = np.cumsum(np.add.reduceat(counts_t[order[: last[-1]]], np.r_[0, last[:-1]], axis=0), axis=0)
    first_of_group = np.flatnonzero(np.r_[True, np.diff(group[positive]) != 0])
    true_pos = np.cumsum(np.add.reduceat(counts_t[order[positive]], first_of_group, axis=0), axis=0)
    total = true_pos[-1:]
    gain = np.diff(true_pos, axis=0, prepend=0.0)
    precision = np.divide(true_pos, seen, out=np.zeros_like(true_pos), where=seen > 0)
    return (np.divide(gain, total, out=np.full_like(gain, np.nan), where=total > 0) * precision).sum(axis=0)


def multilabel_statistic(scores: np.ndarray, targets: np.ndarray) -> Statistic:
    """mAP: per-class average precision recomputed on each resample, averaged over classes with a positive."""
    targets = np.asarray(targets)

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        counts_t = np.ascontiguousarray(counts.T)  # gathering rows of items is much faster than columns
        ap = np.column_stack([average_precision(counts_t, scores[:, c], targets[:, c])
                              for c in range(scores.shape[1])])
        defined = np.isfinite(ap)
        return {"mAP": np.where(defined, ap, 0.0).sum(axis=1) / defined.sum(axis=1)}

    return statistic


def vqa_statistic(per_question: Sequence[float], answer_types: Sequence[str | None]) -> Statistic:
    """vqa_accuracy and vqa_accuracy_<type> (the mean over the drawn questions of that type)."""
    accuracy = np.asarray(per_question, dtype=np.float64)
    kinds = sorted({kind for kind in answer_types if kind is not None})
    masks = {kind: np.array([t == kind for t in answer_types]) for kind in kinds}

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        out = {"vqa_accuracy": mean(counts, accuracy)}
        out.update({f"vqa_accuracy_{kind}": masked_mean(counts, accuracy, mask) for kind, mask in masks.items()})
        return out

    return statistic


def choice_statistic(choices: Sequence[str | None], answers: Sequence[str]) -> Statistic:
    """mc_accuracy and unparseable_rate over the drawn questions."""
    table = np.column_stack([[c == a for c, a in zip(choices, answers, strict=True)],
                             [c is None for c in choices]]).astype(np.float64).reshape(len(answers), 2)

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        sums = mean(counts, table)
        return {"mc_accuracy": sums[:, 0], "unparseable_rate": sums[:, 1]}

    return statistic
