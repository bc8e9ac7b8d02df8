"""Image-text matching: for each image, its own caption (a match) and another image's caption (not a match),
scored by the cosine of their embeddings. Metrics: accuracy at a threshold and the threshold-free AUROC."""

from __future__ import annotations

from pydantic import Field

from mmeval.config.benchmark import BenchmarkConfig
from mmeval.tasks.spec import TaskSpec, first_present


class MatchingConfig(BenchmarkConfig):
    threshold: float | None = Field(None, description="cosine above which a pair is called a match "
                                    "(default: the median score of the benchmark's pairs)")
    offset: int = Field(1, ge=1, description="the mismatched caption of image i is the first caption of image i + offset")


TASK = TaskSpec(
    name="image_text_matching",
    summary="image-text matching: does the caption fit the image? accuracy and AUROC",
    needs="image_text_encoder",
    config=MatchingConfig,
    formats=("coco", "karpathy", "hf", "shapes"),
    reads="captions",
    metrics={
        "itm_accuracy": (True, "fraction of pairs on the right side of the threshold"),
        "itm_auroc": (True, "area under the ROC curve of the cosine scores (sklearn)"),
    },
    run="itm_task.run:run",
    load_data="mmeval.data.loaders:load_captioned",
    headline=first_present(("itm_auroc", "itm_accuracy")),
    paired="itm_task.run:paired_values",
)
