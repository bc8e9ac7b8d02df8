"""Faulty models: NaN / Inf outputs and CUDA out of memory.

A model that returns NaN or Inf embeddings fails its benchmark with one line naming the benchmark, the batch
and the samples; the CLI exits 2 and the report keeps the benchmark as failed. A model that runs out of CUDA
memory has its batch halved (with a warning, recorded in the latency block) and gives the results of a run
configured at the smaller batch size; at batch size 1 it is a clear error. This machine has no GPU: the test
models raise `torch.cuda.OutOfMemoryError` themselves for calls above a given number of rows, on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PLUGIN_HEADER, importable_module, make_coco_dataset
from PIL import Image

from mmeval.config.run import validate_mapping
from mmeval.engine.evaluate import run_config
from mmeval.reporting.report import validate_report

MODULE = "mmeval_fault_models"  # one fixed text under one name: a cached import is never another test's model

# Rows never interact (each embedding / caption depends on its own row only), as the capability contracts
# require. Weights come from a seeded generator, so every run builds the same model.
PLUGIN = PLUGIN_HEADER + '''

OOM = "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total capacity)"


class Encoder:
    def __init__(self, nan_rows=(), inf_word=None, oom_above=None):
        generator = torch.Generator().manual_seed(0)
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(8)
        self.w_image = torch.randn(3 * 8 * 8, 16, generator=generator)
        self.w_text = torch.randn(48, 16, generator=generator)
        self.nan_rows, self.inf_word, self.oom_above = set(nan_rows), inf_word, oom_above
        self.rows_seen = 0
        self.calls = []  # rows per call, failed calls included

    def _check_memory(self, rows):
        self.calls.append(rows)
        if self.oom_above is not None and rows > self.oom_above:
            raise torch.cuda.OutOfMemoryError(OOM)

    def tokenize(self, texts):
        codes = [[float(ord(c) % 89) for c in t[:47].ljust(47)] for t in texts]
        flags = [[1.0 if self.inf_word and self.inf_word in t else 0.0] for t in texts]
        return torch.cat([torch.tensor(codes), torch.tensor(flags)], dim=1)

    def encode_image(self, pixels):
        self._check_memory(len(pixels))
        out = pixels.flatten(1) @ self.w_image
        for row in range(len(pixels)):
            if self.rows_seen + row in self.nan_rows:
                out[row] = float("nan")
        self.rows_seen += len(pixels)
        return out

    def encode_text(self, tokens):
        self._check_memory(len(tokens))
        out = torch.cat([tokens[:, :47], torch.ones(len(tokens), 1)], dim=1) @ self.w_text
        out[tokens[:, 47] > 0] = float("inf")
        return out


class Captioner(Encoder):
    capabilities = ("captioner",)

    def __init__(self, drop_last=False, **options):
        super().__init__(**options)
        self.drop_last = drop_last

    def generate(self, pixels, settings):
        self._check_memory(len(pixels))
        codes = (pixels.flatten(1) @ self.w_image)[:, :3]
        captions = ["a photo of " + " ".join(f"w{int(v) % 7}" for v in row) for row in codes]
        return captions[:-1] if self.drop_last else captions


def encoder(**options):
    return Encoder(**options)


def captioner(**options):
    return Captioner(**options)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch) -> Path:
    """The fault models' module, importable in this process and by `mmeval` subprocesses (PYTHONPATH)."""
    return importable_module(tmp_path, monkeypatch, MODULE, PLUGIN)


def config(tmp_path: Path, benchmark: dict, batch_size: int, factory: str = "encoder", out: str = "reports",
           **options) -> dict:  # fmt: skip
    return {"model": {"type": "plugin", "entry": f"{MODULE}:{factory}", "options": options},
            "benchmarks": [benchmark],
            "runtime": {"device": "cpu", "batch_size": batch_size, "num_workers": 0, "warmup_batches": 0},
            "output": {"dir": str(tmp_path / out), "name": "run"}}  # fmt: skip


def coco_benchmark(annotations: Path, task: str = "retrieval", **extra) -> dict:
    data = {"format": "coco", "annotations": str(annotations), "images": str(annotations.parent / "val2014")}
    return {"name": "coco", "task": task, "data": data, **extra}


def run_cli(tmp_path: Path, plugin: Path, cfg: dict) -> subprocess.CompletedProcess:
    (tmp_path / "run.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    return subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(plugin)})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------------------------------------------- NaN / Inf


def test_nan_image_embeddings_fail_the_benchmark_naming_batch_and_images(tmp_path: Path, plugin: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=10)
    # Rows 5 and 6 of the pass (0-based) are in the second batch of 4: images 6 and 7 of the annotation file.
    images = (tmp_path / "coco" / "val2014").resolve()
    named = f"{images / 'COCO_val2014_000000000006.jpg'}, {images / 'COCO_val2014_000000000007.jpg'}"
    message = f"the model returned NaN or Inf image embeddings in image batch 2 for 2 of its 4 images: {named}"

    done = run_cli(tmp_path, plugin, config(tmp_path, coco_benchmark(annotations), 4, nan_rows=[5, 6]))

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [f"error: benchmark 'coco': {message}"]
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    validate_report(report)
    assert report["status"] == "partial"
    assert report["benchmarks"]["coco"] == {"status": "failed", "task": "retrieval", "error": message}
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["run.json"]  # no per-sample file, no .tmp


def test_inf_text_embeddings_name_the_texts(tmp_path: Path, plugin: Path) -> None:
    """Captions that contain 'take 3' get Inf embeddings: the error names the first five and counts the rest."""
    annotations = make_coco_dataset(tmp_path / "coco", n_images=12)
    captions = [a["caption"] for a in json.loads(annotations.read_text())["annotations"]]
    # encode_texts batches texts by length (a stable sort); with a batch of 1000 there is one batch
    flagged = [i for i, text in enumerate(captions) if "take 3" in text]
    order = sorted(range(len(captions)), key=lambda i: len(captions[i]))
    first = [i for i in order if i in flagged][:5]
    named = ", ".join(f"text {i} {captions[i][:60]!r}" for i in first)
    cfg = validate_mapping(config(tmp_path, coco_benchmark(annotations), 1000, inf_word="take 3"))

    outcome = run_config(cfg)

    assert len(flagged) > 5
    assert outcome.errors == [(f"benchmark 'coco': the model returned NaN or Inf text embeddings in text batch 1 for "
                              f"{len(flagged)} of its {len(captions)} texts: {named} and {len(flagged) - 5} more")]
    assert outcome.report["benchmarks"]["coco"]["status"] == "failed"


def _image_folder(root: Path) -> Path:
    for c, name in enumerate(["bird", "cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 10), (40 * c + 10 * i, 200 - 30 * i, 90)).save(root / name / f"{i}.png")
    return root


def test_nan_classification_scores_name_the_image(tmp_path: Path, plugin: Path) -> None:
    """Zero-shot scores are image x class-prompt cosines: a NaN image embedding is caught before scoring."""
    root = _image_folder(tmp_path / "folder")
    bench = {"name": "animals", "task": "zeroshot_classification", "data": {"format": "imagefolder", "root": str(root)}}
    # Row 4 = the 5th image in ImageFolder order (bird/0-2, cat/0-2, ...) = cat/1.png, in batch 3 of 2 rows
    cfg = validate_mapping(config(tmp_path, bench, 2, nan_rows=[4]))

    outcome = run_config(cfg)

    assert outcome.errors == [("benchmark 'animals': the model returned NaN or Inf image embeddings in image batch 3 "
                              f"for 1 of its 2 images: {root.resolve() / 'cat' / '1.png'}")]


def test_inf_class_prompt_names_the_prompt(tmp_path: Path, plugin: Path) -> None:
    root = _image_folder(tmp_path / "folder")
    bench = {"name": "animals", "task": "zeroshot_classification", "templates": ["a photo of a {c}."],
             "data": {"format": "imagefolder", "root": str(root)}}  # fmt: skip
    cfg = validate_mapping(config(tmp_path, bench, 64, inf_word="cat"))

    outcome = run_config(cfg)

    # prompts in class order: bird (0), cat (1), dog (2); one batch
    assert outcome.errors == [("benchmark 'animals': the model returned NaN or Inf text embeddings in text batch 1 "
                              "for 1 of its 3 texts: text 1 'a photo of a cat.'")]


def test_generated_text_cannot_be_nan_but_can_be_missing(tmp_path: Path, plugin: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=5)
    bench = coco_benchmark(annotations, task="coco_captions", metrics=["Bleu"], tokenizer="python")

    outcome = run_config(validate_mapping(config(tmp_path, bench, 4, "captioner", drop_last=True)))

    assert outcome.errors == [("benchmark 'coco': the model returned 3 strings for 4 images (it must return a list "
                              "with one string per image)")]


# ------------------------------------------------------------------------------------------- CUDA out of memory


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_out_of_memory_halves_the_batch_and_changes_no_result(tmp_path: Path, plugin: Path, caplog) -> None:
    """Batch 16 on a model that holds at most 4 rows: two halvings per pass, then the numbers and per-sample
    ranks of a run configured at batch size 4, and a latency block that says so."""
    annotations = make_coco_dataset(tmp_path / "coco", n_images=22)
    n_texts = sum(1 + i % 7 for i in range(22))
    small = run_config(validate_mapping(config(tmp_path, coco_benchmark(annotations), 4, out="small")))
    with caplog.at_level(logging.WARNING, logger="mmeval"):
        big = run_config(validate_mapping(config(tmp_path, coco_benchmark(annotations), 16, out="big",
                                                 oom_above=4)))  # fmt: skip

    assert big.errors == [] and small.errors == []
    got, want = big.report["benchmarks"]["coco"], small.report["benchmarks"]["coco"]
    assert got["metrics"] == want["metrics"]
    assert _read(big.samples_path) == _read(small.samples_path)
    assert got["dataset"] == want["dataset"]
    latency = got["latency"]
    reductions = latency["batch_size_reductions"]
    assert [(r["pass"], r["from"], r["to"]) for r in reductions] == [
        ("images", 16, 8), ("images", 8, 4), ("texts", 16, 8), ("texts", 8, 4)]
    assert all(r["failed_call_s"] >= 0 for r in reductions)
    # every successful call is timed at the size it ran at: the per-call record equals the small run's
    for name, n in (("images", 22), ("texts", n_texts)):
        rows = latency["passes"][name]["calls_rows"]
        assert rows == want["latency"]["passes"][name]["calls_rows"] and sum(rows) == n and max(rows) == 4
    assert "batch_size_reductions" not in want["latency"]
    validate_report(big.report)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        ("CUDA out of memory on a batch of 16 in the images pass: continuing at batch size 8 (results do not change; "
        "the report's latency block records it)"),
        ("CUDA out of memory on a batch of 8 in the images pass: continuing at batch size 4 (results do not change; "
        "the report's latency block records it)"),
        ("CUDA out of memory on a batch of 16 in the texts pass: continuing at batch size 8 (results do not change; "
        "the report's latency block records it)"),
        ("CUDA out of memory on a batch of 8 in the texts pass: continuing at batch size 4 (results do not change; "
        "the report's latency block records it)"),
    ]


def test_out_of_memory_while_captioning_keeps_every_caption(tmp_path: Path, plugin: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=9)
    bench = coco_benchmark(annotations, task="coco_captions", metrics=["Bleu", "CIDEr"], tokenizer="python")
    small = run_config(validate_mapping(config(tmp_path, bench, 2, "captioner", out="small")))
    big = run_config(validate_mapping(config(tmp_path, bench, 8, "captioner", out="big", oom_above=2)))

    assert big.errors == [] and small.errors == []
    got, want = big.report["benchmarks"]["coco"], small.report["benchmarks"]["coco"]
    captions = _read(tmp_path / "big" / got["predictions_file"])
    assert captions == _read(tmp_path / "small" / want["predictions_file"]) and len(captions) == 9
    assert got["metrics"] == want["metrics"]
    reductions = [(r["pass"], r["from"], r["to"]) for r in got["latency"]["batch_size_reductions"]]
    assert reductions == [("generate", 8, 4), ("generate", 4, 2)]
    assert got["latency"]["passes"]["generate"]["calls_rows"] == [2, 2, 2, 2, 1]


def test_out_of_memory_at_batch_size_one_is_a_clear_error(tmp_path: Path, plugin: Path) -> None:
    annotations = make_coco_dataset(tmp_path / "coco", n_images=3)

    done = run_cli(tmp_path, plugin, config(tmp_path, coco_benchmark(annotations), 4, oom_above=0))

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        ("error: benchmark 'coco': CUDA out of memory in the images pass even at batch size 1; free GPU memory, use "
        "runtime.precision: bf16 or fp16, or run a smaller model")]
    # 3 images in a batch of 4: 3 rows fail, then 1 (3 // 2) fails and there is nothing smaller
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: CUDA out of memory")]
    assert [w.split(":")[1] for w in warnings] == [" CUDA out of memory on a batch of 3 in the images pass"]
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    assert report["benchmarks"]["coco"]["status"] == "failed"


def test_out_of_memory_outside_a_model_call_is_a_clear_error(tmp_path: Path, plugin: Path, monkeypatch) -> None:
    """Copying a batch to the device is not split (the data batch is already built): a one-line failure."""
    import torch

    def copy(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("mmeval.io.image_loading._to_run_device", copy)
    annotations = make_coco_dataset(tmp_path / "coco", n_images=3)
    outcome = run_config(validate_mapping(config(tmp_path, coco_benchmark(annotations), 4)))

    assert outcome.internal_error is None
    assert outcome.errors == [("benchmark 'coco': CUDA out of memory outside a model call (copying, decoding or "
                              "scoring a batch); lower runtime.batch_size")]
