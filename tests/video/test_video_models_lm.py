"""hf_video_lm: tiny random LLaVA-OneVision, LLaVA-NeXT-Video and Qwen2-VL folders (save_pretrained), loaded
through mmeval. The reference is transformers called directly on the same folder with the raw uint8 clip
(processor(text, videos) + generate); batched (left-padded) outputs must equal one-at-a-time outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, VideoAnswerer, VideoCaptioner, capabilities_of, sha256_of_path
from mmeval.models.hf_video_lm import HFVideoLM, load

transformers = pytest.importorskip("transformers")

from tiny_video_hf import FRAMES, GENERATIVE, SIZE, noise_videos  # noqa: E402  (builds with transformers)

QUESTIONS = ["what?", "Which way does the red circle move, and how fast does it go across the frame?", "x",
             "Is it a square?"]
# Qwen2-VL keeps a clip's own size (a multiple of 8 here) when it fits its pixel budget: the clips of the
# direct reference are made at the adapter's frame_size so both sides see the same pixels.
CLIP_SIZE = {"llava_onevision": (40, 48), "llava_next_video": (40, 48), "qwen2_vl": (SIZE, SIZE)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs would dominate
    yield
    torch.set_num_threads(before)


_BUILT: dict[str, tuple[str, Path, HFVideoLM]] = {}


def _build(name: str, tmp_path_factory) -> tuple[str, Path, HFVideoLM]:
    """Each family's folder and loaded adapter, built once for the module."""
    if name not in _BUILT:
        folder = GENERATIVE[name](tmp_path_factory.mktemp("video_lm") / name)
        frame_size = SIZE if name == "qwen2_vl" else None
        _BUILT[name] = name, folder, load(SimpleNamespace(checkpoint=folder, name=None, frame_size=frame_size))
    return _BUILT[name]


@pytest.fixture(scope="module", params=sorted(GENERATIVE))
def family(request, tmp_path_factory) -> tuple[str, Path, HFVideoLM]:
    return _build(request.param, tmp_path_factory)


def _frames(model: HFVideoLM, clips) -> torch.Tensor:
    """What mmeval's video loader hands the model: each frame through image_transform, stacked (B, T, 3, H, W)."""
    return torch.stack([torch.stack([model.image_transform(Image.fromarray(f)) for f in clip]) for clip in clips])


def _direct(folder: Path, clips, prompts: list[str], settings: GenerationSettings) -> list[str]:
    """transformers alone, one clip at a time, from the raw uint8 frames: the reference outputs."""
    processor = transformers.AutoProcessor.from_pretrained(folder)
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    outputs = []
    for clip, prompt in zip(clips, prompts):
        inputs = processor(text=[prompt], videos=[torch.from_numpy(clip).permute(0, 3, 1, 2)], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams,
                                 do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        outputs.append(processor.batch_decode(new, skip_special_tokens=True)[0].strip())
    return outputs


def test_loaded_through_the_real_path_with_its_facts(family) -> None:
    name, folder, model = family
    assert isinstance(model, VideoCaptioner) and isinstance(model, VideoAnswerer)
    assert capabilities_of(model) == {"video_captioner", "video_answerer"}
    info = model.info
    assert (info.adapter, info.checkpoint, info.sha256) == ("hf_video_lm", str(folder), sha256_of_path(folder))
    assert info.extra["model_type"] == name and info.extra["padding"] == "left" and info.extra["chat_template"]
    assert info.extra["processor"]["frame_shape"] == [3, SIZE, SIZE]
    assert info.extra["frame_size"] == ([SIZE, SIZE] if name == "qwen2_vl" else None)
    assert info.n_parameters == sum(p.numel() for p in model.module.parameters())


def test_answers_equal_transformers_and_do_not_depend_on_the_batch(family) -> None:
    name, folder, model = family
    clips = noise_videos(len(QUESTIONS), size=CLIP_SIZE[name], seed=3)
    settings = GenerationSettings(max_new_tokens=6)
    frames = _frames(model, clips)
    batched = model.answer_video(frames, QUESTIONS, settings)
    single = [model.answer_video(frames[i:i + 1], [q], settings)[0] for i, q in enumerate(QUESTIONS)]
    assert batched == single
    prompts = [model.answer_prompt(q, settings) for q in QUESTIONS]
    assert _direct(folder, clips, prompts, settings) == single
    assert len(set(batched)) > 1 and all(batched)  # the tiny model's answers depend on the clip and question


def test_captions_equal_transformers_and_do_not_depend_on_the_batch(family) -> None:
    name, folder, model = family
    clips = noise_videos(3, size=CLIP_SIZE[name], seed=4)
    settings = GenerationSettings(max_new_tokens=6, num_beams=2, prompt="Describe the video.")
    frames = _frames(model, clips)
    batched = model.generate_video(frames, settings)
    assert batched == [model.generate_video(frames[i:i + 1], settings)[0] for i in range(3)]
    assert _direct(folder, clips, [model.caption_prompt(settings)] * 3, settings) == batched
    assert len(set(batched)) > 1


def test_prompts_are_rendered_and_recorded(family) -> None:
    name, _, model = family
    token = model.info.extra["video_token"]
    caption = model.describe_prompts(GenerationSettings(prompt="Describe the video."))["caption"]
    assert caption.startswith("USER: ") and caption.count(token) == 1
    assert caption.endswith("\nDescribe the video.ASSISTANT:")
    answer = model.describe_prompts(GenerationSettings())["answer"]
    assert answer.count(token) == 1 and answer.endswith("\n{question}ASSISTANT:")
    raw = f"Q: {token} {{question}} A:"
    assert model.describe_prompts(GenerationSettings(prompt=raw)) == {"answer": f"Q: {token} {{question}} A:"}
    assert model.answer_prompt("why?", GenerationSettings(prompt=raw)) == f"Q: {token} why? A:"
    with pytest.raises(MmevalError, match="needs an instruction"):
        model.check_settings(GenerationSettings())
    with pytest.raises(MmevalError, match=r"must contain '\{question\}'"):
        model.check_answer_settings(GenerationSettings(prompt="Describe."))
    with pytest.raises(MmevalError, match="2 times"):
        model.check_settings(GenerationSettings(prompt=f"{token}{token} describe"))


def test_a_template_less_model_needs_a_raw_prompt(family) -> None:
    _, _, model = family
    processor = model._processor
    saved, processor.chat_template = processor.chat_template, None
    try:
        with pytest.raises(MmevalError, match="has no chat template; give a raw prompt"):
            model.check_answer_settings(GenerationSettings())
    finally:
        processor.chat_template = saved


def test_frame_size_only_where_the_processor_picks_sizes(family, tmp_path: Path) -> None:
    name, folder, _ = family
    cfg = SimpleNamespace(checkpoint=folder, name=None, frame_size=[SIZE, 2 * SIZE])
    if name != "qwen2_vl":
        with pytest.raises(ModelLoadError, match="fixed input size set by their processor"):
            load(cfg)
        return
    assert load(cfg).image_transform(Image.new("RGB", (10, 10))).shape == (3, SIZE, 2 * SIZE)
    with pytest.raises(ModelLoadError, match=r"must be multiples of 8"):
        load(SimpleNamespace(checkpoint=folder, name=None, frame_size=30))


def test_other_folders_are_refused(tmp_path: Path) -> None:
    from tiny_hf import save_llava

    with pytest.raises(ModelLoadError, match=r"holds a 'llava' model; hf_video_lm reads llava_onevision"):
        load(SimpleNamespace(checkpoint=save_llava(tmp_path / "llava"), name=None))
    qwen25 = tmp_path / "qwen25"
    qwen25.mkdir()
    (qwen25 / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    with pytest.raises(ModelLoadError, match=r"qwen2_5_vl is not supported: its time-aware M-RoPE needs each clip's "
                                             r"sampled fps"):
        load(SimpleNamespace(checkpoint=qwen25, name=None))


def test_a_processor_saved_without_its_settings_is_refused_at_load(tmp_path_factory, tmp_path: Path) -> None:
    _, folder, _ = _build("llava_onevision", tmp_path_factory)
    broken = Path(shutil.copytree(folder, tmp_path / "broken"))
    config = json.loads((broken / "processor_config.json").read_text())
    config.pop("num_image_tokens")
    (broken / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"the processor in .*broken cannot place a video in a prompt for its "
                                             r"'llava_onevision' model \(TypeError"):
        load(SimpleNamespace(checkpoint=broken, name=None, frame_size=None))


def test_an_odd_frame_count_repeats_the_last_frame_for_qwen2_vl(tmp_path_factory) -> None:
    """Qwen2-VL patches frames in pairs; its processor repeats the last frame of an odd count (documented)."""
    _, _, model = _build("qwen2_vl", tmp_path_factory)
    frames = _frames(model, noise_videos(2, frames=3, size=(SIZE, SIZE), seed=5))
    settings = GenerationSettings(max_new_tokens=5, prompt="Describe.")
    padded = torch.cat([frames, frames[:, -1:]], dim=1)
    assert model.generate_video(frames, settings) == model.generate_video(padded, settings)


def test_frames_of_the_wrong_shape_are_refused(family) -> None:
    _, _, model = family
    with pytest.raises(MmevalError, match=r"must be \(B, T, 3, H, W\)"):
        model.generate_video(torch.zeros(1, FRAMES, SIZE, SIZE), GenerationSettings(prompt="Describe."))
    with pytest.raises(MmevalError, match="2 question"):
        model.answer_video(torch.zeros(1, FRAMES, 3, SIZE, SIZE), ["a", "b"], GenerationSettings())
