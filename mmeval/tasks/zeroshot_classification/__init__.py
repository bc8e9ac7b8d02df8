"""Zero-shot classification from class-name prompts: top-1/5, per-class recall, macro F1, ECE; mAP (multi-label)."""

from __future__ import annotations

from mmeval.metrics.classification import ECE_BINS
from mmeval.tasks.spec import TaskSpec, first_present
from mmeval.tasks.zeroshot_classification.config import ZeroShotConfig


# name -> (higher is better, what it measures)
METRICS = {
    "top1": (True, "fraction of images whose highest-scoring class is the label (ties: lower class index wins)"),
    "top5": (True, ("fraction of images whose label is among the 5 highest-scoring classes (k capped at the "
                   "number of classes)")),
    "mean_per_class_recall": (True, "recall averaged over classes that have images (sklearn balanced accuracy)"),
    "macro_f1": (True, "F1 averaged over classes in the labels or predictions (sklearn, zero_division=0)"),
    "ece": (False, f"expected calibration error of softmax(temperature x cosine), {ECE_BINS} equal-width bins"),
    "mAP": (True, ("multi-label: average precision per class (sklearn, uninterpolated), mean over classes with "
                  "a positive")),
}

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
)
