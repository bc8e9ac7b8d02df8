"""Names users write in configs, mapped to "module:attr" strings that are imported only when used.

One small table per kind instead of if/elif chains over names; `resolve` turns an unknown name into an
error that lists what exists and suggests the closest match.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any

from mmeval.errors import MmevalError


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:attribute"
    help: str
    capabilities: tuple[str, ...] = ()  # models: what they can do; tasks: what they need (one)
    extra: str = ""  # the pip extra that provides the dependencies, if any
    holds: str = ""  # data formats: what the data holds ("captions", "class labels", ...), for task mismatches


MODELS: dict[str, Entry] = {
    "reference": Entry(
        "mmeval.models.reference:load",
        "mmeval's own small dual encoder + captioner + answerer (safetensors + JSON config folder)",
        ("image_text_encoder", "captioner", "answerer"),
    ),
    "open_clip": Entry(
        "mmeval.models.open_clip_adapter:load",
        "any open_clip architecture + a local checkpoint file or pretrained tag",
        ("image_text_encoder",),
        "open_clip",
    ),
    "hf_clip": Entry(
        "mmeval.models.hf_clip:load",
        "a transformers CLIPModel / SiglipModel folder saved with save_pretrained",
        ("image_text_encoder",),
        "hf",
    ),
    "hf_captioner": Entry(
        "mmeval.models.hf_captioner:load",
        "transformers BLIP, GIT, VisionEncoderDecoder or prompted image-text-to-text folder (save_pretrained); "
        "prompted (LLaVA-style) models also answer questions",
        ("captioner", "answerer"),
        "hf",
    ),
    "hf_whisper": Entry("mmeval.models.hf_whisper:load", "a transformers Whisper folder (save_pretrained): batched "
                        "generate, language and task from the config", ("speech_recognizer",), "audio"),
    "hf_ctc": Entry("mmeval.models.hf_ctc:load", "a transformers CTC model folder (wav2vec2 / HuBERT style, with "
                    "its processor): greedy CTC decoding", ("speech_recognizer",), "audio"),
    "pocketsphinx": Entry("mmeval.models.pocketsphinx_adapter:load", "CMU PocketSphinx with its shipped US-English "
                          "model, or a JSGF grammar / language model from the config", ("speech_recognizer",), "audio"),
    "reference_audio": Entry(
        "mmeval.models.reference_audio:load",
        "mmeval's own small audio-text dual encoder trained on shapes_audio (captions by nearest bank caption)",
        ("audio_text_encoder", "audio_captioner"),
        "audio",
    ),
    "hf_clap": Entry(
        "mmeval.models.hf_clap:load",
        "a transformers ClapModel folder (save_pretrained, with its processor): audio-text embeddings",
        ("audio_text_encoder",),
        "hf",
    ),
    "reference_video": Entry(
        "mmeval.models.reference_video:load",
        "mmeval's shapes image encoder + a trained motion module (frame order matters); captions and answers by retrieval",
        ("video_text_encoder", "video_captioner", "video_answerer"),
    ),
    "plugin": Entry(
        "mmeval.models.plugin:load",
        "your own 'module:factory' returning an image or audio model (a capability, checked when loaded)",
        ("image_text_encoder", "captioner", "answerer", "audio_text_encoder", "speech_recognizer", "audio_captioner",
         "spoken_answerer"),
    ),
    # Video models (issue #15); image-text models also serve video retrieval by pooling frames (frame_pooling).
    "hf_xclip": Entry(
        "mmeval.models.hf_xclip:load",
        "a transformers X-CLIP (XCLIPModel) folder saved with save_pretrained: a native video-text encoder",
        ("video_text_encoder",),
        "hf",
    ),
    "hf_video_lm": Entry(
        "mmeval.models.hf_video_lm:load",
        "a transformers LLaVA-OneVision, LLaVA-NeXT-Video or Qwen2-VL folder (save_pretrained): video captions and answers",
        ("video_captioner", "video_answerer"),
        "hf",
    ),
    "video_plugin": Entry(
        "mmeval.models.video_plugin:load",
        "your own 'module:factory' returning a video encoder, captioner or answerer (checked when loaded)",
        ("video_text_encoder", "video_captioner", "video_answerer"),
    ),
    "openai": Entry(
        "mmeval.models.served.adapter:load",
        "an OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, llama.cpp, transformers serve, APIs)",
        # video as frames; the audio ones only with served.audio_input (mmeval.config.served.served_capabilities)
        ("captioner", "answerer", "video_captioner", "video_answerer", "speech_recognizer", "audio_captioner",
         "spoken_answerer"),
        "served",
    ),
}

# Capabilities a model gets from another one it has: an image-text encoder embeds videos by pooling its frame
# embeddings (mmeval.models.frame_pooling), which video tasks apply themselves.
DERIVED_CAPABILITIES: dict[str, str] = {"video_text_encoder": "image_text_encoder"}


def can_serve(has: set[str] | tuple[str, ...], needs: str) -> bool:
    """Whether a model with capabilities `has` can run a task that `needs` one (directly or derived)."""
    return needs in has or DERIVED_CAPABILITIES.get(needs) in has


# The built-in tasks: name -> the TaskSpec in the task's folder (imported only when the task is used). Tasks
# from outside mmeval come from the entry point group `mmeval.tasks` or a "package.module:attr" `task:` value.
TASKS: dict[str, str] = {
    "retrieval": "mmeval.tasks.retrieval:TASK",
    "coco_captions": "mmeval.tasks.coco_captions:TASK",
    "zeroshot_classification": "mmeval.tasks.zeroshot_classification:TASK",
    "vqa": "mmeval.tasks.vqa:TASK",
    "multiple_choice": "mmeval.tasks.multiple_choice:TASK",
    "speech_recognition": "mmeval.tasks.speech_recognition:TASK",
    "audio_retrieval": "mmeval.tasks.audio_retrieval:TASK",
    "audio_zeroshot": "mmeval.tasks.audio_zeroshot:TASK",
    "audio_captioning": "mmeval.tasks.audio_captioning:TASK",
    "spoken_vqa": "mmeval.tasks.spoken_vqa:TASK",
    "video_retrieval": "mmeval.tasks.video_retrieval:TASK",
    "video_captioning": "mmeval.tasks.video_captioning:TASK",
    "video_qa": "mmeval.tasks.video_qa:TASK",
    "video_zeroshot": "mmeval.tasks.video_zeroshot:TASK",
}
TASK_ENTRY_POINTS = "mmeval.tasks"

DATA_FORMATS: dict[str, Entry] = {
    "coco": Entry("mmeval.data.coco:load_coco", "COCO captions annotation JSON + image folder", holds="captions"),
    "karpathy": Entry("mmeval.data.coco:load_karpathy", "Karpathy dataset_*.json + image folder, one split", holds="captions"),
    "hf": Entry("mmeval.data.hf:load_hf", "a Hugging Face datasets dataset (hub id or local folder)", holds="captions or class labels"),
    "shapes": Entry("mmeval.data.loaders:shapes_from_config", "mmeval's synthetic shapes scenes (built in, offline)", holds="captions or class labels"),
    # Class-labelled formats (zero-shot classification); as retrieval data they are images without captions.
    "imagefolder": Entry("mmeval.data.classification:as_retrieval_data",
                         "class folders root/<class>/<image>, as torchvision's ImageFolder (class labels)", holds="class labels"),
    "csv": Entry("mmeval.data.classification:as_retrieval_data", "a CSV of image,label rows (class labels)", holds="class labels"),
    "json": Entry("mmeval.data.classification:as_retrieval_data",
                  "a JSON list of {image, label} objects (class labels)", holds="class labels"),
    # Question formats (vqa, multiple_choice): questions grouped by image.
    "vqav2": Entry("mmeval.data.vqa_data:load_vqav2", "VQAv2 questions JSON (+ annotations JSON) + image folder", holds="VQA questions"),
    "hf_vqa": Entry("mmeval.data.vqa_data:load_hf_vqa", "a Hugging Face dataset with image, question, answers", holds="VQA questions"),
    "shapes_vqa": Entry("mmeval.data.shapes_vqa:shapes_vqa_from_config",
                        "questions about mmeval's synthetic shapes scenes (built in, offline; 3 per scene)", holds="VQA questions"),
    "mc": Entry("mmeval.data.vqa_data:load_mc", "a JSON / CSV / TSV of questions with lettered options + images", holds="multiple-choice questions"),
    "hf_mc": Entry("mmeval.data.vqa_data:load_hf_mc", "a Hugging Face dataset with image, question, options, answer", holds="multiple-choice questions"),
    # Speech formats (speech_recognition): clips with one reference transcript each.
    "librispeech": Entry("mmeval.data.speech_formats:load_librispeech", "LibriSpeech-style folders: <root>/**/*.trans.txt "
                         "+ FLAC clips", holds="transcripts"),
    "nemo": Entry("mmeval.data.speech_formats:load_nemo", "a NeMo JSONL manifest (audio_filepath, text)", holds="transcripts"),
    "hf_speech": Entry("mmeval.data.speech_formats:load_hf_speech", "a Hugging Face dataset with an Audio column and "
                       "a transcript column", holds="transcripts"),
    "spoken_shapes": Entry("mmeval.data.speech_formats:load_spoken_shapes", "mmeval's shipped spoken shapes questions "
                           "and commands (espeak-ng, 16 kHz FLAC; built in, offline)", holds="transcripts"),
    # Audio-scene formats (audio_retrieval, audio_zeroshot, audio_captioning).
    "shapes_audio": Entry("mmeval.data.audio_formats:load_shapes_audio", "mmeval's synthetic audio scenes: tones, "
                          "chirps, noise bursts, clicks (built in, offline; FLAC written on first use)",
                          holds="audio captions or class labels"),
    "audiocaps": Entry("mmeval.data.audio_formats:load_audiocaps", "an AudioCaps CSV + a folder of its clips",
                       holds="audio captions"),
    "clotho": Entry("mmeval.data.audio_formats:load_clotho", "a Clotho captions CSV + a folder of its clips",
                    holds="audio captions"),
    "hf_audio": Entry("mmeval.data.audio_formats:load_hf_audio", "a Hugging Face dataset with an Audio column and "
                      "captions (caption_column) or labels (label_column)", holds="audio captions or class labels"),
    "esc50": Entry("mmeval.data.audio_formats:load_esc50", "ESC-50 meta CSV with folds (or UrbanSound8K's) + "
                   "its audio folder", holds="audio class labels"),
    # Video formats: loader(cfg, want) for want in captions | questions | choice_questions | classes.
    "msrvtt": Entry("mmeval.data.video_formats:load_msrvtt", "MSR-VTT JSON (+ 1k-A CSV) + video folder", holds="video captions"),
    "msvd": Entry("mmeval.data.video_formats:load_msvd", "MSVD captions (txt `vid caption` or corpus CSV) + video folder", holds="video captions"),
    "didemo": Entry("mmeval.data.video_formats:load_didemo", "DiDeMo JSON (paragraph per video) + video folder", holds="video captions"),
    "video_manifest": Entry("mmeval.data.video_manifest:load_video_manifest", "a JSON / JSONL / CSV of videos with captions, questions or labels",
                            holds="video captions, questions or class labels"),
    "frame_folders": Entry("mmeval.data.video_manifest:load_frame_folders", "videos as folders of frame images (+ a manifest)",
                           holds="video captions, questions or class labels"),
    "hf_video": Entry("mmeval.data.video_manifest:load_hf_video", "a Hugging Face dataset with a video path column",
                      holds="video captions, questions or class labels"),
    "shapes_video": Entry("mmeval.data.video_manifest:load_shapes_video", "mmeval's synthetic moving-shapes MP4 clips (built in, offline)",
                          holds="video captions, questions or class labels"),
}


def did_you_mean(name: str, choices: list[str]) -> str:
    """' Did you mean 'x'?' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name_message(kind: str, name: str, table: dict[str, Entry]) -> str:
    names = sorted(table)
    return f"unknown {kind} '{name}'.{did_you_mean(name, names)} Available: {', '.join(names)}"


def resolve(kind: str, name: str, table: dict[str, Entry]) -> Any:
    """Import and return the object registered under `name`."""
    if name not in table:
        raise MmevalError(unknown_name_message(kind, name, table))
    entry = table[name]
    module_name, attr = entry.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" Install it with: pip install 'mmeval[{entry.extra}]'" if entry.extra else ""
        raise MmevalError(f"{kind} '{name}' needs a package that is not installed ({exc.name}).{hint}") from exc
    return getattr(module, attr)


# --- tasks -------------------------------------------------------------------------------------------------------

_specs: dict[str, Any] = {}  # name or "module:attr" reference -> its TaskSpec, once loaded


def _entry_points() -> dict[str, Any]:
    """Tasks that installed packages register in the entry point group `mmeval.tasks` (name -> EntryPoint)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=TASK_ENTRY_POINTS) if ep.name not in TASKS}


def task_names() -> list[str]:
    """Every task a config may name: the built-in ones, then those of installed packages."""
    return [*TASKS, *sorted(_entry_points())]


def is_reference(task: str) -> bool:
    """A `task:` value of the form "package.module:attr" (a task of your own, not installed)."""
    return re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", task) is not None


def task_spec(task: str) -> Any:
    """The TaskSpec for a task name (built in or an entry point) or a "package.module:attr" reference.

    Raises MmevalError for an unknown name (listing the known ones) or a reference that does not import.
    """
    from mmeval.tasks.spec import TaskSpec

    if task in _specs:
        return _specs[task]
    source = "mmeval"
    if task in TASKS:
        target = TASKS[task]
    elif is_reference(task):
        target, source = task, task
    else:
        found = _entry_points().get(task)
        if found is None:
            names = task_names()
            raise MmevalError(f"unknown task '{task}'.{did_you_mean(task, names)} Available: {', '.join(sorted(names))}")
        target, source = found.value, f"entry point {found.value}"
    module_name, _, attr = target.partition(":")
    try:
        spec = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise MmevalError(f"task '{task}': cannot import {module_name} ({exc})") from exc
    except AttributeError as exc:
        raise MmevalError(f"task '{task}': {module_name} has no attribute '{attr}'") from exc
    if not isinstance(spec, TaskSpec):
        raise MmevalError(f"task '{task}': {target} is a {type(spec).__name__}, not a mmeval.tasks.spec.TaskSpec")
    if source != "mmeval":
        from dataclasses import replace

        spec = replace(spec, source=source)
    _specs[task] = spec
    return spec


def find_task(task: Any) -> Any:
    """The TaskSpec of a task recorded in a report, or None when it is unknown here (reports outlive plugins)."""
    if not isinstance(task, str):
        return None
    try:
        return task_spec(task)
    except MmevalError:
        return None


def short_answer_task() -> str:
    """The built-in task that asks short-answer questions (for models and timings that need a question prompt)."""
    return next(name for name in TASKS if task_spec(name).answers == "short")
