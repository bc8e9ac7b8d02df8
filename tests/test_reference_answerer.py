"""Question answering with the reference model: the shapes questions (true by construction, checked against an
independent recount), the answering path on a tiny random model (capability, batch independence, refusals), and
the shipped checkpoint's answers to held-out questions, through `mmeval run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from mmeval.config.run import validate_mapping
from mmeval.data.shapes import KINDS, Scene, split_scene
from mmeval.data.shapes_vqa import load_shapes_vqa, scene_questions
from mmeval.errors import ConfigError, MmevalError
from mmeval.models.base import GenerationSettings, capabilities_of
from mmeval.models.reference import load_folder, save_reference
from mmeval.models.reference_arch import SPECIAL_TOKENS, ReferenceCLIP, ReferenceConfig

# --- the questions ------------------------------------------------------------------------------------------


def _recount(scene: Scene, question: str) -> str:
    """The answer worked out from the question's words and the scene, independently of the generator."""
    if m := re.fullmatch(r"is there an? (\w+) (\w+)\?", question):
        return "yes" if any((s.color, s.kind) == m.groups() for s in scene.shapes) else "no"
    if question in ("how many shapes are there?", "how many objects are in the image?"):
        return str(len(scene.shapes))
    if m := re.fullmatch(r"how many (\w+) shapes are there\?", question):
        return str(sum(s.color == m.group(1) for s in scene.shapes))
    if m := re.fullmatch(r"how many (\w+) are there\?", question):
        kind = {"crosses": "cross"}.get(m.group(1), m.group(1).removesuffix("s"))
        assert kind in KINDS
        return str(sum(s.kind == kind for s in scene.shapes))
    if re.fullmatch(r"what colou?r is the background\?", question):
        return scene.background
    if m := re.fullmatch(r"what colou?r is the (\w+)\?", question):
        (shape,) = [s for s in scene.shapes if s.kind == m.group(1)]  # asked only when the kind is unique
        return shape.color
    if m := re.fullmatch(r"is the (\w+) small or large\?", question):
        (shape,) = [s for s in scene.shapes if s.kind == m.group(1)]
        return shape.size
    if m := re.fullmatch(r"(?:what shape is the (\w+) one|which shape is (\w+))\?", question):
        (shape,) = [s for s in scene.shapes if s.color == (m.group(1) or m.group(2))]
        return shape.kind
    raise AssertionError(f"unexpected question {question!r}")


def test_every_answer_is_true_of_its_scene() -> None:
    checked = Counter()
    for i in range(400):
        scene = split_scene("test", 0, i)
        for question, answer, answer_type in scene_questions(scene, 6):
            assert _recount(scene, question) == answer, (i, question)
            checked[answer_type] += 1
    assert min(checked.values()) > 500  # all three answer types are exercised


def test_questions_are_deterministic_balanced_and_vqa_shaped() -> None:
    data = load_shapes_vqa("test", n_images=200)
    again = load_shapes_vqa("test", n_images=200)
    assert [q.text for q in data.questions] == [q.text for q in again.questions]
    assert data.annotation_digest == again.annotation_digest
    assert Counter(q.answer_type for q in data.questions) == {"yes/no": 200, "number": 200, "other": 200}
    assert all(len(q.answers) == 10 and len(set(q.answers)) == 1 for q in data.questions)
    assert len({q.question_id for q in data.questions}) == 600
    yes = sum(q.answers[0] == "yes" for q in data.questions)
    assert 70 < yes < 130  # yes/no questions are asked about present and absent shapes alike
    assert load_shapes_vqa("test", 50).annotation_digest != load_shapes_vqa("val", 50).annotation_digest


# --- the answering path on a tiny random model ----------------------------------------------------------------


WORDS = ["is", "there", "a", "red", "blue", "circle", "how", "many", "yes", "no", "1", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = ReferenceConfig(
        vocab=[*SPECIAL_TOKENS, *WORDS], image_size=16, patch_size=8, width=32, layers=1, heads=2, embed_dim=16,
        text_width=32, text_layers=1, text_heads=2, context_length=12, decoder_layers=1, decoder_width=16,
        decoder_heads=2, decoder_context_length=6, answers_questions=True,
    )  # fmt: skip
    module = ReferenceCLIP(config).eval()
    with torch.no_grad():  # sharper random model: answers depend clearly on image and question
        for weight in (module.decoder.head.weight, module.decoder.memory_proj.weight, module.question_proj.weight,
                       module.decoder.layers[0].cross_attn.out_proj.weight):
            weight.mul_(4.0)
    folder = tmp_path_factory.mktemp("answerer") / "tiny-answerer"
    save_reference(module, folder)
    return folder


QUESTIONS = ["is there a red circle?", "how many circles?", "is there a blue circle?", "how many red?"]


def test_tiny_answerer_loads_with_every_capability(tiny: Path) -> None:
    model = load_folder(tiny)
    assert capabilities_of(model) == {"image_text_encoder", "captioner", "answerer"}
    assert model.info.extra["answers_questions"] is True
    assert model.question_template("vqa") == "{question}"
    with pytest.raises(MmevalError, match="cannot run task 'multiple_choice'"):
        model.question_template("multiple_choice")
    with pytest.raises(MmevalError, match="does not take a prompt"):
        model.answer(torch.zeros(1, 3, 16, 16), ["how many?"], GenerationSettings(prompt="Q: {question}"))


def test_answers_depend_on_the_question_and_not_on_the_batch(tiny: Path) -> None:
    model = load_folder(tiny)
    pixels = torch.randn(24, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    questions = [QUESTIONS[i % 4] for i in range(24)]
    settings = GenerationSettings(max_new_tokens=4)
    batch = model.answer(pixels, questions, settings)
    alone = [model.answer(pixels[i : i + 1], questions[i : i + 1], settings)[0] for i in range(24)]
    odd = [a for part in ((0, 3), (3, 10), (10, 24)) for a in model.answer(pixels[slice(*part)],
                                                                           questions[slice(*part)], settings)]
    assert batch == alone == odd
    assert len(set(batch)) > 5
    same_image = model.answer(pixels[:1].expand(4, -1, -1, -1), QUESTIONS, settings)
    assert len(set(same_image)) > 1  # the question token reaches the decoder
    # captions of the same model do not see any question
    assert model.generate(pixels[:3], settings) == [model.generate(pixels[i : i + 1], settings)[0] for i in range(3)]


def test_an_encoder_or_captioner_checkpoint_cannot_answer(tiny: Path, tmp_path: Path) -> None:
    raw = json.loads((tiny / "config.json").read_text())
    assert ReferenceConfig(**{**raw, "decoder_layers": 0}).problems() == [
        "answers_questions needs a decoder (decoder_layers of 1 or more)"]
    torch.manual_seed(0)
    captioner = ReferenceCLIP(ReferenceConfig(**{**raw, "answers_questions": False}))
    save_reference(captioner, tmp_path / "captioner")
    model = load_folder(tmp_path / "captioner")
    assert capabilities_of(model) == {"image_text_encoder", "captioner"}
    with pytest.raises(MmevalError, match="was not trained for it"):
        model.answer(torch.zeros(1, 3, 16, 16), ["how many?"], GenerationSettings())


def test_shapes_vqa_config_fields(tmp_path: Path) -> None:
    bench = {"name": "q", "task": "vqa", "data": {"format": "shapes_vqa", "n_images": 10, "split": "val"}}
    cfg = validate_mapping({"model": {"type": "reference"}, "benchmarks": [bench]})
    assert cfg.benchmarks[0].data.n_images == 10
    wrong = {**bench, "data": {"format": "shapes_vqa", "label_column": "shape"}}
    with pytest.raises(ConfigError, match="label_column"):
        validate_mapping({"model": {"type": "reference"}, "benchmarks": [wrong]})
    retrieval = {**bench, "task": "retrieval"}
    with pytest.raises(ConfigError, match="shapes_vqa"):
        validate_mapping({"model": {"type": "reference"}, "benchmarks": [retrieval]})


# --- the shipped checkpoint, end to end ---------------------------------------------------------------------------


RUN = """
model: {type: reference}
benchmarks:
  - name: shapes-vqa
    task: vqa
    data: {format: shapes_vqa, split: test, n_images: 150}
    generation: {max_new_tokens: 5}
runtime: {device: cpu, batch_size: 64, num_workers: 0}
output: {dir: out, name: run}
"""


def test_shipped_model_answers_held_out_questions_well_above_the_prior(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(RUN)
    done = subprocess.run([sys.executable, "-m", "mmeval", "run", "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    bench = report["benchmarks"]["shapes-vqa"]
    scores = {name: metric["value"] for name, metric in bench["metrics"].items()}
    # the majority answer of each type scores about 0.51 (yes/no), 0.43 (number), 0.11 (other): 0.35 overall
    assert scores["vqa_accuracy"] > 0.6
    assert scores["vqa_accuracy_yes/no"] > 0.7 and scores["vqa_accuracy_other"] > 0.4
    assert bench["dataset"]["n_questions"] == 450

