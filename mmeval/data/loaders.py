"""One entry point from a benchmark's `data` config to loaded retrieval data."""

from __future__ import annotations

from mmeval.data.retrieval_data import RetrievalData, take_first
from mmeval.registry import DATA_FORMATS, resolve


def load_retrieval_data(cfg) -> RetrievalData:
    """Load with the format's registered loader, then apply `limit`."""
    data = resolve("data format", cfg.format, DATA_FORMATS)(cfg)
    return take_first(data, cfg.limit) if cfg.limit else data


def load_captioned(bench) -> tuple[RetrievalData, str]:
    """A captioned benchmark's data as its task reads it, and a one-line summary (`mmeval validate`)."""
    data = load_retrieval_data(bench.data)
    return data, f"{len(data.image_ids)} images, {len(data.texts)} texts"


def shapes_from_config(cfg) -> RetrievalData:
    from mmeval.data.shapes import load_shapes

    return load_shapes(split=cfg.split or "test", n_images=cfg.n_images, seed=cfg.seed, image_size=cfg.image_size)


def missing_images(data: RetrievalData) -> list[str]:
    """Image (or audio clip, or video) files that do not exist (file-based formats only), for the pre-run checks."""
    from mmeval.io.images import FileImages, SubsetImages

    if getattr(data, "videos", None) is not None:  # video forms (data/video_data.py): files or frame folders
        return [str(p) for p in data.videos.paths if not p.exists()]

    audio = getattr(data, "audio", None)  # audio data: clip files (in-memory clips have no file to miss)
    if audio is not None and hasattr(audio, "paths"):
        blobs = getattr(audio, "blobs", None) or [None] * len(audio.paths)
        return [str(p) for p, blob in zip(audio.paths, blobs) if blob is None and not p.is_file()]
    source = getattr(data, "images", None)
    if source is None:
        return []
    indices = range(len(source))
    if isinstance(source, SubsetImages):
        source, indices = source.source, source.indices
    if not isinstance(source, FileImages):
        return []
    return [str(source.paths[i]) for i in indices if not source.paths[i].is_file()]
