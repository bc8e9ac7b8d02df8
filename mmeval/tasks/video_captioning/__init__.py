"""Video captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr, SPICE as pycocoevalcap computes them (coco_captions' scoring)."""

from __future__ import annotations

from mmeval.tasks.coco_captions import METRICS as CAPTION_METRICS
from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.video_captioning.config import VideoCaptioningConfig

METRICS = {name: doc for name, doc in CAPTION_METRICS.items() if "CLIPScore" not in name}

TASK = TaskSpec(
    name="video_captioning",
    summary="video captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr, SPICE as pycocoevalcap",
    needs="video_captioner",
    config=VideoCaptioningConfig,
    formats=("msrvtt", "msvd", "didemo", "video_manifest", "frame_folders", "hf_video", "shapes_video"),
    reads="video captions",
    metrics=METRICS,
    run="mmeval.tasks.video_captioning.run:run",
    load_data="mmeval.tasks.video_block:load_captions",
    headline=first_present(("CIDEr", "Bleu_4", "METEOR", "SPICE")),
    paired="mmeval.tasks.video_captioning.samples:paired_values",
    html="mmeval.tasks.video_captioning.html:section",
    perturbs=("video",),  # robustness: video cells perturb the sampled frames (no text input)
)
