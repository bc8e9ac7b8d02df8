"""The built-in synthetic benchmark "shapes": scenes of one to three coloured shapes, five captions each.

mmeval generates it itself, so it needs no files or network and every run sees the same data. Everything is
a pure function of (seed, index): scene i is the same whatever n is and whichever process builds it, and
images are rendered lazily, so building 1000 scenes with their captions takes milliseconds.

Scenes place shapes in distinct cells of a 3x3 grid (with a little jitter), so captions can name positions
("in the top left corner") and relations ("to the left of") that are true by construction. Captions are
deliberately ambiguous across scenes (many scenes hold "a red circle"), so perfect recall is impossible.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from mmeval.data.retrieval_data import RetrievalData
from mmeval.errors import DataError

KINDS = ("circle", "square", "triangle", "star", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
}
BACKGROUNDS: dict[str, tuple[str, tuple[int, int, int]]] = {  # name -> (tone, RGB)
    "white": ("light", (255, 255, 255)),
    "light gray": ("light", (212, 212, 212)),
    "beige": ("light", (238, 228, 200)),
    "black": ("dark", (0, 0, 0)),
    "dark gray": ("dark", (64, 64, 64)),
    "navy": ("dark", (24, 30, 72)),
}
SIZES = {"small": 0.075, "large": 0.135}  # radius as a fraction of the image side
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}

# Words a caption may use for a kind; every caption names each shape's colour and one of these words.
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "dot"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
}
_CELL_PHRASES = {  # (row, col) -> ways to say where a shape is
    (0, 0): ("in the top left corner", "at the top left", "in the upper left"),
    (0, 1): ("at the top", "at the top center", "in the upper middle"),
    (0, 2): ("in the top right corner", "at the top right", "in the upper right"),
    (1, 0): ("on the left", "at the left side", "in the middle left"),
    (1, 1): ("in the center", "in the middle", "at the center"),
    (1, 2): ("on the right", "at the right side", "in the middle right"),
    (2, 0): ("in the bottom left corner", "at the bottom left", "in the lower left"),
    (2, 1): ("at the bottom", "at the bottom center", "in the lower middle"),
    (2, 2): ("in the bottom right corner", "at the bottom right", "in the lower right"),
}
_NUMBERS = {1: "one", 2: "two", 3: "three"}
_JITTER = 0.025  # max offset of a shape from its cell centre, as a fraction of the image side


@dataclass(frozen=True)
class Shape:
    """One shape: what it is, and where it sits (grid cell plus a small offset, in image fractions)."""

    kind: str
    color: str
    size: str
    row: int
    col: int
    dx: float
    dy: float


@dataclass(frozen=True)
class Scene:
    """A rendered-on-demand scene: shapes in distinct grid cells on a plain background."""

    shapes: tuple[Shape, ...]
    background: str  # a key of BACKGROUNDS

    @property
    def tone(self) -> str:
        return BACKGROUNDS[self.background][0]


def _draw_scene(rng: random.Random) -> Scene:
    n_shapes = rng.choice((1, 2, 2, 3, 3))
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], n_shapes)
    shapes = tuple(
        Shape(
            kind=rng.choice(KINDS),
            color=rng.choice(tuple(COLORS)),
            size=rng.choice(tuple(SIZES)),
            row=row,
            col=col,
            dx=round(rng.uniform(-_JITTER, _JITTER), 4),
            dy=round(rng.uniform(-_JITTER, _JITTER), 4),
        )
        for row, col in cells
    )
    return Scene(shapes=shapes, background=rng.choice(tuple(BACKGROUNDS)))


def make_scene(seed: int, index: int) -> Scene:
    """Scene `index` of the stream `seed`; a pure function of the two numbers."""
    return _draw_scene(random.Random(f"{seed}-{index}"))


def _owner(scene: Scene) -> int:
    """Which split (0, 1, 2) may hold this exact scene: a hash of its content."""
    return hashlib.blake2b(repr(scene).encode(), digest_size=8).digest()[0] % len(SPLIT_OFFSETS)


def split_scene(split: str, seed: int, index: int) -> Scene:
    """Scene `index` of a split. Each split has its own seed stream (seed * 10 + offset), and draws are
    repeated until the scene's content hash belongs to the split, so no identical scene is in two splits,
    however many scenes each holds."""
    if split not in SPLIT_OFFSETS:
        raise DataError(f"unknown shapes split '{split}'; choose one of: {', '.join(SPLIT_OFFSETS)}")
    offset = SPLIT_OFFSETS[split]
    rng = random.Random(f"{seed * 10 + offset}-{index}")
    while True:
        scene = _draw_scene(rng)
        if _owner(scene) == offset:
            return scene


# --- rendering ---------------------------------------------------------------------------------------


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if kind == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if kind == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if kind == "cross":
        arm, half = r, r * 0.35
        quarter = [(-half, -arm), (half, -arm), (half, -half)]  # the top arm and the corner after it
        points = []
        for _ in range(4):  # four quarter turns, clockwise on screen
            points += [(cx + x, cy + y) for x, y in quarter]
            quarter = [(-y, x) for x, y in quarter]
        return points
    raise ValueError(f"no polygon for kind '{kind}'")


def render_scene(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a `size` x `size` RGB image (drawn at 4x and downsampled, for smooth edges)."""
    scale = size * 4
    image = Image.new("RGB", (scale, scale), BACKGROUNDS[scene.background][1])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        cx = ((shape.col + 0.5) / 3 + shape.dx) * scale
        cy = ((shape.row + 0.5) / 3 + shape.dy) * scale
        r = SIZES[shape.size] * scale
        fill = COLORS[shape.color]
        if shape.kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(_polygon(shape.kind, cx, cy, r), fill=fill)
    return image.resize((size, size), Image.Resampling.BOX)


# --- captions ----------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(shape: Shape, rng: random.Random, size: bool) -> str:
    """'a small red circle' / 'an orange box' (the kind word is picked among its synonyms)."""
    words = [shape.size] if size else []
    words += [shape.color, rng.choice(KIND_WORDS[shape.kind])]
    return _article(" ".join(words))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _where(shape: Shape, rng: random.Random) -> str:
    return rng.choice(_CELL_PHRASES[(shape.row, shape.col)])


def _relation(a: Shape, b: Shape) -> str:
    """How `a` sits relative to `b`; distinct cells guarantee one of these is true."""
    if a.col != b.col:
        return "to the left of" if a.col < b.col else "to the right of"
    return "above" if a.row < b.row else "below"


def _background_phrase(scene: Scene, rng: random.Random) -> str:
    name = rng.choice((scene.background, scene.tone))
    return rng.choice(("on a {} background", "against a {} background", "over a {} backdrop")).format(name)


def _t_list(scene: Scene, rng: random.Random) -> str:
    shapes = rng.sample(scene.shapes, len(scene.shapes))
    lead = rng.choice(("", "a picture of ", "an image showing ", "there is "))
    return lead + _join([_noun(s, rng, size=True) for s in shapes])


def _t_positions(scene: Scene, rng: random.Random) -> str:
    shapes = rng.sample(scene.shapes, len(scene.shapes))
    return _join([f"{_noun(s, rng, size=rng.random() < 0.5)} {_where(s, rng)}" for s in shapes])


def _t_count(scene: Scene, rng: random.Random) -> str:
    n = len(scene.shapes)
    nouns = _join([_noun(s, rng, size=False) for s in rng.sample(scene.shapes, n)])
    if n == 1:
        return f"a single shape {_background_phrase(scene, rng)}: {nouns}"
    return f"{_NUMBERS[n]} shapes {_background_phrase(scene, rng)}: {nouns}"


def _t_relation(scene: Scene, rng: random.Random) -> str:
    shapes = rng.sample(scene.shapes, len(scene.shapes))
    first = _noun(shapes[0], rng, size=rng.random() < 0.5)
    if len(shapes) == 1:
        return f"{first} {_where(shapes[0], rng)} of the image"
    text = f"{first} {_relation(shapes[0], shapes[1])} {_noun(shapes[1], rng, size=False)}"
    if len(shapes) == 3:
        text += f", and {_noun(shapes[2], rng, size=False)} {_where(shapes[2], rng)}"
    return text


def _t_background(scene: Scene, rng: random.Random) -> str:
    nouns = _join([_noun(s, rng, size=True) for s in rng.sample(scene.shapes, len(scene.shapes))])
    return f"{nouns} {_background_phrase(scene, rng)}"


def _t_sizes(scene: Scene, rng: random.Random) -> str:
    n = len(scene.shapes)
    lead = rng.choice(("this image has", "we see", "the scene contains"))
    parts = [f"{_noun(s, rng, size=False)} that is {s.size}" for s in rng.sample(scene.shapes, n)]
    return f"{lead} {_NUMBERS[n]} {'object' if n == 1 else 'objects'}: {_join(parts)}"


_TEMPLATES = (_t_list, _t_positions, _t_count, _t_relation, _t_background, _t_sizes)


def scene_captions(scene: Scene) -> list[str]:
    """Five different captions, all true of the scene, each naming every shape's colour and kind."""
    rng = random.Random(repr(scene))
    templates = [_t_positions, *rng.sample([t for t in _TEMPLATES if t is not _t_positions], 4)]
    captions = [template(scene, rng) for template in templates]
    rng.shuffle(captions)
    return [c[0].upper() + c[1:] + "." for c in captions]


def scene_attributes(scene: Scene) -> dict[str, str | int]:
    """Per-image annotations kept for bias analysis (plain str / int values)."""
    weight = {"small": 1, "large": 3}
    area: dict[str, int] = {}
    for shape in scene.shapes:
        area[shape.color] = area.get(shape.color, 0) + weight[shape.size]
    dominant = min(area, key=lambda color: (-area[color], color))  # largest area, ties alphabetical
    return {
        "background": scene.tone,
        "background_color": scene.background,
        "n_shapes": len(scene.shapes),
        "dominant_color": dominant,
        "n_colors": len(area),
    }


# --- the RetrievalData form ----------------------------------------------------------------------------


class ShapesImages:
    """The `ImageSource` for a list of scenes: renders image i on demand (picklable, no files)."""

    def __init__(self, scenes: list[Scene], split: str, image_size: int = 64):
        self.scenes = list(scenes)
        self.split = split
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.scenes)

    def describe(self, index: int) -> str:
        return f"shapes[{self.split}:{index}]"

    def load(self, index: int) -> tuple[bytes, Image.Image]:
        image = render_scene(self.scenes[index], self.image_size)
        return image.tobytes(), image

    def fingerprint(self) -> str:
        """The scenes and the rendering size (and this module's drawing code, via a version string)."""
        return hashlib.sha256(f"shapes-v1|{self.image_size}|{self.scenes!r}".encode()).hexdigest()


def load_shapes(split: str = "test", n_images: int = 1000, seed: int = 0, image_size: int = 64) -> RetrievalData:
    """`n_images` scenes of one split with five captions each, as retrieval data (images rendered lazily)."""
    if n_images < 1:
        raise DataError(f"shapes: n_images must be at least 1, got {n_images}")
    scenes = [split_scene(split, seed, i) for i in range(n_images)]
    image_ids = [f"{split}-{i:06d}" for i in range(n_images)]
    texts: list[str] = []
    text_image_index: list[int] = []
    listing = []
    for i, (image_id, scene) in enumerate(zip(image_ids, scenes)):
        captions = scene_captions(scene)
        texts += captions
        text_image_index += [i] * len(captions)
        listing.append([image_id, captions])
    canonical = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
    return RetrievalData(
        image_ids=image_ids,
        images=ShapesImages(scenes, split, image_size),
        texts=texts,
        text_image_index=text_image_index,
        source=f"shapes(split={split}, n={n_images}, seed={seed}, size={image_size})",
        annotation_digest=hashlib.sha256(canonical.encode()).hexdigest(),
        attributes={image_id: scene_attributes(scene) for image_id, scene in zip(image_ids, scenes)},
    )
