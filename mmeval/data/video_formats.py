"""Video annotation formats of the public benchmarks: MSR-VTT (JSON, 1k-A CSV), MSVD (text or CSV), DiDeMo.

Each loader is `load_<format>(cfg, want)`: `cfg` the benchmark's `data` config, `want` the form the task reads
("captions", "questions", "choice_questions" or "classes"); these formats hold captions only, and asking them for
another form is a clear error. Videos are resolved in `data.videos` by `data.video_pattern`; a file that is not
there under that name is looked for with the usual video suffixes (DiDeMo's ids keep their original suffix
while the released files are often .mp4). Missing files are not an error here: they are reported when decoded
(`data.on_bad_input`), as missing audio clips are.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mmeval.data.video_data import VideoCaptionData, VideoSource, listing_digest
from mmeval.errors import DataError

SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")


def resolve_video(folder: Path | None, name: str, base: Path | None = None) -> Path:
    """`folder / name` (or `base / name`, or `name` if absolute), else a file of the same stem with a known video
    suffix (the first one found), else `folder / name` as it is (reported missing when decoded)."""
    path = Path(name)
    if not path.is_absolute():
        path = (folder or base or Path(".")) / path
    if path.exists():
        return path
    for suffix in SUFFIXES:
        for candidate in (path.with_suffix(suffix), path.with_name(path.name + suffix)):
            if candidate.exists():
                return candidate
    return path


def only_captions(fmt: str, want: str) -> None:
    if want != "captions":
        raise DataError(f"data format '{fmt}' holds captions, not {want.replace('_', ' ')}; "
                        "use video_manifest or hf_video for questions and class labels")  # fmt: skip


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the annotation file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (or TSV, by suffix) with a header line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV file ({exc})") from exc


def require_columns(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    if not rows:
        raise DataError(f"{path}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, rows[0]))})")


def captioned(fmt: str, cfg, order: list[str], captions: dict[str, list[str]], files: dict[str, str], note: str,
              attributes: dict[str, dict[str, Any]] | None = None) -> VideoCaptionData:  # fmt: skip
    """The caption form of videos `order` (ids), each with at least one caption."""
    empty = [v for v in order if not captions.get(v)]
    if empty:
        raise DataError(f"{note}: {len(empty)} video(s) without a caption, e.g. {empty[0]!r}")
    if not order:
        raise DataError(f"{note}: no videos")
    paths = [resolve_video(cfg.videos, files[v]) for v in order]
    caps = [captions[v] for v in order]
    return VideoCaptionData(VideoSource(paths, order), caps, list(order), attributes or {}, note,
                            listing_digest(fmt, order, caps))  # fmt: skip


def load_msrvtt(cfg, want: str) -> VideoCaptionData:
    """MSR-VTT: `annotations` ({"videos": [{"video_id", "split", ...}], "sentences": [{"video_id", "caption"}]},
    videos of `data.split` if set, all captions each) and/or `split_csv` (the 1k-A test list
    `key,vid_key,video_id,sentence`: those videos in that order, the CSV's one sentence each, as CLIP4Clip and
    the papers that report "1k-A" score it)."""
    only_captions("msrvtt", want)
    pattern = cfg.video_pattern or "{video_id}.mp4"
    attributes: dict[str, dict[str, Any]] = {}
    captions: dict[str, list[str]] = {}
    order: list[str] = []
    if cfg.annotations is not None:
        raw = read_json(cfg.annotations)
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("videos"), list)
            or not isinstance(raw.get("sentences"), list)
        ):
            raise DataError(f'{cfg.annotations}: expected MSR-VTT\'s {{"videos": [...], "sentences": [...]}}')
        videos = [v for v in raw["videos"] if isinstance(v, dict) and "video_id" in v]
        splits = sorted({str(v.get("split")) for v in videos})
        if cfg.split is not None and cfg.split_csv is None:
            videos = [v for v in videos if str(v.get("split")) == cfg.split]
            if not videos:
                raise DataError(f"{cfg.annotations}: no videos in split '{cfg.split}' (splits: {', '.join(splits)})")
        order = [str(v["video_id"]) for v in videos]
        attributes = {str(v["video_id"]): {"category": v["category"]} for v in videos if "category" in v}
        for sentence in raw["sentences"]:
            if isinstance(sentence, dict) and isinstance(sentence.get("caption"), str):
                captions.setdefault(str(sentence.get("video_id")), []).append(sentence["caption"])
        note = f"MSR-VTT {cfg.annotations.name}" + (f", split {cfg.split}" if cfg.split else ", every split")
    if cfg.split_csv is not None:
        rows = read_csv(cfg.split_csv)
        require_columns(cfg.split_csv, rows, ("video_id", "sentence"))
        order = [row["video_id"] for row in rows]
        captions = {row["video_id"]: [row["sentence"]] for row in rows}
        note = f"MSR-VTT 1k-A list {cfg.split_csv.name} (one sentence per video, as in the 1k-A protocol)"
    if cfg.annotations is None and cfg.split_csv is None:
        raise DataError("msrvtt: set data.annotations (the MSR-VTT JSON) and/or data.split_csv (the 1k-A CSV)")
    files = {v: pattern.format(video_id=v) for v in order}
    return captioned("msrvtt", cfg, order, captions, files, note, attributes)


def load_msvd(cfg, want: str) -> VideoCaptionData:
    """MSVD: a text file of `video_id caption` lines (as the common `AllVideoDescriptions.txt` /
    `annotations.txt` releases), or the corpus CSV (`VideoID,Start,End,...,Language,Description`, English rows,
    video id `VideoID_Start_End`). Videos in order of first appearance, every caption each."""
    only_captions("msvd", want)
    path = cfg.annotations
    captions: dict[str, list[str]] = {}
    if path.suffix.lower() in (".csv", ".tsv"):
        rows = read_csv(path)
        require_columns(path, rows, ("VideoID", "Start", "End", "Description"))
        for row in rows:
            if row.get("Language", "English") == "English" and (row.get("Description") or "").strip():
                captions.setdefault(f"{row['VideoID']}_{row['Start']}_{row['End']}", []).append(
                    row["Description"].strip()
                )
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read the annotation file ({exc})") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            video, _, caption = line.strip().partition(" ")
            if not caption.strip():
                raise DataError(f"{path}: line {number}: expected `video_id caption`, got {line.strip()!r}")
            captions.setdefault(video, []).append(caption.strip())
    order = list(captions)
    pattern = cfg.video_pattern or "{video_id}.avi"
    return captioned("msvd", cfg, order, captions, {v: pattern.format(video_id=v) for v in order},
                     f"MSVD {path.name}, every video in the file")  # fmt: skip


def load_didemo(cfg, want: str) -> VideoCaptionData:
    """DiDeMo: a JSON list of moments {"video", "description", "times", ...}; paragraph-to-video retrieval as in
    CLIP4Clip: one caption per video, all its descriptions joined by spaces in file order."""
    only_captions("didemo", want)
    raw = read_json(cfg.annotations)
    if not isinstance(raw, list):
        raise DataError(f'{cfg.annotations}: expected a JSON list of {{"video", "description", ...}} objects')
    parts: dict[str, list[str]] = {}
    for k, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("video"), str)
            or not isinstance(item.get("description"), str)
        ):
            raise DataError(f'{cfg.annotations}: item {k}: expected {{"video": str, "description": str, ...}}')
        parts.setdefault(item["video"], []).append(item["description"].strip())
    order = list(parts)
    pattern = cfg.video_pattern or "{video}"
    return captioned("didemo", cfg, order, {v: [" ".join(p)] for v, p in parts.items()},
                     {v: pattern.format(video=v, video_id=v) for v in order},
                     f"DiDeMo {cfg.annotations.name}: paragraphs (all descriptions of a video joined)")  # fmt: skip
