"""`mmeval power` by cluster: the MDE uses the unit the gate's clustered paired test resamples (images, videos,
clips). Checked by hand on a tiny example, against a brute-force simulation of the metric's spread over many
datasets with real within-image correlation (where the per-row SE is too small), and by the clustered
permutation test's rejection rate at both MDEs. Also: video and audio retrieval pair by their gallery item."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmeval.metrics.stats.paired import paired_test
from mmeval.metrics.stats.power import clustered_se, minimum_detectable_effect
from mmeval.reporting.sample_values import paired_values

N_IMAGES, PER_IMAGE = 300, 5  # five captions per image, as COCO
A, B = 2.0, 1.0  # each image's hit rate ~ Beta(2, 1): mean 2/3, intra-image correlation 1 / (A + B + 1) = 0.25


def clustered_hits(rng: np.random.Generator, shrink: float = 0.0) -> np.ndarray:
    """(N_IMAGES, PER_IMAGE) 0/1 hits: captions of one image share the image's difficulty."""
    rate = rng.beta(A, B, size=(N_IMAGES, 1)) * (1.0 - shrink)
    return (rng.random((N_IMAGES, PER_IMAGE)) < rate).astype(float)


IMAGES = np.repeat(np.arange(N_IMAGES), PER_IMAGE)


def test_clustered_se_by_hand_and_equal_to_per_row_for_singletons() -> None:
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    se, n = clustered_se([x], [np.array(["a", "a", "b", "b", "c", "c"], dtype=object)])
    # by hand: centred / 6 = +-1/12; per image u = 0, 1/6, -1/6; 3/2 x (1/36 + 1/36) = 1/12
    assert n == 3 and se == pytest.approx(math.sqrt(1 / 12))
    # every sample its own cluster: exactly the per-row var / n (two strata: the sum of both)
    rng = np.random.default_rng(1)
    a, b = rng.random(40), rng.random(70)
    single = [np.arange(40), np.arange(40, 110)]
    for correlation in (0.0, 0.6):
        rows = minimum_detectable_effect([a, b], correlation=correlation)
        clustered = minimum_detectable_effect([a, b], correlation=correlation, clusters=single, unit="images")
        assert clustered["unit"] == "images" and clustered["n_units"] == 110 and rows["unit"] == "rows"
        # the per-row formula sums var_s / n_s; the clustered one has the N / (N - 1) factor over all samples
        assert clustered["se_difference"] == pytest.approx(rows["se_difference"], rel=0.02)
    # three images: the clustered test flips 3 signs at most, p >= 1/8: nothing is detectable at 0.05
    out = minimum_detectable_effect([x], clusters=[np.array([0, 0, 1, 1, 2, 2])], unit="images")
    assert out["min_p_possible"] == pytest.approx(1 / 8) and out["mde"] is None


def test_clustered_se_matches_the_spread_over_simulated_datasets_and_per_row_is_too_small() -> None:
    rng = np.random.default_rng(0)
    datasets = [clustered_hits(rng).ravel() for _ in range(1500)]
    truth = float(np.std([d.mean() for d in datasets], ddof=1))  # brute force: SD of R@1 over benchmark draws
    # correlation 0.5 makes se_difference = sqrt(2 x 0.5) x SE(metric) = SE(metric)
    clustered = np.mean([minimum_detectable_effect([d], correlation=0.5, clusters=[IMAGES])["se_difference"]
                         for d in datasets[:200]])
    per_row = np.mean([minimum_detectable_effect([d], correlation=0.5)["se_difference"] for d in datasets[:200]])
    assert clustered == pytest.approx(truth, rel=0.08), (clustered, truth)
    # design effect 1 + (5 - 1) x 0.25 = 2: the per-row SE is about 1 / sqrt(2) of the truth
    assert per_row / truth == pytest.approx(1 / math.sqrt(2), rel=0.08), (per_row, truth)
    assert clustered > 1.3 * per_row


def candidate(rng: np.random.Generator, base: np.ndarray, keep: float, shrink: float) -> np.ndarray:
    """Another run: each image keeps the baseline's hits with probability `keep`, else its captions are
    redrawn from a fresh image of a model whose hit rates are shrunk by `shrink` (cluster-level correlation keep)."""
    fresh = clustered_hits(rng, shrink)
    kept = rng.random((N_IMAGES, 1)) < keep
    return np.where(kept, base, fresh)


def test_clustered_test_rejects_at_the_clustered_mde_with_about_the_asked_power() -> None:
    rng = np.random.default_rng(3)
    keep = 0.5
    base = clustered_hits(rng)
    clustered = minimum_detectable_effect([base.ravel()], correlation=keep, clusters=[IMAGES])
    per_row = minimum_detectable_effect([base.ravel()], correlation=keep)
    assert clustered["unit"] == "clusters" and clustered["n_units"] == N_IMAGES
    assert clustered["mde"] > 1.3 * per_row["mde"]

    def rejection_rate(mde: float, runs: int) -> float:
        shrink = mde / (1 - keep) / (A / (A + B))  # mean drop = (1 - keep) x shrink x 2/3 = mde
        rejected = []
        for _ in range(runs):
            a = clustered_hits(rng)
            b = candidate(rng, a, keep, shrink)
            result = paired_test([(a.ravel(), b.ravel())], n_resamples=1000, seed=int(rng.integers(1 << 30)),
                                 clusters=[IMAGES])
            rejected.append(result.p_less < 0.05)
        return float(np.mean(rejected))

    at_clustered = rejection_rate(clustered["mde"], 150)
    assert 0.68 <= at_clustered <= 0.92, at_clustered
    # the per-row MDE promises 80% power, but the test the gate runs catches that drop far less often
    at_per_row = rejection_rate(per_row["mde"], 100)
    assert at_per_row < 0.62, at_per_row


def retrieval_rows(gallery: str, to: str, back: str, hits: np.ndarray) -> dict:
    """Per-sample rows of a text <-> gallery retrieval run: hits (n_items, captions) give t2x ranks."""
    n_items, per_item = hits.shape
    return {to: [{"text_index": i * per_item + j, gallery: f"{gallery}-{i}", "rank": 1 if hits[i, j] else 7}
                 for i in range(n_items) for j in range(per_item)],
            back: [{gallery: f"{gallery}-{i}", "rank": 1 if hits[i, 0] else 3} for i in range(n_items)]}


@pytest.mark.parametrize(("task", "gallery", "to", "back", "unit"), [
    ("video_retrieval", "video_id", "t2v", "v2t", "videos"),
    ("audio_retrieval", "clip_id", "t2a", "a2t", "clips"),
])
def test_video_and_audio_retrieval_pair_by_their_gallery_item(task, gallery, to, back, unit) -> None:
    rng = np.random.default_rng(7)
    a, b = clustered_hits(rng)[:40], clustered_hits(rng)[:40]
    rows_a, rows_b = retrieval_rows(gallery, to, back, a), retrieval_rows(gallery, to, back, b)
    names = [f"{to}_R@1", f"{back}_R@1", "rsum", f"{to}_median_rank"]
    data = paired_values(task, f"{to}_R@1", rows_a, rows_b, names)
    assert data.unit == unit and data.n == 200
    assert list(data.clusters[0][:6]) == [f"{gallery}-0"] * 5 + [f"{gallery}-1"]
    result = paired_test(data.strata, data.statistic, 2000, 0, data.clusters)
    assert result.resampled == "clusters" and result.delta == pytest.approx(b.mean() - a.mean())
    # the same test by hand on per-item summed differences: one sign per video / clip
    per_item = (b - a).sum(axis=1) / b.size * 40
    by_hand = paired_test([(np.zeros(40), per_item)], "mean", 2000, 0)
    assert result.p_value == pytest.approx(by_hand.p_value) and result.ci95 == pytest.approx(by_hand.ci95)
    # rsum: both directions, an item's captions and its own query move together
    rsum = paired_values(task, "rsum", rows_a, rows_b, names)
    assert rsum.unit == unit and [len(c) for c in rsum.clusters] == [200, 40]
    assert rsum.clusters[1][3] == f"{gallery}-3"
    # a median's test stays per row
    assert paired_values(task, f"{to}_median_rank", rows_a, rows_b, names).unit == "rows"
    if task == "audio_retrieval":
        mean_ap = paired_values(task, "t2a_mAP@10", rows_a, rows_b, names)
        assert mean_ap.unit == "clips" and len(set(mean_ap.clusters[0])) == 40


def test_speech_recognition_pairs_by_speaker_when_every_utterance_names_one() -> None:
    rows = lambda wers, speakers: {"utterances": [{"id": f"u{i}", "speaker": s, "wer": w}
                                                  for i, (w, s) in enumerate(zip(wers, speakers))]}
    a, b = [0.1, 0.2, 0.0, 0.3, 0.5, 0.1], [0.2, 0.2, 0.1, 0.1, 0.5, 0.0]
    speakers = ["s1", "s1", "s2", "s2", "s3", "s3"]
    data = paired_values("speech_recognition", "wer", rows(a, speakers), rows(b, speakers), ["wer", "cer"])
    assert data.unit == "speakers" and list(data.clusters[0]) == speakers
    out = minimum_detectable_effect([x for x, _ in data.strata], clusters=data.clusters, unit=data.unit)
    assert out["unit"] == "speakers" and out["n_units"] == 3 and out["min_p_possible"] == pytest.approx(1 / 8)
    unknown = paired_values("speech_recognition", "wer", rows(a, speakers[:5] + [None]), rows(b, speakers),
                            ["wer", "cer"])
    assert unknown.unit == "rows" and unknown.clusters is None  # one utterance without a speaker: per utterance
