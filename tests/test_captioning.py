"""Captioning: the benchmark, `mmeval score` (against pycocoevalcap's own scorers) and CLIPScore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PLUGIN_HEADER, SmallPixels

from mmeval.config.run import RuntimeConfig, validate_mapping
from mmeval.engine.runtime import resolve_runtime
from mmeval.errors import MmevalError
from mmeval.metrics.clipscore import clip_s, ref_clip_s
from mmeval.models.base import Captioner, ModelInfo, capabilities_of
from mmeval.reporting.report import validate_report, write_json_no_clobber
from mmeval.tasks.base import RunContext
from mmeval.tasks.coco_captions import run as captioning

COLOURS = ["dark", "red", "green", "blue", "bright"]


class ColourCaptioner:
    """A deterministic captioner: names the dominant channel of the image (enough to score)."""

    def __init__(self):
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(16)
        self.info = ModelInfo("test", "colour-captioner", None, None, 0)
        self.calls = 0

    def generate(self, pixels: torch.Tensor, settings) -> list[str]:
        self.calls += 1
        means = pixels.mean((2, 3))
        words = [COLOURS[1 + int(m.argmax())] if m.std() > 0.05 else COLOURS[0 if m.mean() < 0.5 else 4]
                 for m in means]
        return [f"a {w} picture of a man with a dog" for w in words]


def pycocoevalcap_scores(references: dict, predictions: dict) -> dict[str, float]:
    """The official evaluation, scorer by scorer (COCOEvalCap.evaluate would also run SPICE, which downloads)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs] for i, refs in references.items()})
    res = tokenizer.tokenize({i: [{"caption": predictions[i]}] for i in references})
    out = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0]))
    out["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    return out


@pytest.fixture(scope="module")
def subset_and_fakecap(shared_data: Path, tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """The real caption subset and the official demo's fakecap results restricted to its 245 images."""
    annotations = shared_data / "coco" / "captions_val2014_subset.json"
    raw = json.loads(annotations.read_text())
    ids = {image["id"] for image in raw["images"]}
    results = [r for r in json.loads((shared_data / "coco" / "captions_val2014_fakecap_results.json").read_text())
               if r["image_id"] in ids]
    path = tmp_path_factory.mktemp("score") / "fakecap245.json"
    path.write_text(json.dumps(results))
    references: dict = {}
    for ann in raw["annotations"]:
        references.setdefault(ann["image_id"], []).append(ann["caption"])
    predictions = {r["image_id"]: r["caption"] for r in results}
    return annotations, path, {i: references[i] for i in predictions}, predictions


def run_score(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmeval", "score", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_score_command_matches_pycocoevalcap(subset_and_fakecap, tmp_path: Path) -> None:
    annotations, results, references, predictions = subset_and_fakecap
    assert len(predictions) == 245
    done = run_score("--annotations", str(annotations), "--results", str(results), "--output", str(tmp_path),
                     "--metrics", "Bleu,ROUGE_L,CIDEr", "--tokenizer", "ptb", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(next(tmp_path.glob("fakecap245-scored-*[0-9].json")).read_text())
    validate_report(report)
    bench = report["benchmarks"]["fakecap245"]
    assert bench["dataset"]["n_images"] == 245 and bench["tokenizer"] == "ptb-java"
    expected = pycocoevalcap_scores(references, predictions)
    for name, value in expected.items():
        assert bench["metrics"][name]["value"] == pytest.approx(value, abs=1e-9), name
    samples = json.loads((tmp_path / report["per_sample_file"]).read_text())["fakecap245"]["captions"]
    assert len(samples) == 245 and np.mean([s["CIDEr"] for s in samples]) == pytest.approx(expected["CIDEr"])


def test_score_refuses_repeated_ids_unless_dedup(subset_and_fakecap, tmp_path: Path) -> None:
    annotations, results, references, predictions = subset_and_fakecap
    rows = json.loads(results.read_text())[:20]
    first_id = rows[0]["image_id"]
    doubled = tmp_path / "doubled.json"
    doubled.write_text(json.dumps(rows + [{"image_id": first_id, "caption": "a completely different caption"}]))
    done = run_score("-a", str(annotations), "-r", str(doubled), "-o", str(tmp_path), "--metrics", "Bleu", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"1 image id(s) have several captions ({first_id})" in done.stderr and "--dedup first" in done.stderr

    done = run_score("-a", str(annotations), "-r", str(doubled), "-o", str(tmp_path), "--metrics", "Bleu",
                     "--dedup", "first", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(next(tmp_path.glob("doubled-scored-*[0-9].json")).read_text())
    assert report["benchmarks"]["doubled"]["dataset"]["n_images"] == 20
    samples = json.loads((tmp_path / report["per_sample_file"]).read_text())["doubled"]["captions"]
    assert next(s["caption"] for s in samples if s["image_id"] == first_id) == rows[0]["caption"]


def test_score_refuses_ids_missing_from_annotations(subset_and_fakecap, tmp_path: Path) -> None:
    annotations, results, *_ = subset_and_fakecap
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(json.loads(results.read_text())[:3] + [{"image_id": 999999999, "caption": "x"}]))
    done = run_score("-a", str(annotations), "-r", str(bad), "-o", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "1 result image id(s) are not in" in done.stderr and "999999999" in done.stderr


def caption_config(shared_data: Path, tmp_path: Path, **bench) -> object:
    return validate_mapping({
        "model": {"type": "plugin", "entry": "unused:factory"},  # the tests pass their own captioner to run()
        "benchmarks": [{"name": "caps", "task": "coco_captions",
                        "data": {"format": "coco", "annotations": str(shared_data / "coco" / "images_captions.json"),
                                 "images": str(shared_data / "coco" / "images")}, **bench}],
        "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
        "output": {"dir": str(tmp_path)},
    })


def context(tmp_path: Path) -> RunContext:
    runtime = resolve_runtime(RuntimeConfig(device="cpu", batch_size=4, num_workers=0))
    return RunContext(runtime, save_artifact=lambda kind, payload: write_json_no_clobber(
        payload, tmp_path, "run.caps", f".{kind}.json"))


def test_caption_benchmark_on_real_coco_equals_the_official_scorers(shared_data: Path, tmp_path: Path) -> None:
    model = ColourCaptioner()
    assert isinstance(model, Captioner) and capabilities_of(model) == {"captioner"}
    cfg = caption_config(shared_data, tmp_path, metrics=["Bleu", "ROUGE_L", "CIDEr"], tokenizer="ptb")
    result = captioning.run(model, cfg.benchmarks[0], context(tmp_path))
    assert model.calls == 3  # 9 images in batches of 4

    written = json.loads((tmp_path / result.extra["predictions_file"]).read_text())
    assert [set(row) for row in written] == [{"image_id", "caption"}] * 9  # the COCO results format
    predictions = {row["image_id"]: row["caption"] for row in written}
    raw = json.loads((shared_data / "coco" / "images_captions.json").read_text())
    references: dict = {}
    for ann in raw["annotations"]:
        references.setdefault(ann["image_id"], []).append(ann["caption"])
    expected = pycocoevalcap_scores(references, predictions)
    for name, value in expected.items():
        assert result.metrics[name]["value"] == pytest.approx(value, abs=1e-9), name
    assert result.dataset["n_images"] == 9 and result.dataset["n_texts"] == len(raw["annotations"])
    assert any("CIDEr" in w for w in result.extra["warnings"])  # 9 images: CIDEr's idf is unreliable
    assert {s["image_id"] for s in result.per_sample["captions"]} == set(predictions)


def test_captions_survive_a_scoring_failure(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise MmevalError("METEOR's Java process died")

    monkeypatch.setattr(captioning, "score_captions", broken)
    cfg = caption_config(shared_data, tmp_path)
    with pytest.raises(MmevalError, match="METEOR"):
        captioning.run(ColourCaptioner(), cfg.benchmarks[0], context(tmp_path))
    saved = json.loads((tmp_path / "run.caps.captions.json").read_text())
    assert len(saved) == 9 and all(row["caption"].startswith("a ") for row in saved)


def test_a_retrieval_only_model_is_refused_before_data(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import missing_capability

    class EncoderOnly:
        info = ModelInfo("test", "enc", None, None, 0)
        module = torch.nn.Identity()
        image_transform = SmallPixels(16)

        def tokenize(self, texts): ...
        def encode_image(self, pixels): ...
        def encode_text(self, tokens): ...

    assert "needs a model with capability 'captioner'" in missing_capability(EncoderOnly(), "coco_captions")
    assert missing_capability(EncoderOnly(), "retrieval") is None


def brute_force_clipscore(images, captions, refs, owner, w=2.5):
    clip, ref = [], []
    for i in range(len(images)):
        cos = float(np.dot(images[i], captions[i]))
        c = w * max(cos, 0.0)
        best = max(float(np.dot(captions[i], refs[j])) for j in range(len(refs)) if owner[j] == i)
        r = max(best, 0.0)
        clip.append(c)
        ref.append(0.0 if c + r == 0 else 2 * c * r / (c + r))
    return np.array(clip), np.array(ref)


def test_clipscore_against_brute_force_and_a_worked_example() -> None:
    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    images, captions = unit(rng.normal(size=(12, 8))), unit(rng.normal(size=(12, 8)))
    owner = rng.permutation(np.repeat(np.arange(12), [1, 7] + [3] * 10))
    refs = unit(rng.normal(size=(len(owner), 8)))
    got_clip = clip_s(torch.tensor(images), torch.tensor(captions))
    got_ref = ref_clip_s(got_clip, torch.tensor(captions), torch.tensor(refs), owner)
    want_clip, want_ref = brute_force_clipscore(images, captions, refs, owner)
    np.testing.assert_allclose(got_clip, want_clip, atol=1e-6)
    np.testing.assert_allclose(got_ref, want_ref, atol=1e-6)
    assert (got_clip == 0).any()  # negative cosines are clipped, as in the paper

    # Worked example: cos(c, v) = 0.6 -> CLIP-S = 2.5 * 0.6 = 1.5; reference cosines 0.8 and 0.6 -> best 0.8;
    # RefCLIP-S = 2 * 1.5 * 0.8 / (1.5 + 0.8) = 2.4 / 2.3.
    image, caption = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])
    references = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    score = clip_s(image, caption)
    assert score[0] == pytest.approx(1.5)
    assert ref_clip_s(score, caption, references, [0, 0])[0] == pytest.approx(2.4 / 2.3, abs=1e-6)


PLUGIN = PLUGIN_HEADER + '''

class Captioner:
    def __init__(self, word):
        self.module = torch.nn.Identity()
        self.image_transform = SmallPixels(16)
        self.word = word

    def generate(self, pixels, settings):
        return [f"a {self.word} photo with {int(p.mean() * 10)} things" for p in pixels]


def make(word="plain"):
    return Captioner(word)
'''


def test_run_captioning_end_to_end_with_a_plugin(shared_data: Path, tmp_path: Path) -> None:
    """config -> plugin model -> captions file -> scores -> schema-valid report, through the real CLI."""
    (tmp_path / "my_captioner.py").write_text(PLUGIN)
    (tmp_path / "run.yaml").write_text(f"""
model: {{type: plugin, entry: "my_captioner:make", options: {{word: sunny}}}}
benchmarks:
  - name: coco9
    task: coco_captions
    data: {{format: coco, annotations: {shared_data}/coco/images_captions.json, images: {shared_data}/coco/images}}
    metrics: [Bleu, CIDEr]
runtime: {{device: cpu, batch_size: 4, num_workers: 0}}
output: {{dir: reports, name: plugin-run}}
""")
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "reports" / "plugin-run.json").read_text())
    validate_report(report)
    bench = report["benchmarks"]["coco9"]
    assert set(bench["metrics"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "CIDEr"}
    assert bench["skipped_metrics"] == {} and bench["tokenizer"] in ("ptb-java", "python-fallback")
    captions = json.loads((tmp_path / "reports" / bench["predictions_file"]).read_text())
    assert len(captions) == 9 and all(c["caption"].startswith("a sunny photo") for c in captions)
    assert report["model"]["adapter"] == "plugin" and "CIDEr" in done.stdout


def test_a_task_the_adapter_cannot_do_is_a_config_error(tiny_open_clip, tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(f"""
model: {{type: open_clip, arch: tiny-clip, arch_config: {tiny_open_clip['arch_config']}, checkpoint: {tiny_open_clip['checkpoint']}}}
benchmarks:
  - {{name: caps, task: coco_captions, data: {{format: shapes, n_images: 4}}}}
""")
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "benchmarks[0].task: task 'coco_captions' needs a model with capability 'captioner'" in done.stderr
