"""Captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr, SPICE as pycocoevalcap computes them; CLIPScore with a scorer."""

from __future__ import annotations

from mmeval.tasks.coco_captions.config import CaptioningConfig
from mmeval.tasks.spec import TaskSpec, first_present

# What each metric measures (names and 0-1 scales as pycocoevalcap reports them).
METRICS = {
    "Bleu_1..Bleu_4": (True, "corpus BLEU with n-grams up to 1..4, closest reference length (Papineni 2002)"),
    "METEOR": (True, "METEOR 1.5 (the jar pycocoevalcap ships): alignment with stems, synonyms, paraphrases"),
    "ROUGE_L": (True, "longest common subsequence F-measure, beta 1.2, averaged over images"),
    "CIDEr": (True, "CIDEr-D: tf-idf n-gram cosine, clipped, Gaussian length penalty (sigma 6), x10"),
    "SPICE": (True, "scene-graph F-score (needs the Stanford CoreNLP 3.6.0 jars; otherwise skipped)"),
    "CLIPScore": (True, "2.5 * max(cos(caption, image), 0) with the benchmark's scorer model (no references)"),
    "RefCLIPScore": (True, "harmonic mean of CLIPScore and the best caption-reference cosine"),
    "judge_score": (True, "opt-in (judge:): mean 1-5 score a served judge model gives each caption against its "
                          "references; agreement with per-caption CIDEr-D in extra.judge"),
}

TASK = TaskSpec(
    name="coco_captions",
    summary="captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr, SPICE as pycocoevalcap; CLIPScore with a scorer",
    needs="captioner",
    config=CaptioningConfig,
    formats=("coco", "karpathy", "hf", "shapes"),
    reads="captions",
    metrics=METRICS,
    run="mmeval.tasks.coco_captions.run:run",
    load_data="mmeval.data.loaders:load_captioned",
    headline=first_present(("CIDEr", "Bleu_4", "METEOR", "SPICE", "CLIPScore")),
    paired="mmeval.tasks.coco_captions.samples:paired_values",
    html="mmeval.tasks.coco_captions.html:section",
    perturbs=("image",),
)
