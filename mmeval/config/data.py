"""`benchmarks[].data`: where a benchmark's inputs come from, and which fields each data format reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_serializer, model_validator

from mmeval.config.base import (
    Loc,
    _existing,
    _field_problems,
    _known,
    _raise_unless_checked,
    _set_fields,
    _Strict,
)
from mmeval.registry import DATA_FORMATS, unknown_name_message


# Which data fields each format reads (required, optional); a field the format ignores is an error.
_FORMAT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "coco": ({"annotations", "images"}, {"image_pattern"}),
    "karpathy": ({"annotations", "images"}, {"split"}),
    "hf": ({"path"}, {"split", "image_column", "caption_column", "image_id_column", "label_column"}),
    "shapes": (set(), {"split", "n_images", "seed", "image_size", "label_column"}),
    "imagefolder": ({"root"}, set()),
    "csv": ({"annotations"}, {"images", "image_column", "label_column"}),
    "json": ({"annotations"}, {"images", "image_column", "label_column"}),
    "vqav2": ({"questions", "images"}, {"annotations", "image_pattern"}),
    "shapes_vqa": (set(), {"split", "n_images", "seed", "image_size"}),
    "hf_vqa": ({"path"}, {"split", "image_column", "image_id_column", "question_column", "answers_column",
                          "question_id_column"}),
    "mc": ({"annotations", "images"}, set()),
    "hf_mc": ({"path"}, {"split", "image_column", "image_id_column", "question_column", "options_column",
                         "answer_column", "question_id_column"}),
    # speech (audio-speech helper)
    "librispeech": ({"root"}, {"on_bad_input"}),
    "nemo": ({"annotations"}, {"on_bad_input"}),
    "hf_speech": ({"path"}, {"split", "audio_column", "text_column", "on_bad_input"}),
    "spoken_shapes": (set(), {"on_bad_input"}),
    # audio scenes (audio-text helper)
    "shapes_audio": (set(), {"split", "n_clips", "seed", "label_column", "on_bad_input"}),
    "audiocaps": ({"annotations", "root"}, {"file_pattern", "on_bad_input"}),
    "clotho": ({"annotations", "root"}, {"on_bad_input"}),
    "esc50": ({"annotations", "root"}, {"folds", "on_bad_input"}),
    "hf_audio": ({"path"}, {"split", "audio_column", "caption_column", "label_column", "on_bad_input"}),
    # Video formats (mmeval/data/video_formats.py, video_manifest.py): captions, questions or class labels per video.
    "msrvtt": ({"videos"}, {"annotations", "split_csv", "split", "video_pattern", "on_bad_input"}),
    "msvd": ({"annotations", "videos"}, {"video_pattern", "on_bad_input"}),
    "didemo": ({"annotations", "videos"}, {"video_pattern", "on_bad_input"}),
    "video_manifest": ({"annotations"}, {"videos", "classnames", "on_bad_input"}),
    "frame_folders": ({"root"}, {"annotations", "classnames", "on_bad_input"}),
    "hf_video": ({"path"}, {"split", "video_column", "caption_column", "question_column", "answers_column",
                            "options_column", "label_column", "videos", "classnames", "on_bad_input"}),
    "shapes_video": (set(), {"split", "n_videos", "seed", "on_bad_input"}),
}
_COMMON_DATA_FIELDS = {"format", "on_bad_image", "limit", "decode", "max_bad_fraction"}


def format_reads(fmt: str, field: str) -> bool:
    """Whether data format `fmt` reads `data.<field>` (e.g. which formats take `image_pattern`)."""
    required, optional = _FORMAT_FIELDS.get(fmt, (set(), set()))
    return field in required | optional | _COMMON_DATA_FIELDS


def _data_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    fmt = raw.get("format")
    if not _known(fmt, _FORMAT_FIELDS):
        return []
    required, optional = _FORMAT_FIELDS[fmt]
    problems = _field_problems(raw, DataConfig, f"format '{fmt}'", required, optional | _COMMON_DATA_FIELDS)
    if raw.get("max_bad_fraction") is not None and raw.get("on_bad_image", "fail") == "fail":
        problems.append((("max_bad_fraction",), "applies only with on_bad_image: skip (with fail, the first "
                         "unreadable image fails the benchmark); set on_bad_image: skip or remove it"))
    return problems


class DataConfig(_Strict):
    """Where a benchmark's images and texts come from. Fields used depend on `format`."""

    format: str = Field(description="one of " + ", ".join(sorted(DATA_FORMATS)))
    annotations: Path | None = Field(None, description="the annotation file: JSON; CSV for audiocaps, clotho, "
                                      "esc50 and csv; a JSONL manifest for nemo")
    questions: Path | None = Field(None, description="vqav2: the questions JSON")
    image_pattern: str | None = Field(None, description="vqav2, coco: image file name from {image_id}, "
                                      "e.g. {image_id:012d}.jpg (vqav2 default COCO_val2014_{image_id:012d}.jpg; "
                                      "coco default: each image's file_name)")
    question_column: str = Field("question", description="hf_vqa, hf_mc: the question column")
    answers_column: str = Field("answers", description="hf_vqa: the column with the 10 human answers")
    options_column: str = Field("options", description="hf_mc: the options list column (else columns A, B, ...)")
    answer_column: str = Field("answer", description="hf_mc: the correct letter (or 0-based index) column")
    question_id_column: str | None = Field(None, description="hf_vqa, hf_mc: question ids (default: "
                                           "question_id if present, else the row number)")
    images: Path | None = Field(None, description="the image folder")
    root: Path | None = Field(None, description="imagefolder: the folder with one sub-folder of images per class")
    label_column: str | None = Field(None, description="hf, csv, json: the label column (default label); "
                                     "shapes: shape or color")
    split: str | None = Field(None, description="karpathy: test|val|train|restval; hf: dataset split; shapes")
    path: str | None = Field(None, description="a hub id, a local dataset folder or a save_to_disk folder")
    image_column: str = "image"
    caption_column: str = "caption"
    image_id_column: str | None = None
    n_images: int = Field(1000, gt=0, description="shapes, shapes_vqa: number of scenes")
    seed: int = Field(0, description="shapes, shapes_vqa: generator seed")
    image_size: int = Field(64, gt=0, description="shapes, shapes_vqa: rendered size in pixels")
    on_bad_image: Literal["skip", "fail"] = Field("fail", description="a corrupt or missing image: skip or fail")
    max_bad_fraction: float | None = Field(None, ge=0, le=1, allow_inf_nan=False, description="with on_bad_image: skip, fail the "
                                           "benchmark when more than this fraction of its images is unreadable")
    limit: int | None = Field(None, gt=0, description="evaluate only the first N images (quick runs)")
    on_bad_input: Literal["skip", "fail"] = Field("skip", description="audio and video formats: a corrupt, "
                                                  "missing, empty or over-long clip: skip it (counted, named) or fail")
    audio_column: str = Field("audio", description="hf_speech: the Audio column")
    text_column: str = Field("text", description="hf_speech: the transcript column")
    n_clips: int = Field(400, gt=0, description="shapes_audio: number of synthetic clips")
    file_pattern: str | None = Field(None, description="audiocaps: clip file name from the CSV columns "
                                     "(default {youtube_id}.wav)")
    folds: list[int] | None = Field(None, description="esc50: the folds to evaluate (default: all)")
    videos: Path | None = Field(None, description="video formats: the folder of video files")
    split_csv: Path | None = Field(None, description="msrvtt: the 1k-A list (key,vid_key,video_id,sentence)")
    video_pattern: str | None = Field(None, description="msrvtt, msvd, didemo: video file name from {video_id} "
                                      "(defaults {video_id}.mp4, {video_id}.avi, {video})")
    video_column: str = Field("video", description="hf_video: the column of video file paths")
    n_videos: int = Field(200, gt=0, description="shapes_video: number of clips")
    classnames: list[str] | None = Field(None, description="video_manifest, frame_folders, hf_video: class order")
    decode: Literal["auto", "cpu", "gpu"] = Field("auto", description="where JPEGs are decoded: auto = on the GPU "
                                                  "when running on CUDA and the model's preprocessing allows it")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in DATA_FORMATS:
            raise ValueError(unknown_name_message("data format", value, DATA_FORMATS))
        return value

    @field_validator("annotations", "questions", "split_csv")
    @classmethod
    def _annotations_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "file")

    @field_validator("images", "root", "videos")
    @classmethod
    def _images_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")

    @model_validator(mode="after")
    def _fields_for_format(self, info: ValidationInfo) -> DataConfig:
        _raise_unless_checked(info, _data_problems({**_set_fields(self), "format": self.format}))
        return self

    @model_serializer(mode="wrap")
    def _only_used_fields(self, handler):
        """The resolved config in reports shows the fields this format reads, not every format's defaults."""
        required, optional = _FORMAT_FIELDS.get(self.format, (set(type(self).model_fields), set()))
        used = required | optional | _COMMON_DATA_FIELDS
        return {k: v for k, v in handler(self).items() if k in used}
