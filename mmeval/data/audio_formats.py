"""Audio-scene data formats for the audio-text tasks: captioned clips or class-labelled clips.

Every loader takes the benchmark's `data` config and what the task reads (`want`: "captions" or "labels") and
returns `AudioCaptionData` or `AudioClassData`; a format that does not hold what the task reads is a `DataError`
naming the format.

- `shapes_audio`: mmeval's synthetic audio scenes (`data/shapes_audio.py`), captions or labels (label_column:
  sound | count | loudness).
- `audiocaps`: an AudioCaps CSV (`audiocap_id, youtube_id, start_time, caption`; one row per caption, so the
  train split has 1 caption per clip and val / test 5) + a folder of clips named by `file_pattern`
  (default `{youtube_id}.wav`; any column may be used, e.g. `Y{youtube_id}.wav` or `{audiocap_id}.flac`).
- `clotho`: a Clotho captions CSV (`file_name, caption_1 .. caption_5`) + the folder of its clips.
- `esc50`: ESC-50's `meta/esc50.csv` (`filename, fold, target, category, ...`) + its `audio/` folder; `folds`
  picks the folds evaluated (default all five). UrbanSound8K's metadata CSV has the same shape once its columns
  are named (`slice_file_name`, `fold`, `classID`, `class` are read too; clips under `fold<k>/`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mmeval.data.audio_data import AudioCaptionData, AudioClassData, listing_digest
from mmeval.errors import DataError


def _rows(path: Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """The CSV's rows as dicts; a missing file or column is a DataError naming the file."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(f"{path}: not a {what} CSV: missing column(s) {', '.join(missing)} "
                                f"(found: {', '.join(columns) or 'none'})")  # fmt: skip
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {what} CSV {path}: {exc}") from None


def _source(paths: list[Path], ids: list[str]):
    from mmeval.io.audio_loading import AudioSource

    return AudioSource(paths=paths, ids=ids)


def _only(want: str, fmt: str, holds: str) -> None:
    if want != holds:
        raise DataError(f"data format '{fmt}' holds {holds}, but this task reads {want}")


def load_shapes_audio(cfg: Any, want: str = "captions") -> AudioCaptionData | AudioClassData:
    from mmeval.data import shapes_audio

    split, n = cfg.split or "test", cfg.n_clips
    if want == "labels":
        return shapes_audio.load_shapes_audio_classes(split, n, cfg.seed, cfg.label_column or "sound")
    return shapes_audio.load_shapes_audio(split, n, cfg.seed)


def load_audiocaps(cfg: Any, want: str = "captions") -> AudioCaptionData:
    _only(want, "audiocaps", "captions")
    rows = _rows(cfg.annotations, ("youtube_id", "caption"), "AudioCaps")
    pattern = cfg.file_pattern or "{youtube_id}.wav"
    order: dict[str, int] = {}
    paths: list[Path] = []
    captions: list[list[str]] = []
    for n, row in enumerate(rows):
        try:
            name = pattern.format(**row)
        except (KeyError, IndexError, ValueError) as exc:
            raise DataError(f"{cfg.annotations} row {n + 2}: file_pattern {pattern!r} needs column {exc}") from None
        if name not in order:
            order[name] = len(paths)
            paths.append(Path(cfg.root) / name)
            captions.append([])
        captions[order[name]].append(row["caption"].strip())
    ids = [p.stem for p in paths]
    counts = sorted({len(c) for c in captions})
    return AudioCaptionData(_source(paths, ids), captions, ids, f"audiocaps({cfg.annotations})",
                            listing_digest("audiocaps", ids, captions),
                            split_note=f"{len(ids)} clips, {'/'.join(map(str, counts))} caption(s) per clip")  # fmt: skip


def load_clotho(cfg: Any, want: str = "captions") -> AudioCaptionData:
    _only(want, "clotho", "captions")
    rows = _rows(cfg.annotations, ("file_name", "caption_1"), "Clotho captions")
    paths = [Path(cfg.root) / row["file_name"] for row in rows]
    captions = [[row[k].strip() for k in sorted(row, key=str) if k and k.startswith("caption_") and (row[k] or "").strip()]
                for row in rows]  # fmt: skip
    ids = [row["file_name"] for row in rows]
    return AudioCaptionData(_source(paths, ids), captions, ids, f"clotho({cfg.annotations})",
                            listing_digest("clotho", ids, captions), split_note=f"{len(ids)} clips")  # fmt: skip


_ESC_COLUMNS = {"esc50": ("filename", "fold", "target", "category"),
                "urbansound8k": ("slice_file_name", "fold", "classID", "class")}  # fmt: skip


def load_esc50(cfg: Any, want: str = "labels") -> AudioClassData:
    _only(want, "esc50", "labels")
    with Path(cfg.annotations).open(encoding="utf-8") as handle:
        header = handle.readline()
    layout = "urbansound8k" if "slice_file_name" in header else "esc50"
    name_col, fold_col, target_col, class_col = _ESC_COLUMNS[layout]
    rows = _rows(cfg.annotations, _ESC_COLUMNS[layout], f"{layout} metadata")
    try:
        targets = {int(r[target_col]): r[class_col].replace("_", " ") for r in rows}
        folds_of = [int(r[fold_col]) for r in rows]
    except ValueError as exc:
        raise DataError(f"{cfg.annotations}: '{target_col}' and '{fold_col}' must be integers ({exc})") from None
    wanted = set(cfg.folds) if cfg.folds else set(folds_of)
    unknown = sorted(wanted - set(folds_of))
    if unknown:
        raise DataError(
            f"{cfg.annotations}: no clips in fold(s) {unknown} (the file has folds {sorted(set(folds_of))})"
        )
    keep = [i for i, f in enumerate(folds_of) if f in wanted]
    classes = [targets[t] for t in sorted(targets)]
    index = {t: n for n, t in enumerate(sorted(targets))}
    sub = (lambda r: f"fold{r[fold_col]}/{r[name_col]}") if layout == "urbansound8k" else (lambda r: r[name_col])
    paths = [Path(cfg.root) / sub(rows[i]) for i in keep]
    ids = [rows[i][name_col] for i in keep]
    labels = [index[int(rows[i][target_col])] for i in keep]
    folds = [folds_of[i] for i in keep]
    return AudioClassData(_source(paths, ids), labels, classes, ids,
                          f"{layout}({cfg.annotations}, folds {sorted(wanted)})",
                          listing_digest(layout, ids, labels, classes), folds=folds)  # fmt: skip


def load_audio_data(cfg: Any, want: str) -> AudioCaptionData | AudioClassData:
    """The benchmark's clips as the task reads them (`want`: captions | labels), `data.limit` applied."""
    from mmeval.registry import DATA_FORMATS, resolve

    data = resolve("data format", cfg.format, DATA_FORMATS)(cfg, want)
    n = cfg.limit
    if not n or n >= len(data.ids):
        return data
    keep = list(range(n))
    attributes = {i: data.attributes[i] for i in data.ids[:n] if i in data.attributes}
    if isinstance(data, AudioCaptionData):
        return AudioCaptionData(data.audio.subset(keep), data.captions[:n], data.ids[:n], f"{data.source}[:{n}]",
                                listing_digest(data.annotation_digest, n), attributes, data.split_note)  # fmt: skip
    return AudioClassData(data.audio.subset(keep), data.labels[:n], data.classnames, data.ids[:n],
                          f"{data.source}[:{n}]", listing_digest(data.annotation_digest, n),
                          data.folds[:n] if data.folds else None, attributes)  # fmt: skip


def load_captioned_audio(bench: Any) -> tuple[AudioCaptionData, str]:
    """TaskSpec.load_data for the captioned audio tasks: the data and a one-line summary."""
    data = load_audio_data(bench.data, "captions")
    return data, f"{len(data.ids)} clips, {len(data.texts)} captions"


def load_labelled_audio(bench: Any) -> tuple[AudioClassData, str]:
    """TaskSpec.load_data for audio zero-shot classification."""
    data = load_audio_data(bench.data, "labels")
    return data, f"{len(data.ids)} clips, {len(data.classnames)} classes"


def audio_dataset_summary(
    data: AudioCaptionData | AudioClassData, done: Any, n_texts: int | None = None
) -> dict[str, Any]:
    """The report's `dataset` block of an audio benchmark: sizes, skipped clips, digest, decoder and settings."""
    import hashlib

    digest = hashlib.sha256(data.annotation_digest.encode())
    for index in sorted(done.digests):
        value = done.digests[index]
        digest.update(value if isinstance(value, bytes) else str(value).encode())
    out = {"n_texts": n_texts or 0, "n_clips": len(done.ok_indices), "n_skipped_clips": len(done.bad),
           "skipped_clips": [{"clip_id": data.ids[i], "reason": reason} for i, reason in done.bad],
           "source": data.source, "sha256": digest.hexdigest(), "decoder": done.decoder,
           "decoded_from_cache": done.decoded_from_cache}  # fmt: skip
    if getattr(data, "split_note", ""):
        out["split_note"] = data.split_note
    return out


def load_hf_audio(cfg: Any, want: str = "captions") -> AudioCaptionData | AudioClassData:
    """`format: hf_audio`: a Hugging Face dataset with an Audio column (read undecoded: bytes or a path) and a
    caption column (a string or a list of strings per clip, e.g. Clotho / AudioCaps on the hub) or, for
    zero-shot, a label column (a ClassLabel, or strings)."""
    import datasets

    from mmeval.data.hf import open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    column = (cfg.label_column or "label") if want == "labels" else cfg.caption_column
    for field_name, name in (("audio_column", cfg.audio_column), ("label_column" if want == "labels" else
                                                                  "caption_column", column)):  # fmt: skip
        if name not in dataset.column_names:
            raise DataError(f"{cfg.path}: data.{field_name} '{name}' is not a column; columns: "
                            f"{', '.join(dataset.column_names)}")  # fmt: skip
    if isinstance(dataset.features[cfg.audio_column], datasets.Audio):
        dataset = dataset.cast_column(cfg.audio_column, datasets.Audio(decode=False))
    paths, blobs, ids = [], [], []
    for row, value in enumerate(dataset[cfg.audio_column]):
        if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
            raise DataError(f"{cfg.path}[row {row}]: data.audio_column '{cfg.audio_column}' must be an Audio column")
        name, blob = value.get("path") or f"row-{row}.wav", value.get("bytes")
        # in-memory clips are named by row (keeping the file name's suffix, which picks the decoder)
        paths.append(Path(f"{cfg.path}[row {row}] {Path(name).name}") if blob is not None else Path(name))
        blobs.append(blob)
        ids.append(str(row))
    from mmeval.io.audio_loading import AudioSource

    source = AudioSource(paths, ids, blobs)
    values = dataset[column]
    if want == "labels":
        feature = dataset.features[column]
        if isinstance(feature, datasets.ClassLabel):
            classes, labels = list(feature.names), [int(v) for v in values]
        else:
            classes = sorted({str(v) for v in values})
            labels = [classes.index(str(v)) for v in values]
        return AudioClassData(source, labels, classes, ids, f"Hugging Face dataset {cfg.path}",
                              listing_digest("hf_audio", cfg.path, ids, labels, classes))  # fmt: skip
    captions = []
    for row, value in enumerate(values):
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{cfg.path}[row {row}]: data.caption_column '{column}' must hold a string or a list of "
                            f"strings, got {type(value).__name__}")  # fmt: skip
        captions.append([t.strip() for t in texts if t.strip()])
    return AudioCaptionData(source, captions, ids, f"Hugging Face dataset {cfg.path}",
                            listing_digest("hf_audio", cfg.path, ids, captions))  # fmt: skip
