"""Generic video formats (`video_manifest`, `frame_folders`, `hf_video`, `shapes_video`) and the one entry point
video tasks load their data through: `load_video_data(cfg, want)`.

A manifest (JSON list, JSONL, or CSV / TSV with a header) has one record per video, or per question, with:

- `video`: the file (or frame folder), relative to `data.videos` if set, else to the manifest's folder;
- captions: `caption` (a string; CSV rows of the same video add up) or `captions` (a list; `|`-separated in CSV);
- questions: `question`, `answer` or `answers` (a list; `|`-separated in CSV), `choices` (multiple choice; a
  list, `|`-separated in CSV, the answer being one of them or its 0-based index), `type` (per-type scores);
- classes: `label` (a class name; the class list is the sorted names, or `data.classnames` order if given);
- bias attributes: an `attributes` object (JSON) or `attr_<name>` columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmeval.data.video_data import VideoCaptionData, VideoClassData, VideoQAData, VideoSource, listing_digest
from mmeval.data.video_formats import read_csv, read_json, resolve_video
from mmeval.errors import DataError

WANTS = ("captions", "questions", "choice_questions", "classes")


def load_video_data(cfg, want: str) -> VideoCaptionData | VideoQAData | VideoClassData:
    """A video benchmark's data in the form its task reads (`want`), through the format's registered loader,
    then the first `data.limit` videos (with their captions / questions)."""
    from mmeval.registry import DATA_FORMATS, resolve

    if want not in WANTS:
        raise ValueError(f"want must be one of {WANTS}, got {want!r}")
    data = resolve("data format", cfg.format, DATA_FORMATS)(cfg, want)
    return take_first_videos(data, cfg.limit) if getattr(cfg, "limit", None) else data


def take_first_videos(data, n: int):
    """The first `n` videos of any video form, with what belongs to them."""
    if n >= len(data.videos):
        return data
    keep = list(range(n))
    videos, ids = data.videos.subset(keep), list(data.ids)[:n] if data.ids else []
    attrs = {i: a for i, a in data.attributes.items() if i in set(ids)}
    if isinstance(data, VideoCaptionData):
        return VideoCaptionData(videos, data.captions[:n], ids, attrs, data.split_note + f", first {n}",
                                data.annotation_digest)  # fmt: skip
    if isinstance(data, VideoClassData):
        return VideoClassData(videos, data.labels[:n], data.classnames, ids, attrs, data.split_note + f", first {n}",
                              data.annotation_digest)  # fmt: skip
    qs = [q for q, v in enumerate(data.video_index) if v < n]
    pick = lambda values: [values[q] for q in qs] if values else values
    return VideoQAData(videos, pick(data.questions), pick(data.answers), pick(data.types), pick(data.video_index),
                       pick(data.choices), ids, pick(data.question_ids), attrs, data.split_note + f", first {n}",
                       data.annotation_digest)  # fmt: skip


def missing_videos(data) -> list[str]:
    """Video files (or frame folders) that do not exist, for `mmeval validate`."""
    return [str(p) for p in data.videos.paths if not p.exists()]


# --- records -> forms ------------------------------------------------------------------------------------------


def _listed(value: Any, csv_row: bool) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split("|")] if csv_row else [str(value)]


def _attributes(record: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(record.get("attributes") or {}) if isinstance(record.get("attributes"), dict) else {}
    attrs.update({k[5:]: v for k, v in record.items() if k.startswith("attr_") and v not in (None, "")})
    return attrs


def from_records(records: list[dict[str, Any]], want: str, where: str, locate: Callable[[str], Path],
                 csv_rows: bool, classnames: list[str] | None = None) -> Any:  # fmt: skip
    """The `want` form of manifest-like records (see the module docstring); `locate` turns a `video` value into
    a path; errors name `where` and the record."""
    order: list[str] = []
    attributes: dict[str, dict[str, Any]] = {}
    for k, record in enumerate(records):
        if not isinstance(record, dict) or not record.get("video"):
            raise DataError(f"{where}: record {k}: expected an object with a 'video' field")
        video = str(record["video"])
        if video not in attributes:
            order.append(video)
            attributes[video] = {}
        attributes[video].update(_attributes(record))
    paths = [locate(v) for v in order]
    source = VideoSource(paths, order)
    attrs = {v: a for v, a in attributes.items() if a}
    position = {v: i for i, v in enumerate(order)}
    if want == "captions":
        captions: dict[str, list[str]] = {v: [] for v in order}
        for record in records:
            captions[str(record["video"])] += _listed(record.get("caption"), False) + _listed(
                record.get("captions"), csv_rows
            )
        empty = [v for v in order if not captions[v]]
        if empty:
            raise DataError(f"{where}: video {empty[0]!r} has no 'caption' / 'captions' ({len(empty)} such)")
        caps = [captions[v] for v in order]
        return VideoCaptionData(source, caps, order, attrs, where, listing_digest("captions", order, caps))
    if want == "classes":
        labels = []
        for k, record in enumerate(records):
            if record.get("label") in (None, ""):
                raise DataError(f"{where}: record {k} ({record['video']}): no 'label'")
            labels.append(str(record["label"]))
        names = classnames or sorted(set(labels))
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise DataError(f"{where}: label(s) {', '.join(map(repr, unknown[:5]))} not in data.classnames")
        label_of = {str(r["video"]): names.index(str(r["label"])) for r in records}
        return VideoClassData(source, [label_of[v] for v in order], list(names), order, attrs, where,
                              listing_digest("classes", order, [label_of[v] for v in order], names))  # fmt: skip
    questions, answers, types, index, choices, qids = [], [], [], [], [], []
    for k, record in enumerate(records):
        if not str(record.get("question") or "").strip():
            continue  # a record of a video without a question of its own (attributes only)
        answer = _listed(record.get("answers"), csv_rows) or _listed(record.get("answer"), False)
        options = _listed(record.get("choices"), csv_rows)
        if want == "choice_questions":
            if len(options) < 2:
                raise DataError(f"{where}: record {k}: a multiple-choice question needs 'choices' (2 or more)")
            if len(answer) != 1 or (
                answer[0] not in options and not (answer[0].isdigit() and int(answer[0]) < len(options))
            ):
                raise DataError(f"{where}: record {k}: 'answer' must be one of the choices or its 0-based index")
            answer = [answer[0] if answer[0] in options else options[int(answer[0])]]
            choices.append(options)
        elif not answer:
            raise DataError(f"{where}: record {k}: no 'answer' / 'answers'")
        questions.append(str(record["question"]))
        answers.append(answer)
        types.append(str(record.get("type") or "all"))
        index.append(position[str(record["video"])])
        qids.append(record.get("question_id", k))
    if not questions:
        raise DataError(f"{where}: no records with a 'question'")
    return VideoQAData(source, questions, answers, types, index, choices if want == "choice_questions" else None,
                       order, qids, attrs, where, listing_digest(want, order, questions, answers, choices))  # fmt: skip


def read_records(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """A manifest's records and whether they came from CSV / TSV (lists are then `|`-separated)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return read_csv(path), True
    if suffix == ".jsonl":
        records = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the manifest ({exc})") from exc
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {number}: not valid JSON ({exc.msg})") from exc
        return records, False
    raw = read_json(path)
    records = raw.get("videos", raw.get("records")) if isinstance(raw, dict) else raw
    if not isinstance(records, list):
        raise DataError(f'{path}: expected a JSON list of records (or {{"videos": [...]}})')
    return records, False


def load_video_manifest(cfg, want: str) -> Any:
    records, csv_rows = read_records(cfg.annotations)
    base = cfg.annotations.parent
    return from_records(records, want, f"manifest {cfg.annotations}", lambda v: resolve_video(cfg.videos, v, base),
                        csv_rows, cfg.classnames)  # fmt: skip


def load_frame_folders(cfg, want: str) -> Any:
    """Videos stored as folders of frame images: `root/<video>/` with a manifest (`annotations`, its `video`
    naming the folder), or, without one, class folders `root/<class>/<video>/` (class labels)."""
    root = cfg.root
    if cfg.annotations is not None:
        records, csv_rows = read_records(cfg.annotations)
        return from_records(records, want, f"frame folders {root} ({cfg.annotations.name})", lambda v: root / v,
                            csv_rows, cfg.classnames)  # fmt: skip
    if want != "classes":
        raise DataError(f"frame_folders {root}: without data.annotations the folders hold class labels only "
                        f"(root/<class>/<video>/), not {want.replace('_', ' ')}")  # fmt: skip
    records = [{"video": f"{c.name}/{v.name}", "label": c.name}
               for c in sorted(p for p in root.iterdir() if p.is_dir()) for v in sorted(c.iterdir()) if v.is_dir()]  # fmt: skip
    if not records:
        raise DataError(f"frame_folders {root}: no root/<class>/<video>/ folders")
    return from_records(records, want, f"frame folders {root} (class folders)", lambda v: root / v, False,
                        cfg.classnames)  # fmt: skip


def load_hf_video(cfg, want: str) -> Any:
    """A Hugging Face dataset whose `video_column` holds video file paths (strings, or {"path": ...}), with the
    caption / question / answers / options / label columns of the image formats (a ClassLabel label gives the
    class names)."""
    from mmeval.data.hf import open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    columns = set(dataset.column_names)
    if cfg.video_column not in columns:
        raise DataError(f"{cfg.path}: no column '{cfg.video_column}' (columns: {', '.join(sorted(columns))})")
    mapping = {"caption": cfg.caption_column, "question": cfg.question_column, "answers": cfg.answers_column,
               "choices": cfg.options_column, "label": cfg.label_column or "label", "type": "question_type"}  # fmt: skip
    names = None
    label = dataset.features.get(mapping["label"]) if mapping["label"] in columns else None
    if label is not None and hasattr(label, "names"):
        names = list(label.names)
    records = []
    for row in dataset:
        video = row[cfg.video_column]
        video = video.get("path") if isinstance(video, dict) else video
        record = {"video": video}
        for key, column in mapping.items():
            if column in columns:
                record[key] = row[column]
        if names is not None and isinstance(record.get("label"), int):
            record["label"] = names[record["label"]]
        if isinstance(record.get("caption"), list):
            record["captions"] = record.pop("caption")
        records.append(record)
    base = Path(cfg.path).expanduser()
    return from_records(records, want, f"hf dataset {cfg.path}", lambda v: resolve_video(cfg.videos, v, base),
                        False, cfg.classnames or names)  # fmt: skip


def load_shapes_video(cfg, want: str) -> Any:
    """mmeval's synthetic moving-shapes clips (`mmeval/data/shapes_video.py`), in any of the forms."""
    from mmeval.data import shapes_video

    args = {"split": cfg.split or "test", "n_videos": cfg.n_videos, "seed": cfg.seed}
    if want == "captions":
        return shapes_video.load_shapes_video_captions(**args)
    if want == "classes":
        return shapes_video.load_shapes_video_classes(**args)
    return shapes_video.load_shapes_video_qa(**args, style="choice" if want == "choice_questions" else "open")
