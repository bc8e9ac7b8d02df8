"""Zero-shot video classification from class-name prompts: top-1 / top-5, mean per-class recall, macro F1, ECE."""

from __future__ import annotations

from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.video_zeroshot.config import VideoZeroShotConfig

METRICS = {
    "top1": (True, "fraction of videos whose best-scoring class is the label"),
    "top5": (True, "fraction of videos whose label is among the 5 best-scoring classes"),
    "mean_per_class_recall": (True, "top-1 recall of each class, averaged over classes"),
    "macro_f1": (True, "F1 of each class, averaged over classes"),
    "ece": (False, "expected calibration error of the softmax confidence (15 bins)"),
}

TASK = TaskSpec(
    name="video_zeroshot",
    summary="zero-shot video classification from class-name prompts: top-1/5, mean per-class recall",
    needs="video_text_encoder",
    config=VideoZeroShotConfig,
    formats=("video_manifest", "frame_folders", "hf_video", "shapes_video"),
    reads="video class labels",
    metrics=METRICS,
    run="mmeval.tasks.video_zeroshot.run:run",
    load_data="mmeval.tasks.video_block:load_classes",
    headline=first_present(("top1", "mean_per_class_recall")),
    paired="mmeval.tasks.video_zeroshot.samples:paired_values",
    perturbs=("video", "text"),  # robustness: video cells perturb the sampled frames, text cells the class prompts
)
