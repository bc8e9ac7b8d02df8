"""Zero-shot audio classification from class-name prompts (ESC-50 folds, UrbanSound8K, shapes_audio)."""

from __future__ import annotations

from mmeval.metrics.classification import METRIC_DOCS
from mmeval.tasks.audio_zeroshot.config import AudioZeroShotConfig
from mmeval.tasks.spec import TaskSpec, first_present

METRICS = {name: METRIC_DOCS[name] for name in ("top1", "top5", "mean_per_class_recall", "macro_f1", "ece")}

TASK = TaskSpec(
    name="audio_zeroshot",
    summary="zero-shot audio classification from prompts: top-1/5, mean per-class recall, macro F1, ECE; per fold",
    needs="audio_text_encoder",
    config=AudioZeroShotConfig,
    formats=("shapes_audio", "esc50", "hf_audio"),
    reads="audio class labels",
    metrics=METRICS,
    run="mmeval.tasks.audio_zeroshot.run:run",
    load_data="mmeval.data.audio_formats:load_labelled_audio",
    headline=first_present(("top1", "mean_per_class_recall")),
    paired="mmeval.tasks.audio_zeroshot.samples:paired_values",
    data_fields=("label_column",),
    perturbs=("audio", "text"),
)
