"""Questions about the synthetic shapes scenes, with answers true by construction (the `shapes_vqa` format).

Each scene gets questions of the three VQA answer types, every one answerable from the image alone:

    yes/no   "is there a red circle?"                 (asked about a shape present or absent, half each)
    number   "how many shapes are there?", "how many blue shapes are there?", "how many stars are there?"
    other    "what color is the circle?" (only when the scene has exactly one circle), "what shape is the
             green one?" (exactly one green shape), "is the star small or large?", "what color is the background?"

Questions are a pure function of (scene, count): the same scene always gets the same questions. The ten
"human" answers of a question are its one true answer ten times (the VQA metric's worked form: a correct
answer scores 1, any other 0). Answers are words the VQA normalisation leaves alone ("2", not "two").
"""

from __future__ import annotations

import hashlib
import json
import random

from mmeval.data.shapes import BACKGROUNDS, COLORS, KINDS, Scene, ShapesImages, scene_attributes, split_scene
from mmeval.data.vqa_data import N_ANSWERS, Question, QuestionData
from mmeval.errors import DataError

_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars", "cross": "crosses"}


def _color_word(rng: random.Random) -> str:
    return rng.choice(("color", "colour"))


def _is_there(scene: Scene, rng: random.Random) -> tuple[str, str, str]:
    present = {(s.color, s.kind) for s in scene.shapes}
    if rng.random() < 0.5:
        color, kind = rng.choice(sorted(present))
    else:
        absent = sorted({(c, k) for c in COLORS for k in KINDS} - present)
        color, kind = rng.choice(absent)
    article = "an" if color[0] in "aeiou" else "a"
    answer = "yes" if (color, kind) in present else "no"
    return f"is there {article} {color} {kind}?", answer, "yes/no"


def _how_many(scene: Scene, rng: random.Random) -> tuple[str, str, str]:
    which = rng.choice(("all", "color", "kind"))
    if which == "all":
        return rng.choice(("how many shapes are there?", "how many objects are in the image?")), \
            str(len(scene.shapes)), "number"  # fmt: skip
    if which == "color":
        color = rng.choice(tuple(COLORS))
        count = sum(s.color == color for s in scene.shapes)
        return f"how many {color} shapes are there?", str(count), "number"
    kind = rng.choice(KINDS)
    return f"how many {_PLURALS[kind]} are there?", str(sum(s.kind == kind for s in scene.shapes)), "number"


def _attribute(scene: Scene, rng: random.Random) -> tuple[str, str, str] | None:
    """A question about one shape, named by what makes it unique in the scene (None if nothing does)."""
    kinds = [s.kind for s in scene.shapes]
    colors = [s.color for s in scene.shapes]
    asks = []
    for shape in scene.shapes:
        if kinds.count(shape.kind) == 1:
            asks.append((f"what {_color_word(rng)} is the {shape.kind}?", shape.color))
            asks.append((f"is the {shape.kind} small or large?", shape.size))
        if colors.count(shape.color) == 1:
            asks.append((rng.choice((f"what shape is the {shape.color} one?", f"which shape is {shape.color}?")),
                         shape.kind))  # fmt: skip
    if not asks:
        return None
    question, answer = rng.choice(asks)
    return question, answer, "other"


def _other(scene: Scene, rng: random.Random) -> tuple[str, str, str]:
    """About one shape's colour, kind or size (three times in four, when one is unique) or the background."""
    asked = _attribute(scene, rng) if rng.random() < 0.75 else None
    return asked or (f"what {_color_word(rng)} is the background?", scene.background, "other")


_KINDS_OF_QUESTION = (_is_there, _how_many, _other)  # one per VQA answer type


def scene_questions(scene: Scene, count: int) -> list[tuple[str, str, str]]:
    """`count` distinct (question, answer, answer type) about `scene`, cycling through the answer types."""
    rng = random.Random("questions-" + repr(scene))
    found: list[tuple[str, str, str]] = []
    for attempt in range(20 * count):
        if len(found) == count:
            break
        asked = _KINDS_OF_QUESTION[len(found) % len(_KINDS_OF_QUESTION)](scene, rng)
        if asked[0] not in {q for q, _, _ in found}:
            found.append(asked)
    return found


def answer_words() -> list[str]:
    """Every answer a shapes question can have (for a model's vocabulary)."""
    return ["yes", "no", "0", "1", "2", "3", "small", "large", *COLORS, *KINDS, *BACKGROUNDS]


def load_shapes_vqa(split: str = "test", n_images: int = 500, seed: int = 0, image_size: int = 64,
                    questions_per_image: int = 3) -> QuestionData:  # fmt: skip
    """`questions_per_image` questions about each of `n_images` scenes of one split."""
    if n_images < 1 or questions_per_image < 1:
        raise DataError(f"shapes_vqa: n_images and questions_per_image must be at least 1, "
                        f"got {n_images} and {questions_per_image}")  # fmt: skip
    scenes = [split_scene(split, seed, i) for i in range(n_images)]
    questions = []
    for image, scene in enumerate(scenes):
        for n, (text, answer, answer_type) in enumerate(scene_questions(scene, questions_per_image)):
            questions.append(Question(question_id=image * 100 + n, image=image, text=text,
                                      answers=[answer] * N_ANSWERS, answer_type=answer_type))  # fmt: skip
    listing = [[q.question_id, q.text, q.answers[0], q.answer_type] for q in questions]
    return QuestionData(
        image_ids=[f"{split}-{i:06d}" for i in range(n_images)],
        images=ShapesImages(scenes, split, image_size),
        questions=questions,
        source=f"shapes_vqa(split={split}, n={n_images}, seed={seed}, size={image_size}, "
        f"questions={questions_per_image})",
        annotation_digest=hashlib.sha256(json.dumps(listing).encode()).hexdigest(),
        attributes={f"{split}-{i:06d}": scene_attributes(scene) for i, scene in enumerate(scenes)},
    )


def shapes_vqa_from_config(cfg) -> QuestionData:
    """Registry entry point for `format: shapes_vqa` (fields split, n_images, seed, image_size, limit)."""
    n_images = min(cfg.n_images, cfg.limit) if cfg.limit else cfg.n_images
    return load_shapes_vqa(cfg.split or "test", n_images, cfg.seed, cfg.image_size)
