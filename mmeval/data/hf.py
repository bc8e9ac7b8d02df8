"""Hugging Face `datasets` loader for retrieval: an image column and a caption column (a string or a list)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from mmeval.data.coco import is_id, is_text
from mmeval.data.retrieval_data import RetrievalData, annotation_digest
from mmeval.errors import DataError
from mmeval.io.images import decode_image


def open_hf_dataset(path: str, split: str | None) -> Any:
    """A local `save_to_disk` folder, a local dataset folder/script, or a hub id (needs the network)."""
    import datasets

    local = Path(path).expanduser()
    try:
        if (local / "dataset_info.json").exists() or (local / "state.json").exists() or (local / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(str(local) if local.exists() else path, split=split)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:
        raise DataError(f"{path}: cannot open the Hugging Face dataset ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split or ("test" if "test" in names else names[0] if len(names) == 1 else None)
        if chosen not in loaded:
            raise DataError(f"{path}: choose a split with data.split; splits present: {', '.join(names)}")
        loaded = loaded[chosen]
    return loaded


class HFImages:
    """Images from a dataset column, read undecoded so bytes can be hashed and errors named by row."""

    def __init__(self, dataset: Any, column: str, name: str):
        import datasets

        self.dataset = dataset.cast_column(column, datasets.Image(decode=False)) if isinstance(
            dataset.features[column], datasets.Image) else dataset
        self.column = column
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, index: int) -> str:
        return f"{self.name}[row {index}].{self.column}"

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        data = self.read_bytes(index)
        return data, decode_image(data, self.describe(index))

    def fingerprint(self) -> str | None:
        """The datasets library's own fingerprint of the table (None if it has none) and the column."""
        fingerprint = getattr(self.dataset, "_fingerprint", None)
        return f"hf|{fingerprint}|{self.column}|{len(self.dataset)}" if fingerprint else None

    def read_bytes(self, index: int) -> bytes:
        """The row's encoded image bytes, undecoded."""
        value = self.dataset[index][self.column]
        where = self.describe(index)
        if isinstance(value, dict):  # {"bytes": ..., "path": ...} from an undecoded Image feature
            data = value.get("bytes")
            if data is None and value.get("path"):
                try:
                    data = Path(value["path"]).read_bytes()
                except OSError as exc:
                    raise DataError(f"{where}: cannot read {value['path']} ({exc})") from exc
        elif isinstance(value, str):
            try:
                data = Path(value).read_bytes()
            except OSError as exc:
                raise DataError(f"{where}: cannot read {value} ({exc})") from exc
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        else:
            raise DataError(f"{where}: expected an image, bytes or a path, got {type(value).__name__}")
        if data is None:
            raise DataError(f"{where}: the row holds no image")
        return data


def load_hf(cfg) -> RetrievalData:
    dataset = open_hf_dataset(cfg.path, cfg.split)
    columns = list(dataset.column_names)
    for field in ("image_column", "caption_column", "image_id_column"):
        column = getattr(cfg, field)
        if column is not None and column not in columns:
            raise DataError(f"{cfg.path}: data.{field} '{column}' is not a column; columns: {', '.join(columns)}")
    captions = dataset[cfg.caption_column]
    ids = dataset[cfg.image_id_column] if cfg.image_id_column else list(range(len(dataset)))
    seen: set[Any] = set()
    for row, image_id in enumerate(ids):
        if not is_id(image_id) or image_id in seen:
            problem = (f"repeats image id {image_id!r} (one row per image, its captions as a list)" if is_id(image_id)
                       else f"expected an integer or a string, got {image_id!r}")
            raise DataError(f"{cfg.path}[row {row}].{cfg.image_id_column}: {problem}")
        seen.add(image_id)
    texts, owner = [], []
    for row, value in enumerate(captions):
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DataError(f"{cfg.path}[row {row}].{cfg.caption_column}: expected a string or a list of strings")
        if not all(is_text(v) for v in values):
            raise DataError(f"{cfg.path}[row {row}].{cfg.caption_column}: empty caption")
        texts.extend(values)
        owner.extend([row] * len(values))
    return RetrievalData(
        image_ids=ids,
        images=HFImages(dataset, cfg.image_column, str(cfg.path)),
        texts=texts,
        text_image_index=owner,
        source=f"hf:{cfg.path}" + (f"[{cfg.split}]" if cfg.split else ""),
        annotation_digest=annotation_digest(ids, texts, owner, [getattr(dataset, "_fingerprint", "")]),
    )
