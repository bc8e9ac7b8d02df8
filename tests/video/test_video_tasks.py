"""The video tasks end to end on the synthetic shapes clips: metric values against brute-force loops over
independently computed embeddings, frame pooling, dual-softmax re-ranking, the report's video block, compare /
gate on two video reports, resume bit-identical and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.config.run import validate_mapping
from mmeval.config.video import FrameSampling
from mmeval.data.shapes_video import load_shapes_video_captions, load_shapes_video_classes
from mmeval.engine.evaluate import run_config
from mmeval.io.video import read_clip
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder
from mmeval.reporting.report import validate_report
from mmeval.tasks.video_retrieval.rerank import dual_softmax, inverted_softmax, ranks_from_scores

N_VIDEOS = 8
SHAPES = {"format": "shapes_video", "n_videos": N_VIDEOS, "split": "test"}


@pytest.fixture(scope="module", autouse=True)
def quiet_and_small(tmp_path_factory):
    """One torch thread, and the shapes clips and caches in a folder of this module's own."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()
    torch.set_num_threads(before)


def _run(folder: Path, model: dict, benchmarks: list[dict], name: str, cache: str = "off") -> tuple[dict, dict, Path]:
    cfg = validate_mapping({
        "model": model, "benchmarks": benchmarks,
        "runtime": {"device": "cpu", "batch_size": 3, "num_workers": 0, "cache": cache},
        "bootstrap": {"n": 200}, "output": {"dir": str(folder), "name": name},
    })  # fmt: skip
    outcome = run_config(cfg)
    assert not outcome.errors, outcome.errors
    validate_report(outcome.report)  # the published report schema holds for video benchmarks
    return outcome.report, json.loads(outcome.samples_path.read_text()), outcome.report_path


@pytest.fixture(scope="module")
def pooled_runs(tmp_path_factory) -> dict:
    """The shipped image reference model on video retrieval + zero-shot, frames pooled by mean and by max."""
    folder = tmp_path_factory.mktemp("pooled")
    benches = [{"name": "ret", "task": "video_retrieval", "data": SHAPES, "recall_k": [1, 5],
                "rerank": "dual_softmax"},
               {"name": "zs", "task": "video_zeroshot", "data": SHAPES}]  # fmt: skip
    out = {}
    for pool in ("mean", "max"):
        out[pool] = _run(folder, {"type": "reference", "video_pooling": pool}, benches, f"pool-{pool}")
    return out


def _independent_embeddings(pool: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Videos and captions embedded here, frame by frame, without the engine or frame_pooling."""
    model = load_folder(DEMO_CHECKPOINT)
    data = load_shapes_video_captions("test", N_VIDEOS)
    videos = []
    with torch.no_grad():
        for path in data.videos.paths:
            frames = read_clip(path, FrameSampling(frames=8)).frames
            pixels = torch.stack([model.image_transform(Image.fromarray(f)) for f in frames])
            per_frame = F.normalize(model.encode_image(pixels), dim=-1)
            videos.append(per_frame.mean(0) if pool == "mean" else per_frame.max(0).values)
        texts = F.normalize(model.encode_text(model.tokenize(data.texts)), dim=-1)
    return F.normalize(torch.stack(videos), dim=-1), texts, data.text_video_index


def _brute_ranks(scores: np.ndarray, owner: list[int]) -> tuple[list[int], list[int]]:
    """t2v and v2t 1-based ranks by loops; a negative tied with the best positive ranks above it."""
    t2v = []
    for t, own in enumerate(owner):
        t2v.append(1 + sum(1 for v in range(scores.shape[1]) if v != own and scores[t, v] >= scores[t, own]))
    v2t = []
    for v in range(scores.shape[1]):
        best = max(scores[t, v] for t in range(len(owner)) if owner[t] == v)
        v2t.append(1 + sum(1 for t in range(len(owner)) if owner[t] != v and scores[t, v] >= best))
    return t2v, v2t


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_retrieval_equals_brute_force_over_independent_frame_embeddings(pooled_runs, pool):
    report, samples, _ = pooled_runs[pool]
    bench = report["benchmarks"]["ret"]
    videos, texts, owner = _independent_embeddings(pool)
    scores = (texts @ videos.T).double().numpy()
    t2v, v2t = _brute_ranks(scores, owner)
    metrics = {k: v["value"] for k, v in bench["metrics"].items()}
    for k in (1, 5):
        assert metrics[f"t2v_R@{k}"] == pytest.approx(np.mean([r <= k for r in t2v]), abs=1e-12)
        assert metrics[f"v2t_R@{k}"] == pytest.approx(np.mean([r <= k for r in v2t]), abs=1e-12)
    assert metrics["t2v_mean_rank"] == pytest.approx(np.mean(t2v))
    assert metrics["v2t_median_rank"] == pytest.approx(np.median(v2t))
    assert [row["rank"] for row in samples["ret"]["t2v"]] == t2v
    assert 0 < metrics["t2v_R@1"] < 1  # a real, unsaturated number on these clips
    # dual softmax, by loops over the same scores
    prior_t = np.exp(100 * scores) / np.exp(100 * scores).sum(axis=0, keepdims=True)
    prior_v = np.exp(100 * scores) / np.exp(100 * scores).sum(axis=1, keepdims=True)
    dsl_t2v, _ = _brute_ranks(scores * prior_t, owner)
    _, dsl_v2t = _brute_ranks(scores * prior_v, owner)
    assert metrics["dsl_t2v_R@1"] == pytest.approx(np.mean([r <= 1 for r in dsl_t2v]), abs=1e-12)
    assert metrics["dsl_v2t_R@5"] == pytest.approx(np.mean([r <= 5 for r in dsl_v2t]), abs=1e-12)
    assert bench["metrics"]["dsl_rsum"]["reranked"] == "dual_softmax" and "ci95" not in bench["metrics"]["dsl_rsum"]
    assert "test set's pairing" in bench["rerank"]["note"]
    assert "ci95" in bench["metrics"]["t2v_R@1"]


def test_report_records_sampling_decoder_pooling_and_split(pooled_runs):
    import av

    for pool, (report, _, _) in pooled_runs.items():
        for name in ("ret", "zs"):
            video = report["benchmarks"][name]["video"]
            assert video["sampling"]["key"] == "uniform8-middle" and video["sampling"]["frames"] == 8
            assert video["decoder"] == "pyav" and video["version"] == av.__version__
            assert video["video_encoder"] == {"kind": "frame pooling", "pool": pool, "frame_embeddings": "L2-normalised",
                                              "image_model": "shapes-clip"}  # fmt: skip
            dataset = report["benchmarks"][name]["dataset"]
            assert dataset["n_videos"] == N_VIDEOS and "split=test" in dataset["split_note"]
        assert report["config"]["model"]["video_pooling"] == pool


def test_zeroshot_equals_brute_force(pooled_runs):
    report, samples, _ = pooled_runs["mean"]
    videos, _, _ = _independent_embeddings("mean")
    model = load_folder(DEMO_CHECKPOINT)
    data = load_shapes_video_classes("test", N_VIDEOS)
    templates = report["benchmarks"]["zs"]["classification"]["templates"]
    with torch.no_grad():
        weights = []
        for name in data.classnames:
            prompts = F.normalize(model.encode_text(model.tokenize([t.format(c=name) for t in templates])), dim=-1)
            weights.append(F.normalize(prompts.mean(0), dim=0))
    scores = (videos @ torch.stack(weights).T).numpy()
    predicted = [int(np.argmax(row)) for row in scores]
    top1 = np.mean([p == label for p, label in zip(predicted, data.labels)])
    recalls = [np.mean([p == c for p, label in zip(predicted, data.labels) if label == c])
               for c in range(len(data.classnames)) if c in data.labels]  # fmt: skip
    metrics = report["benchmarks"]["zs"]["metrics"]
    assert metrics["top1"]["value"] == pytest.approx(top1)
    assert metrics["mean_per_class_recall"]["value"] == pytest.approx(np.mean(recalls))
    assert [r["prediction"] for r in samples["zs"]["predictions"]] == [data.classnames[p] for p in predicted]


def test_dual_softmax_ranks_by_hand():
    scores = torch.tensor([[0.9, 0.8], [0.85, 0.1], [0.2, 0.3]], dtype=torch.float64)  # 3 texts, 2 videos
    owner = [0, 0, 1]
    ranks = ranks_from_scores(scores, scores, owner)
    assert ranks.t2i.tolist() == [1, 1, 1] and ranks.i2t.tolist() == [1, 2]  # video 1: text 0 (0.8) beats 0.3
    reranked = dual_softmax(scores, 1.0, dim=0)
    column = torch.softmax(scores[:, 1], dim=0)
    assert torch.allclose(reranked[:, 1], scores[:, 1] * column)


def test_inverted_softmax_ranks_equal_loops_over_the_query_bank_normalised_scores():
    """QB-Norm's inverted softmax with the test texts as the bank: t2v ranks from each video's softmax over texts,
    v2t ranks from each text's softmax over videos, against `_brute_ranks` on scores normalised by NumPy loops."""
    generator = np.random.default_rng(3)
    scores = generator.normal(size=(12, 4))
    owner = [t % 4 for t in range(12)]
    by_texts = np.exp(20 * scores) / np.exp(20 * scores).sum(axis=0, keepdims=True)
    by_videos = np.exp(20 * scores) / np.exp(20 * scores).sum(axis=1, keepdims=True)
    t2v, _ = _brute_ranks(by_texts, owner)
    _, v2t = _brute_ranks(by_videos, owner)
    tensor = torch.tensor(scores)
    ranks = ranks_from_scores(inverted_softmax(tensor, 20.0, dim=0), inverted_softmax(tensor, 20.0, dim=1), owner)
    assert ranks.t2i.tolist() == t2v and ranks.i2t.tolist() == v2t
    assert ranks.t2i.tolist() != _brute_ranks(scores, owner)[0]  # the re-ranking changes something here


def test_compare_gate_and_html_on_two_video_reports(pooled_runs, tmp_path):
    (_, _, mean_path), (_, _, max_path) = pooled_runs["mean"], pooled_runs["max"]
    runner = CliRunner()
    done = runner.invoke(app, ["compare", str(mean_path), str(max_path), "--format", "json", "--resamples", "200"])
    assert done.exit_code == 0, done.output
    compared = json.loads(done.stdout)
    text = json.dumps(compared)
    assert "t2v_R@1" in text and "top1" in text and "p_value" in text
    rules = tmp_path / "gate.yaml"
    rules.write_text("resamples: 500\nrules:\n  - name: recall\n    metric: ret/t2v_R@1\n    min: 2.0\n"
                     "  - name: no drop\n    metric: ret/t2v_R@5\n    significant: true\n")
    gated = runner.invoke(app, ["gate", "--candidate", str(max_path), "--baseline", str(mean_path), "-r", str(rules)])
    assert gated.exit_code == 1, gated.output  # min 2.0 cannot hold: the gate reads the video metric and fails
    assert "t2v_R@1" in gated.output
    page = tmp_path / "video.html"
    done = runner.invoke(app, ["report", str(mean_path), str(max_path), "--html", str(page)])
    assert done.exit_code == 0, done.output
    html = page.read_text()
    assert "t2v_R@1" in html and "recall@k" in html and "top1" in html  # headline table and the recall curves


def test_resume_of_the_videos_pass_is_bit_identical(tmp_path):
    """A video pass interrupted after two batches, resumed: only the rest is encoded and the embeddings equal
    an uninterrupted pass's bit for bit."""
    from mmeval.config.runtime import RuntimeConfig
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.io.video_loading import encode_videos
    from mmeval.models.frame_pooling import FramePooledEncoder

    class Counting:
        def __init__(self, stop_after: int | None = None):
            self.inner, self.calls, self.rows, self.stop_after = load_folder(DEMO_CHECKPOINT), 0, 0, stop_after

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_image(self, pixels):
            if self.stop_after is not None and self.calls == self.stop_after:
                raise KeyboardInterrupt
            self.calls += 1
            self.rows += len(pixels)
            return self.inner.encode_image(pixels)

    source = load_shapes_video_captions("test", N_VIDEOS).videos
    runtime = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", batch_size=2, num_workers=0,
                                            chunk_size=2))  # fmt: skip
    runtime.cache.outputs = False
    sampling = FrameSampling(frames=4)

    def encode(model):
        return encode_videos(FramePooledEncoder(model), source, runtime, sampling, "fail", lambda n: None)[0]

    with torch.no_grad():
        expected = encode(Counting())
        with pytest.raises(KeyboardInterrupt):
            encode(Counting(stop_after=2))
        runtime.resume = True
        resumed = Counting()
        assert torch.equal(encode(resumed), expected)
    assert resumed.rows == (N_VIDEOS - 2 * 2) * 4  # two finished batches of 2 videos x 4 frames were kept


def test_capabilities_are_checked_before_any_work():
    from mmeval.errors import MmevalError

    base = {"runtime": {"device": "cpu"}, "output": {"dir": "reports"}}
    with pytest.raises(MmevalError, match=r"task 'video_captioning' needs a model with capability 'video_captioner'"):
        validate_mapping({**base, "model": {"type": "reference"},
                          "benchmarks": [{"name": "c", "task": "video_captioning", "data": SHAPES}]})
    # an image-text encoder runs the embedding tasks through frame pooling
    cfg = validate_mapping({**base, "model": {"type": "reference"},
                            "benchmarks": [{"name": "r", "task": "video_retrieval", "data": SHAPES},
                                           {"name": "z", "task": "video_zeroshot", "data": SHAPES}]})
    assert [b.task for b in cfg.benchmarks] == ["video_retrieval", "video_zeroshot"]


def test_bias_slices_of_video_retrieval_and_qa_by_loops(tmp_path):
    """Recall and exact match sliced by a per-video attribute, through the shared bias code."""
    report, samples, _ = _run(tmp_path, {"type": "reference_video"}, [
        {"name": "ret", "task": "video_retrieval", "data": SHAPES, "recall_k": [1], "bias": {"attributes": ["speed"]}},
        {"name": "qa", "task": "video_qa", "data": SHAPES, "bias": {"attributes": ["speed"]}},
    ], "bias")  # fmt: skip
    speed = {v: a["speed"] for v, a in load_shapes_video_captions("test", N_VIDEOS).attributes.items()}
    recall = report["benchmarks"]["ret"]["bias"]["attributes"]["speed"]["sliced"]["t2v_R@1"]["per_group"]
    answered = report["benchmarks"]["qa"]["bias"]["attributes"]["speed"]["sliced"]["exact_match"]["per_group"]
    assert set(recall) == set(answered) == set(speed.values())
    for group in recall:
        ranks = [r["rank"] for r in samples["ret"]["t2v"] if speed[r["video_id"]] == group]
        assert recall[group] == pytest.approx(sum(r <= 1 for r in ranks) / len(ranks))
        correct = [r["correct"] for r in samples["qa"]["answers"] if speed[r["video_id"]] == group]
        assert answered[group] == pytest.approx(sum(correct) / len(correct))
    # the questions about one video are drawn together: the interval and the paired test resample videos
    block = report["benchmarks"]["qa"]["bootstrap"]
    assert block["resampled"] == "clusters" and block["unit"].startswith("videos")
    from mmeval.reporting.sample_values import paired_values

    pair = paired_values("video_qa", "exact_match", samples["qa"], samples["qa"], ["exact_match"])
    videos = [r["video_id"] for r in samples["qa"]["answers"]]
    assert pair.unit == "videos" and list(pair.clusters[0]) == videos and len(set(videos)) < len(videos)
