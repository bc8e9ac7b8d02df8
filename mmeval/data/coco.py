"""COCO captions JSON and Karpathy `dataset_*.json` loaders for retrieval."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from mmeval.data.images import FileImages
from mmeval.data.retrieval_data import RetrievalData, annotation_digest
from mmeval.errors import DataError


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise DataError(f"{path}: {message}")


def load_coco(cfg) -> RetrievalData:
    """COCO captions format: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}."""
    path: Path = cfg.annotations
    raw = read_json(path)
    _require(isinstance(raw, dict), path, f"expected a COCO captions object, got a JSON {type(raw).__name__}")
    for key in ("images", "annotations"):
        _require(isinstance(raw.get(key), list), path, f"expected a list under '{key}' (COCO captions format)")
    for n, image in enumerate(raw["images"]):
        _require(isinstance(image, dict) and "id" in image and "file_name" in image, path,
                 f"images[{n}] needs 'id' and 'file_name'")
    for n, ann in enumerate(raw["annotations"]):
        _require(isinstance(ann, dict) and "image_id" in ann and "caption" in ann, path,
                 f"annotations[{n}] needs 'image_id' and 'caption'")
        _require(isinstance(ann["caption"], str), path,
                 f"annotations[{n}].caption must be a string, got {type(ann['caption']).__name__}")
    ids = [image["id"] for image in raw["images"]]
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    _require(not repeated, path, f"duplicate image ids: {repeated[:10]}")
    raw.setdefault("info", {})
    coco = COCO()
    coco.dataset = raw
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    unknown = sorted({a["image_id"] for a in raw["annotations"]} - set(coco.imgs))
    _require(not unknown, path, f"captions refer to image ids missing from 'images': {unknown[:10]}")

    texts, owner = [], []
    for position, image_id in enumerate(ids):
        for ann in coco.imgToAnns.get(image_id, []):
            texts.append(ann["caption"])
            owner.append(position)
    paths = [cfg.images / coco.imgs[i]["file_name"] for i in ids]
    return _from_files(ids, paths, texts, owner, f"coco:{path}")


def load_karpathy(cfg) -> RetrievalData:
    """Karpathy split format: {"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}]}]}."""
    path: Path = cfg.annotations
    split = cfg.split or "test"
    raw = read_json(path)
    _require(isinstance(raw, dict) and isinstance(raw.get("images"), list), path,
             "expected {'images': [...]} (Karpathy dataset_*.json format)")
    ids, paths, texts, owner = [], [], [], []
    for n, image in enumerate(raw["images"]):
        _require(isinstance(image, dict) and {"filename", "split", "sentences"} <= image.keys(), path,
                 f"images[{n}] needs 'filename', 'split' and 'sentences'")
        if image["split"] != split:
            continue
        position = len(ids)
        ids.append(image.get("cocoid", image.get("imgid", n)))
        nested = cfg.images / image.get("filepath", "") / image["filename"]
        paths.append(nested if nested.exists() else cfg.images / image["filename"])
        for m, sentence in enumerate(image["sentences"]):
            caption = sentence.get("raw") if isinstance(sentence, dict) else None
            _require(isinstance(caption, str), path, f"images[{n}].sentences[{m}] needs a string 'raw'")
            texts.append(caption)
            owner.append(position)
    splits = sorted({str(i.get("split")) for i in raw["images"] if isinstance(i, dict)})
    _require(bool(ids), path, f"no images in split '{split}'; splits present: {', '.join(splits)}")
    return _from_files(ids, paths, texts, owner, f"karpathy:{path}[{split}]")


def _from_files(ids: list[Any], paths: list[Path], texts: list[str], owner: list[int], source: str) -> RetrievalData:
    return RetrievalData(
        image_ids=ids,
        images=FileImages(paths),
        texts=texts,
        text_image_index=owner,
        source=source,
        annotation_digest=annotation_digest(ids, texts, owner, [p.name for p in paths]),
    )
