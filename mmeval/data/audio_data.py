"""The in-memory forms the audio-text tasks read: captioned clips and class-labelled clips.

`audio` is the audio modality's input source (`mmeval.io.audio_loading.AudioSource`: file paths and ids);
decoding happens later, in the engine's batch loader, so loading data stays cheap and torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AudioCaptionData:
    """Clips with any number of captions each (AudioCaps has 1 or 5, Clotho 5, the synthetic scenes 5)."""

    audio: Any  # AudioSource
    captions: list[list[str]]  # captions[i]: the captions of clip i (possibly none)
    ids: list[str]
    source: str  # where it came from, for the report
    annotation_digest: str  # sha256 over the canonical (id, captions) listing
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # clip id -> {attribute: value}
    split_note: str = ""  # e.g. "Clotho evaluation split" or "AudioCaps test (one caption per clip)"

    @property
    def texts(self) -> list[str]:
        """Every caption, clip by clip (the retrieval gallery / query order)."""
        return [text for captions in self.captions for text in captions]

    @property
    def text_owner(self) -> list[int]:
        """For each caption of `texts`, the index of its clip."""
        return [i for i, captions in enumerate(self.captions) for _ in captions]


@dataclass
class AudioClassData:
    """Clips with one class label each; `folds` (ESC-50, UrbanSound8K) lets a benchmark pick a subset."""

    audio: Any  # AudioSource
    labels: list[int]  # index into classnames
    classnames: list[str]
    ids: list[str]
    source: str
    annotation_digest: str
    folds: list[int] | None = None
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)


def listing_digest(*parts: Any) -> str:
    """sha256 over a canonical JSON listing of annotations."""
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
