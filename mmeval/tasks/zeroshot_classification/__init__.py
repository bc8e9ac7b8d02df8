"""Zero-shot classification from class-name prompts: top-1/5, per-class recall, macro F1, ECE; mAP (multi-label)."""

from __future__ import annotations

from mmeval.metrics.classification import METRIC_DOCS as METRICS
from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.zeroshot_classification.config import ZeroShotConfig


TASK = TaskSpec(
    name="zeroshot_classification",
    summary="zero-shot classification from prompts: top-1/5, per-class recall, macro F1, ECE; mAP (multi-label)",
    needs="image_text_encoder",
    config=ZeroShotConfig,
    formats=("imagefolder", "csv", "json", "hf", "shapes"),
    reads="class labels",
    metrics=METRICS,
    run="mmeval.tasks.zeroshot_classification.run:run",
    load_data="mmeval.tasks.zeroshot_classification.run:load_data",
    headline=first_present(("top1", "mean_per_class_recall", "mAP")),
    paired="mmeval.tasks.zeroshot_classification.samples:paired_values",
    html="mmeval.tasks.zeroshot_classification.html:section",
    data_fields=("label_column",),
    perturbs=("text", "image"),
)
