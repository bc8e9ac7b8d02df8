"""Classification metrics as pure NumPy / scikit-learn functions over a score matrix.

`scores` is (n_images, n_classes), higher = more likely; `labels` holds one class index per image (or, for
multi-label data, a 0/1 matrix shaped like `scores`). Ties are broken towards the lower class index
everywhere (the first maximum, as `numpy.argmax` and a stable sort give), so top-1 accuracy always equals
the accuracy of the predictions that feed the confusion matrix, recall and F1.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15

# name -> (higher is better, what it measures); the zero-shot task's TaskSpec lists these (`mmeval list`).
METRIC_DOCS: dict[str, tuple[bool, str]] = {
    "top1": (True, "fraction of images whose highest-scoring class is the label (ties: lower class index wins)"),
    "top5": (True, ("fraction of images whose label is among the 5 highest-scoring classes (k capped at the "
                   "number of classes)")),
    "mean_per_class_recall": (True, "recall averaged over classes that have images (sklearn balanced accuracy)"),
    "macro_f1": (True, "F1 averaged over classes in the labels or predictions (sklearn, zero_division=0)"),
    "ece": (False, f"expected calibration error of softmax(temperature x cosine), {ECE_BINS} equal-width bins"),
    "mAP": (True, ("multi-label: average precision per class (sklearn, uninterpolated), mean over classes with "
                  "a positive")),
}


def higher_is_better(name: str) -> bool:
    return METRIC_DOCS[name][0]




def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1-based rank of each image's label among the classes: classes scoring higher, plus classes with an
    equal score and a lower index, rank before it."""
    rows = np.arange(len(labels))
    own = scores[rows, labels][:, None]
    index = np.arange(scores.shape[1])[None, :]
    ahead = (scores > own) | ((scores == own) & (index < labels[:, None]))
    return ahead.sum(axis=1) + 1


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best classes of each image, best first (ties: lower class index first); k capped at n_classes."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of images whose label is among the min(k, n_classes) best classes."""
    return float(np.mean(label_ranks(scores, labels) <= min(k, scores.shape[1])))


def class_confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix: row = true class, column = predicted class, every class present (sklearn)."""
    from sklearn.metrics import confusion_matrix  # imported on use: sklearn costs ~1 s of start-up

    return confusion_matrix(labels, predictions, labels=np.arange(n_classes))


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Each class's accuracy (recall); NaN for a class without images."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def mean_per_class_recall(confusion: np.ndarray) -> float:
    """Recall averaged over the classes that have images (sklearn's `balanced_accuracy_score`)."""
    recall = per_class_recall(confusion)
    return float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan")


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Unweighted mean F1 over the classes in the labels or the predictions (sklearn's default set)."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of temperature x scores, in float64 (max subtracted, so large scales cannot overflow)."""
    logits = scores.astype(np.float64) * temperature
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): sum over bins (lo, hi] of equal width of |bin share| x |accuracy - confidence|."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def average_precision_per_class(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """sklearn's (uninterpolated) average precision of each class; NaN for a class with no positive."""
    from sklearn.metrics import average_precision_score

    ap = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        if targets[:, c].any():
            ap[c] = average_precision_score(targets[:, c], scores[:, c])
    return ap


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean of the per-class average precisions over classes with at least one positive (VOC-style mAP)."""
    ap = average_precision_per_class(scores, targets)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, float]:
    """The headline metrics of single-label classification (see the task's metrics in mmeval.tasks.zeroshot_classification)."""
    predictions = scores.argmax(axis=1)
    confusion = class_confusion(labels, predictions, scores.shape[1])
    confidence = softmax(scores, temperature).max(axis=1)
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_per_class_recall": mean_per_class_recall(confusion),
        "macro_f1": macro_f1(labels, predictions),
        "ece": expected_calibration_error(confidence, predictions == labels),
    }
