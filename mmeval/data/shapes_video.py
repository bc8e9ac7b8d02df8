"""The built-in synthetic video benchmark "shapes_video": one coloured shape moving across a plain background.

Each clip is a pure function of (seed, split, index): a shape (kind, colour) moves left, right, up or down,
slowly or fast; it may enter or leave the frame, change colour half-way, and a still shape of another kind may
stand by. Clips come with five varied captions, open-ended and multiple-choice questions (with types), a class
(the direction of motion) and attributes for bias slices. Splits are disjoint: a clip's content hash decides
the one split that may hold it (as for the image shapes, `mmeval/data/shapes.py`).

Clips are real MP4 files (H.264 via PyAV when the wheel has libx264, else MPEG-4 Part 2), 64x64, 32 frames at
10 fps with a keyframe every second, written on first use into `<cache>/shapes_video/<version>/<split>/` (atomic
renames, so concurrent runs are safe) and read back by the same decoder as any user video.

Motion-only queries (`motion_query`): a caption naming only colour, kind and direction, with the same caption
for the three other directions as counterfactuals: a model that ignores the frame order cannot tell them apart.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mmeval.data.shapes import BACKGROUNDS, COLORS, KIND_WORDS, KINDS, SPLIT_OFFSETS, _polygon
from mmeval.data.video_data import VideoCaptionData, VideoClassData, VideoQAData, VideoSource, listing_digest
from mmeval.errors import DataError

VERSION = "v2"  # bump when rendering or encoding changes: the cache folder is keyed by it (v2: mbtree off)
SIZE, N_FRAMES, FPS = 64, 32, 10
DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = {"slow": 0.35, "fast": 0.7}  # distance travelled over the clip, as a fraction of the frame side
EVENTS = ("none", "none", "enters", "leaves")  # drawn with these weights
RADIUS = 0.12  # the moving shape's radius, fraction of the side
_DIR_WORDS = {
    "left": ("to the left", "leftwards", "left"),
    "right": ("to the right", "rightwards", "right"),
    "up": ("up", "upwards", "towards the top"),
    "down": ("down", "downwards", "towards the bottom"),
}
_OPPOSITE = {"left": "right", "right": "left", "up": "bottom", "down": "top"}  # the side a shape enters from
_EXIT = {"left": "left", "right": "right", "up": "top", "down": "bottom"}
_SPEED_WORDS = {"slow": ("slowly", "gently"), "fast": ("quickly", "fast")}
CLASSNAMES = tuple(f"moving {d}" for d in DIRECTIONS)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides a clip's pixels and annotations."""

    kind: str
    color: str
    background: str
    direction: str
    speed: str
    event: str  # none | enters | leaves
    new_color: str | None  # the colour it turns half-way, or None
    cross: float  # the coordinate across the motion (fraction of the side)
    along: float  # start of the motion along its axis (events "none" only)
    still: tuple[str, str, float, float] | None  # (kind, colour, x, y) of a still shape, or None

    @property
    def tone(self) -> str:
        return BACKGROUNDS[self.background][0]


def _draw_spec(rng: random.Random) -> ClipSpec:
    color = rng.choice(tuple(COLORS))
    kind = rng.choice(KINDS)
    speed = rng.choice(tuple(SPEEDS))
    new_color = rng.choice([c for c in COLORS if c != color]) if rng.random() < 0.3 else None
    cross = round(rng.uniform(0.25, 0.75), 3)
    along = round(rng.uniform(RADIUS + 0.02, 1 - RADIUS - 0.02 - SPEEDS[speed]), 3)
    still = None
    if rng.random() < 0.4:
        other = rng.choice([k for k in KINDS if k != kind])
        far = 0.15 if cross > 0.5 else 0.85  # across the motion, away from the moving shape's path
        still = (
            other,
            rng.choice([c for c in COLORS if c not in (color, new_color)]),
            far,
            round(rng.uniform(0.2, 0.8), 3),
        )
    return ClipSpec(kind, color, rng.choice(tuple(BACKGROUNDS)), rng.choice(DIRECTIONS), speed, rng.choice(EVENTS),
                    new_color, cross, along, still)  # fmt: skip


def split_spec(split: str, seed: int, index: int) -> ClipSpec:
    """Clip `index` of a split: its own seed stream, redrawn until the content hash belongs to the split, so no
    clip is in two splits."""
    if split not in SPLIT_OFFSETS:
        raise DataError(f"unknown shapes_video split '{split}'; choose one of: {', '.join(SPLIT_OFFSETS)}")
    offset = SPLIT_OFFSETS[split]
    rng = random.Random(f"video-{seed * 10 + offset}-{index}")
    while True:
        spec = _draw_spec(rng)
        if hashlib.blake2b(repr(spec).encode(), digest_size=8).digest()[0] % len(SPLIT_OFFSETS) == offset:
            return spec


# --- rendering ---------------------------------------------------------------------------------------


def _track(spec: ClipSpec, t: float) -> tuple[float, float]:
    """The moving shape's centre (x, y, fractions of the side) at clip time t in [0, 1]."""
    distance = SPEEDS[spec.speed]
    if spec.event == "enters":
        begin = -RADIUS
    elif spec.event == "leaves":
        begin = 1 + RADIUS - distance
    else:
        begin = spec.along
    position = begin + distance * t  # along the axis, in the direction of motion
    if spec.direction in ("left", "up"):
        position = 1 - position
    return (position, spec.cross) if spec.direction in ("left", "right") else (spec.cross, position)


def _shape(draw: ImageDraw.ImageDraw, kind: str, color: str, cx: float, cy: float, r: float) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=COLORS[color])
    else:
        draw.polygon(_polygon(kind, cx, cy, r), fill=COLORS[color])


def render_frames(spec: ClipSpec, n_frames: int = N_FRAMES, size: int = SIZE) -> np.ndarray:
    """The clip as uint8 (T, size, size, 3) RGB (drawn at 4x and downsampled, for smooth edges)."""
    scale = size * 4
    frames = []
    for f in range(n_frames):
        t = f / max(n_frames - 1, 1)
        image = Image.new("RGB", (scale, scale), BACKGROUNDS[spec.background][1])
        draw = ImageDraw.Draw(image)
        if spec.still is not None:
            kind, color, x, y = spec.still
            _shape(draw, kind, color, x * scale, y * scale, 0.09 * scale)
        x, y = _track(spec, t)
        color = spec.new_color if spec.new_color is not None and t >= 0.5 else spec.color
        _shape(draw, spec.kind, color, x * scale, y * scale, RADIUS * scale)
        frames.append(np.asarray(image.resize((size, size), Image.Resampling.BOX)))
    return np.stack(frames)


def encoder_name() -> str:
    """libx264 when the PyAV wheel has it (it does on PyPI), else FFmpeg's native MPEG-4 Part 2 encoder."""
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (ValueError, av.FFmpegError):  # av raises UnknownCodecError (a ValueError) or an FFmpegError, by version
        return "mpeg4"


def write_mp4(frames: np.ndarray, path: Path, fps: int = FPS, gop: int | None = None, codec: str | None = None) -> None:
    """Encode uint8 (T, H, W, 3) frames as an MP4 at `path` (atomically: a temporary file renamed into place).
    One encoder thread and x264's macroblock tree off: with it on, x264 gave different bytes for the same frames
    from run to run on these tiny clips (2 distinct encodings in 6 tries; 1 in 16 with mbtree=0), and the
    demo's numbers moved in the third decimal. The same bytes on every machine with the same PyAV wheel."""
    import av

    codec = codec or encoder_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.codec_context.thread_count = 1
            x264 = {"crf": "18", "preset": "medium", "x264-params": "mbtree=0"}
            stream.options = {"g": str(gop or fps), **(x264 if codec == "libx264" else {})}
            if codec != "libx264":
                stream.options["q:v"] = "3"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            container.mux(stream.encode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_folder() -> Path:
    """`<mmeval cache>/shapes_video/<VERSION>-<encoder>` (the cache folder of `runtime.cache_dir`'s default)."""
    from mmeval.engine.cache import default_cache_dir

    return default_cache_dir() / "shapes_video" / f"{VERSION}-{encoder_name()}"


def clip_paths(
    split: str, n_videos: int, seed: int = 0, folder: Path | None = None
) -> tuple[list[ClipSpec], list[Path]]:
    """The specs of the split's first `n_videos` clips and their MP4 files, written now if missing."""
    if n_videos < 1:
        raise DataError(f"shapes_video: n_videos must be at least 1, got {n_videos}")
    folder = Path(folder) if folder is not None else default_folder()
    specs = [split_spec(split, seed, i) for i in range(n_videos)]
    paths = []
    for i, spec in enumerate(specs):
        path = (
            folder / f"seed{seed}" / split / f"{split}-{i:05d}-{hashlib.sha1(repr(spec).encode()).hexdigest()[:8]}.mp4"
        )
        if not path.exists():
            try:
                write_mp4(render_frames(spec), path)
            except OSError as exc:
                raise DataError(f"shapes_video: cannot write the clip {path} ({exc}); set runtime.cache_dir "
                                "to a writable folder") from exc  # fmt: skip
        paths.append(path)
    return specs, paths


# --- annotations -------------------------------------------------------------------------------------


def _name(spec: ClipSpec, rng: random.Random) -> str:
    return f"{spec.color} {rng.choice(KIND_WORDS[spec.kind])}"


def clip_captions(spec: ClipSpec) -> list[str]:
    """Five different captions, all true of the clip, each naming the shape's colour and kind and the direction."""
    rng = random.Random(repr(spec))
    d = lambda: rng.choice(_DIR_WORDS[spec.direction])
    s = lambda: rng.choice(_SPEED_WORDS[spec.speed])
    bg = spec.background
    captions = [
        f"a {_name(spec, rng)} moves {d()}",
        f"a {_name(spec, rng)} moves {s()} {d()}",
        f"on a {bg} background, a {_name(spec, rng)} slides {d()}",
    ]
    if spec.event == "enters":
        captions.append(f"a {_name(spec, rng)} enters from the {_OPPOSITE[spec.direction]} and moves {d()}")
    elif spec.event == "leaves":
        captions.append(f"a {_name(spec, rng)} moves {d()} and leaves the frame at the {_EXIT[spec.direction]}")
    else:
        captions.append(f"a {_name(spec, rng)} travels {d()} {s()} and stays in view")
    if spec.new_color is not None:
        captions.append(f"a {_name(spec, rng)} moves {d()} and turns {spec.new_color}")
    elif spec.still is not None:
        captions.append(f"a {spec.still[1]} {spec.still[0]} stays still while a {_name(spec, rng)} moves {d()}")
    else:
        captions.append(f"the {_name(spec, rng)} keeps its colour as it moves {d()}")
    return [c[0].upper() + c[1:] + "." for c in captions]


def motion_query(spec: ClipSpec) -> tuple[str, list[str]]:
    """A caption naming only colour, kind and direction, and the same caption for the other three directions."""
    words = {d: _DIR_WORDS[d][0] for d in DIRECTIONS}
    text = f"A {spec.color} {spec.kind} moves {{}}."
    return text.format(words[spec.direction]), [text.format(words[d]) for d in DIRECTIONS if d != spec.direction]


def clip_attributes(spec: ClipSpec) -> dict[str, str | int]:
    """Per-clip annotations kept for bias slices (plain str / int values)."""
    return {"direction": spec.direction, "speed": spec.speed, "event": spec.event, "background": spec.tone,
            "color": spec.color, "kind": spec.kind, "color_change": "yes" if spec.new_color else "no",
            "n_shapes": 1 + (spec.still is not None)}  # fmt: skip


def clip_questions(spec: ClipSpec) -> list[tuple[str, list[str], str]]:
    """Open-ended (question, acceptable answers, type) about the clip; answers are lower case single words."""
    who = f"the {spec.kind}" if spec.new_color else f"the {spec.color} {spec.kind}"
    speed = ["slowly", "slow"] if spec.speed == "slow" else ["quickly", "fast"]
    qs = [
        (f"Which way does {who} move?", [spec.direction], "direction"),
        (f"Does {who} move slowly or quickly?", speed, "speed"),
        ("What shape is moving?", [spec.kind], "shape"),
        (f"Does {who} change colour?", ["yes" if spec.new_color else "no"], "yes/no"),
    ]
    if spec.new_color:
        qs.append((f"What colour does {who} turn?", [spec.new_color], "color"))
    if spec.event != "none":
        verb = "enter" if spec.event == "enters" else "leave"
        side = _OPPOSITE[spec.direction] if spec.event == "enters" else _EXIT[spec.direction]
        qs.append((f"From which side does {who} {verb} the frame?" if verb == "enter" else
                   f"At which side does {who} leave the frame?", [side], "event"))  # fmt: skip
    return qs


def clip_choice(spec: ClipSpec) -> tuple[str, list[str], str]:
    """A multiple-choice question (question, the four directions in a seeded order, the correct one)."""
    rng = random.Random("choice-" + repr(spec))
    choices = list(DIRECTIONS)
    rng.shuffle(choices)
    who = f"the {spec.kind}" if spec.new_color else f"the {spec.color} {spec.kind}"
    return f"Which way does {who} move?", choices, spec.direction


# --- the data forms ----------------------------------------------------------------------------------


def _note(split: str, n: int, seed: int) -> str:
    return f"shapes_video(split={split}, n={n}, seed={seed}, {SIZE}x{SIZE}, {N_FRAMES} frames at {FPS} fps, {VERSION})"


def load_shapes_video_captions(split: str = "test", n_videos: int = 200, seed: int = 0,
                               folder: Path | None = None) -> VideoCaptionData:  # fmt: skip
    """`n_videos` clips of one split with five captions each (retrieval, captioning)."""
    specs, paths = clip_paths(split, n_videos, seed, folder)
    ids = [p.stem for p in paths]
    captions = [clip_captions(s) for s in specs]
    return VideoCaptionData(VideoSource(paths, ids), captions, ids,
                            {i: clip_attributes(s) for i, s in zip(ids, specs)}, _note(split, n_videos, seed),
                            listing_digest(VERSION, ids, captions))  # fmt: skip


def load_shapes_video_qa(split: str = "test", n_videos: int = 200, seed: int = 0, folder: Path | None = None,
                         style: str = "open") -> VideoQAData:  # fmt: skip
    """Questions about `n_videos` clips: `open` (4-6 open-ended questions per clip, typed) or `choice` (one
    four-way multiple-choice direction question per clip)."""
    if style not in ("open", "choice"):
        raise DataError(f"shapes_video: style must be open or choice, got {style!r}")
    specs, paths = clip_paths(split, n_videos, seed, folder)
    ids = [p.stem for p in paths]
    questions, answers, types, index, choices, qids = [], [], [], [], [], []
    for v, spec in enumerate(specs):
        items = clip_questions(spec) if style == "open" else [clip_choice(spec)]
        for k, item in enumerate(items):
            if style == "open":
                question, answer, kind = item
            else:
                question, options, correct = item
                answer, kind = [correct], "direction"
                choices.append(options)
            questions.append(question)
            answers.append(answer)
            types.append(kind)
            index.append(v)
            qids.append(f"{ids[v]}-q{k}")
    return VideoQAData(VideoSource(paths, ids), questions, answers, types, index,
                       choices if style == "choice" else None, ids, qids,
                       {i: clip_attributes(s) for i, s in zip(ids, specs)}, _note(split, n_videos, seed),
                       listing_digest(VERSION, style, qids, questions, answers, choices))  # fmt: skip


def load_shapes_video_classes(split: str = "test", n_videos: int = 200, seed: int = 0,
                              folder: Path | None = None) -> VideoClassData:  # fmt: skip
    """`n_videos` clips labelled by the direction of motion (classes "moving left", ... "moving down")."""
    specs, paths = clip_paths(split, n_videos, seed, folder)
    ids = [p.stem for p in paths]
    labels = [DIRECTIONS.index(s.direction) for s in specs]
    return VideoClassData(VideoSource(paths, ids), labels, list(CLASSNAMES), ids,
                          {i: clip_attributes(s) for i, s in zip(ids, specs)}, _note(split, n_videos, seed),
                          listing_digest(VERSION, ids, labels))  # fmt: skip
