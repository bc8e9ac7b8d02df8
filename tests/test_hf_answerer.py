"""The hf_captioner adapter answering questions: a tiny random LLaVA built offline, saved with save_pretrained and
loaded through the real path; left padding makes answers independent of the batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmeval.config.run import validate_mapping
from mmeval.errors import MmevalError
from mmeval.models.base import Answerer, GenerationSettings, capabilities_of
from mmeval.models.hf_captioner import HFCaptioner, load
from mmeval.tasks.vqa import run as vqa

transformers = pytest.importorskip("transformers")

from test_vqa import context
from tiny_hf import noise_images, save_git, save_llava  # builds with transformers: after the skip

WRAPPER = "USER: <image>\n{question} ASSISTANT:"
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] | upper }}: {% for item in message['content'] %}"
                 "{% if item['type'] == 'image' %}<image>\n{% else %}{{ item['text'] }}{% endif %}{% endfor %}"
                 "{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}")
QUESTIONS = ["what?", "What colour is the big square on the left of the picture?", "How many?",
             "Is it red or blue? Tell me exactly which one.", "x", "Where is the circle?", "Why?",
             "Which shape is on the right side of the picture, and what is next to it?"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs would dominate
    yield
    torch.set_num_threads(before)


def _load(folder: Path) -> HFCaptioner:
    return load(SimpleNamespace(checkpoint=folder, name=None))


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> tuple[Path, HFCaptioner]:
    folder = save_llava(tmp_path_factory.mktemp("answerers") / "llava")
    return folder, _load(folder)


@pytest.fixture(scope="module")
def llava_chat(llava, tmp_path_factory) -> HFCaptioner:
    """The same weights, with a chat template saved beside the processor (as hub LLaVA folders have)."""
    folder = Path(shutil.copytree(llava[0], tmp_path_factory.mktemp("answerers") / "llava-chat"))
    processor = transformers.AutoProcessor.from_pretrained(folder)
    processor.chat_template = CHAT_TEMPLATE
    processor.save_pretrained(folder)
    return _load(folder)


def _pixels(model: HFCaptioner, n: int, seed: int = 1) -> torch.Tensor:
    return torch.stack([model.image_transform(image) for image in noise_images(n, seed=seed)])


def test_prompted_models_answer_unprompted_ones_do_not(llava, tmp_path: Path) -> None:
    _, model = llava
    assert isinstance(model, Answerer) and capabilities_of(model) == {"captioner", "answerer"}
    git = _load(save_git(tmp_path / "git"))
    assert capabilities_of(git) == {"captioner"}
    with pytest.raises(MmevalError, match="captions from the image alone and cannot answer questions"):
        git.check_answer_settings(GenerationSettings())


@pytest.mark.parametrize("num_beams", [1, 3])
def test_answers_do_not_depend_on_the_batch(llava, num_beams: int) -> None:
    """Questions of very different lengths: batched (left-padded) answers equal one-at-a-time answers."""
    _, model = llava
    pixels = _pixels(model, len(QUESTIONS))
    settings = GenerationSettings(max_new_tokens=8, num_beams=num_beams, prompt=WRAPPER)
    batched = model.answer(pixels, QUESTIONS, settings)
    alone = [model.answer(pixels[i : i + 1], [q], settings)[0] for i, q in enumerate(QUESTIONS)]
    assert batched == alone
    assert len(set(batched)) > 1, "the tiny model ignores its inputs: the comparison would prove little"


def test_answers_equal_transformers_with_left_padding_and_right_padding_differs(llava) -> None:
    """What a user would write with transformers alone; right padding changes answers, so the test has teeth."""
    folder, model = llava
    images = noise_images(len(QUESTIONS), seed=1)
    ours = model.answer(_pixels(model, len(QUESTIONS)), QUESTIONS, GenerationSettings(max_new_tokens=8,
                                                                                      prompt=WRAPPER))
    direct = transformers.LlavaForConditionalGeneration.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    prompts = [WRAPPER.replace("{question}", q) for q in QUESTIONS]

    def generate(side: str) -> list[str]:
        inputs = processor(text=prompts, images=images, padding=True, padding_side=side, return_tensors="pt")
        with torch.no_grad():
            out = direct.generate(**inputs, max_new_tokens=8, do_sample=False)[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in processor.batch_decode(out, skip_special_tokens=True)]

    assert ours == generate("left")
    assert ours != generate("right")


def test_chat_template_is_used_when_present(llava_chat) -> None:
    pixels = _pixels(llava_chat, 4)
    assert llava_chat.info.extra["chat_template"] is True
    templated = llava_chat.answer(pixels, QUESTIONS[:4], GenerationSettings(max_new_tokens=6))
    # CHAT_TEMPLATE renders "USER: <image>\n{question} ASSISTANT:", so the explicit wrapper must agree.
    assert templated == llava_chat.answer(pixels, QUESTIONS[:4], GenerationSettings(max_new_tokens=6,
                                                                                   prompt=WRAPPER))


@pytest.mark.parametrize(("prompt", "expected"), [
    (None, r"generation.prompt: model 'llava' \(llava\) has no chat template; give a prompt with \{question\}"),
    ("USER: <image>\nDescribe. ASSISTANT:", r"must contain '\{question\}', e.g."),
    ("USER: {question} ASSISTANT:", "must contain '<image>', e.g."),
])
def test_answer_settings_are_checked(llava, prompt: str | None, expected: str) -> None:
    _, model = llava
    with pytest.raises(MmevalError, match=expected):
        model.answer(_pixels(model, 1), ["why?"], GenerationSettings(prompt=prompt))


def test_vqa_benchmark_answers_equal_at_batch_size_1_and_8(llava, tmp_path: Path) -> None:
    """The whole path (loader, image pass, question rows, adapter): the answers file does not depend on batching."""
    folder, model = llava
    images = tmp_path / "images"
    images.mkdir()
    questions, annotations = [], []
    for image_id, image in enumerate(noise_images(3, seed=2), start=1):
        image.save(images / f"COCO_val2014_{image_id:012d}.png")
        for n, text in enumerate(QUESTIONS[image_id - 1 :: 3]):
            qid = image_id * 100 + n
            questions.append({"image_id": image_id, "question": text, "question_id": qid})
            annotations.append({"question_id": qid, "answers": [{"answer": "x", "answer_id": i} for i in range(10)]})
    (tmp_path / "q.json").write_text(json.dumps({"questions": questions}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": annotations}))
    bench = validate_mapping({
        "model": {"type": "hf_captioner", "checkpoint": str(folder)},
        "benchmarks": [{"name": "vqa", "task": "vqa", "generation": {"max_new_tokens": 6, "prompt": WRAPPER},
                        "data": {"format": "vqav2", "questions": str(tmp_path / "q.json"),
                                 "annotations": str(tmp_path / "a.json"), "images": str(images),
                                 "image_pattern": "COCO_val2014_{image_id:012d}.png"}}],
    }).benchmarks[0]
    runs = {}
    for batch_size in (8, 1):
        result = vqa.run(model, bench, context(tmp_path / str(batch_size), batch_size=batch_size))
        runs[batch_size] = json.loads((tmp_path / str(batch_size) / result.extra["predictions_file"]).read_text())
    assert runs[8] == runs[1] and len(runs[8]) == len(QUESTIONS)
    assert len({row["answer"] for row in runs[8]}) > 1
