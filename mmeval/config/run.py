"""The typed run config: YAML in, validated, unknown keys rejected, every problem reported at once.

Relative paths are resolved against the current working directory (as with any command-line tool), and
problems are reported as `benchmarks[0].data.annotations: file not found: /abs/path`.

Checks that span several fields (which fields a model type or data format reads, unique benchmark names,
task capabilities) run on the raw mapping in `validate_mapping`, because pydantic skips a model's "after"
validators as soon as one of its fields fails, and those problems would then surface one run at a time.
The same checks run in the validators when a config class is validated on its own.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from mmeval.config.base import (
    _CROSS_CHECKED,
    Loc,
    _existing,
    _expand,
    _known,
    _raise_unless_checked,
    _set_fields,
    _Strict,
    _valid_name,
    format_loc,
)
from mmeval.config.bias import BiasConfig
from mmeval.config.model_list import expand, is_pattern, matches
from mmeval.config.runtime import BootstrapConfig, OutputConfig, RuntimeConfig
from mmeval.errors import ConfigError
from mmeval.registry import DATA_FORMATS, MODELS, TASKS, did_you_mean, unknown_name_message


class ModelConfig(_Strict):
    """Which checkpoint to evaluate, and through which adapter."""

    type: str = Field(description="the adapter: " + ", ".join(sorted(MODELS)))
    arch: str | None = Field(None, description="an open_clip architecture name, e.g. ViT-B-32")
    checkpoint: Path | None = Field(None, description="checkpoint file or folder")
    pretrained: str | None = Field(None, description="an open_clip pretrained tag (needs the hub)")
    arch_config: Path | None = Field(None, description="an open_clip model config JSON to register")
    entry: str | None = Field(None, description="plugin: 'package.module:factory' building the model")
    options: dict[str, Any] = Field(default_factory=dict, description="plugin: keyword arguments for the factory")
    name: str | None = Field(None, description="label used in reports (default: derived)")

    @field_validator("entry")
    @classmethod
    def _entry_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"expected 'package.module:factory', got {value!r}")
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(unknown_name_message("model type", value, MODELS))
        return value

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_exists(cls, value: Path | None) -> Path | None:
        if is_pattern(value):  # a glob: one model per match (mmeval.config.model_list)
            pattern = Path(value).expanduser().absolute()
            if not matches(pattern):
                raise ValueError(f"no file or folder matches the pattern {pattern}")
            return pattern
        return _existing(value, "checkpoint")

    @field_validator("arch_config")
    @classmethod
    def _arch_config_exists(cls, value: Path | None) -> Path | None:
        return _existing(value, "file")

    @model_validator(mode="after")
    def _fields_for_type(self, info: ValidationInfo) -> ModelConfig:
        _raise_unless_checked(info, _model_problems({**_set_fields(self), "type": self.type}))
        return self


# Which fields each adapter reads (required, optional); a field the adapter would ignore is an error.
_MODEL_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "reference": (set(), {"checkpoint"}),
    "open_clip": ({"arch"}, {"checkpoint", "pretrained", "arch_config"}),
    "hf_clip": ({"checkpoint"}, set()),
    "hf_captioner": ({"checkpoint"}, set()),
    "plugin": ({"entry"}, {"checkpoint", "options"}),
}
_COMMON_MODEL_FIELDS = {"type", "name"}
_CHECKPOINT_KIND = {  # adapter -> (file or folder, what it should hold)
    "reference": ("folder", "a folder with config.json and model.safetensors"),
    "hf_clip": ("folder", "a folder saved with save_pretrained"),
    "hf_captioner": ("folder", "a folder saved with save_pretrained"),
    "open_clip": ("file", "a state-dict file"),
}


def _field_problems(raw: dict[str, Any], owner: type[BaseModel], what: str, required: set[str],
                    optional: set[str]) -> list[tuple[Loc, str]]:
    """Required fields that are absent and known fields that `what` would silently ignore."""
    problems = [((key,), f"required for {what}{_about(owner, key)}") for key in sorted(required)
                if raw.get(key) is None]
    reads = ", ".join(sorted(required | optional - {"type", "format"}))
    unused = sorted(k for k in raw if isinstance(k, str) and k in owner.model_fields
                    and k not in required | optional and raw[k] is not None)
    problems += [((key,), f"not used by {what} (it reads: {reads}); remove it") for key in unused]
    return problems


def _model_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    kind = raw.get("type")
    if not _known(kind, _MODEL_FIELDS):
        return []
    required, optional = _MODEL_FIELDS[kind]
    problems = _field_problems(raw, ModelConfig, f"model type '{kind}'", required, optional | _COMMON_MODEL_FIELDS)
    if kind == "open_clip":
        has_file, has_tag = raw.get("checkpoint") is not None, raw.get("pretrained") is not None
        if not has_file and not has_tag:
            problems.append((("checkpoint",), "model type 'open_clip' needs 'checkpoint' (a local file) "
                                              "or 'pretrained' (a tag)"))
        elif has_file and has_tag:
            problems.append((("pretrained",), "set 'checkpoint' or 'pretrained', not both"))
    checkpoint = raw.get("checkpoint")
    if kind in _CHECKPOINT_KIND and isinstance(checkpoint, (str, Path)):
        expected, holds = _CHECKPOINT_KIND[kind]
        for path in matches(checkpoint) if is_pattern(checkpoint) else [Path(checkpoint)]:
            try:
                path = _expand(path).resolve()
            except ValueError:  # reported by the checkpoint's own validator
                continue
            if (expected == "folder" and path.is_file()) or (expected == "file" and path.is_dir()):
                got = "a file" if path.is_file() else "a folder"
                problems.append((("checkpoint",), f"model type '{kind}' needs {holds}, got {got}: {path}"))
    return problems


def _model_entries(raw: dict[str, Any]) -> list[tuple[Loc, dict[str, Any]]]:
    """The raw model mappings with their place: ('model',) for one, ('model', i) for each of a list."""
    model = raw.get("model")
    if isinstance(model, dict):
        return [(("model",), model)]
    if isinstance(model, list):
        return [(("model", n), entry) for n, entry in enumerate(model) if isinstance(entry, dict)]
    return []


# Which data fields each format reads (required, optional); a field the format ignores is an error.
_FORMAT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "coco": ({"annotations", "images"}, set()),
    "karpathy": ({"annotations", "images"}, {"split"}),
    "hf": ({"path"}, {"split", "image_column", "caption_column", "image_id_column", "label_column"}),
    "shapes": (set(), {"split", "n_images", "seed", "image_size", "label_column"}),
    "imagefolder": ({"root"}, set()),
    "csv": ({"annotations"}, {"images", "image_column", "label_column"}),
    "json": ({"annotations"}, {"images", "image_column", "label_column"}),
    "vqav2": ({"questions", "images"}, {"annotations", "image_pattern"}),
    "shapes_vqa": (set(), {"split", "n_images", "seed", "image_size"}),
    "hf_vqa": ({"path"}, {"split", "image_column", "image_id_column", "question_column", "answers_column",
                          "question_id_column"}),
    "mc": ({"annotations", "images"}, set()),
    "hf_mc": ({"path"}, {"split", "image_column", "image_id_column", "question_column", "options_column",
                         "answer_column", "question_id_column"}),
}
_COMMON_DATA_FIELDS = {"format", "on_bad_image", "limit", "decode"}


def _data_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    fmt = raw.get("format")
    if not _known(fmt, _FORMAT_FIELDS):
        return []
    required, optional = _FORMAT_FIELDS[fmt]
    return _field_problems(raw, DataConfig, f"format '{fmt}'", required, optional | _COMMON_DATA_FIELDS)


class DataConfig(_Strict):
    """Where a benchmark's images and texts come from. Fields used depend on `format`."""

    format: str = Field(description="one of " + ", ".join(sorted(DATA_FORMATS)))
    annotations: Path | None = Field(None, description="the annotation JSON file")
    questions: Path | None = Field(None, description="vqav2: the questions JSON")
    image_pattern: str | None = Field(None, description="vqav2: image file name from {image_id} "
                                      "(default COCO_val2014_{image_id:012d}.jpg)")
    question_column: str = Field("question", description="hf_vqa, hf_mc: the question column")
    answers_column: str = Field("answers", description="hf_vqa: the column with the 10 human answers")
    options_column: str = Field("options", description="hf_mc: the options list column (else columns A, B, ...)")
    answer_column: str = Field("answer", description="hf_mc: the correct letter (or 0-based index) column")
    question_id_column: str | None = Field(None, description="hf_vqa, hf_mc: question ids (default: "
                                           "question_id if present, else the row number)")
    images: Path | None = Field(None, description="the image folder")
    root: Path | None = Field(None, description="imagefolder: the folder with one sub-folder of images per class")
    label_column: str | None = Field(None, description="hf, csv, json: the label column (default label); "
                                     "shapes: shape or color")
    split: str | None = Field(None, description="karpathy: test|val|train|restval; hf: dataset split; shapes")
    path: str | None = Field(None, description="a hub id, a local dataset folder or a save_to_disk folder")
    image_column: str = "image"
    caption_column: str = "caption"
    image_id_column: str | None = None
    n_images: int = Field(1000, gt=0, description="shapes, shapes_vqa: number of scenes")
    seed: int = Field(0, description="shapes, shapes_vqa: generator seed")
    image_size: int = Field(64, gt=0, description="shapes, shapes_vqa: rendered size in pixels")
    on_bad_image: Literal["skip", "fail"] = Field("fail", description="a corrupt or missing image: skip or fail")
    limit: int | None = Field(None, gt=0, description="evaluate only the first N images (quick runs)")
    decode: Literal["auto", "cpu", "gpu"] = Field("auto", description="where JPEGs are decoded: auto = on the GPU "
                                                  "when running on CUDA and the model's preprocessing allows it")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in DATA_FORMATS:
            raise ValueError(unknown_name_message("data format", value, DATA_FORMATS))
        return value

    @field_validator("annotations", "questions")
    @classmethod
    def _annotations_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "file")

    @field_validator("images", "root")
    @classmethod
    def _images_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")

    @model_validator(mode="after")
    def _fields_for_format(self, info: ValidationInfo) -> DataConfig:
        _raise_unless_checked(info, _data_problems({**_set_fields(self), "format": self.format}))
        return self

    @model_serializer(mode="wrap")
    def _only_used_fields(self, handler):
        """The resolved config in reports shows the fields this format reads, not every format's defaults."""
        required, optional = _FORMAT_FIELDS.get(self.format, (set(type(self).model_fields), set()))
        used = required | optional | _COMMON_DATA_FIELDS
        return {k: v for k, v in handler(self).items() if k in used}


class GenerationConfig(_Strict):
    """How captions are decoded (captioning tasks). Deterministic: no sampling."""

    max_new_tokens: int = Field(30, gt=0, description="the longest caption, in model tokens")
    num_beams: int = Field(1, gt=0, description="1 = greedy decoding, more = beam search")
    min_new_tokens: int = Field(0, ge=0, description="end-of-caption is forbidden before this many tokens")
    length_penalty: float = Field(1.0, description="beam search: score / length ** length_penalty")
    prompt: str | None = Field(None, description="prompted image-text-to-text models: the instruction; vqa / "
                               "multiple_choice: a model prompt around {question} (default: its chat template)")


# Which benchmark fields each task reads; a field for another task is an error, not a silent no-op.
_TASK_FIELDS: dict[str, set[str]] = {
    "retrieval": {"recall_k", "bias"},
    "coco_captions": {"generation", "metrics", "tokenizer", "spice_jars", "scorer", "clipscore_prefix", "bias"},
    "zeroshot_classification": {"classnames", "classnames_file", "templates", "templates_file", "temperature",
                                "multilabel", "bias"},
    "vqa": {"generation", "prompt_template", "bias"},
    "multiple_choice": {"generation", "prompt_template"},
}
_LABEL_FORMATS = {"imagefolder", "csv", "json", "hf", "shapes"}  # formats with class labels
_TASK_FORMATS: dict[str, set[str]] = {  # which data formats each task reads
    "retrieval": {"coco", "karpathy", "hf", "shapes"},
    "coco_captions": {"coco", "karpathy", "hf", "shapes"},
    "zeroshot_classification": _LABEL_FORMATS,
    "vqa": {"vqav2", "hf_vqa", "shapes_vqa"},
    "multiple_choice": {"mc", "hf_mc"},
}
_QUESTION_FORMATS = {"vqav2": "VQA questions", "hf_vqa": "VQA questions", "shapes_vqa": "VQA questions",
                     "mc": "multiple-choice questions", "hf_mc": "multiple-choice questions"}
_COMMON_BENCHMARK_FIELDS = {"name", "task", "data"}
CAPTION_METRICS = ("Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE")


class BenchmarkConfig(_Strict):
    """One benchmark: a unique name, a task and its data, plus the task's own settings."""

    name: str = Field(description="unique; used in report keys")
    task: str = Field(description="one of " + ", ".join(sorted(TASKS)))
    data: DataConfig = Field(description="where the images and texts come from: format and its fields")
    recall_k: list[int] = Field([1, 5, 10], min_length=1, description="retrieval: k values for recall@k")
    generation: GenerationConfig = Field(default_factory=GenerationConfig,
                                         description="captioning, vqa, multiple_choice: decoding")
    metrics: list[Literal["Bleu", "METEOR", "ROUGE_L", "CIDEr", "SPICE"]] = Field(
        list(CAPTION_METRICS), min_length=1, description="captioning: which pycocoevalcap metrics to compute"
    )
    tokenizer: Literal["auto", "ptb", "python"] = Field(
        "auto", description="captioning: ptb (Java, as pycocoevalcap), python (fallback), auto (ptb if Java)"
    )
    spice_jars: Path | None = Field(None, description="captioning: folder with the Stanford CoreNLP 3.6.0 jars")
    scorer: ModelConfig | None = Field(None, description="captioning: an image-text encoder for CLIPScore")
    clipscore_prefix: str = Field("A photo depicts", description="captioning: text put before each caption")
    classnames: list[str] | None = Field(None, description="zero-shot: class names (default: from the data)")
    classnames_file: Path | None = Field(None, description="zero-shot: a text file with one class name per line")
    templates: list[str] | None = Field(None, description="zero-shot: prompt templates with {c} for the class name")
    templates_file: Path | None = Field(None, description="zero-shot: a text file with one template per line")
    temperature: float | None = Field(None, gt=0, description="zero-shot: logit scale for softmax / ECE "
                                      "(default: the model's logit_scale.exp(), else 100)")
    multilabel: bool = Field(False, description="zero-shot: labels are lists; scored by mAP")
    prompt_template: str | None = Field(None, description="vqa, multiple_choice: the instruction, with {question} "
                                        "(and {options}); default: a short-answer / option-letter instruction")
    bias: BiasConfig | None = Field(None, description="retrieval, captioning, zero-shot, vqa: bias and fairness "
                                    "metrics by per-image attributes")

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        return _valid_name(value)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(unknown_name_message("task", value, TASKS))
        return value

    @field_validator("recall_k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"every k must be >= 1, got {value}")
        return sorted(set(value))

    @field_validator("spice_jars")
    @classmethod
    def _jars_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")

    @field_validator("classnames", "templates")
    @classmethod
    def _usable_list(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            _check_list(value, info.field_name)
        return value

    @field_validator("classnames_file", "templates_file")
    @classmethod
    def _usable_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        value = _existing(value, "file")
        if value is not None:
            _check_list(read_list_file(value), info.field_name.removesuffix("_file"), value)
        return value

    @model_serializer(mode="wrap")
    def _only_task_fields(self, handler):
        """The resolved config in reports shows the settings this task reads."""
        used = _TASK_FIELDS.get(self.task, set(type(self).model_fields)) | _COMMON_BENCHMARK_FIELDS
        return {k: v for k, v in handler(self).items() if k in used}


def _one_or_list(value: Any) -> str:
    return "list" if isinstance(value, list) else "one"


# `model:` is one mapping or a list of them; the tag is dropped from error paths (model[1].checkpoint).
ModelField = Annotated[Annotated[ModelConfig, Tag("one")] | Annotated[list[ModelConfig], Tag("list")],
                       Discriminator(_one_or_list)]


class RunConfig(_Strict):
    model: ModelField
    benchmarks: list[BenchmarkConfig] = Field(min_length=1)
    runtime: RuntimeConfig = RuntimeConfig()
    output: OutputConfig = OutputConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()

    @field_validator("model", mode="after")
    @classmethod
    def _expand_models(cls, value: ModelConfig | list[ModelConfig]) -> ModelConfig | list[ModelConfig]:
        """A list, or a checkpoint pattern, becomes a list of models with one checkpoint and a distinct name each."""
        if isinstance(value, ModelConfig) and not is_pattern(value.checkpoint):
            return value  # one model: kept exactly as written (its name derived by the adapter, as always)
        if not value:
            raise ValueError("an empty list; give one model mapping, or a list of one or more")
        return expand(value if isinstance(value, list) else [value])

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> RunConfig:
        models = [{"type": m.type} for m in self.models]
        raw = {"model": models if self.is_multi else models[0],
               "benchmarks": [{"name": b.name, "task": b.task} for b in self.benchmarks]}
        _raise_unless_checked(info, _benchmark_problems(raw))
        return self

    @property
    def is_multi(self) -> bool:
        """Several checkpoints (a list or a pattern): one report per model plus a leaderboard."""
        return isinstance(self.model, list)

    @property
    def models(self) -> list[ModelConfig]:
        return list(self.model) if isinstance(self.model, list) else [self.model]

    def for_model(self, model: ModelConfig) -> RunConfig:
        """This config with one of its models: what that model's report records (and reruns it alone)."""
        return self.model_copy(update={"model": model})


def _benchmark_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Unique benchmark names, tasks the model types can do, settings that belong to another task."""
    kinds = [(loc, entry.get("type")) for loc, entry in _model_entries(raw) if _known(entry.get("type"), MODELS)]
    benchmarks = raw.get("benchmarks") if isinstance(raw.get("benchmarks"), list) else []
    problems: list[tuple[Loc, str]] = []
    first: dict[str, tuple[int, str]] = {}  # file key -> (index, name): report keys and output file names
    for n, bench in enumerate(benchmarks):
        if not isinstance(bench, dict):
            continue
        name, task = bench.get("name"), bench.get("task")
        # Names become file names (<stem>.<name>.captions.json): two names equal but for case would write the
        # same files on case-insensitive file systems (macOS, Windows), so they collide too.
        key = name.casefold() if isinstance(name, str) else None
        if key in first and first[key][1] == name:
            problems.append((("benchmarks", n, "name"), f"duplicate benchmark name '{name}' (also used by "
                                                        f"benchmarks[{first[key][0]}]); names must be unique"))
        elif key in first:
            problems.append((("benchmarks", n, "name"), f"benchmark name '{name}' differs from benchmarks"
                             f"[{first[key][0]}].name '{first[key][1]}' only in case; their output files would "
                             "collide on case-insensitive file systems; names must be unique ignoring case"))
        elif key is not None:
            first[key] = (n, name)
        if not _known(task, TASKS):
            continue
        needs = TASKS[task].capabilities[0]
        for loc, kind in kinds:
            can = MODELS[kind].capabilities
            if needs not in can:
                which = f"{format_loc(loc)} type" if len(loc) > 1 else "model type"
                problems.append((("benchmarks", n, "task"), f"task '{task}' needs a model with capability "
                                 f"'{needs}', but {which} '{kind}' provides: {', '.join(can)}"))
        problems += [(("benchmarks", n, *loc), message) for loc, message in _task_data_problems(task, bench)]
        reads = _TASK_FIELDS[task]
        for key in sorted(k for k in bench if k in BenchmarkConfig.model_fields and k not in reads
                          and k not in _COMMON_BENCHMARK_FIELDS):
            problems.append((("benchmarks", n, key), f"not used by task '{task}' (it reads: "
                                                     f"{', '.join(sorted(reads))}); remove it"))
        scorer = bench.get("scorer")
        if isinstance(scorer, dict):
            problems += [(("benchmarks", n, "scorer", *loc), message) for loc, message in _model_problems(scorer)]
            if _known(scorer.get("type"), MODELS) and "image_text_encoder" not in MODELS[scorer["type"]].capabilities:
                problems.append((("benchmarks", n, "scorer", "type"), f"a CLIPScore scorer must be an "
                                 f"image_text_encoder; model type '{scorer['type']}' is not"))
    return problems


def read_list_file(path: Path) -> list[str]:
    """The non-blank lines of a text file (class names, templates), stripped of surrounding spaces."""
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({exc})") from exc


def _check_list(items: list[str], kind: str, file: Path | None = None) -> None:
    """Class names: non-empty and unique; templates: non-empty, each with {c} and no other placeholder."""
    if not items:
        raise ValueError(f"no {kind} given{f' in {file}' if file else ''}; list at least one")
    for n, item in enumerate(items):
        place = f"{file} line {n + 1}" if file else f"{kind}[{n}]"
        if not item.strip():
            raise ValueError(f"{place}: empty {kind[:-1]}")
        if kind == "templates":
            try:
                ok = "{c}" in item and item.format(c="x") is not None
            except (KeyError, IndexError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{place}: template {item!r} needs '{{c}}' (the class name) and no other braces")
    repeated = sorted({i for i in items if items.count(i) > 1})
    if kind == "classnames" and repeated:
        raise ValueError(f"class names must be unique; repeated: {', '.join(repeated[:5])}")


def _task_data_problems(task: str, bench: dict[str, Any]) -> list[tuple[Loc, str]]:
    """A data format the task cannot read, and zero-shot settings given twice or that contradict the data."""
    data = bench.get("data") if isinstance(bench.get("data"), dict) else {}
    fmt, problems = data.get("format"), []
    if _known(fmt, DATA_FORMATS) and fmt not in _TASK_FORMATS.get(task, {fmt}):
        what = "class labels, not captions" if fmt in _LABEL_FORMATS else "captions, not class labels"
        if fmt in _QUESTION_FORMATS or task in ("vqa", "multiple_choice"):
            what = _QUESTION_FORMATS.get(fmt, "no questions")
        problems.append((("data", "format"), f"format '{fmt}' holds {what}; task '{task}' reads: "
                                             f"{', '.join(sorted(_TASK_FORMATS[task]))}"))
    if task != "zeroshot_classification" and data.get("label_column") is not None:
        problems.append((("data", "label_column"), f"not used by task '{task}' (class labels are read by "
                                                   "zeroshot_classification); remove it"))
    for key in ("classnames", "templates"):
        if bench.get(key) is not None and bench.get(f"{key}_file") is not None:
            problems.append(((f"{key}_file",), f"set '{key}' or '{key}_file', not both"))
    if bench.get("multilabel") is True and fmt == "imagefolder":
        problems.append((("multilabel",), "format 'imagefolder' has one class per image; multi-label data "
                                          "needs csv, json, hf or shapes"))
    return problems


def _cross_problems(raw: dict[str, Any]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for where, entry in _model_entries(raw):
        problems += [((*where, *loc), message) for loc, message in _model_problems(entry)]
    for n, bench in enumerate(raw.get("benchmarks") if isinstance(raw.get("benchmarks"), list) else []):
        if isinstance(bench, dict) and isinstance(bench.get("data"), dict):
            problems += [(("benchmarks", n, "data", *loc), message) for loc, message in _data_problems(bench["data"])]
    return problems + _benchmark_problems(raw)


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The config class that owns the key at `loc`, to suggest its real field names."""
    current: Any = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _config_class(current.model_fields[part].annotation) or current.model_fields[part].annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _config_class(annotation: Any) -> type[BaseModel] | None:
    """The config class inside an annotation (X, X | None, list[X], Annotated[...], unions of these)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in typing.get_args(annotation) if (found := _config_class(arg))), None)


def _about(owner: type[BaseModel] | None, key: Any) -> str:
    field = owner.model_fields.get(key) if owner and isinstance(key, str) else None
    return f" ({field.description})" if field and field.description else ""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(error: dict[str, Any]) -> str:
    """One line for one pydantic error: where, what is wrong, what was expected."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        hint = did_you_mean(str(loc[-1]), known)
        return f"{format_loc(loc)}: unknown key.{hint} Valid keys here: {', '.join(known)}"
    if kind == "missing":
        return f"{format_loc(loc)}: required key is missing{_about(_model_at(loc[:-1]), loc[-1])}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        owner = _model_at(loc)
        keys = f" with keys: {', '.join(owner.model_fields)}" if owner else ""
        return f"{format_loc(loc)}: expected a mapping{keys} (got {_short_repr(error.get('input'))})"
    message = "expected a path" if kind == "path_type" else error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and "input" in error:
        value = error["input"]
        message += " (got a mapping)" if isinstance(value, dict) else f" (got {_short_repr(value)})"
    if kind == "literal_error" and isinstance(error.get("input"), str):
        hint = did_you_mean(error["input"], re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        message += f".{hint}" if hint else ""
    return f"{format_loc(loc)}: {message}"


_SECTIONS = {name: n for n, name in enumerate(("model", "benchmarks", "runtime", "output", "bootstrap"))}


def _order(item: tuple[Loc, str]) -> tuple[int, int]:
    """Problems in config order: section, then benchmark index (the sort is stable within a group)."""
    loc = item[0]
    section = _SECTIONS.get(loc[0], len(_SECTIONS)) if loc else -1
    index = loc[1] if len(loc) > 1 and loc[0] in ("benchmarks", "model") and isinstance(loc[1], int) else -1
    return section, index


def _untagged(error: dict[str, Any]) -> dict[str, Any]:
    """Drop the one-or-list tag pydantic puts in `model` error paths: ('model', 'list', 1, 'x') -> model[1].x."""
    loc = tuple(error["loc"])
    if len(loc) > 1 and loc[0] == "model" and loc[1] in ("one", "list"):
        error = {**error, "loc": (loc[0], *loc[2:])}
    return error


def validate_mapping(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a raw config mapping; raise ConfigError listing every problem, each with its path."""
    cross = _cross_problems(raw) if isinstance(raw, dict) else []
    problems = [(loc, f"{format_loc(loc)}: {message}") for loc, message in cross]
    try:
        config = RunConfig.model_validate(raw, context={_CROSS_CHECKED: True})
    except ValidationError as exc:
        errors = [_untagged(e) for e in exc.errors()]
        problems = [(tuple(e["loc"]), _describe(e)) for e in errors] + problems
    if problems:
        raise ConfigError(source, [line for _, line in sorted(problems, key=_order)])
    return config
