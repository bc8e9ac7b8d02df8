"""Images with class labels, for zero-shot classification: image folders, CSV / JSON label files, Hugging Face
datasets and the built-in shapes scenes.

Loaders keep labels as the data writes them (class names or integer indices); `resolve_classes` then turns
them into class indices against the benchmark's class list, so every format follows the same rules:

- Data that defines its classes (image folders: the sorted folder names, as torchvision's ImageFolder; an
  HF ClassLabel's names; shapes' vocabulary) labels by position; `classnames` only renames them, one name
  per class, in that order.
- Otherwise (CSV, JSON, plain HF columns) `classnames` is the class list and a label is a class name or an
  integer index into it; without `classnames`, the classes are the sorted distinct label names.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.data.coco import is_file_name, is_id
from mmeval.data.retrieval_data import ImageSource, RetrievalData
from mmeval.errors import DataError
from mmeval.io.images import FileImages, SubsetImages

# torchvision.datasets.folder.IMG_EXTENSIONS: the files an ImageFolder reads (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MULTILABEL_SEPARATOR = "|"  # CSV cells with several labels: "cat|dog" (class names may hold commas)
SHAPES_LABELS = {
    "shape": "the kind of shape: single-shape scenes only (multilabel: every kind in any scene)",
    "color": "the dominant colour, by area (multilabel: every colour in the scene)",
}


@dataclass
class LabelledData:
    """Images and their labels as the data states them: class names or indices, one list per image."""

    image_ids: list[Any]
    images: ImageSource
    labels: list[list[Any]]  # one entry for single-label data; several (or none) for multi-label data
    classes: list[str] | None  # the class list the data defines (folders, ClassLabel names), else None
    source: str
    annotation_digest: str
    attributes: dict[Any, dict[str, Any]] = dataclasses.field(default_factory=dict)  # image id -> {attribute: value}


def _digest(ids: list[Any], labels: list[list[Any]], classes: list[str] | None, names: list[str]) -> str:
    canonical = json.dumps([[str(i) for i in ids], [[str(x) for x in row] for row in labels], classes, names],
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_imagefolder(cfg) -> LabelledData:
    """root/<class>/**/<image>: classes are the sorted sub-folder names; files are walked as ImageFolder does."""
    root = Path(cfg.root)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (expected root/<class>/<image>, as torchvision's ImageFolder)")
    paths: list[Path] = []
    labels: list[list[Any]] = []
    for index, name in enumerate(classes):
        found = [Path(folder) / file for folder, _, files in sorted(os.walk(root / name, followlinks=True))
                 for file in sorted(files) if file.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            raise DataError(f"{root / name}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        paths += found
        labels += [[index]] * len(found)
    ids = [p.relative_to(root).as_posix() for p in paths]
    return LabelledData(ids, FileImages(paths), labels, classes, f"imagefolder:{root}",
                        _digest(ids, labels, classes, []))


def _read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    try:
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's BOM is dropped
                return list(csv.DictReader(handle))
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataError(f"{path}: expected a JSON list of objects like {{\"image\": \"a.jpg\", \"label\": \"cat\"}}")
    return rows


def load_label_file(cfg) -> LabelledData:
    """A CSV (with a header) or JSON list of rows naming an image and its label(s).

    Relative image paths are read under `images`, or beside the label file when `images` is not set.
    """
    path, fmt = Path(cfg.annotations), cfg.format
    image_key, label_key = cfg.image_column, cfg.label_column or "label"
    rows = _read_rows(path, fmt)
    if not rows:
        raise DataError(f"{path}: no rows")
    folder = Path(cfg.images) if cfg.images else path.parent
    ids, labels, first = [], [], {}
    for n, row in enumerate(rows):
        where = f"{path} row {n + 2 if fmt == 'csv' else n}"  # CSV: line numbers, counting the header
        for key, field in ((image_key, "image_column"), (label_key, "label_column")):
            if row.get(key) in (None, ""):
                raise DataError(f"{where}: no '{key}' value (data.{field}; columns: {', '.join(map(str, row))})")
        value = row[label_key]
        if isinstance(value, str) and fmt == "csv":
            value = [part.strip() for part in value.split(MULTILABEL_SEPARATOR)]
        if not all(is_id(x) for x in (value if isinstance(value, list) else [value])):
            raise DataError(f"{where}: label {value!r} must be a class name, an integer index into classnames, or "
                            "(multilabel) a list of them")
        image = row[image_key]
        if not is_file_name(image):
            raise DataError(f"{where}: '{image_key}' must be an image file name (a string), got {image!r}")
        if image in first:
            raise DataError(f"{where}: image {image!r} is also in row {first[image]}; give one row per image (several "
                            f"labels: multilabel: true with a list, or a{MULTILABEL_SEPARATOR}b in a CSV cell)")
        first[image] = where.rsplit(" ", 1)[1]
        ids.append(image)
        labels.append(list(value) if isinstance(value, list) else [value])
    paths = [folder / i for i in ids]
    return LabelledData(ids, FileImages(paths), labels, None, f"{fmt}:{path}", _digest(ids, labels, None, []))


def load_hf_labels(cfg) -> LabelledData:
    """An image column and a label column (ints, strings, a ClassLabel or a list of them)."""
    from mmeval.data.hf import HFImages, open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    label_key = cfg.label_column or "label"
    for column, field in ((cfg.image_column, "image_column"), (label_key, "label_column")):
        if column not in dataset.column_names:
            raise DataError(f"{cfg.path}: data.{field} '{column}' is not a column; columns: "
                            f"{', '.join(dataset.column_names)}")
    feature = dataset.features[label_key]
    feature = getattr(feature, "feature", feature)  # a list of ClassLabel keeps its names one level down
    classes = list(feature.names) if hasattr(feature, "names") else None
    labels = [value if isinstance(value, list) else [value] for value in dataset[label_key]]
    ids = list(range(len(dataset)))
    return LabelledData(ids, HFImages(dataset, cfg.image_column, str(cfg.path)), labels, classes,
                        f"hf:{cfg.path}" + (f"[{cfg.split}]" if cfg.split else ""),
                        _digest(ids, labels, classes, [getattr(dataset, "_fingerprint", "")]))


def load_shapes_labels(cfg, multilabel: bool = False) -> LabelledData:
    """Shapes scenes labelled by `label_column` (see SHAPES_LABELS); the class list is sorted."""
    from mmeval.data.shapes import COLORS, KINDS, ShapesImages, scene_attributes, split_scene

    key = cfg.label_column or "shape"
    if key not in SHAPES_LABELS:
        known = "; ".join(f"'{name}' ({meaning})" for name, meaning in SHAPES_LABELS.items())
        raise DataError(f"data.label_column: shapes labels are {known}, not '{key}'")
    split, classes = cfg.split or "test", sorted(KINDS if key == "shape" else COLORS)
    scenes, ids, labels = [], [], []
    index = 0
    while len(scenes) < cfg.n_images:
        scene = split_scene(split, cfg.seed, index)
        if key == "shape" and (multilabel or len(scene.shapes) == 1):
            names = sorted({s.kind for s in scene.shapes})
        elif key == "color" and multilabel:
            names = sorted({s.color for s in scene.shapes})
        elif key == "color":
            names = [scene_attributes(scene)["dominant_color"]]
        else:
            names = None
        if names is not None:
            scenes.append(scene)
            ids.append(f"{split}-{index:06d}")  # the scene's id in the retrieval form of the same split
            labels.append([classes.index(n) for n in names])
        index += 1
    kind = "multilabel " if multilabel else ""
    source = (f"shapes(split={split}, n={cfg.n_images}, seed={cfg.seed}, size={cfg.image_size}, "
              f"{kind}label={key})")
    return LabelledData(ids, ShapesImages(scenes, split, cfg.image_size), labels, classes, source,
                        _digest(ids, labels, classes, [source]),
                        {i: scene_attributes(scene) for i, scene in zip(ids, scenes)})  # fmt: skip


LOADERS = {"imagefolder": load_imagefolder, "csv": load_label_file, "json": load_label_file, "hf": load_hf_labels}


def load_labelled(cfg, multilabel: bool = False) -> LabelledData:
    """Load a benchmark's `data` with its format's loader, then keep the first `limit` images."""
    if cfg.format == "shapes":
        data = load_shapes_labels(cfg, multilabel)
    elif cfg.format in LOADERS:
        data = LOADERS[cfg.format](cfg)
    else:
        raise DataError(f"data.format: '{cfg.format}' has no class labels; use one of: "
                        f"{', '.join(sorted([*LOADERS, 'shapes']))}")
    if cfg.limit and cfg.limit < len(data.image_ids):
        n = cfg.limit
        data = LabelledData(data.image_ids[:n], SubsetImages(data.images, list(range(n))), data.labels[:n],
                            data.classes, f"{data.source}[:{n}]",
                            _digest(data.image_ids[:n], data.labels[:n], data.classes, [data.annotation_digest]),
                            data.attributes)
    return data


def as_retrieval_data(cfg) -> RetrievalData:
    """The images of a labelled format with no captions, so format-generic tools (`mmeval validate`, file
    checks) can read these formats; the label is kept as the image's `label` attribute."""
    data = LOADERS[cfg.format](cfg)
    return RetrievalData(data.image_ids, data.images, [], [], data.source, data.annotation_digest,
                         {i: {"label": row} for i, row in zip(data.image_ids, data.labels)})


def _index(label: Any, lookup: dict[str, int], n_classes: int, by_name_only: bool) -> int | None:
    """A label's class index: a class name, or (unless by_name_only) an integer / digit string in range."""
    if isinstance(label, str) and label in lookup:
        return lookup[label]
    if by_name_only or isinstance(label, bool):
        return None
    if isinstance(label, str) and label.strip().isdigit():
        label = int(label)
    return label if isinstance(label, (int, np.integer)) and 0 <= label < n_classes else None


def resolve_classes(data: LabelledData, classnames: list[str] | None,
                    multilabel: bool) -> tuple[list[str], np.ndarray]:
    """The class list and the targets: class indices (n,) or, if `multilabel`, a 0/1 matrix (n, n_classes)."""
    if data.classes is not None:
        if classnames is not None and len(classnames) != len(data.classes):
            shown = ", ".join(data.classes[:10]) + (", ..." if len(data.classes) > 10 else "")
            raise DataError(f"classnames: {len(classnames)} name(s) for the {len(data.classes)} classes of "
                            f"{data.source} ({shown}); give one name per class, in this order")
        classes, lookup, by_name_only = list(classnames or data.classes), {}, False
    else:
        found = sorted({x for row in data.labels for x in row if isinstance(x, str)})
        if classnames is None and any(not isinstance(x, str) for row in data.labels for x in row):
            raise DataError(f"{data.source}: integer labels need benchmarks[].classnames (or classnames_file) "
                            "to name the classes")
        classes = list(classnames) if classnames is not None else found
        lookup, by_name_only = {name: n for n, name in enumerate(classes)}, classnames is None
    bad = [(i, x) for i, row in zip(data.image_ids, data.labels) for x in row
           if _index(x, lookup, len(classes), by_name_only) is None]
    if bad:
        image_id, label = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
        raise DataError(f"{data.source}: image {image_id!s}: label {label!r} is not one of the {len(classes)} "
                        f"classes ({shown}) nor an index into them{more}")
    rows = [[_index(x, lookup, len(classes), by_name_only) for x in row] for row in data.labels]
    if multilabel:
        targets = np.zeros((len(rows), len(classes)), dtype=np.int64)
        for n, row in enumerate(rows):
            targets[n, row] = 1
        return classes, targets
    wrong = [(i, row) for i, row in zip(data.image_ids, rows) if len(row) != 1]
    if wrong:
        raise DataError(f"{data.source}: image {wrong[0][0]!s} has {len(wrong[0][1])} labels; single-label "
                        f"classification needs exactly one (set multilabel: true for label lists)")
    return classes, np.array([row[0] for row in rows], dtype=np.int64)
