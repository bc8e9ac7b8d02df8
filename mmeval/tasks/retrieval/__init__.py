"""Image-text retrieval: recall@k, mean / median rank in both directions, rsum."""

from __future__ import annotations

import re

from mmeval.tasks.retrieval.config import RetrievalConfig
from mmeval.tasks.spec import TaskSpec

METRICS = {
    "t2i_R@k": (True, "text -> image: fraction of captions whose image is in the top k"),
    "i2t_R@k": (True, "image -> text: fraction of images with at least one own caption in the top k"),
    "t2i_mean_rank": (False, "mean 1-based rank of the caption's image"),
    "t2i_median_rank": (False, "median 1-based rank of the caption's image"),
    "i2t_mean_rank": (False, "mean 1-based rank of the image's best-ranked caption"),
    "i2t_median_rank": (False, "median 1-based rank of the image's best-ranked caption"),
    "rsum": (True, "sum of the six recall@k values (0-1 scale each, so at most 6)"),
}


def headline(names: list[str]) -> list[str]:
    """R@ the smallest k the benchmark reported, both directions, and rsum."""
    ks = sorted(int(m.group(1)) for name in names if (m := re.fullmatch(r"t2i_R@(\d+)", name)))
    wanted = [f"t2i_R@{ks[0]}", f"i2t_R@{ks[0]}", "rsum"] if ks else ["rsum"]
    return [name for name in wanted if name in names]


TASK = TaskSpec(
    name="retrieval",
    summary="image-text retrieval: recall@k, mean / median rank in both directions",
    needs="image_text_encoder",
    config=RetrievalConfig,
    formats=("coco", "karpathy", "hf", "shapes"),
    reads="captions",
    metrics=METRICS,
    run="mmeval.tasks.retrieval.run:run",
    load_data="mmeval.data.loaders:load_captioned",
    headline=headline,
    paired="mmeval.tasks.retrieval.samples:paired_values",
    html="mmeval.tasks.retrieval.html:section",
    perturbs=("text", "image"),
)
