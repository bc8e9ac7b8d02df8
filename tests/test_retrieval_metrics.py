"""Ranking metrics against an independent brute-force reference and a hand-worked example."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmeval.metrics.retrieval import (
    DEFAULT_MAX_CHUNK_BYTES,
    RetrievalRanks,
    compute_ranks,
    metrics_from_ranks,
    rows_per_chunk,
)

ROOT = Path(__file__).resolve().parents[1]


def brute_force_ranks(scores: np.ndarray, positives: list[set[int]]) -> np.ndarray:
    """Sort each query's candidates by score (ties: negatives first), return the 1-based rank of the first positive."""
    ranks = []
    for row, positive in zip(scores, positives):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j in positive))
        ranks.append(next(n for n, j in enumerate(order) if j in positive) + 1)
    return np.array(ranks)


def brute_force_recall(ranks: np.ndarray, k: int) -> float:
    return sum(1 for r in ranks if r <= k) / len(ranks)


def make_case(seed: int, n_images: int, discrete: bool):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 8, size=n_images)
    counts[0], counts[1] = 1, 7  # images with one and with seven captions are both present
    owner = np.repeat(np.arange(n_images), counts)
    rng.shuffle(owner)
    dim = 6
    if discrete:  # few distinct values: many exact score ties
        images = rng.integers(-1, 2, size=(n_images, dim)).astype(np.float32)
        texts = rng.integers(-1, 2, size=(len(owner), dim)).astype(np.float32)
    else:
        images = rng.standard_normal((n_images, dim)).astype(np.float32)
        texts = (images[owner] + 1.5 * rng.standard_normal((len(owner), dim))).astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(texts), owner


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "with-ties"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_match_brute_force(seed: int, discrete: bool) -> None:
    images, texts, owner = make_case(seed, n_images=23, discrete=discrete)
    scores = (texts @ images.T).numpy()
    expected_t2i = brute_force_ranks(scores, [{int(o)} for o in owner])
    expected_i2t = brute_force_ranks(scores.T, [set(np.flatnonzero(owner == i)) for i in range(len(images))])

    whole = compute_ranks(images, texts, owner)
    chunked = compute_ranks(images, texts, owner, chunk_size=4)
    for ranks in (whole, chunked):
        np.testing.assert_array_equal(ranks.t2i, expected_t2i)
        np.testing.assert_array_equal(ranks.i2t, expected_i2t)

    metrics = metrics_from_ranks(whole, [1, 5, 10])
    for k in (1, 5, 10):
        assert metrics[f"t2i_R@{k}"] == pytest.approx(brute_force_recall(expected_t2i, k), abs=1e-12)
        assert metrics[f"i2t_R@{k}"] == pytest.approx(brute_force_recall(expected_i2t, k), abs=1e-12)
    assert metrics["t2i_mean_rank"] == pytest.approx(expected_t2i.mean())
    assert metrics["i2t_median_rank"] == pytest.approx(np.median(expected_i2t))
    assert metrics["rsum"] == pytest.approx(sum(metrics[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10)))


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "with-ties"])
def test_one_caption_per_image_matches_brute_force(discrete: bool) -> None:
    images, texts, _ = make_case(4, n_images=31, discrete=discrete)
    owner = np.random.default_rng(4).permutation(31)  # text t describes image owner[t]
    texts = texts[:31]
    scores = (texts @ images.T).numpy()
    ranks = compute_ranks(images, texts, owner, chunk_size=5)
    np.testing.assert_array_equal(ranks.t2i, brute_force_ranks(scores, [{int(o)} for o in owner]))
    np.testing.assert_array_equal(ranks.i2t, brute_force_ranks(scores.T, [{int(np.argmax(owner == i))} for i in range(31)]))


def test_image_without_caption_gets_rank_past_the_end() -> None:
    images, texts = torch.eye(3), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ranks = compute_ranks(images, texts, [0, 2])
    np.testing.assert_array_equal(ranks.i2t, [1, 3, 1])  # image 1 has no positive: n_texts + 1
    np.testing.assert_array_equal(ranks.t2i, [1, 1])


def test_hand_worked_example() -> None:
    # 3 images, 4 texts: texts 0 and 1 describe image 0, text 2 image 1, text 3 image 2.
    images = torch.eye(3)
    texts = torch.tensor([[0.9, 0.1, 0.0],   # best: image 0            -> t2i rank 1
                          [0.2, 0.8, 0.0],   # image 1 above image 0    -> t2i rank 2
                          [0.0, 0.5, 0.5],   # tie between images 1, 2  -> t2i rank 2 (ties count against)
                          [0.1, 0.0, 0.3]])  # best: image 2            -> t2i rank 1
    ranks = compute_ranks(images, texts, [0, 0, 1, 2])
    np.testing.assert_array_equal(ranks.t2i, [1, 2, 2, 1])
    # image 0 column scores [0.9, 0.2, 0.0, 0.1]: best positive 0.9 -> rank 1
    # image 1 column scores [0.1, 0.8, 0.5, 0.0]: positive text 2 has 0.5, text 1 (0.8) is above -> rank 2
    # image 2 column scores [0.0, 0.0, 0.5, 0.3]: positive text 3 has 0.3, text 2 (0.5) is above -> rank 2
    np.testing.assert_array_equal(ranks.i2t, [1, 2, 2])
    metrics = metrics_from_ranks(ranks, [1])
    assert metrics["t2i_R@1"] == pytest.approx(0.5)
    assert metrics["i2t_R@1"] == pytest.approx(1 / 3)
    assert metrics["t2i_median_rank"] == pytest.approx(1.5)
    assert metrics["rsum"] == pytest.approx(0.5 + 1 / 3)


def test_constant_model_gets_worst_rank_not_best() -> None:
    images, texts = torch.ones(5, 4), torch.ones(10, 4)
    ranks = compute_ranks(images, texts, [i // 2 for i in range(10)])
    assert (ranks.t2i == 5).all()  # every other image ties with the positive and counts above it
    assert (ranks.i2t == 9).all()  # 8 tied negatives above the best positive
    assert metrics_from_ranks(ranks, [1])["t2i_R@1"] == 0.0


def spy_on_mm(monkeypatch) -> list[tuple[int, int]]:
    """Record the shape of every score block that compute_ranks multiplies out."""
    seen: list[tuple[int, int]] = []
    original = torch.mm

    def spy(a, b, *args, **kwargs):
        out = original(a, b, *args, **kwargs)
        seen.append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch, "mm", spy)
    return seen


def test_memory_is_bounded_by_chunk(monkeypatch) -> None:
    """Scores are materialised one chunk of queries at a time, never as an N x N matrix."""
    seen = spy_on_mm(monkeypatch)
    images, texts, owner = make_case(0, n_images=50, discrete=False)
    compute_ranks(images, texts, owner, chunk_size=8)
    assert seen and max(shape[0] for shape in seen) == 8


def test_chunk_rows_follow_the_byte_budget(monkeypatch) -> None:
    images, texts, owner = make_case(1, n_images=50, discrete=False)
    seen = spy_on_mm(monkeypatch)
    # 6 rows of float32 scores against the larger gallery (the texts) fit; 7 do not.
    budget = 6 * 4 * len(texts) + 3
    ranks = compute_ranks(images, texts, owner, max_chunk_bytes=budget)
    assert seen and max(rows * cols * 4 for rows, cols in seen) <= budget
    whole = compute_ranks(images, texts, owner, chunk_size=10**6)
    np.testing.assert_array_equal(ranks.t2i, whole.t2i)
    np.testing.assert_array_equal(ranks.i2t, whole.i2t)
    assert rows_per_chunk(10, 4, max_chunk_bytes=1) == 1  # a single row may exceed a tiny budget
    assert rows_per_chunk(1000, 4, max_chunk_bytes=4 * 1000 * 7 + 5) == 7


def test_half_precision_embeddings_are_scored_in_float32() -> None:
    # Scores 2048 and 2049: one apart in float32, equal in float16 (spacing 2 at 2048), which would tie.
    images = torch.tensor([[2048.0, 0.0], [2048.0, 1.0]])
    texts = torch.tensor([[1.0, 1.0]])
    for dtype in (torch.float16, torch.bfloat16):
        ranks = compute_ranks(images.to(dtype), texts.to(dtype), [1])
        assert ranks.t2i.tolist() == [1], dtype
    images, texts, owner = make_case(2, n_images=23, discrete=False)
    half = compute_ranks(images.half(), texts.half(), owner)
    reference = compute_ranks(images.half().float(), texts.half().float(), owner)
    np.testing.assert_array_equal(half.t2i, reference.t2i)
    np.testing.assert_array_equal(half.i2t, reference.i2t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    for discrete in (False, True):
        images, texts, owner = make_case(3, n_images=40, discrete=discrete)
        on_cpu = compute_ranks(images, texts, owner, chunk_size=7)
        on_gpu = compute_ranks(images.cuda(), texts.cuda(), torch.as_tensor(owner).cuda(), chunk_size=7)
        np.testing.assert_array_equal(on_gpu.t2i, on_cpu.t2i)
        np.testing.assert_array_equal(on_gpu.i2t, on_cpu.i2t)


def test_rejects_inconsistent_inputs() -> None:
    with pytest.raises(ValueError, match="entries for"):
        compute_ranks(torch.zeros(2, 3), torch.zeros(3, 3), [0, 1])
    with pytest.raises(ValueError, match="outside"):
        compute_ranks(torch.zeros(2, 3), torch.zeros(2, 3), [0, 2])


def test_empty_direction_is_nan_not_crash() -> None:
    metrics = metrics_from_ranks(RetrievalRanks(t2i=np.array([1, 3]), i2t=np.array([], dtype=int)), [1])
    assert metrics["t2i_R@1"] == 0.5 and np.isnan(metrics["i2t_R@1"])


# The 200k x 200k run (100-180 s on 2 cores) is scripts/bench_ranking_memory.py; the suite runs the same code at
# 10k x 10k (~15 s on a busy 2-core box, mostly the fresh process's start), where the full float32 score matrix
# (381 MiB) is still over the bound, so a ranking that held it would fail here too.
_SCRIPT = importlib.util.spec_from_file_location("bench_ranking_memory", ROOT / "scripts" / "bench_ranking_memory.py")
bench_ranking_memory = importlib.util.module_from_spec(_SCRIPT)
_SCRIPT.loader.exec_module(bench_ranking_memory)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self (Linux)")
def test_10k_by_10k_ranking_runs_in_bounded_memory_and_matches_brute_force(tmp_path) -> None:
    n = 10_000
    assert n * n * 4 / 2**20 > bench_ranking_memory.bound_mib()  # the whole score matrix would not fit the bound
    report = bench_ranking_memory.rank_in_fresh_process(n, 8, tmp_path / "ranks.npz")
    assert report["extra_mib"] < bench_ranking_memory.bound_mib() == DEFAULT_MAX_CHUNK_BYTES / 2**20 + 64
    assert bench_ranking_memory.spot_check(tmp_path / "ranks.npz") == 400
