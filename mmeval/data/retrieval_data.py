"""The in-memory form every retrieval data format is loaded into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from PIL import Image


class ImageSource(Protocol):
    """Indexable images: `load(i)` returns raw bytes (hashed for the dataset digest) and a decoded PIL image.

    Must be picklable so DataLoader workers can read images in parallel.
    """

    def __len__(self) -> int: ...

    def describe(self, index: int) -> str: ...  # a file path or row id, for error messages

    def load(self, index: int) -> tuple[bytes, Image.Image]: ...


@dataclass
class RetrievalData:
    """Images, texts and which image each text belongs to (every caption of an image is a positive)."""

    image_ids: list[Any]
    images: ImageSource
    texts: list[str]
    text_image_index: list[int]  # for each text, the position of its image in image_ids
    source: str  # where it came from, for the report
    annotation_digest: str  # sha256 over the canonical (image id, caption) listing
    attributes: dict[Any, dict[str, Any]] = field(default_factory=dict)  # image id -> {attribute: value}

    def captions_per_image(self) -> Sequence[int]:
        counts = [0] * len(self.image_ids)
        for i in self.text_image_index:
            counts[i] += 1
        return counts


def annotation_digest(image_ids: list[Any], texts: list[str], owner: list[int], names: list[str]) -> str:
    """sha256 over a canonical JSON listing of the annotations (ids, file names, captions, ownership)."""
    import hashlib
    import json

    canonical = json.dumps([[str(i) for i in image_ids], names, texts, owner], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def take_first(data: RetrievalData, n_images: int) -> RetrievalData:
    """The first `n_images` images and their captions (for `data.limit`)."""
    from mmeval.io.images import SubsetImages

    if n_images >= len(data.image_ids):
        return data
    keep = [i for i, owner in enumerate(data.text_image_index) if owner < n_images]
    ids = data.image_ids[:n_images]
    texts = [data.texts[i] for i in keep]
    owner = [data.text_image_index[i] for i in keep]
    return RetrievalData(
        image_ids=ids,
        images=SubsetImages(data.images, list(range(n_images))),
        texts=texts,
        text_image_index=owner,
        source=f"{data.source}[:{n_images}]",
        annotation_digest=annotation_digest(ids, texts, owner, [data.annotation_digest]),
        attributes={i: data.attributes[i] for i in ids if i in data.attributes},
    )
