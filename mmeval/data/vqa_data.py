"""Question-answering data (VQA and multiple choice): questions grouped by the image they are about.

Every format is loaded into `QuestionData`: the distinct images once each, and the questions pointing at
them. The benchmark reads and decodes each image once and asks all of its questions from the same pixels,
which is why questions are grouped at load time rather than cached per batch: it costs nothing, and a
missing image is skipped (or fails) once, with all of its questions, whatever the order of the file.

Formats: `vqav2` (VQAv2 questions + annotations JSON and an image folder), `hf_vqa` (a Hugging Face dataset
with image, question and answers columns), `mc` (a JSON or CSV/TSV file of questions with lettered options
and an image folder) and `hf_mc` (a Hugging Face dataset with image, question, options and answer columns).
"""

from __future__ import annotations

import csv
import hashlib
import json
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmeval.data.coco import is_file_name, is_id, is_text, read_json
from mmeval.data.image_files import fill_pattern
from mmeval.errors import DataError
from mmeval.io.images import FileImages, SubsetImages

N_ANSWERS = 10  # human answers per question in VQAv2-style annotations
DEFAULT_IMAGE_PATTERN = "COCO_val2014_{image_id:012d}.jpg"


@dataclass
class Question:
    """One question about image `image` (a position in `QuestionData.image_ids`) and what scores it."""

    question_id: Any
    image: int
    text: str
    answers: list[str] | None = None  # vqa: the human answers (None: no annotations, answers are only saved)
    answer_type: str | None = None  # vqa: yes/no, number, other
    options: dict[str, str] = field(default_factory=dict)  # multiple choice: letter -> option text
    answer: str | None = None  # multiple choice: the correct letter


@dataclass
class QuestionData:
    image_ids: list[Any]
    images: Any  # an ImageSource: one entry per distinct image
    questions: list[Question]
    source: str
    annotation_digest: str
    attributes: dict[Any, dict[str, Any]] = field(default_factory=dict)  # image id -> {attribute: value}

    @property
    def texts(self) -> list[str]:
        """The question texts (what `mmeval validate` counts as texts)."""
        return [q.text for q in self.questions]

    def questions_by_image(self) -> list[list[int]]:
        """For each image, the positions of its questions in `questions`."""
        grouped: list[list[int]] = [[] for _ in self.image_ids]
        for n, question in enumerate(self.questions):
            grouped[question.image].append(n)
        return grouped


def _digest(questions: list[Question], image_ids: list[Any], names: list[str]) -> str:
    rows = [asdict(q) for q in questions]
    canonical = json.dumps([rows, [str(i) for i in image_ids], names], ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _limited(data: QuestionData, limit: int | None) -> QuestionData:
    """The first `limit` images and their questions (`data.limit`)."""
    if not limit or limit >= len(data.image_ids):
        return data
    questions = [q for q in data.questions if q.image < limit]
    ids = data.image_ids[:limit]
    return QuestionData(ids, SubsetImages(data.images, list(range(limit))), questions, f"{data.source}[:{limit}]",
                        _digest(questions, ids, [data.annotation_digest]), data.attributes)


def _grouped(keys: list[Any]) -> tuple[list[Any], list[int], list[int]]:
    """Distinct keys in order of first appearance, each row's position among them, and each key's first row."""
    position: dict[Any, int] = {}
    first_rows, owner = [], []
    for row, key in enumerate(keys):
        if key not in position:
            position[key] = len(position)
            first_rows.append(row)
        owner.append(position[key])
    return list(position), owner, first_rows


def _answer_strings(value: Any, where: str) -> list[str]:
    """Human answers given as VQA answer dicts ({"answer": ...}) or plain strings; exactly ten of them."""
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list of {N_ANSWERS} answers, got {type(value).__name__}")
    answers = [item.get("answer") if isinstance(item, dict) else item for item in value]
    if not all(isinstance(a, str) for a in answers):
        raise DataError(f"{where}: every answer must be a string or an {{'answer': string}} object")
    if len(answers) != N_ANSWERS:
        raise DataError(f"{where}: expected {N_ANSWERS} human answers, got {len(answers)} "
                        "(VQA accuracy is defined over 10 annotators)")
    return answers


# --- VQAv2 JSON ------------------------------------------------------------------------------------------


def _image_file(pattern: str, image_id: Any) -> str:
    return fill_pattern(pattern, image_id, DEFAULT_IMAGE_PATTERN)


def _vqa_annotations(path: Path) -> dict[Any, dict[str, Any]]:
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("annotations"), list):
        raise DataError(f"{path}: expected {{'annotations': [...]}} (VQAv2 annotations format)")
    by_id: dict[Any, dict[str, Any]] = {}
    for n, ann in enumerate(raw["annotations"]):
        if not isinstance(ann, dict) or "question_id" not in ann or "answers" not in ann:
            raise DataError(f"{path}: annotations[{n}] needs 'question_id' and 'answers'")
        if not is_id(ann["question_id"]) or ann["question_id"] in by_id:
            what = "appears more than once" if is_id(ann["question_id"]) else "must be an integer or a string"
            raise DataError(f"{path}: annotations[{n}].question_id {ann['question_id']!r} {what}")
        if ann.get("answer_type") is not None and not isinstance(ann["answer_type"], str):
            raise DataError(f"{path}: annotations[{n}].answer_type must be a string (yes/no, number, other), "
                            f"got {type(ann['answer_type']).__name__}")
        by_id[ann["question_id"]] = ann
    return by_id


def load_vqav2(cfg) -> QuestionData:
    """VQAv2: {"questions": [{image_id, question, question_id}]} + {"annotations": [{question_id, answers}]}."""
    path: Path = cfg.questions
    raw = read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        raise DataError(f"{path}: expected {{'questions': [...]}} (VQAv2 questions format)")
    for n, q in enumerate(raw["questions"]):
        if not isinstance(q, dict) or not {"image_id", "question", "question_id"} <= q.keys() \
                or not isinstance(q["question"], str):
            raise DataError(f"{path}: questions[{n}] needs 'image_id', 'question_id' and a string 'question'")
        for key in ("image_id", "question_id"):
            if not is_id(q[key]):
                raise DataError(f"{path}: questions[{n}].{key} must be an integer or a string, got {q[key]!r}")
        if not is_text(q["question"]):
            raise DataError(f"{path}: questions[{n}].question is empty (question_id {q['question_id']!r})")
    if not raw["questions"]:
        raise DataError(f"{path}: no questions")
    seen: set[Any] = set()
    for q in raw["questions"]:
        if q["question_id"] in seen:
            raise DataError(f"{path}: question_id {q['question_id']} appears more than once")
        seen.add(q["question_id"])
    annotations = _vqa_annotations(cfg.annotations) if cfg.annotations else None
    image_ids, owner, _ = _grouped([q["image_id"] for q in raw["questions"]])
    names = [_image_file(cfg.image_pattern or DEFAULT_IMAGE_PATTERN, i) for i in image_ids]
    questions = []
    for q, image in zip(raw["questions"], owner):
        question = Question(q["question_id"], image, q["question"])
        if annotations is not None:
            ann = annotations.get(q["question_id"])
            where = f"{cfg.annotations}: question_id {q['question_id']}"
            if ann is None:
                raise DataError(f"{where}: no annotation for this question of {path}")
            if "image_id" in ann and ann["image_id"] != q["image_id"]:
                raise DataError(f"{where}: image_id {ann['image_id']} here, {q['image_id']} in {path}")
            question.answers = _answer_strings(ann["answers"], where)
            question.answer_type = ann.get("answer_type")
        questions.append(question)
    source = f"vqav2:{path}" + (f" + {cfg.annotations}" if cfg.annotations else " (no annotations)")
    data = QuestionData(image_ids, FileImages([cfg.images / name for name in names]), questions, source,
                        _digest(questions, image_ids, names))
    return _limited(data, cfg.limit)


# --- Hugging Face datasets ---------------------------------------------------------------------------------


def _hf_columns(cfg, dataset, needed: dict[str, str]) -> dict[str, str | None]:
    """Check the configured columns exist; optional id columns default to `question_id` / `image_id` if present."""
    columns = list(dataset.column_names)
    chosen: dict[str, str | None] = {}
    for field_name, column in needed.items():
        if column not in columns:
            raise DataError(f"{cfg.path}: data.{field_name} '{column}' is not a column; columns: {', '.join(columns)}")
        chosen[field_name] = column
    for field_name, default in (("question_id_column", "question_id"), ("image_id_column", "image_id")):
        column = getattr(cfg, field_name)
        if column is not None and column not in columns:
            raise DataError(f"{cfg.path}: data.{field_name} '{column}' is not a column; columns: {', '.join(columns)}")
        chosen[field_name] = column or (default if default in columns else None)
    return chosen


def _hf_data(cfg, dataset, columns: dict[str, str | None], questions: list[Question], kind: str) -> QuestionData:
    from mmeval.data.hf import HFImages

    n = len(dataset)
    keys = list(dataset[columns["image_id_column"]]) if columns["image_id_column"] else list(range(n))
    image_ids, owner, first_rows = _grouped(keys)
    for question, image in zip(questions, owner):
        question.image = image
    images = SubsetImages(HFImages(dataset, cfg.image_column, str(cfg.path)), first_rows)
    source = f"{kind}:{cfg.path}" + (f"[{cfg.split}]" if cfg.split else "")
    data = QuestionData(image_ids, images, questions, source,
                        _digest(questions, image_ids, [getattr(dataset, "_fingerprint", "")]))
    return _limited(data, cfg.limit)


def _question_ids(dataset, columns: dict[str, str | None]) -> list[Any]:
    return list(dataset[columns["question_id_column"]]) if columns["question_id_column"] else list(range(len(dataset)))


def load_hf_vqa(cfg) -> QuestionData:
    """A dataset with image, question and answers (10 strings or {"answer"} dicts) columns, one row per question."""
    from mmeval.data.hf import open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    columns = _hf_columns(cfg, dataset, {"image_column": cfg.image_column, "question_column": cfg.question_column,
                                         "answers_column": cfg.answers_column})
    types = list(dataset["answer_type"]) if "answer_type" in dataset.column_names else [None] * len(dataset)
    questions = []
    for row, (qid, text, answers, kind) in enumerate(zip(_question_ids(dataset, columns), dataset[cfg.question_column],
                                                         dataset[cfg.answers_column], types)):
        where = f"{cfg.path}[row {row}] (question_id {qid})"
        if not isinstance(text, str):
            raise DataError(f"{where}.{cfg.question_column}: expected a string, got {type(text).__name__}")
        questions.append(Question(qid, 0, text, _answer_strings(answers, f"{where}.{cfg.answers_column}"), kind))
    return _hf_data(cfg, dataset, columns, questions, "hf_vqa")


# --- multiple choice ----------------------------------------------------------------------------------------


def _options(row: dict[str, Any], options_key: str, where: str) -> dict[str, str]:
    """Options as a list (lettered A, B, ...), a {letter: text} mapping, or else single-letter columns A, B, ..."""
    value = row.get(options_key)
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:  # a CSV cell holding a JSON list
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, list):
        options = dict(zip(string.ascii_uppercase, value))
    elif isinstance(value, dict):
        options = dict(value)
    elif value is None:
        options = {k: row[k] for k in string.ascii_uppercase if row.get(k) is not None and str(row[k]).strip() != ""
                   and not (isinstance(row[k], float) and row[k] != row[k])}  # NaN: an empty pandas cell
    else:
        raise DataError(f"{where}.{options_key}: expected a list of options or a {{letter: text}} mapping")
    if not all(isinstance(k, str) and len(k) == 1 and k in string.ascii_uppercase for k in options):
        raise DataError(f"{where}.{options_key}: option keys must be letters A-Z, got {sorted(map(str, options))}")
    if len(options) < 2:
        raise DataError(f"{where}: needs at least 2 options (a list under '{options_key}' or columns A, B, ...)")
    return {k: str(v) for k, v in sorted(options.items())}


def _answer_letter(value: Any, options: dict[str, str], where: str) -> str:
    """The correct option as a letter; an integer is a 0-based index into the options."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(options):
        return list(options)[value]
    if isinstance(value, str) and value.strip().upper() in options:
        return value.strip().upper()
    raise DataError(f"{where}: answer must be one of the option letters {', '.join(options)} "
                    f"(or a 0-based index), got {value!r}")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}: cannot read as {path.suffix[1:].upper()} ({exc})") from exc
    raw = read_json(path)
    rows = raw.get("questions") if isinstance(raw, dict) else raw
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: expected a list of question objects (or {{'questions': [...]}}), or a .csv / .tsv")
    return rows


def _mc_question(row: dict[str, Any], qid: Any, options_key: str, answer_key: str, question_key: str,
                 where: str) -> Question:
    text = row.get(question_key)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: needs a non-empty string '{question_key}'")
    options = _options(row, options_key, where)
    return Question(qid, 0, text, options=options, answer=_answer_letter(row.get(answer_key), options, where))


def load_mc(cfg) -> QuestionData:
    """A JSON list / CSV / TSV of {question_id?, image, question, options | A, B, ..., answer} + an image folder."""
    path: Path = cfg.annotations
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no questions")
    questions, files = [], []
    for n, row in enumerate(rows):
        qid = row.get("question_id") if row.get("question_id") not in (None, "") else n
        if not is_id(qid):
            raise DataError(f"{path}: row {n}: question_id must be an integer or a string, got {qid!r}")
        where = f"{path}: question_id {qid}"
        if not is_file_name(row.get("image")):
            raise DataError(f"{where}: needs 'image', an image file name under data.images")
        questions.append(_mc_question(row, qid, "options", "answer", "question", where))
        files.append(row["image"].strip())
    seen: set[Any] = set()
    for q in questions:
        if q.question_id in seen:
            raise DataError(f"{path}: question_id {q.question_id!r} appears more than once (ids must be unique)")
        seen.add(q.question_id)
    image_ids, owner, _ = _grouped(files)
    for question, image in zip(questions, owner):
        question.image = image
    data = QuestionData(image_ids, FileImages([cfg.images / name for name in image_ids]), questions, f"mc:{path}",
                        _digest(questions, image_ids, image_ids))
    return _limited(data, cfg.limit)


def load_hf_mc(cfg) -> QuestionData:
    """A dataset with image, question, options (or columns A, B, ...) and answer (letter or index) columns."""
    from mmeval.data.hf import open_hf_dataset

    dataset = open_hf_dataset(cfg.path, cfg.split)
    needed = {"image_column": cfg.image_column, "question_column": cfg.question_column,
              "answer_column": cfg.answer_column}
    if cfg.options_column in dataset.column_names or "A" not in dataset.column_names:
        needed["options_column"] = cfg.options_column
    columns = _hf_columns(cfg, dataset, needed)
    text_columns = [c for c in dataset.column_names if c != cfg.image_column]
    table = dataset.select_columns(text_columns)
    questions = []
    for row, (qid, record) in enumerate(zip(_question_ids(dataset, columns), table)):
        questions.append(_mc_question(record, qid, cfg.options_column, cfg.answer_column, cfg.question_column,
                                      f"{cfg.path}[row {row}] (question_id {qid})"))
    return _hf_data(cfg, dataset, columns, questions, "hf_mc")
