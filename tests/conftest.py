"""Shared fixtures: tiny models and datasets that the tests build themselves (no hub, no network)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def require(available: bool, what: str) -> None:
    """A reference the tests need (Java, shared data): missing is a failure in CI and a skip elsewhere."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required in CI")
        pytest.skip(f"{what} is not available")


class SmallPixels:
    """A test model's image transform: resize to `size` x `size`, float CHW in [0, 1] (picklable)."""

    def __init__(self, size: int = 8):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = np.asarray(image.convert("RGB").resize((self.size, self.size)), dtype=np.float32)
        return torch.from_numpy(pixels).permute(2, 0, 1) / 255


# The start of a plugin module written into tmp_path for `mmeval run` (a separate process): SmallPixels' own source
PLUGIN_HEADER = "from __future__ import annotations\n\nimport numpy as np\nimport torch\nfrom PIL import Image\n\n\n"
PLUGIN_HEADER += inspect.getsource(SmallPixels)


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test gets an empty mmeval cache (also for the `mmeval` processes it starts), so no test reuses
    another's outputs; the cache tests use it on purpose."""
    folder = tmp_path_factory.mktemp("mmeval-cache")
    monkeypatch.setenv("MMEVAL_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real COCO files in ../shared/data."""
    require((SHARED_DATA / "coco" / "images_captions.json").is_file(),
            f"shared data at {SHARED_DATA} (CI must have ../shared beside the checkout)")
    return SHARED_DATA


def make_coco_dataset(root: Path, n_images: int = 40, seed: int = 0, captions: list[int] | None = None) -> Path:
    """A COCO-format captions dataset: JPEGs of coloured boxes in root/val2014, annotations in root/ann.json.

    Caption counts vary (1 to 7 per image by default) to exercise multi-positive ranking.
    """
    rng = random.Random(seed)
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    (root / "val2014").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n_images):
        color, other = rng.sample(colors, 2)
        image = Image.new("RGB", (48 + 8 * (i % 3), 40), other)
        x, y = rng.randrange(0, 24), rng.randrange(0, 20)
        ImageDraw.Draw(image).rectangle([x, y, x + 16, y + 14], fill=color)
        name = f"COCO_val2014_{i + 1:012d}.jpg"
        image.save(root / "val2014" / name, quality=90)
        images.append({"id": i + 1, "file_name": name, "width": image.width, "height": image.height})
        count = captions[i] if captions else 1 + (i % 7)
        for c in range(count):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "caption": f"a {color} box on {other} number {rng.randrange(100)} take {c}"})
    path = root / "ann.json"
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations}))
    return path


@pytest.fixture(scope="session")
def coco_dataset(tmp_path_factory) -> Path:
    """Annotation file of a 40-image COCO-format dataset; images are in its folder's val2014/."""
    return make_coco_dataset(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory) -> dict[str, Path | str]:
    """A randomly initialised tiny open_clip model saved as a plain state-dict checkpoint."""
    import open_clip

    folder = tmp_path_factory.mktemp("openclip")
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return {"arch": "tiny-clip", "arch_config": config, "checkpoint": checkpoint}


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def importable_module(tmp_path: Path, monkeypatch, name: str, source: str) -> Path:
    """Write `source` as module `name` in a fresh folder on sys.path (for this process) and return the folder
    (for `mmeval` subprocesses: put it on PYTHONPATH)."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def pytest_sessionfinish(session, exitstatus) -> None:
    """With MMEVAL_MODULES_USED=FILE, write the mmeval modules this pytest process imported, one a line: evidence
    of what a tier exercises without a coverage tool (`mmeval` subprocesses that tests start are not counted;
    tests/test_modules.py imports every module in a subprocess of its own, so it does not pad this list)."""
    target = os.environ.get("MMEVAL_MODULES_USED")
    if target:
        import sys

        used = sorted(name for name in sys.modules if name == "mmeval" or name.startswith("mmeval."))
        Path(target).write_text("".join(f"{name}\n" for name in used))
