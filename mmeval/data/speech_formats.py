"""Speech data formats (clips with one reference transcript each) and their in-memory form, `SpeechData`.

- `librispeech`: `<root>/**/*.trans.txt` files of `<utterance id> <TRANSCRIPT>` lines, each clip `<id>.flac` beside
  its transcript file (LibriSpeech, and the many corpora laid out like it); the speaker is the id's first part.
- `nemo`: a NeMo JSONL manifest, one `{"audio_filepath", "text"[, "duration", "speaker", ...]}` object per line;
  relative paths are relative to the manifest; extra keys are kept as per-clip attributes.
- `hf_speech`: a Hugging Face dataset with an `Audio` column (read undecoded: bytes or a file path) and a
  transcript column.
- `spoken_shapes`: mmeval's shipped spoken questions and commands (a NeMo manifest; `scripts/make_spoken_set.py`).

Loading reads annotations only; clips are decoded later, in the engine's batch loader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.errors import DataError
from mmeval.io.audio_loading import AudioSource

SPOKEN_SHAPES = Path(__file__).resolve().parent.parent / "assets" / "spoken-shapes"


@dataclass
class SpeechData:
    """Clips with one reference transcript each."""

    audio: AudioSource
    texts: list[str]
    ids: list[str]
    speakers: list[str | None]
    source: str  # where it came from, for the report
    annotation_digest: str  # sha256 over the canonical (id, text) listing
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # clip id -> extra manifest keys

    def limited(self, limit: int | None) -> SpeechData:
        """The first `limit` clips (all when None)."""
        if limit is None or limit >= len(self.ids):
            return self
        keep = list(range(limit))
        return SpeechData(self.audio.subset(keep), self.texts[:limit], self.ids[:limit], self.speakers[:limit],
                          f"{self.source} (first {limit})", self.annotation_digest,
                          {i: a for i, a in self.attributes.items() if i in set(self.ids[:limit])})  # fmt: skip


def _digest(ids: list[str], texts: list[str]) -> str:
    import hashlib

    canonical = json.dumps(list(zip(ids, texts)), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _unique(ids: list[str], where: str) -> None:
    seen: set[str] = set()
    for clip in ids:
        if clip in seen:
            raise DataError(f"{where}: utterance id {clip!r} appears twice")
        seen.add(clip)


def load_librispeech(cfg) -> SpeechData:
    """`format: librispeech` (field `root`)."""
    root: Path = cfg.root
    files = sorted(root.rglob("*.trans.txt"))
    if not files:
        raise DataError(f"{root}: no *.trans.txt transcript files under data.root (expected LibriSpeech-style "
                        "folders: <speaker>/<chapter>/<speaker>-<chapter>.trans.txt)")  # fmt: skip
    paths, texts, ids, speakers = [], [], [], []
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{file}: cannot read the transcript file ({exc})") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            clip, _, text = line.strip().partition(" ")
            if not text.strip():
                raise DataError(f"{file}:{number}: expected '<utterance id> <transcript>', got {line.strip()!r}")
            paths.append(file.parent / f"{clip}.flac")
            ids.append(clip)
            texts.append(text.strip())
            speakers.append(clip.split("-")[0])
    _unique(ids, str(root))
    data = SpeechData(AudioSource(paths, ids), texts, ids, speakers, f"librispeech folders {root}", _digest(ids, texts))
    return data.limited(cfg.limit)


def read_nemo_manifest(path: Path, limit: int | None = None) -> SpeechData:
    """A NeMo JSONL manifest (see the module docstring)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from exc
    paths, texts, ids, speakers, attributes = [], [], [], [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: not a JSON object ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("audio_filepath"), str) \
                or not isinstance(row.get("text"), str):  # fmt: skip
            raise DataError(f"{path}:{number}: each line needs a string 'audio_filepath' and a string 'text'")
        clip_path = Path(row["audio_filepath"])
        clip_path = clip_path if clip_path.is_absolute() else path.parent / clip_path
        clip = str(row.get("id", clip_path.stem))
        paths.append(clip_path)
        ids.append(clip)
        texts.append(row["text"])
        speakers.append(str(row["speaker"]) if row.get("speaker") is not None else None)
        extra = {k: v for k, v in row.items() if k not in ("audio_filepath", "text", "id", "speaker")}
        if extra:
            attributes[clip] = extra
    if not ids:
        raise DataError(f"{path}: the manifest has no entries")
    _unique(ids, str(path))
    data = SpeechData(AudioSource(paths, ids), texts, ids, speakers, f"NeMo manifest {path}", _digest(ids, texts),
                      attributes)  # fmt: skip
    return data.limited(limit)


def load_nemo(cfg) -> SpeechData:
    """`format: nemo` (field `annotations`: the manifest)."""
    return read_nemo_manifest(cfg.annotations, cfg.limit)


def load_spoken_shapes(cfg) -> SpeechData:
    """`format: spoken_shapes`: the shipped set (`mmeval/assets/spoken-shapes/manifest.jsonl`)."""
    manifest = SPOKEN_SHAPES / "manifest.jsonl"
    if not manifest.exists():
        raise DataError(f"{manifest}: the spoken shapes set is missing (rebuild it with scripts/make_spoken_set.py)")
    data = read_nemo_manifest(manifest, cfg.limit)
    # named by the package path, not this checkout's: reports of the same set agree across machines
    data.source = data.source.replace(f"NeMo manifest {manifest}", "spoken_shapes (mmeval/assets/spoken-shapes)")
    return data


def load_hf_speech(cfg) -> SpeechData:
    """`format: hf_speech` (fields path, split, audio_column, text_column)."""
    import datasets

    from mmeval.data.hf import open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    for name, column in (("audio_column", cfg.audio_column), ("text_column", cfg.text_column)):
        if column not in dataset.column_names:
            raise DataError(f"{cfg.path}: data.{name} '{column}' is not a column; columns: "
                            f"{', '.join(dataset.column_names)}")  # fmt: skip
    if cfg.limit:
        dataset = dataset.select(range(min(cfg.limit, len(dataset))))
    if isinstance(dataset.features[cfg.audio_column], datasets.Audio):
        dataset = dataset.cast_column(cfg.audio_column, datasets.Audio(decode=False))
    paths, blobs, texts, ids = [], [], [], []
    id_column = "id" if "id" in dataset.column_names else None
    for row, (value, text) in enumerate(zip(dataset[cfg.audio_column], dataset[cfg.text_column])):
        where = f"{cfg.path}[row {row}]"
        if not isinstance(text, str):
            raise DataError(f"{where}: data.text_column '{cfg.text_column}' must hold strings, got {text!r}")
        if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
            raise DataError(f"{where}: data.audio_column '{cfg.audio_column}' must be an Audio column (bytes or path)")
        name, blob = value.get("path") or f"row-{row}.wav", value.get("bytes")
        # in-memory clips are named by row (and keep their file name's suffix, which picks the decoder)
        paths.append(Path(f"{cfg.path}[row {row}] {Path(name).name}") if blob is not None else Path(name))
        blobs.append(blob)
        texts.append(text)
        ids.append(str(dataset[row][id_column]) if id_column else str(row))
    _unique(ids, str(cfg.path))
    return SpeechData(AudioSource(paths, ids, blobs), texts, ids, [None] * len(ids), f"Hugging Face dataset {cfg.path}",
                      _digest(ids, texts))  # fmt: skip
