"""Classification metrics against independent references: scikit-learn, brute-force loops, hand-worked examples
and CLIP_benchmark's own average-precision code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

from mmeval.metrics import classification as M


def _data(seed: int, n: int = 200, c: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[labels]  # better than chance, far from perfect
    return scores.astype(np.float32), labels


@pytest.mark.filterwarnings("ignore:'k' .* greater than or equal to 'n_classes'")  # sklearn, for k >= 9
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 5, 9, 20])
def test_topk_matches_sklearn_without_ties(seed: int, k: int) -> None:
    scores, labels = _data(seed)
    expected = top_k_accuracy_score(labels, scores, k=min(k, 9), labels=np.arange(9))
    assert M.topk_accuracy(scores, labels, k) == pytest.approx(expected, abs=1e-12)


def test_ranks_and_ties_break_towards_the_lower_class_index() -> None:
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.7], [0.3, 0.3, 0.3], [0.9, 0.1, 0.9]])
    labels = np.array([1, 2, 0, 0])
    # worked by hand: a tied class with a lower index ranks first
    assert M.label_ranks(scores, labels).tolist() == [2, 2, 1, 1]
    assert M.top_k(scores, 2).tolist() == [[0, 1], [1, 2], [0, 1], [0, 2]]
    assert scores.argmax(axis=1).tolist() == M.top_k(scores, 1)[:, 0].tolist()  # top-1 == the prediction
    assert M.topk_accuracy(scores, labels, 1) == 0.5
    assert M.topk_accuracy(scores, labels, 5) == 1.0  # k capped at 3 classes


def test_ranks_match_a_brute_force_sort() -> None:
    scores, labels = _data(3, n=50, c=6)
    scores = np.round(scores, 1)  # plenty of ties
    for row, label, rank in zip(scores, labels, M.label_ranks(scores, labels)):
        order = sorted(range(6), key=lambda c: (-row[c], c))
        assert order.index(label) + 1 == rank


def test_mean_per_class_recall_is_sklearn_balanced_accuracy() -> None:
    scores, labels = _data(4, c=7)
    labels[labels == 3] = 4  # class 3 has no image but may still be predicted
    predictions = scores.argmax(axis=1)
    confusion = M.class_confusion(labels, predictions, 7)
    with pytest.warns(UserWarning):  # sklearn: "y_pred contains classes not in y_true"
        expected = balanced_accuracy_score(labels, predictions)
    assert M.mean_per_class_recall(confusion) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(M.per_class_recall(confusion)[3])


def test_macro_f1_matches_a_hand_loop() -> None:
    scores, labels = _data(5, c=6)
    predictions = scores.argmax(axis=1)
    f1 = []
    for c in sorted(set(labels) | set(predictions)):
        tp = np.sum((predictions == c) & (labels == c))
        fp, fn = np.sum((predictions == c) & (labels != c)), np.sum((predictions != c) & (labels == c))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    assert M.macro_f1(labels, predictions) == pytest.approx(np.mean(f1), abs=1e-12)


def test_ece_hand_example() -> None:
    # 15 bins of width 1/15: 0.9 falls in (13/15, 14/15], 0.6 in (8/15, 9/15], 0.2 in (2/15, 3/15].
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.58, 0.58, 0.2])
    correct = np.array([1, 1, 1, 0, 1, 0, 0], dtype=bool)
    # |0.75 - 0.9| * 4/7 + |0.5 - 0.58| * 2/7 + |0 - 0.2| * 1/7
    expected = (0.15 * 4 + 0.08 * 2 + 0.2 * 1) / 7
    assert M.expected_calibration_error(confidence, correct) == pytest.approx(expected, abs=1e-12)
    assert M.expected_calibration_error(np.array([0.5, 0.5]), np.array([True, False])) == 0.0
    # a confidence on a bin edge belongs to the bin it closes: 2/15 shares a bin with 0.1, not with 0.15
    edge = np.array([2 / 15, 0.1, 0.15])
    assert M.expected_calibration_error(edge, np.array([True, False, False])) == pytest.approx(
        (2 * abs(0.5 - (2 / 15 + 0.1) / 2) + 0.15) / 3, abs=1e-12)


def _ece_reference(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """The loop from Guo et al.'s temperature-scaling code: bins (lower, upper]."""
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lower, upper in itertools.pairwise(edges):
        in_bin = (confidence > lower) & (confidence <= upper)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return ece


@pytest.mark.parametrize("temperature", [1.0, 20.0, 100.0])
def test_ece_of_the_softmax_matches_the_reference_loop(temperature: float) -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 10, 300)
    emb = rng.normal(size=(300, 16)) + 2 * np.eye(10, 16)[labels]
    classes = np.eye(10, 16)
    scores = (emb / np.linalg.norm(emb, axis=1, keepdims=True) @ classes.T).astype(np.float32)
    probs = torch.softmax(torch.tensor(scores, dtype=torch.float64) * temperature, dim=1).numpy()
    expected = _ece_reference(probs.max(axis=1), probs.argmax(axis=1) == labels)
    assert M.single_label_metrics(scores, labels, temperature)["ece"] == pytest.approx(expected, abs=1e-9)


def _ap_brute_force(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over positives of the precision at that positive's rank (no ties in the data)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for rank, i in enumerate(order, start=1):
        if targets[i]:
            hits += 1
            precisions.append(hits / rank)
    return float(np.mean(precisions))


def test_map_matches_brute_force_ap_and_clip_benchmark() -> None:
    rng = np.random.default_rng(7)
    targets = (rng.random((120, 6)) < 0.3).astype(int)
    targets[:, 5] = 0  # a class with no positive: left out of the mean
    scores = rng.normal(size=(120, 6)) + targets
    ap = M.average_precision_per_class(scores, targets)
    for c in range(5):
        assert ap[c] == pytest.approx(_ap_brute_force(scores[:, c], targets[:, c]), abs=1e-12)
    assert np.isnan(ap[5])
    assert M.mean_average_precision(scores, targets) == pytest.approx(np.mean(ap[:5]), abs=1e-12)

    from clip_benchmark.metrics.zeroshot_classification import average_precision_per_class

    theirs = average_precision_per_class(torch.tensor(scores), torch.tensor(targets)).numpy()
    np.testing.assert_allclose(ap[:5], theirs[:5], atol=1e-6)


def test_every_metric_declares_its_direction() -> None:
    scores, labels = _data(8)
    values = M.single_label_metrics(scores, labels, 100.0)
    assert set(values) | {"mAP"} == set(M.METRIC_DOCS)
    assert not M.higher_is_better("ece") and all(M.higher_is_better(n) for n in values if n != "ece")
    assert 0 < values["top1"] < values["top5"] < 1
