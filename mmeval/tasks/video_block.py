"""What the four video tasks share: their data loading, the report's `video` block and the dataset summary.

Every video benchmark's report entry records how its frames were made (the `frames:` sampling and its key, the
decoder's name and version, how frames reached the model), how videos were embedded (frame pooling or the
model's own video encoder) and which file / split the data came from (`split_note`).

Robustness re-runs: a video cell (`ctx.perturbation`) goes to the video passes of `io/video_loading.py`, which
perturb the sampled frames; a text cell perturbs the task's query texts (`query_texts`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from mmeval.data.video_manifest import load_video_data
from mmeval.perturb import apply_cell


def load_for(want: str):
    """A `load_data(bench) -> (data, summary)` for TaskSpec, in the form `want` (captions, questions, ...)."""

    def load(bench) -> tuple[Any, str]:
        data = load_video_data(bench.data, want)
        n = len(data.videos)
        if want == "captions":
            return data, f"{n} videos, {len(data.texts)} captions ({data.split_note})"
        if want == "classes":
            return data, f"{n} videos, {len(data.classnames)} classes ({data.split_note})"
        return data, f"{n} videos, {len(data.questions)} questions ({data.split_note})"

    return load


def video_data(bench, want: str) -> Any:
    """The benchmark's data in the form `want`, as `RunContext.load_data` hands it on (no summary): what the
    pre-run checks loaded through `load_for(want)`, or loaded now."""
    return load_video_data(bench.data, want)


load_captions = load_for("captions")
load_questions = load_for("questions")
load_choice_questions = load_for("choice_questions")
load_classes = load_for("classes")


def query_texts(ctx, texts: list[str], sample_ids: list[Any]) -> list[str]:
    """The task's query texts (captions, questions, class prompts) under the run's text cell, each seeded by its
    sample id; unchanged in a clean run or under a cell of another modality."""
    cell = getattr(ctx, "perturbation", None)
    return [apply_cell(cell, "text", text, i) for text, i in zip(texts, sample_ids)]


def video_block(sampling, done, encoder: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's `video` entry: sampling, decoder, frames path (io.video_loading.video_report) and encoder."""
    from mmeval.io.video_loading import video_report

    block = video_report(sampling, done)
    if encoder is not None:
        block["video_encoder"] = encoder
    return block


def video_dataset(data, done, n_texts: int | None = None) -> dict[str, Any]:
    """The report's `dataset` block: sizes, skipped videos, source (split note) and a digest of annotations +
    video bytes."""
    digest = hashlib.sha256(data.annotation_digest.encode())
    for index in sorted(done.digests):
        digest.update(str(done.digests[index]).encode())
    out = {
        "n_videos": len(done.ok_indices),
        "n_skipped_videos": len(done.bad),
        "skipped_videos": [{"video_id": data.videos.ids[i], "reason": reason} for i, reason in done.bad],
        "source": data.split_note,
        "split_note": data.split_note,
        "sha256": digest.hexdigest(),
    }
    out["n_texts"] = n_texts if n_texts is not None else 0
    return out
