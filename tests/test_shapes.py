"""The synthetic shapes benchmark: determinism, split disjointness, captions true of their scene."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pickle
import re

import numpy as np
import pytest

from mmeval.data.shapes import (
    _CELL_PHRASES,
    BACKGROUNDS,
    COLORS,
    KIND_WORDS,
    ShapesImages,
    load_shapes,
    make_scene,
    render_scene,
    scene_attributes,
    scene_captions,
    split_scene,
)
from mmeval.errors import DataError


def _scene_in_fresh_process(args: tuple[str, int, int]) -> str:
    return repr(split_scene(*args))


def test_scene_i_is_the_same_whatever_n_and_whichever_call():
    small = load_shapes("test", n_images=10, seed=3)
    large = load_shapes("test", n_images=200, seed=3)
    assert large.image_ids[:10] == small.image_ids
    assert large.texts[:50] == small.texts
    assert [large.images.load(i)[0] for i in range(10)] == [small.images.load(i)[0] for i in range(10)]
    assert make_scene(5, 17) == make_scene(5, 17)
    assert make_scene(5, 17) != make_scene(5, 18) and make_scene(5, 17) != make_scene(6, 17)


def test_scenes_do_not_depend_on_the_process():
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: a different hash seed, no shared state
    with ctx.Pool(1) as pool:
        remote = pool.map(_scene_in_fresh_process, [("val", 1, 7), ("test", 0, 999)])
    assert remote == [repr(split_scene("val", 1, 7)), repr(split_scene("test", 0, 999))]


def test_splits_hold_no_common_scene_and_different_seeds_differ():
    train = {repr(split_scene("train", 0, i)) for i in range(3000)}
    val = {repr(split_scene("val", 0, i)) for i in range(1000)}
    test = {repr(split_scene("test", 0, i)) for i in range(1000)}
    assert len(train) == 3000 and len(val) == 1000 and len(test) == 1000
    assert not train & test and not train & val and not val & test
    other_seed = {repr(split_scene("test", 1, i)) for i in range(1000)}
    assert not other_seed & test


def test_five_captions_name_every_shape_colour_and_kind():
    for index in range(300):
        scene = make_scene(0, index)
        captions = scene_captions(scene)
        assert len(captions) == 5 and len(set(captions)) == 5
        assert captions == scene_captions(scene)
        for caption in captions:
            text = caption.lower()
            words = set(re.findall(r"[a-z]+", text))
            for shape in scene.shapes:
                assert shape.color in words, (caption, shape)
                assert any(word in text for word in KIND_WORDS[shape.kind]), (caption, shape)
            absent = set(COLORS) - {s.color for s in scene.shapes}
            assert not absent & words, caption  # never a colour that is not in the scene


def test_caption_positions_and_counts_are_true():
    numbers = {1: "one", 2: "two", 3: "three"}
    for index in range(200):
        scene = make_scene(1, index)
        assert len(scene.shapes) == len({(s.row, s.col) for s in scene.shapes})  # distinct grid cells
        for caption in scene_captions(scene):
            for n, word in numbers.items():
                if re.search(rf"\b{word} (shapes|objects|object)\b", caption.lower()):
                    assert n == len(scene.shapes), caption
            if "single shape" in caption.lower():
                assert len(scene.shapes) == 1
        if len(scene.shapes) == 1:  # a lone shape's position phrases all name its own cell
            (shape,) = scene.shapes
            own = sorted(_CELL_PHRASES[(shape.row, shape.col)], key=len, reverse=True)
            mentioned = 0
            for caption in scene_captions(scene):
                rest = caption.lower()
                for phrase in own:
                    mentioned += phrase in rest
                    rest = rest.replace(phrase, "")
                others = [p for cell, ps in _CELL_PHRASES.items() for p in ps if p in rest]
                assert not others, (caption, shape)
            assert mentioned >= 1


def test_attributes_are_plain_and_consistent():
    data = load_shapes("val", n_images=50, seed=0)
    assert set(data.attributes) == set(data.image_ids)
    for image_id, scene in zip(data.image_ids, data.images.scenes):
        attrs = data.attributes[image_id]
        assert attrs == scene_attributes(scene)
        assert attrs["background"] in {"light", "dark"}
        assert attrs["background"] == BACKGROUNDS[attrs["background_color"]][0]
        assert attrs["n_shapes"] == len(scene.shapes) in (1, 2, 3)
        assert attrs["dominant_color"] in {s.color for s in scene.shapes}
        assert all(isinstance(v, (str, int)) for v in attrs.values())


def test_render_draws_the_shapes_on_the_background():
    scene = make_scene(0, 4)
    image = render_scene(scene, size=64)
    assert image.mode == "RGB" and image.size == (64, 64)
    pixels = np.asarray(image).reshape(-1, 3)
    background = np.array(BACKGROUNDS[scene.background][1])
    assert (np.abs(pixels - background).sum(axis=1) == 0).mean() > 0.5  # mostly background
    for shape in scene.shapes:  # the centre of each shape has (close to) its colour
        cy = int(((shape.row + 0.5) / 3 + shape.dy) * 64)
        cx = int(((shape.col + 0.5) / 3 + shape.dx) * 64)
        assert np.abs(np.asarray(image)[cy, cx].astype(int) - COLORS[shape.color]).max() < 40
    assert render_scene(scene, size=32).size == (32, 32)


def test_load_shapes_builds_consistent_retrieval_data():
    data = load_shapes("test", n_images=20, seed=0)
    assert data.image_ids[0] == "test-000000" and data.image_ids[19] == "test-000019"
    assert len(data.texts) == 100 and list(data.captions_per_image()) == [5] * 20
    assert data.text_image_index[:6] == [0, 0, 0, 0, 0, 1]
    assert data.source == "shapes(split=test, n=20, seed=0, size=64)"
    listing = [[data.image_ids[i], data.texts[5 * i : 5 * i + 5]] for i in range(20)]
    canonical = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
    assert data.annotation_digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert load_shapes("test", n_images=20, seed=1).annotation_digest != data.annotation_digest


def test_images_are_an_image_source_and_picklable():
    data = load_shapes("train", n_images=5, seed=0, image_size=48)
    images = data.images
    assert isinstance(images, ShapesImages)
    assert all(callable(getattr(images, name, None)) for name in ("__len__", "describe", "load"))
    assert len(images) == 5 and images.describe(3) == "shapes[train:3]"
    raw, image = images.load(2)
    assert image.size == (48, 48) and raw == image.tobytes() and len(raw) == 48 * 48 * 3
    clone = pickle.loads(pickle.dumps(images))
    assert clone.load(2)[0] == raw


def test_bad_split_or_size_is_a_data_error():
    with pytest.raises(DataError, match="unknown shapes split 'tst'"):
        load_shapes("tst")
    with pytest.raises(DataError, match="n_images"):
        load_shapes("test", n_images=0)
