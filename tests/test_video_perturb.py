"""Video perturbations (mmeval/perturb/video.py) and the video tasks under `ctx.perturbation`: determinism, shape,
the documented share of changed frames per severity, the same frames whether perturbed in the loader's workers
or from the decoded-frame cache, clean cache entries never touched, and the point of the temporal reference
model: it is hurt by frames out of order, frame-mean pooling is blind to them."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mmeval.config.perturb import PerturbConfig
from mmeval.config.run import validate_mapping
from mmeval.engine.runtime import resolve_runtime
from mmeval.engine.timing import Timer
from mmeval.io.video_loading import VideoBatches
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder
from mmeval.models.reference_video import DEMO_VIDEO_CHECKPOINT, load_video_folder
from mmeval.perturb import PERTURBATIONS, Cell, apply, register
from mmeval.perturb import video as pv
from mmeval.registry import task_spec
from mmeval.tasks.base import RunContext
from mmeval.tasks.video_block import video_data
from mmeval.tasks.video_qa.run import run as run_qa
from mmeval.tasks.video_retrieval.run import run as run_retrieval
from mmeval.tasks.video_zeroshot.run import run as run_zeroshot

TEMPORAL = ("frame_drop", "temporal_shuffle", "frame_reverse")
N_VIDEOS = 16


def _clip(n_frames: int = 8) -> np.ndarray:
    """Frames that are all different: frame t is filled with the value t (and some noise)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 20, size=(n_frames, 6, 5, 3), dtype=np.uint8)
    return frames + (np.arange(n_frames, dtype=np.uint8) * 20)[:, None, None, None]


def _moved(frames: np.ndarray, out: np.ndarray) -> int:
    return int(sum(not np.array_equal(a, b) for a, b in zip(frames, out)))


def _invert(frames: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A per-pixel video perturbation for the tests (not temporal: it cannot be applied to cached frames)."""
    return 255 - frames


if "test_invert" not in PERTURBATIONS.get("video", {}):
    register("video", "test_invert", _invert)


@pytest.mark.parametrize("name", TEMPORAL)
def test_deterministic_per_sample_shape_kept_frames_only_moved(name: str) -> None:
    frames = _clip()
    for severity in range(1, 6):
        out = apply("video", name, frames, severity, 0, "clip-a")
        assert out.shape == frames.shape and out.dtype == np.uint8
        assert np.array_equal(out, apply("video", name, frames, severity, 0, "clip-a"))  # same seed, same sample
        for t in range(len(out)):  # whole frames of the clip, nothing else
            assert any(np.array_equal(out[t], f) for f in frames)
    outs = {apply("video", name, frames, 3, seed, vid).tobytes() for seed in (0, 1) for vid in ("a", "b", "c")}
    assert len(outs) > 1  # other seeds / samples give other changes


def test_each_severity_changes_the_documented_number_of_frames() -> None:
    frames = _clip(8)
    for vid in range(20):
        drop = [_moved(frames, apply("video", "frame_drop", frames, s, 0, vid)) for s in range(1, 6)]
        shuffle = [_moved(frames, apply("video", "temporal_shuffle", frames, s, 0, vid)) for s in range(1, 6)]
        reverse = [_moved(frames, apply("video", "frame_reverse", frames, s, 0, vid)) for s in range(1, 6)]
        assert drop == [1, 2, 3, 4, 6]  # round(T x 0.10 / 0.25 / 0.40 / 0.55 / 0.70), T = 8
        assert shuffle == [2, 3, 4, 6, 8]  # round(T x 0.25 / 0.40 / 0.55 / 0.75 / 1.00)
        assert reverse == [2, 2, 4, 6, 8]  # the same runs reversed; the middle frame of a run of 3 stays
    frames16 = _clip(16)
    assert [_moved(frames16, apply("video", "frame_drop", frames16, s, 0, 0)) for s in range(1, 6)] == [2, 4, 6, 9, 11]
    reversed_clip = apply("video", "frame_reverse", frames16, 5, 0, 0)
    assert np.array_equal(reversed_clip, frames16[::-1])


def test_frame_drop_freezes_on_the_previous_kept_frame() -> None:
    frames = _clip(8)
    for vid in range(10):
        out = apply("video", "frame_drop", frames, 4, 7, vid)
        assert np.array_equal(out[0], frames[0])
        kept = [t for t in range(8) if np.array_equal(out[t], frames[t])]
        for t in range(8):
            if t not in kept:  # a dropped slot shows the latest kept frame before it
                assert np.array_equal(out[t], frames[max(k for k in kept if k < t)])
        assert len(kept) == 8 - 4


def test_temporal_shuffle_is_a_permutation_of_the_frames() -> None:
    rng = np.random.default_rng(3)
    for severity in range(1, 6):
        source = pv.source_of("temporal_shuffle", 12, severity, rng)
        assert sorted(source.tolist()) == list(range(12))


def test_video_tasks_declare_what_they_can_perturb() -> None:
    assert task_spec("video_retrieval").perturbs == ("video", "text")
    assert task_spec("video_zeroshot").perturbs == ("video", "text")
    assert task_spec("video_qa").perturbs == ("video", "text")
    assert task_spec("video_captioning").perturbs == ("video",)
    cells = PerturbConfig(video=["frame_drop", "temporal_shuffle"], severities=[1, 5]).cells()
    assert [c.label() for c in cells] == ["video:frame_drop@1", "video:frame_drop@5", "video:temporal_shuffle@1",
                                          "video:temporal_shuffle@5"]  # fmt: skip
    with pytest.raises(ValueError, match="frame_drop"):  # the error lists the known names
        PerturbConfig(video=["frame_dorp"])


# --- the video tasks under ctx.perturbation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def clips_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(autouse=True)
def own_cache(clips_home, monkeypatch) -> Path:
    """The shapes_video clips are rendered once for this module (conftest's `own_cache` would render them per
    test); every test still gets its own run cache (`runtime.cache_dir`), so none reuses another's outputs."""
    monkeypatch.setenv("MMEVAL_CACHE_DIR", str(clips_home))
    return clips_home


@pytest.fixture(scope="module")
def models():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load_video_folder(DEMO_VIDEO_CHECKPOINT), load_folder(DEMO_CHECKPOINT)
    torch.set_num_threads(before)


@pytest.fixture
def setup(models, tmp_path):
    cache = tmp_path / "run-cache"
    data = {"format": "shapes_video", "n_videos": N_VIDEOS, "split": "test"}
    cfg = validate_mapping({"model": {"type": "reference_video"}, "benchmarks": [
        {"name": "zs", "task": "video_zeroshot", "data": data},
        {"name": "ret", "task": "video_retrieval", "data": data},
        {"name": "qa", "task": "video_qa", "data": {**data, "n_videos": 2}},
        {"name": "ret-small", "task": "video_retrieval", "data": {**data, "n_videos": 8}}],
        "runtime": {"device": "cpu", "num_workers": 0, "batch_size": 8, "cache_dir": str(cache)}})  # fmt: skip
    return cfg, resolve_runtime(cfg.runtime), cache, *models


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_temporal_model_is_hurt_by_shuffles_and_frame_mean_pooling_is_not(setup) -> None:
    cfg, runtime, cache, temporal, pooled = setup
    zs, ret = cfg.benchmarks[0], cfg.benchmarks[1]
    shuffle = Cell("video", "temporal_shuffle", 5, 0)
    clean_t = run_zeroshot(temporal, zs, RunContext(runtime=runtime)).metrics["top1"]["value"]
    clean_cache = _snapshot(cache)
    hurt = run_zeroshot(temporal, zs, RunContext(runtime=runtime, perturbation=shuffle))
    assert hurt.extra["video"]["frames_from"] == "cache"  # moved from the clean decoded frames, not decoded again
    assert clean_t >= 0.8 and hurt.metrics["top1"]["value"] <= clean_t - 0.4, (clean_t, hurt.metrics["top1"])
    ret_clean = run_retrieval(temporal, ret, RunContext(runtime=runtime)).metrics["t2v_R@1"]["value"]
    ret_hurt = run_retrieval(temporal, ret, RunContext(runtime=runtime, perturbation=shuffle)).metrics["t2v_R@1"]
    assert ret_hurt["value"] < ret_clean - 0.2, (ret_clean, ret_hurt)
    # frame-mean pooling cannot see the order of frames: the same numbers, shuffled or not
    before = run_zeroshot(pooled, zs, RunContext(runtime=runtime)).metrics
    after = run_zeroshot(pooled, zs, RunContext(runtime=runtime, perturbation=shuffle)).metrics
    for metric in ("top1", "mean_per_class_recall", "macro_f1", "ece"):
        assert after[metric]["value"] == pytest.approx(before[metric]["value"], abs=1e-6), metric
    # the perturbed passes added entries (their own keys) and changed none of the clean run's
    now = _snapshot(cache)
    assert all(now.get(path) == digest for path, digest in clean_cache.items())
    again = run_zeroshot(temporal, zs, RunContext(runtime=runtime))
    assert again.extra["video"]["frames_from"] == "output cache" and again.metrics["top1"]["value"] == clean_t


def test_workers_and_the_decoded_frame_cache_give_the_same_perturbed_frames(setup) -> None:
    cfg, runtime, cache, temporal, _ = setup
    data = video_data(cfg.benchmarks[0], "classes")
    source = data.videos.subset(list(range(6)))
    sampling = cfg.benchmarks[0].frames
    cell = Cell("video", "frame_drop", 3, 5)

    def frames(runtime_, perturbation) -> tuple[torch.Tensor, str]:
        loader = VideoBatches(temporal, source, runtime_, sampling, "fail", perturbation)
        batches = [b.inputs for b in loader.batches(loader.order(), Timer())]
        return torch.cat(batches), loader.done.frames_from

    clean, how = frames(runtime, None)  # writes the decoded-frame store of these 6 videos
    assert how in ("uint8", "cache")
    from_cache, how = frames(runtime, cell)
    assert how == "cache"
    decoded, how = frames(replace(runtime, cache=None, num_workers=1), cell)  # decoded, perturbed in a worker
    assert how == "uint8"
    assert torch.equal(from_cache, decoded) and not torch.equal(clean, decoded)
    for k, vid in enumerate(source.ids):  # slot by slot: the documented index map on the clean frames
        expected = apply("video", "frame_drop", clean[k].numpy(), 3, 5, vid)
        assert np.array_equal(decoded[k].numpy(), expected)
    # a perturbation that is not a frame move decodes again (never the clean store) and writes no store
    before = _snapshot(cache)
    inverted, how = frames(runtime, Cell("video", "test_invert", 1, 0))
    assert how == "uint8" and not torch.equal(inverted, clean)
    assert _snapshot(cache) == before


def test_text_cells_perturb_the_queries_and_reuse_the_clean_video_outputs(setup) -> None:
    cfg, runtime, _, temporal, _ = setup
    ret, qa = cfg.benchmarks[3], cfg.benchmarks[2]
    typo = Cell("text", "keyboard_typo", 5, 0)
    clean = run_retrieval(temporal, ret, RunContext(runtime=runtime))
    typed = run_retrieval(temporal, ret, RunContext(runtime=runtime, perturbation=typo))
    assert typed.extra["video"]["frames_from"] == "output cache"  # the video pass is the clean run's
    assert typed.metrics["t2v_R@1"]["value"] < clean.metrics["t2v_R@1"]["value"] - 0.1, (typed.metrics, clean.metrics)
    asked = run_qa(temporal, qa, RunContext(runtime=runtime, perturbation=typo)).per_sample["answers"]
    plain = run_qa(temporal, qa, RunContext(runtime=runtime)).per_sample["answers"]
    assert [row["question"] for row in asked] == [apply("text", "keyboard_typo", row["question"], 5, 0,
                                                        row["question_id"]) for row in plain]  # fmt: skip
    assert any(a["question"] != p["question"] for a, p in zip(asked, plain))


def test_an_image_corruption_applies_to_every_frame_with_the_clips_one_generator() -> None:
    def noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        return np.clip(image.astype(np.int16) + rng.integers(-severity, severity + 1, image.shape), 0, 255)

    frames = np.full((4, 6, 5, 3), 100, dtype=np.uint8)
    fn = pv.per_frame(noise)
    out = fn(frames, 3, np.random.default_rng(11))
    assert out.shape == frames.shape and out.dtype == np.uint8
    rng = np.random.default_rng(11)  # frame by frame with one generator, by a loop
    assert np.array_equal(out, np.stack([noise(f, 3, rng) for f in frames]))
    assert not np.array_equal(out[0], out[1])  # fresh noise on every frame
    for name, corrupt in PERTURBATIONS.get("image", {}).items():  # once mmeval/perturb/image.py exists
        assert name in PERTURBATIONS["video"]
        assert np.array_equal(apply("video", name, frames[:2], 2, 0, "v"),
                              pv.per_frame(corrupt)(frames[:2], 2, np.random.default_rng(
                                  [0, zlib.crc32(name.encode()), 2, zlib.crc32(repr("v").encode())])))
