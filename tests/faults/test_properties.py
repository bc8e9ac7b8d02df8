"""Property-based tests: random configs and random annotation files fed to `validate_mapping` and the loaders.

The only outcomes allowed are a valid result or `MmevalError` (which the CLI prints as one `error:` line with
exit code 2); any other exception type would reach the user as a traceback. Inputs are drawn two ways: a
valid document changed at 1-4 random places (a value replaced by random JSON, a key or item deleted, a list
item repeated, a string blanked), which stays close enough to the format to reach the deep checks, and
wholly random JSON / text. A valid result must also hold what the benchmarks rely on (see the `_check_*`
helpers), so a loader cannot pass by returning something half-formed.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmeval.config.run import DataConfig, validate_mapping
from mmeval.data.classification import load_labelled, resolve_classes
from mmeval.data.loaders import load_retrieval_data
from mmeval.data.vqa_data import load_mc, load_vqav2
from mmeval.errors import ConfigError, MmevalError

# MMEVAL_FAULT_EXAMPLES=5000 searches harder (e.g. after changing a loader); the default keeps the suite fast.
SETTINGS = settings(max_examples=int(os.environ.get("MMEVAL_FAULT_EXAMPLES", "120")), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=6) | st.sampled_from(["", " ", "~nobody-here/x", "a\x00b", "..", "/", "{image_id}"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                            max_size=3), max_leaves=8)


def _places(node: Any, at: tuple = ()) -> list[tuple]:
    """Every position in a JSON tree, the root included."""
    found = [at]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found += _places(child, (*at, key))
    return found


@st.composite
def mutated(draw, base: Any) -> Any:
    """`base` with 1-4 random edits (replace, delete, repeat a list item, blank a string)."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(_places(doc)))
        edit = draw(st.sampled_from(["replace", "replace", "delete", "repeat", "blank"]))
        if not at:
            doc = draw(JSON) if edit == "replace" else doc
            continue
        parent = doc
        for key in at[:-1]:
            parent = parent[key]
        key = at[-1]
        if edit == "replace":
            parent[key] = draw(JSON)
        elif edit == "delete":
            del parent[key]
        elif edit == "repeat" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif edit == "blank" and isinstance(parent[key], str):
            parent[key] = draw(st.sampled_from(["", "  "]))
    return doc


def documents(base: Any) -> st.SearchStrategy:
    return mutated(base) | JSON


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def _data_cfg(**fields: Any) -> DataConfig:
    return DataConfig.model_validate(fields)


def _hashable_unique(ids: list[Any], where: str) -> None:
    assert len(set(ids)) == len(ids), f"{where}: duplicate ids {ids}"
    json.dumps(ids)  # written into reports and per-sample files


# --- random configs ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("props")
    (root / "images").mkdir()
    (root / "classes" / "cat").mkdir(parents=True)
    (root / "classes" / "cat" / "a.png").write_bytes(b"")
    return {"root": root, "ann": _write_json(root / "ann.json", {"images": [], "annotations": []}),
            "images": root / "images", "classes": root / "classes"}


def _base_config(files: dict[str, Path]) -> dict[str, Any]:
    return {
        "model": {"type": "reference"},
        "benchmarks": [
            {"name": "coco", "task": "retrieval", "recall_k": [1, 5],
             "data": {"format": "coco", "annotations": str(files["ann"]), "images": str(files["images"]),
                      "on_bad_image": "skip", "limit": 3}},
            {"name": "zs", "task": "zeroshot_classification", "classnames": ["cat"], "templates": ["a {c}."],
             "data": {"format": "imagefolder", "root": str(files["classes"])}},
            {"name": "caps", "task": "coco_captions", "generation": {"max_new_tokens": 5}, "metrics": ["CIDEr"],
             "data": {"format": "shapes", "n_images": 4, "split": "val"}},
        ],
        "runtime": {"device": "cpu", "precision": "fp32", "batch_size": 4, "num_workers": 0, "cache": "off"},
        "output": {"dir": str(files["root"] / "reports"), "name": "r", "per_sample": False},
    }


def test_base_config_is_valid(files) -> None:
    # The mutations below start from a config that passes, so each one tests the edit it makes.
    cfg = validate_mapping(_base_config(files))
    assert [b.name for b in cfg.benchmarks] == ["coco", "zs", "caps"]


@SETTINGS
@given(data=st.data())
def test_random_configs_validate_or_raise_config_error(files, data) -> None:
    raw = data.draw(documents(_base_config(files)))
    try:
        cfg = validate_mapping(raw, "random.yaml")
    except ConfigError as exc:
        lines = exc.lines()
        assert lines and all(line.startswith("random.yaml: ") and "\n" not in line for line in lines), lines
        return
    assert isinstance(raw, dict) and cfg.benchmarks  # a config passed: it has what a run needs
    json.dumps(cfg.model_dump(mode="json"))  # and it can be written into the report


# --- random annotation files ----------------------------------------------------------------------------------

COCO = {
    "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}, {"id": 3, "file_name": "c.jpg"}],
    "annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}, {"id": 2, "image_id": 1, "caption": "a pet"},
                    {"id": 3, "image_id": 2, "caption": "a dog"}, {"id": 4, "image_id": 3, "caption": "a cow"}],
}
KARPATHY = {"images": [
    {"filename": "a.jpg", "filepath": "val", "split": "test", "cocoid": 1, "sentences": [{"raw": "a cat"}]},
    {"filename": "b.jpg", "split": "test", "imgid": 7, "sentences": [{"raw": "a dog"}, {"raw": "two dogs"}]},
    {"filename": "c.jpg", "split": "train", "cocoid": 3, "sentences": [{"raw": "a cow"}]},
]}
LABELS = [{"image": "a.jpg", "label": "cat"}, {"image": "b.jpg", "label": "dog"}, {"image": "c.jpg", "label": 1}]
VQA_QUESTIONS = {"questions": [{"image_id": 1, "question": "what?", "question_id": 10},
                               {"image_id": 1, "question": "how many?", "question_id": 11},
                               {"image_id": 2, "question": "is it?", "question_id": 20}]}
VQA_ANNOTATIONS = {"annotations": [
    {"question_id": q, "image_id": i, "answer_type": t, "answers": [{"answer": a}] * 10}
    for q, i, t, a in ((10, 1, "other", "cat"), (11, 1, "number", "2"), (20, 2, "yes/no", "yes"))
]}
MC = [{"image": "a.jpg", "question": "which?", "options": ["cat", "dog"], "answer": "A"},
      {"question_id": "q2", "image": "b.jpg", "question": "colour?", "options": {"A": "red", "B": "blue"}, "answer": 1}]


def _check_retrieval(data) -> None:
    _hashable_unique(data.image_ids, data.source)
    assert len(data.images) == len(data.image_ids)
    assert len(data.texts) == len(data.text_image_index)
    assert all(isinstance(t, str) and t.strip() for t in data.texts), data.texts
    assert all(0 <= i < len(data.image_ids) for i in data.text_image_index)
    assert all(isinstance(data.images.describe(i), str) for i in range(len(data.images)))


def _load_and_check_retrieval(files, fmt: str, doc) -> None:
    """A random annotation document of `fmt`: a clear MmevalError, or data that holds together."""
    path = _write_json(files["root"] / f"{fmt}.json", doc)
    try:
        data = load_retrieval_data(_data_cfg(format=fmt, annotations=path, images=files["images"]))
    except MmevalError:
        return
    _check_retrieval(data)


@SETTINGS
@given(doc=documents(COCO))
def test_random_coco_files(files, doc) -> None:
    _load_and_check_retrieval(files, "coco", doc)


@SETTINGS
@given(doc=documents(KARPATHY))
def test_random_karpathy_files(files, doc) -> None:
    _load_and_check_retrieval(files, "karpathy", doc)


def _check_labels(cfg: DataConfig, classnames: list[str] | None, multilabel: bool) -> None:
    try:
        data = load_labelled(cfg, multilabel)
        classes, targets = resolve_classes(data, classnames, multilabel)
    except MmevalError:
        return
    _hashable_unique(data.image_ids, data.source)
    assert len(data.images) == len(data.image_ids) == len(targets)
    assert classes and all(isinstance(c, str) for c in classes)
    if multilabel:
        assert targets.shape == (len(data.image_ids), len(classes)) and set(targets.ravel()) <= {0, 1}
    else:
        assert targets.shape == (len(data.image_ids),) and all(0 <= t < len(classes) for t in targets)


@SETTINGS
@given(doc=documents(LABELS), classnames=st.none() | st.just(["cat", "dog"]), multilabel=st.booleans())
def test_random_json_label_files(files, doc, classnames, multilabel) -> None:
    path = _write_json(files["root"] / "labels.json", doc)
    _check_labels(_data_cfg(format="json", annotations=path), classnames, multilabel)


CSV_CELLS = st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), max_size=8) | st.sampled_from(
    ["", "cat", "dog", "0", "7", "cat|dog", "|", "a.jpg", '["cat"]', '"'])


@SETTINGS
@given(header=st.lists(st.sampled_from(["image", "label", "x", "", "image"]), min_size=1, max_size=4),
       rows=st.lists(st.lists(CSV_CELLS, max_size=5), max_size=5),
       classnames=st.none() | st.just(["cat", "dog"]), multilabel=st.booleans())
def test_random_csv_label_files(files, header, rows, classnames, multilabel) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    path = files["root"] / "labels.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    _check_labels(_data_cfg(format="csv", annotations=path), classnames, multilabel)


def _check_questions(data, with_answers: bool) -> None:
    _hashable_unique(data.image_ids, data.source)
    ids = [q.question_id for q in data.questions]
    _hashable_unique(ids, data.source)
    assert data.questions and all(isinstance(q.text, str) for q in data.questions)
    assert sorted(n for group in data.questions_by_image() for n in group) == list(range(len(data.questions)))
    for q in data.questions:
        if with_answers:
            assert len(q.answers) == 10 and all(isinstance(a, str) for a in q.answers)
            assert q.answer_type is None or isinstance(q.answer_type, str)
        if q.options:
            assert q.answer in q.options and all(isinstance(v, str) for v in q.options.values())


@SETTINGS
@given(questions=documents(VQA_QUESTIONS), annotations=st.none() | documents(VQA_ANNOTATIONS))
def test_random_vqav2_files(files, questions, annotations) -> None:
    fields = {"format": "vqav2", "questions": _write_json(files["root"] / "q.json", questions),
              "images": files["images"]}
    if annotations is not None:
        fields["annotations"] = _write_json(files["root"] / "a.json", annotations)
    try:
        data = load_vqav2(_data_cfg(**fields))
    except MmevalError:
        return
    _check_questions(data, annotations is not None)


@SETTINGS
@given(doc=documents(MC))
def test_random_multiple_choice_files(files, doc) -> None:
    path = _write_json(files["root"] / "mc.json", doc)
    try:
        data = load_mc(_data_cfg(format="mc", annotations=path, images=files["images"]))
    except MmevalError:
        return
    _check_questions(data, False)


@pytest.mark.parametrize("base", [COCO, KARPATHY, LABELS, VQA_QUESTIONS, MC], ids=["coco", "karpathy", "labels",
                                                                                    "vqav2", "mc"])
def test_the_unmutated_documents_load(files, base) -> None:
    # The mutations start from files that load, so a random edit, not the base, is what a failure points at.
    path = _write_json(files["root"] / "base.json", base)
    if base is LABELS:
        data = load_labelled(_data_cfg(format="json", annotations=path), False)
        assert resolve_classes(data, ["cat", "dog"], False)[1].tolist() == [0, 1, 1]
    elif base is VQA_QUESTIONS:
        data = load_vqav2(_data_cfg(format="vqav2", questions=path, images=files["images"],
                                    annotations=_write_json(files["root"] / "a.json", VQA_ANNOTATIONS)))
        assert [q.answer_type for q in data.questions] == ["other", "number", "yes/no"]
    elif base is MC:
        data = load_mc(_data_cfg(format="mc", annotations=path, images=files["images"]))
        assert [(q.question_id, q.answer) for q in data.questions] == [(0, "A"), ("q2", "B")]
    else:
        fmt = "coco" if base is COCO else "karpathy"
        data = load_retrieval_data(_data_cfg(format=fmt, annotations=path, images=files["images"]))
        assert len(data.texts) == (4 if base is COCO else 3)
        assert data.image_ids == ([1, 2, 3] if base is COCO else [1, 7])


# --- what the random search found, pinned -----------------------------------------------------------------------


def test_a_path_under_an_unknown_home_is_a_config_error(files) -> None:
    raw = _base_config(files)
    raw["benchmarks"][0]["data"]["annotations"] = "~nobody-here/ann.json"
    raw["output"]["dir"] = "~nobody-here/reports"
    with pytest.raises(ConfigError) as caught:
        validate_mapping(raw, "run.yaml")
    assert caught.value.lines() == [
        "run.yaml: benchmarks[0].data.annotations: cannot expand '~nobody-here' in '~nobody-here/ann.json' "
        "(Could not determine home directory.)",
        "run.yaml: output.dir: cannot expand '~nobody-here' in '~nobody-here/reports' (Could not determine home "
        "directory.)"]


def test_a_line_break_in_a_key_stays_on_its_error_line(files) -> None:
    raw = _base_config(files)
    raw["runtime"]["batch\nsize"] = 3
    with pytest.raises(ConfigError) as caught:
        validate_mapping(raw, "run.yaml")
    [line] = caught.value.lines()
    assert line.startswith("run.yaml: runtime.batch\\nsize: unknown key. Did you mean 'batch_size'? Valid keys here: ")
    assert "\n" not in line
