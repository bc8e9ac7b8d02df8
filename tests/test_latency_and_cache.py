"""Latency figures (against numpy on recorded samples; the breakdown covers the wall time), `mmeval bench`, the
split uint8 preprocessing (bit-identical to the models' own transforms) and the caches (reused when they
should be, never for another model or other data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_OPEN_CLIP, make_coco_dataset
from PIL import Image

from mmeval.config.run import RuntimeConfig, validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.engine.latency import pass_latency
from mmeval.engine.runtime import resolve_runtime
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder, read_config, save_reference
from mmeval.models.reference_arch import ReferenceCLIP
from mmeval.reporting.report import validate_report

# --- latency figures -----------------------------------------------------------------------------------------


def test_latency_percentiles_equal_numpy_on_recorded_batches() -> None:
    rng = np.random.default_rng(0)
    seconds = list(rng.exponential(0.02, size=57) + 0.01)
    rows = [32] * 56 + [7]
    figures = pass_latency(seconds, rows, warmup=2)
    kept = np.array(seconds[2:]) * 1000
    assert figures["first_batch_ms"] == pytest.approx(seconds[0] * 1000)
    assert figures["n_batches"] == 57 and figures["warmup_batches_excluded"] == 2
    for q in (50, 90, 95, 99):
        assert figures["batch_ms"][f"p{q}"] == pytest.approx(np.percentile(kept, q), rel=1e-12)
    assert figures["batch_ms"]["mean"] == pytest.approx(kept.mean()) and figures["batch_ms"]["max"] == kept.max()
    per_sample = kept / np.array(rows[2:])
    assert figures["sample_ms"]["p90"] == pytest.approx(np.percentile(per_sample, 90), rel=1e-12)
    assert figures["throughput_per_s"] == pytest.approx(sum(rows[2:]) / sum(seconds[2:]))
    assert figures["calls_ms"] == pytest.approx([s * 1000 for s in seconds]) and figures["calls_rows"] == rows
    # fewer batches than the warm-up: one is still reported
    assert pass_latency([0.5, 0.25], [4, 4], warmup=5)["batch_ms"]["p50"] == pytest.approx(250.0)


def _run(tmp_path: Path, model: dict, data: dict, name: str, **runtime) -> dict:
    cfg = validate_mapping({
        "model": model,
        "benchmarks": [{"name": "r", "task": "retrieval", "data": data}],
        "runtime": {"device": "cpu", "batch_size": 32, "num_workers": 0, **runtime},
        "output": {"dir": str(tmp_path / "reports"), "name": name},
    })  # fmt: skip
    outcome = run_config(cfg)
    assert not outcome.errors, outcome.errors
    validate_report(outcome.report)
    return outcome.report["benchmarks"]["r"]


SHAPES = {"format": "shapes", "n_images": 150}


def test_breakdown_covers_the_wall_time_and_memory_is_reported(tmp_path: Path) -> None:
    bench = _run(tmp_path, {"type": "reference"}, SHAPES, "lat", cache="off", warmup_batches=1)
    latency = bench["latency"]
    breakdown = latency["breakdown_s"]
    parts = ("setup_s", "data_wait_s", "h2d_s", "model_s", "metrics_s")
    assert sum(breakdown[p] for p in parts) == pytest.approx(breakdown["total_s"], rel=0.05)
    assert abs(breakdown["unaccounted_s"]) < 0.05 * breakdown["total_s"]
    images, texts = latency["passes"]["images"], latency["passes"]["texts"]
    assert images["n_batches"] == 5 and texts["n_batches"] == 24  # 150 images, 750 captions, batches of 32
    assert images["warmup_batches_excluded"] == 1 and not images["cached"]
    assert latency["peak_memory"]["cpu_peak_rss_mb"] > 50


def test_bench_command_sweeps_passes_and_batch_sizes(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("""
model: {type: reference}
benchmarks:
  - {name: caps, task: coco_captions, data: {format: shapes, n_images: 4}, generation: {max_new_tokens: 8}}
runtime: {device: cpu, warmup_batches: 1}
output: {dir: out, name: speed}
""")
    done = subprocess.run([sys.executable, "-m", "mmeval", "bench", "-c", "run.yaml", "-b", "1,4", "-n", "3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    validate_report(report)
    passes = report["benchmarks"]["bench"]["latency"]["passes"]
    assert set(passes) == {f"{p}/fp32/bs{b}" for p in ("image_encoder", "text_encoder", "generate", "answer")
                           for b in (1, 4)}  # fmt: skip
    for figures in passes.values():
        assert figures["n_batches"] == 4 and figures["warmup_batches_excluded"] == 1
        assert figures["throughput_per_s"] > 0
    metrics = report["benchmarks"]["bench"]["metrics"]
    assert metrics["generate/fp32/bs4/throughput_per_s"]["higher_is_better"] is True
    assert metrics["generate/fp32/bs4/p50_ms"]["higher_is_better"] is False
    assert "image_encoder" in done.stdout and "items/s" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "mmeval", "bench", "-c", "run.yaml", "-b", "1,x"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert bad.returncode == 2 and "--batch-sizes: expected comma-separated integers" in bad.stderr


# --- split preprocessing ---------------------------------------------------------------------------------------


def _noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(640, 480), (33, 90), (64, 64)])
def test_split_preprocessing_is_bit_identical(size, tmp_path: Path) -> None:
    import open_clip

    (tmp_path / "tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(tmp_path / "tiny-clip.json")
    _, _, open_clip_transform = open_clip.create_model_and_transforms("tiny-clip")
    from mmeval.models.open_clip_adapter import OpenClipEncoder

    wrapped = OpenClipEncoder(torch.nn.Identity(), open_clip_transform, None, None)
    reference = load_folder(DEMO_CHECKPOINT)
    for model in (wrapped, reference):
        assert model.pixel_pipeline is not None
        image = _noise(*size, seed=size[0])
        pipeline = model.pixel_pipeline
        assert torch.equal(model.image_transform(image), pipeline.normalize(pipeline.to_uint8(image)[None])[0])


# --- caches -----------------------------------------------------------------------------------------------------


def _other_reference_model(folder: Path) -> Path:
    """A random model with the shipped model's architecture and preprocessing (a "different checkpoint")."""
    torch.manual_seed(1)
    save_reference(ReferenceCLIP(read_config(DEMO_CHECKPOINT / "config.json")), folder)
    return folder


def test_rerun_reuses_outputs_and_other_checkpoints_reuse_pixels(tmp_path: Path, own_cache: Path) -> None:
    first = _run(tmp_path, {"type": "reference"}, SHAPES, "first")
    assert first["dataset"]["pixels_from"] == "uint8"
    again = _run(tmp_path, {"type": "reference"}, SHAPES, "again")
    assert again["dataset"]["pixels_from"] == "output cache"
    assert all(p["cached"] and p["n_batches"] == 0 for p in again["latency"]["passes"].values())
    assert again["metrics"] == first["metrics"] and again["dataset"]["sha256"] == first["dataset"]["sha256"]

    other = {"type": "reference", "checkpoint": str(_other_reference_model(tmp_path / "other"))}
    shared = _run(tmp_path, other, SHAPES, "other")
    assert shared["dataset"]["pixels_from"] == "cache"  # decoded once, by the first run
    fresh = _run(tmp_path, other, SHAPES, "other-fresh", cache="off")
    assert fresh["dataset"]["pixels_from"] == "uint8"
    assert shared["metrics"] == fresh["metrics"] != first["metrics"]
    assert shared["dataset"]["sha256"] == fresh["dataset"]["sha256"] == first["dataset"]["sha256"]

    entries = sorted(p.name for p in own_cache.rglob("*") if p.is_file())
    _run(tmp_path, {"type": "reference"}, SHAPES, "off", cache="off")
    assert sorted(p.name for p in own_cache.rglob("*") if p.is_file()) == entries  # off: nothing written


def test_changed_images_or_precision_never_hit_the_cache(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=12)
    data = {"format": "coco", "annotations": str(annotations), "images": str(tmp_path / "coco" / "val2014")}
    first = _run(tmp_path, {"type": "reference"}, data, "first")
    assert _run(tmp_path, {"type": "reference"}, data, "same")["dataset"]["pixels_from"] == "output cache"
    victim = sorted((tmp_path / "coco" / "val2014").iterdir())[0]
    _noise(64, 64, seed=99).save(victim)  # same name, other pixels
    changed = _run(tmp_path, {"type": "reference"}, data, "changed")
    assert changed["dataset"]["pixels_from"] == "uint8"
    assert changed["dataset"]["sha256"] != first["dataset"]["sha256"]
    assert changed["metrics"] == _run(tmp_path, {"type": "reference"}, data, "check", cache="off")["metrics"]
    bf16 = _run(tmp_path, {"type": "reference"}, data, "bf16", precision="bf16")
    assert bf16["dataset"]["pixels_from"] == "cache"  # same pixels, but the outputs are computed again


def test_an_unreadable_cache_entry_is_ignored(tmp_path: Path, own_cache: Path, caplog) -> None:
    first = _run(tmp_path, {"type": "reference"}, SHAPES, "first")
    for entry in own_cache.rglob("*.json"):
        entry.write_text("{not json")
    again = _run(tmp_path, {"type": "reference"}, SHAPES, "again")
    assert again["dataset"]["pixels_from"] == "uint8" and again["metrics"] == first["metrics"]
    assert "ignoring unreadable cache entry" in caplog.text


# --- the GPU decoding path, exercised on the CPU (torchvision decodes JPEG lists on either device) ------------------


def test_gpu_decode_path_logic_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batched JPEG decoding + tensor resizing, a PNG falling back to the CPU decoder in the worker, and a corrupt
    JPEG skipped: the same images are scored, and the metrics stay close to the PIL path's."""
    from mmeval.io import image_loading

    annotations = make_coco_dataset(tmp_path / "coco", n_images=30)
    images = tmp_path / "coco" / "val2014"
    png = sorted(images.iterdir())[3]
    Image.open(png).save(png, format="PNG")  # a PNG under a .jpg name: not JPEG bytes
    broken = sorted(images.iterdir())[5]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated JPEG
    data = {"format": "coco", "annotations": str(annotations), "images": str(images), "on_bad_image": "skip"}
    cpu = _run(tmp_path, {"type": "reference"}, data, "cpu", cache="off")
    real_plan = image_loading.plan_pixels

    def gpu_plan(model, source, runtime, decode):
        plan = real_plan(model, source, runtime, decode)
        return image_loading.PixelPlan("gpu", plan.pipeline)

    monkeypatch.setattr(image_loading, "plan_pixels", gpu_plan)
    gpu = _run(tmp_path, {"type": "reference"}, data, "gpu", cache="off")
    assert gpu["dataset"]["pixels_from"] == "gpu" and cpu["dataset"]["pixels_from"] == "uint8"
    assert gpu["dataset"]["n_images"] == cpu["dataset"]["n_images"] == 29
    assert gpu["dataset"]["skipped_images"][0]["image_id"] == cpu["dataset"]["skipped_images"][0]["image_id"] == 6
    assert gpu["dataset"]["sha256"] == cpu["dataset"]["sha256"]  # the same bytes were read
    for name, metric in cpu["metrics"].items():
        if name.endswith(("R@1", "R@5", "R@10")):
            assert abs(gpu["metrics"][name]["value"] - metric["value"]) < 0.1, name


def test_open_clip_texts_are_encoded_without_their_padding(tmp_path: Path) -> None:
    """Causal text tower read at end-of-text: cutting the all-padding columns gives the same embeddings."""
    import open_clip

    from mmeval.models.open_clip_adapter import OpenClipEncoder

    (tmp_path / "tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(tmp_path / "tiny-clip.json")
    torch.manual_seed(0)
    module, _, transform = open_clip.create_model_and_transforms("tiny-clip")
    encoder = OpenClipEncoder(module.eval(), transform, open_clip.get_tokenizer("tiny-clip"), None)
    assert encoder.trims_padding
    tokens = encoder.tokenize(["a dog", "two people on a wooden bench near the lake at sunset, seen from afar"] * 3)
    assert int((tokens != 0).sum(dim=1).max()) < 25  # most of the 77 columns are padding
    with torch.inference_mode():
        full, trimmed = module.encode_text(tokens), encoder.encode_text(tokens)
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-5)
    module.attn_mask = None  # a tower without a causal mask would see the padding: it runs whole
    assert not OpenClipEncoder(module, transform, None, None).trims_padding


def test_bf16_on_cpu_stores_open_clip_weights_in_bf16_once(tmp_path: Path) -> None:
    """precision bf16 on the CPU: open_clip's weights are cast once (not by autocast on every call); the
    embeddings stay close to fp32's; a later fp32 pass (a `mmeval bench` sweep) gets fp32 weights back; models
    that do not opt in keep theirs."""
    import open_clip

    from mmeval.engine.runner import encode_texts
    from mmeval.engine.runtime import match_weights, place_model
    from mmeval.models.open_clip_adapter import OpenClipEncoder

    (tmp_path / "tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(tmp_path / "tiny-clip.json")
    torch.manual_seed(0)
    module, _, transform = open_clip.create_model_and_transforms("tiny-clip")
    encoder = OpenClipEncoder(module.eval(), transform, open_clip.get_tokenizer("tiny-clip"), None)
    texts = ["a dog on the grass", "two people on a bench", "a red car"]
    fp32 = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", cache="off"))
    bf16 = resolve_runtime(RuntimeConfig(device="cpu", precision="bf16", cache="off"))
    place_model(encoder, fp32)
    reference, _ = encode_texts(encoder, texts, fp32, lambda n: None)
    place_model(encoder, bf16)
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    low, _ = encode_texts(encoder, texts, bf16, lambda n: None)
    assert low.dtype == torch.float32 and F.cosine_similarity(low, reference).min() > 0.99
    match_weights(encoder, fp32)
    assert {p.dtype for p in module.parameters()} == {torch.float32}

    class Other:  # an adapter that does not opt in (e.g. norm layers fed fp32 inputs)
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(2, 4))

    place_model(Other, bf16)
    assert {p.dtype for p in Other.module.parameters()} == {torch.float32}
