"""Names users write in configs, mapped to "module:attr" strings that are imported only when used.

One small table per kind instead of if/elif chains over names; `resolve` turns an unknown name into an
error that lists what exists and suggests the closest match.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from mmeval.errors import MmevalError


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:attribute"
    help: str
    capabilities: tuple[str, ...] = ()  # models: what they can do; tasks: what they need (one)
    extra: str = ""  # the pip extra that provides the dependencies, if any


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
    "plugin": Entry(
        "mmeval.models.plugin:load",
        "your own 'module:factory' returning an object with a capability (checked when loaded)",
        ("image_text_encoder", "captioner", "answerer"),
    ),
}

TASKS: dict[str, Entry] = {
    "retrieval": Entry(
        "mmeval.tasks.retrieval.run:run",
        "image-text retrieval: recall@k, mean / median rank in both directions",
        ("image_text_encoder",),
    ),
    "coco_captions": Entry(
        "mmeval.tasks.coco_captions.run:run",
        "captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr, SPICE as pycocoevalcap; CLIPScore with a scorer",
        ("captioner",),
    ),
    "zeroshot_classification": Entry(
        "mmeval.tasks.zeroshot_classification.run:run",
        "zero-shot classification from prompts: top-1/5, per-class recall, macro F1, ECE; mAP (multi-label)",
        ("image_text_encoder",),
    ),
    "vqa": Entry(
        "mmeval.tasks.vqa.run:run",
        "visual question answering (VQAv2-style): official VQA accuracy, overall and per answer type",
        ("answerer",),
    ),
    "multiple_choice": Entry(
        "mmeval.tasks.multiple_choice.run:run",
        "multiple-choice questions about images: accuracy of the option letter read from the answer",
        ("answerer",),
    ),
}

DATA_FORMATS: dict[str, Entry] = {
    "coco": Entry("mmeval.data.coco:load_coco", "COCO captions annotation JSON + image folder"),
    "karpathy": Entry("mmeval.data.coco:load_karpathy", "Karpathy dataset_*.json + image folder, one split"),
    "hf": Entry("mmeval.data.hf:load_hf", "a Hugging Face datasets dataset (hub id or local folder)"),
    "shapes": Entry("mmeval.data.loaders:shapes_from_config", "mmeval's synthetic shapes scenes (built in, offline)"),
    # Class-labelled formats (zero-shot classification); as retrieval data they are images without captions.
    "imagefolder": Entry("mmeval.data.classification:as_retrieval_data",
                         "class folders root/<class>/<image>, as torchvision's ImageFolder (class labels)"),
    "csv": Entry("mmeval.data.classification:as_retrieval_data", "a CSV of image,label rows (class labels)"),
    "json": Entry("mmeval.data.classification:as_retrieval_data",
                  "a JSON list of {image, label} objects (class labels)"),
    # Question formats (vqa, multiple_choice): questions grouped by image.
    "vqav2": Entry("mmeval.data.vqa_data:load_vqav2", "VQAv2 questions JSON (+ annotations JSON) + image folder"),
    "hf_vqa": Entry("mmeval.data.vqa_data:load_hf_vqa", "a Hugging Face dataset with image, question, answers"),
    "shapes_vqa": Entry("mmeval.data.shapes_vqa:shapes_vqa_from_config",
                        "questions about mmeval's synthetic shapes scenes (built in, offline; 3 per scene)"),
    "mc": Entry("mmeval.data.vqa_data:load_mc", "a JSON / CSV / TSV of questions with lettered options + images"),
    "hf_mc": Entry("mmeval.data.vqa_data:load_hf_mc", "a Hugging Face dataset with image, question, options, answer"),
}


# What each pycocoevalcap metric measures (names and 0-1 scales as pycocoevalcap reports them).
CAPTION_METRIC_DOCS: dict[str, tuple[bool, str]] = {
    "Bleu_1..Bleu_4": (True, "corpus BLEU with n-grams up to 1..4, closest reference length (Papineni 2002)"),
    "METEOR": (True, "METEOR 1.5 (the jar pycocoevalcap ships): alignment with stems, synonyms, paraphrases"),
    "ROUGE_L": (True, "longest common subsequence F-measure, beta 1.2, averaged over images"),
    "CIDEr": (True, "CIDEr-D: tf-idf n-gram cosine, clipped, Gaussian length penalty (sigma 6), x10"),
    "SPICE": (True, "scene-graph F-score (needs the Stanford CoreNLP 3.6.0 jars; otherwise skipped)"),
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
