"""Audio captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr-D, SPICE as pycocoevalcap; SPIDEr when SPICE ran."""

from __future__ import annotations

from mmeval.tasks.audio_captioning.config import AudioCaptioningConfig
from mmeval.tasks.coco_captions import METRICS as CAPTION_METRICS
from mmeval.tasks.spec import TaskSpec, first_present

METRICS = {
    **{k: v for k, v in CAPTION_METRICS.items() if "CLIPScore" not in k},
    "SPIDEr": (True, "(CIDEr-D + SPICE) / 2 per clip, averaged (DCASE audio captioning); only when SPICE ran"),
}

TASK = TaskSpec(
    name="audio_captioning",
    summary="audio captioning: BLEU 1-4, METEOR, ROUGE_L, CIDEr-D, SPICE (pycocoevalcap) and SPIDEr",
    needs="audio_captioner",
    config=AudioCaptioningConfig,
    formats=("shapes_audio", "audiocaps", "clotho", "hf_audio"),
    reads="audio captions",
    metrics=METRICS,
    run="mmeval.tasks.audio_captioning.run:run",
    load_data="mmeval.data.audio_formats:load_captioned_audio",
    headline=first_present(("SPIDEr", "CIDEr", "Bleu_4", "METEOR")),
    paired="mmeval.tasks.audio_captioning.samples:paired_values",
    perturbs=("audio",),
)
