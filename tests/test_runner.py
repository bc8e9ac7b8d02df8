"""The inference loop: each image and text encoded exactly once, bad images skipped or failed, runtime resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_coco_dataset
from PIL import Image

from mmeval.config.run import RuntimeConfig, validate_mapping
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import DataError, MmevalError
from mmeval.models.base import ImageTextEncoder, ModelInfo
from mmeval.tasks.base import RunContext
from mmeval.tasks.retrieval import run as retrieval


class _MeanColour:
    """Picklable transform: an image's mean RGB as a 3-vector."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).mean((0, 1))


class CountingEncoder:
    """A minimal image_text_encoder that records every image and text it encodes."""

    def __init__(self, nan: bool = False):
        self.module = torch.nn.Linear(3, 3)
        self.image_transform = _MeanColour()
        self.info = ModelInfo("counting", "counting", None, None, 12)
        self.images_seen = 0
        self.texts_seen: list[str] = []
        self.nan = nan

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        self.texts_seen.extend(texts)
        return torch.tensor([[len(t), t.count("a"), t.count("e")] for t in texts], dtype=torch.float32)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(pixels)
        return pixels * (float("nan") if self.nan else 1.0)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens + 1.0


def bench_config(annotations: Path, **data):
    return validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [{"name": "b", "task": "retrieval",
                        "data": {"format": "coco", "annotations": str(annotations),
                                 "images": str(annotations.parent / "val2014"), **data}}],
    }).benchmarks[0]


def runtime(batch_size: int = 5, workers: int = 0) -> RunContext:
    return RunContext(resolve_runtime(RuntimeConfig(device="cpu", batch_size=batch_size, num_workers=workers)))


def test_the_counting_encoder_meets_the_protocol() -> None:
    assert isinstance(CountingEncoder(), ImageTextEncoder)


@pytest.mark.parametrize("workers", [0, 2])
def test_each_image_and_text_encoded_once(tmp_path: Path, workers: int) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=13)
    model = CountingEncoder()
    result = retrieval.run(model, bench_config(annotations), runtime(batch_size=4, workers=workers))
    n_texts = sum(1 + i % 7 for i in range(13))
    assert model.images_seen == 13
    assert len(model.texts_seen) == n_texts and len(set(model.texts_seen)) == n_texts
    assert result.dataset["n_images"] == 13 and result.dataset["n_texts"] == n_texts


def test_bad_image_fails_by_default_and_names_the_file(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=6)
    (tmp_path / "val2014" / "COCO_val2014_000000000004.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"COCO_val2014_000000000004\.jpg: cannot decode image.*on_bad_image: skip"):
        retrieval.run(CountingEncoder(), bench_config(annotations), runtime())


def test_skipped_image_drops_its_captions_and_is_counted(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=6)
    (tmp_path / "val2014" / "COCO_val2014_000000000004.jpg").unlink()  # image 4 has 4 captions
    model = CountingEncoder()
    result = retrieval.run(model, bench_config(annotations, on_bad_image="skip"), runtime())
    assert model.images_seen == 5
    assert result.dataset["n_skipped_images"] == 1
    assert result.dataset["skipped_images"][0]["image_id"] == 4
    assert "cannot read image" in result.dataset["skipped_images"][0]["reason"]
    assert result.dataset["n_texts"] == sum(1 + i % 7 for i in range(6)) - 4
    assert all(row["image_id"] != 4 for row in result.per_sample["t2i"])


def test_nan_embeddings_are_an_error(tmp_path: Path) -> None:
    annotations = make_coco_dataset(tmp_path, n_images=3)
    with pytest.raises(MmevalError, match="NaN or Inf"):
        retrieval.run(CountingEncoder(nan=True), bench_config(annotations), runtime())


def test_runtime_resolution() -> None:
    resolved = resolve_runtime(RuntimeConfig())
    if not torch.cuda.is_available():
        assert resolved.device.type == "cpu" and resolved.precision == "fp32"
        with pytest.raises(MmevalError, match="runtime.device: 'cuda' asked for, but no CUDA device"):
            resolve_runtime(RuntimeConfig(device="cuda"))
    else:
        assert resolved.device.type == "cuda" and resolved.precision == "bf16"
    assert resolve_runtime(RuntimeConfig(device="cpu", precision="bf16")).precision == "bf16"
    assert resolve_runtime(RuntimeConfig(num_workers=0)).num_workers == 0
