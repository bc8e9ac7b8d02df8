"""The generic robustness driver (engine/robustness.py) on image tasks: image cells applied in the loader's workers
(checked against a brute-force pass over pre-corrupted images), clean outputs of the other modality reused (also
with the cache off), perturbed passes never served from clean caches, text cells on questions and zero-shot
prompts, a failing cell recorded, and a config asking a task for a modality it cannot perturb refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmeval.config.run import validate_mapping
from mmeval.errors import ConfigError
from mmeval.perturb import PERTURBATIONS, Cell, apply, register
from mmeval.perturb.text import TEMPLATE_VARIANTS


def _darken(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Test-only corruption: pixels scaled by 1 - 0.19 * severity, plus seeded noise (so the per-sample seed
    matters)."""
    noise = rng.integers(0, 3, size=image.shape)
    return np.clip(image * (1 - 0.19 * severity) + noise, 0, 255).astype(np.uint8)


def _broken(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    if severity == 2:
        raise RuntimeError("this corruption fails at severity 2")
    return image


def _swap_channels(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])  # RGB -> BGR: red and blue trade places


TEST_CORRUPTIONS = {"test_darken": _darken, "test_broken": _broken, "test_swap_channels": _swap_channels}


@pytest.fixture(autouse=True, scope="module")
def _test_corruptions():
    """Registered for this module's tests only (other tests check the registry holds exactly mmeval's own)."""
    for name, fn in TEST_CORRUPTIONS.items():
        register("image", name, fn)
    yield
    for name in TEST_CORRUPTIONS:
        PERTURBATIONS["image"].pop(name, None)


def config(tmp_path: Path, bench: dict, name: str = "run", cache: str = "on", workers: int = 0):
    return validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [{"name": "b", **bench}],
        "runtime": {"device": "cpu", "num_workers": workers, "batch_size": 16, "cache": cache,
                    "cache_dir": str(tmp_path / "cache")},
        "bootstrap": {"n": 0},
        "output": {"dir": str(tmp_path / "reports"), "name": name},
    })


RETRIEVAL = {"task": "retrieval", "data": {"format": "shapes", "n_images": 16, "seed": 3}}


class _Corrupted:
    """The brute-force reference: an image source whose images are already corrupted when loaded."""

    def __init__(self, source, severity: int):
        self.source, self.severity = source, severity

    def __len__(self) -> int:
        return len(self.source)

    def describe(self, index: int) -> str:
        return self.source.describe(index)

    def load(self, index: int):
        data, image = self.source.load(index)
        pixels = apply("image", "test_darken", np.asarray(image.convert("RGB")), self.severity, 0,
                       self.source.describe(index))
        return data, Image.fromarray(pixels)


def _reference_recall(cfg, severity: int) -> dict[str, float]:
    """Retrieval metrics of the model on pre-corrupted images and clean captions, without the driver."""
    from mmeval.data.loaders import load_retrieval_data
    from mmeval.engine.evaluate import load_model
    from mmeval.engine.runner import encode_images, encode_texts
    from mmeval.engine.runtime import resolve_runtime
    from mmeval.metrics.retrieval import compute_ranks, metrics_from_ranks

    runtime = resolve_runtime(cfg.runtime.model_copy(update={"cache": "off"}))
    model = load_model(cfg.model)
    bench = cfg.benchmarks[0]
    data = load_retrieval_data(bench.data)
    image_emb, _ = encode_images(model, _Corrupted(data.images, severity), runtime, "fail", lambda n: None)
    text_emb, _ = encode_texts(model, data.texts, runtime, lambda n: None)
    ranks = compute_ranks(image_emb, text_emb, data.text_image_index, ks=bench.recall_k)
    return metrics_from_ranks(ranks, bench.recall_k)


def _block(outcome) -> dict:
    assert not outcome.errors and outcome.internal_error is None, outcome.errors
    return json.loads(outcome.report_path.read_text())["benchmarks"]["b"]["robustness"]


def test_image_cells_in_the_loader_workers_match_pre_corrupted_images(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    cfg = config(tmp_path, {**RETRIEVAL, "perturb": {"image": ["test_darken"], "severities": [4]}},
                 workers=2)  # corrupted in the DataLoader's worker processes
    block = _block(run_config(cfg))
    assert list(block["grid"]) == ["image:test_darken"]
    for s, severity in enumerate((4,)):
        expected = _reference_recall(cfg, severity)
        for metric in ("t2i_R@1", "i2t_R@1", "t2i_R@5", "rsum", "t2i_mean_rank"):
            assert block["grid"]["image:test_darken"][metric][s] == pytest.approx(expected[metric], abs=1e-9)
    clean = block["clean"]["t2i_R@1"]
    assert block["grid"]["image:test_darken"]["t2i_R@1"][0] < clean  # 76% darker images: the model does worse
    assert block["timings"]["reused_passes"] == 1  # the cell's text pass came from the clean run


def test_clean_outputs_are_reused_without_a_cache_and_caches_never_serve_clean_pixels(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    from mmeval.engine.evaluate import run_config
    from mmeval.models.reference import ReferenceModel

    calls = {"image": 0, "text": 0}
    for kind in calls:
        real = getattr(ReferenceModel, f"encode_{kind}")

        def counted(self, *args, real=real, kind=kind):
            calls[kind] += 1
            return real(self, *args)

        monkeypatch.setattr(ReferenceModel, f"encode_{kind}", counted)
    perturb = {"image": ["test_darken"], "text": ["casing"], "severities": [3]}
    # cache off: the in-memory memo alone gives the image cell the clean text embeddings and vice versa
    off = _block(run_config(config(tmp_path, {**RETRIEVAL, "perturb": perturb}, "off", cache="off")))
    # 16 images and 80 captions, 16 per batch: the clean pass and one cell each, not both cells
    assert calls == {"image": 2 * 1, "text": 2 * 5}
    assert off["timings"]["reused_passes"] == 2
    # cache on, clean pixels and outputs cached first: the perturbed pass decodes and runs the model again
    run_config(config(tmp_path, RETRIEVAL, "clean"))
    calls.update(image=0, text=0)
    on = _block(run_config(config(tmp_path, {**RETRIEVAL, "perturb": perturb}, "on")))
    assert calls == {"image": 1, "text": 5}  # only the perturbed passes ran; the clean ones came from the cache
    assert on["grid"] == off["grid"]
    # and again: the perturbed outputs are cached under their cell
    calls.update(image=0, text=0)
    assert _block(run_config(config(tmp_path, {**RETRIEVAL, "perturb": perturb}, "again")))["grid"] == on["grid"]
    assert calls == {"image": 0, "text": 0}


def test_a_failing_cell_is_recorded_and_the_rest_is_kept(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    outcome = run_config(config(tmp_path, {**RETRIEVAL, "perturb": {"image": ["test_broken", "test_darken"],
                                                                    "severities": [1, 2]}}))
    report = json.loads(outcome.report_path.read_text())
    assert report["status"] == "complete" and report["benchmarks"]["b"]["status"] == "complete"
    block = report["benchmarks"]["b"]["robustness"]
    [error] = block["errors"]
    assert error["perturbation"] == "image:test_broken" and error["severity"] == 2
    assert "fails at severity 2" in error["error"]
    clean = block["clean"]["t2i_R@1"]
    assert block["grid"]["image:test_broken"]["t2i_R@1"] == [clean, None]  # identity at 1, failed at 2
    assert all(v is not None for v in block["grid"]["image:test_darken"]["t2i_R@1"])
    assert list(block["timings"]["cell_s"]) == ["image:test_broken@1", "image:test_broken@2", "image:test_darken@1",
                                                "image:test_darken@2"] and block["timings"]["cells"] == 4


def test_text_cells_perturb_vqa_questions_before_the_template(tmp_path: Path) -> None:
    from test_vqa import ColourAnswerer, context, vqa_config, vqav2_data

    from mmeval.engine.robustness import run_benchmark
    from mmeval.registry import task_spec

    model = ColourAnswerer()
    bench = vqa_config(tmp_path, vqav2_data(tmp_path), perturb={"text": ["casing"], "severities": [5]}).benchmarks[0]
    result = run_benchmark(task_spec("vqa"), model, bench, context(tmp_path))
    clean_prompts, perturbed = model.prompts[:9], model.prompts[9:]
    template = "\nAnswer the question using a single word or phrase."
    asked = json.loads((tmp_path / "vqa" / "questions.json").read_text())["questions"]
    assert sorted(clean_prompts) == sorted(q["question"] + template for q in asked)
    assert sorted(perturbed) == sorted(apply("text", "casing", q["question"], 5, 0, q["question_id"]) + template
                                       for q in asked)  # seeded per question id, then put in the template
    assert perturbed != clean_prompts
    block = result.extra["robustness"]
    assert block["grid"]["text:casing"]["vqa_accuracy"][0] < block["clean"]["vqa_accuracy"]  # "colour" -> "cOLour"
    assert "predictions_file" in result.extra and len(list(tmp_path.glob("run.vqa*.answers.json"))) == 1


def test_image_cells_reach_the_answering_pass(tmp_path: Path) -> None:
    from test_vqa import EXPECTED_NUMBER, EXPECTED_OVERALL, ColourAnswerer, context, vqa_config, vqav2_data

    from mmeval.engine.robustness import run_benchmark
    from mmeval.registry import task_spec

    model = ColourAnswerer()  # answers from the image's dominant channel; its transform is the float path
    bench = vqa_config(tmp_path, vqav2_data(tmp_path), perturb={"image": ["test_swap_channels"],
                                                                "severities": [1]}).benchmarks[0]
    block = run_benchmark(task_spec("vqa"), model, bench, context(tmp_path)).extra["robustness"]
    assert block["clean"]["vqa_accuracy"] == pytest.approx(EXPECTED_OVERALL)
    # red and blue swapped: the colour and "is it red?" questions right only for the green image; counts unchanged
    swapped = block["grid"]["image:test_swap_channels"]["vqa_accuracy"]
    assert swapped == [pytest.approx((1 + 3 * EXPECTED_NUMBER + 1) / 9)]
    assert model.prompts[:9] == model.prompts[9:]  # the questions stay clean in an image cell


def test_zeroshot_prompts_and_template_variants() -> None:
    from mmeval.tasks.zeroshot_classification.run import class_prompts

    templates = ["a photo of a {c}.", "art of the {c}."]
    assert class_prompts(None, ["cat", "dog"], templates) == ["a photo of a cat.", "art of the cat.",
                                                              "a photo of a dog.", "art of the dog."]
    typo = class_prompts(Cell("text", "keyboard_typo", 3, 7), ["cat", "dog"], templates)
    assert typo == [apply("text", "keyboard_typo", t.format(c=c), 3, 7, (i, k))
                    for i, c in enumerate(["cat", "dog"]) for k, t in enumerate(templates)]
    for severity in range(1, 6):
        swapped = class_prompts(Cell("text", "template_variant", severity, 0), ["cat", "dog"], templates)
        pool = TEMPLATE_VARIANTS[severity - 1]
        chosen = [apply("text", "template_variant", t, severity, 0, k) for k, t in enumerate(templates)]
        assert all(v in pool for v in chosen)  # each template swapped for one of its severity's variants
        assert swapped == [v.format(c=c) for c in ("cat", "dog") for v in chosen]  # same variant for every class
    assert class_prompts(Cell("image", "test_darken", 3, 0), ["cat"], templates) == ["a photo of a cat.",
                                                                                     "art of the cat."]


def test_zeroshot_template_variants_end_to_end_equal_a_run_with_those_templates(tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config

    templates = ["a {c} shape.", "a photo of a {c} thing."]
    zeroshot = {"task": "zeroshot_classification", "templates": templates,
                "data": {"format": "shapes", "label_column": "color", "n_images": 16, "seed": 1}}
    block = _block(run_config(config(tmp_path, {**zeroshot, "perturb": {"text": ["template_variant"],
                                                                        "severities": [4]}})))
    for s, severity in enumerate((4,)):
        variants = [apply("text", "template_variant", t, severity, 0, k) for k, t in enumerate(templates)]
        plain = run_config(config(tmp_path, {**zeroshot, "templates": variants}, f"variants{severity}"))
        metrics = json.loads(plain.report_path.read_text())["benchmarks"]["b"]["metrics"]
        for metric in ("top1", "mean_per_class_recall", "ece"):
            assert block["grid"]["text:template_variant"][metric][s] == pytest.approx(metrics[metric]["value"])
    assert block["grid"]["text:template_variant"]["ece"] != [block["clean"]["ece"]]  # the prompts did change


def test_captioning_image_cells_load_the_clipscore_scorer_once(tmp_path: Path, monkeypatch) -> None:
    from mmeval.engine import evaluate

    loads = []
    real_load = evaluate.load_model
    monkeypatch.setattr(evaluate, "load_model", lambda cfg, *a, **k: (loads.append(cfg), real_load(cfg, *a, **k))[1])
    captions = {"task": "coco_captions", "data": {"format": "shapes", "n_images": 8}, "metrics": ["Bleu", "CIDEr"],
                "tokenizer": "python", "scorer": {"type": "reference"}, "generation": {"max_new_tokens": 12}}
    block = _block(evaluate.run_config(config(tmp_path, {**captions, "perturb": {"image": ["test_swap_channels"],
                                                                                 "severities": [1, 2]}})))
    assert len(loads) == 2  # the run's model and the scorer, once for the clean run and both cells
    assert set(block["grid"]["image:test_swap_channels"]) >= {"CIDEr", "Bleu_4", "CLIPScore"}
    # the same corruption at both severities: the same captions, so the same scores
    for metric, values in block["grid"]["image:test_swap_channels"].items():
        assert values[0] == values[1], metric
    assert block["timings"]["reused_passes"] >= 2 * 2  # each cell: the scorer's clean image and reference passes


def test_a_modality_the_task_cannot_perturb_is_a_config_error(tmp_path: Path) -> None:
    captions = {"task": "coco_captions", "data": {"format": "shapes", "n_images": 8}}
    with pytest.raises(ConfigError) as info:
        config(tmp_path, {**captions, "perturb": {"text": ["casing"], "image": ["test_darken"]}})
    assert ("benchmarks[0].perturb.text: task 'coco_captions' cannot perturb its text inputs; it supports: image"
            in str(info.value))
    assert "perturb.image" not in str(info.value)
    with pytest.raises(ConfigError, match=r"perturb.image: unknown image perturbation\(s\) no_such_corruption"):
        config(tmp_path, {**RETRIEVAL, "perturb": {"image": ["no_such_corruption"]}})


def test_the_cli_refuses_it_with_exit_code_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmeval.cli.app import app

    path = tmp_path / "run.yaml"
    path.write_text(json.dumps({"model": {"type": "reference"}, "benchmarks": [
        {"name": "c", "task": "coco_captions", "data": {"format": "shapes", "n_images": 4},
         "perturb": {"text": ["casing"]}}]}))
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 2 and "perturb.text" in result.output and "supports: image" in result.output
    assert "Traceback" not in result.output
