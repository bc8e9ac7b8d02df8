"""COCO captions JSON and Karpathy `dataset_*.json` loaders for retrieval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmeval.data.retrieval_data import RetrievalData, annotation_digest
from mmeval.data.image_files import fill_pattern
from mmeval.errors import DataError
from mmeval.ids import natural_sorted
from mmeval.io.images import FileImages


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


def is_id(value: Any) -> bool:
    """Image and question ids are integers or strings: hashable, and written into reports as they are."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def is_text(value: Any) -> bool:
    """A caption or question: a string with something in it (an empty one is a broken annotation, not data)."""
    return isinstance(value, str) and bool(value.strip())


def is_file_name(value: Any) -> bool:
    """A path relative to an image folder: a non-blank string (a NUL byte cannot be in a path)."""
    return isinstance(value, str) and bool(value.strip()) and "\x00" not in value


def _repeated(ids: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    return [i for i in ids if i in seen or seen.add(i)]


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def load_coco(cfg) -> RetrievalData:
    """COCO captions format: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}.
    With `data.image_pattern` the file names come from the ids instead of `file_name`."""
    path: Path = cfg.annotations
    raw = read_json(path)
    _require(isinstance(raw, dict), path, f"expected a COCO captions object, got a JSON {type(raw).__name__}")
    for key in ("images", "annotations"):
        _require(isinstance(raw.get(key), list), path, f"expected a list under '{key}' (COCO captions format)")
    for n, image in enumerate(raw["images"]):
        _require(isinstance(image, dict) and "id" in image and "file_name" in image, path,
                 f"images[{n}] needs 'id' and 'file_name'")
        _require(is_id(image["id"]), path, f"images[{n}].id must be an integer or a string, got {_show(image['id'])}")
        _require(is_file_name(image["file_name"]), path,
                 f"images[{n}].file_name must be a file name (a non-empty string), got {_show(image['file_name'])}")
    for n, ann in enumerate(raw["annotations"]):
        _require(isinstance(ann, dict) and "image_id" in ann and "caption" in ann, path,
                 f"annotations[{n}] needs 'image_id' and 'caption'")
        _require(isinstance(ann["caption"], str), path,
                 f"annotations[{n}].caption must be a string, got {type(ann['caption']).__name__}")
        _require(is_text(ann["caption"]), path,
                 f"annotations[{n}].caption is empty (image_id {_show(ann['image_id'])})")
        _require(is_id(ann["image_id"]), path,
                 f"annotations[{n}].image_id must be an integer or a string, got {_show(ann['image_id'])}")
    ids = [image["id"] for image in raw["images"]]
    repeated = natural_sorted(set(_repeated(ids)))
    _require(not repeated, path, f"duplicate image ids: {repeated[:10]}")
    files = {image["id"]: image["file_name"] for image in raw["images"]}
    captions: dict[Any, list[str]] = {i: [] for i in ids}  # in file order, as pycocotools' imgToAnns
    for ann in raw["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    unknown = natural_sorted(captions.keys() - files.keys())
    _require(not unknown, path, f"captions refer to image ids missing from 'images': {unknown[:10]}")

    texts, owner = [], []
    for position, image_id in enumerate(ids):
        for caption in captions[image_id]:
            texts.append(caption)
            owner.append(position)
    pattern = getattr(cfg, "image_pattern", None)
    if pattern:  # file names from the image ids, e.g. when the files were renamed to {image_id:012d}.jpg
        files = {i: fill_pattern(pattern, i, "{image_id:012d}.jpg") for i in ids}
    paths = [cfg.images / files[i] for i in ids]
    return _from_files(ids, paths, texts, owner, f"coco:{path}")


def load_karpathy(cfg) -> RetrievalData:
    """Karpathy split format: {"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}]}]}."""
    path: Path = cfg.annotations
    split = cfg.split or "test"
    raw = read_json(path)
    _require(isinstance(raw, dict) and isinstance(raw.get("images"), list), path,
             "expected {'images': [...]} (Karpathy dataset_*.json format)")
    ids, paths, texts, owner = [], [], [], []
    first: dict[Any, int] = {}  # image id -> its index in the file
    for n, image in enumerate(raw["images"]):
        _require(isinstance(image, dict) and {"filename", "split", "sentences"} <= image.keys(), path,
                 f"images[{n}] needs 'filename', 'split' and 'sentences'")
        if image["split"] != split:
            continue
        image_id = image.get("cocoid", image.get("imgid", n))
        _require(is_id(image_id), path, f"images[{n}]: the image id (cocoid, else imgid) must be an integer or a "
                                        f"string, got {_show(image_id)}")
        _require(image_id not in first, path, f"images[{n}]: duplicate image id {_show(image_id)} (also "
                                              f"images[{first.get(image_id)}], split '{split}')")
        first[image_id] = n
        _require(is_file_name(image["filename"]), path,
                 f"images[{n}].filename must be a file name (a non-empty string), got {_show(image['filename'])}")
        _require(image.get("filepath", "") == "" or is_file_name(image["filepath"]), path,
                 f"images[{n}].filepath must be a folder path (a string), got {_show(image.get('filepath'))}")
        _require(isinstance(image["sentences"], list), path,
                 f"images[{n}].sentences must be a list of {{'raw': caption}}, got {_show(image['sentences'])}")
        position = len(ids)
        ids.append(image_id)
        nested = cfg.images / image.get("filepath", "") / image["filename"]
        paths.append(nested if nested.exists() else cfg.images / image["filename"])
        for m, sentence in enumerate(image["sentences"]):
            caption = sentence.get("raw") if isinstance(sentence, dict) else None
            _require(isinstance(caption, str), path, f"images[{n}].sentences[{m}] needs a string 'raw'")
            _require(is_text(caption), path, f"images[{n}].sentences[{m}].raw is empty (image id {_show(image_id)})")
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
