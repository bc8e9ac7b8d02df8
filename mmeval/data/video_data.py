"""The in-memory forms every video annotation format is loaded into, and the video files' `InputSource`.

Video tasks read one of three forms: captions per video (`VideoCaptionData`: retrieval and captioning),
questions about videos (`VideoQAData`: open-ended and multiple-choice QA) and a class per video
(`VideoClassData`: zero-shot classification). Each holds a `VideoSource`, the list of files the engine decodes
(`mmeval/io/video_loading.py`), so the forms stay torch- and PyAV-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.io.source import file_stamps


class VideoSource:
    """Video files with their ids: indexable, picklable (DataLoader workers decode from it)."""

    def __init__(self, paths: list[Path] | list[str], ids: list[Any] | None = None):
        self.paths = [Path(p) for p in paths]
        self.ids = list(ids) if ids is not None else [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        return self.paths[index]

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def fingerprint(self) -> str:
        """The files as they are now (`io.source.file_stamps`), without reading them: a decoded-frame cache made
        from other or since-changed files never matches."""
        return file_stamps(self.paths, b"videos")

    def subset(self, indices: list[int]) -> VideoSource:
        return VideoSource([self.paths[i] for i in indices], [self.ids[i] for i in indices])


def listing_digest(*parts: Any) -> str:
    """sha256 over a canonical JSON listing of annotations (for the report's annotation digest)."""
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class VideoCaptionData:
    """Videos and their captions (every caption of a video is a positive for retrieval)."""

    videos: VideoSource
    captions: list[list[str]]  # per video, in `videos` order
    ids: list[Any]
    attributes: dict[Any, dict[str, Any]] = field(default_factory=dict)  # video id -> {attribute: value}
    split_note: str = ""  # which file / split the data came from (for the report)
    annotation_digest: str = ""

    @property
    def texts(self) -> list[str]:
        """Every caption, video by video (what retrieval ranks and `mmeval validate` counts)."""
        return [c for caps in self.captions for c in caps]

    @property
    def text_video_index(self) -> list[int]:
        """For each of `texts`, the position of its video."""
        return [i for i, caps in enumerate(self.captions) for _ in caps]


@dataclass
class VideoQAData:
    """Questions about videos: `video_index[q]` is the position in `videos` of question q's video."""

    videos: VideoSource
    questions: list[str]
    answers: list[list[str]]  # acceptable answers per question (multiple choice: the correct choice's text)
    types: list[str]  # question type per question (per-type scores)
    video_index: list[int]
    choices: list[list[str]] | None = None  # multiple choice: the options of each question, in order
    ids: list[Any] = field(default_factory=list)  # video ids, in `videos` order
    question_ids: list[Any] = field(default_factory=list)
    attributes: dict[Any, dict[str, Any]] = field(default_factory=dict)  # video id -> {attribute: value}
    split_note: str = ""
    annotation_digest: str = ""

    @property
    def texts(self) -> list[str]:
        return list(self.questions)


@dataclass
class VideoClassData:
    """Videos with one class each: `labels[i]` indexes `classnames`."""

    videos: VideoSource
    labels: list[int]
    classnames: list[str]
    ids: list[Any] = field(default_factory=list)
    attributes: dict[Any, dict[str, Any]] = field(default_factory=dict)
    split_note: str = ""
    annotation_digest: str = ""
