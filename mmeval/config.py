"""The typed run config: YAML in, validated, unknown keys rejected, every problem reported at once.

Relative paths are resolved against the current working directory (as with any command-line tool), and
problems are reported as `benchmarks[0].data.annotations: file not found: /abs/path`.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmeval.errors import ConfigError
from mmeval.registry import DATA_FORMATS, MODELS, TASKS, did_you_mean, unknown_name_message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _existing(path: Path | None, kind: str) -> Path | None:
    if path is None:
        return None
    path = path.expanduser().resolve()
    if not path.exists():
        raise ValueError(f"{kind} not found: {path}")
    if kind == "folder" and not path.is_dir():
        raise ValueError(f"expected a folder, got a file: {path}")
    if kind == "file" and not path.is_file():
        raise ValueError(f"expected a file, got a folder: {path}")
    return path


class ModelConfig(_Strict):
    """Which checkpoint to evaluate, and through which adapter."""

    type: str = Field(description="adapter: " + ", ".join(MODELS))
    arch: str | None = Field(None, description="architecture name (open_clip: e.g. ViT-B-32)")
    checkpoint: Path | None = Field(None, description="checkpoint file or folder")
    pretrained: str | None = Field(None, description="open_clip pretrained tag (needs the hub)")
    arch_config: Path | None = Field(None, description="open_clip: a model config JSON to register")
    name: str | None = Field(None, description="label used in reports (default: derived)")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(unknown_name_message("model type", value, MODELS))
        return value

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_exists(cls, value: Path | None) -> Path | None:
        return _existing(value, "checkpoint")

    @field_validator("arch_config")
    @classmethod
    def _arch_config_exists(cls, value: Path | None) -> Path | None:
        return _existing(value, "file")

    @model_validator(mode="after")
    def _fields_for_type(self) -> ModelConfig:
        if self.type == "open_clip":
            if not self.arch:
                raise ValueError("model type 'open_clip' needs 'arch' (e.g. ViT-B-32)")
            if not self.checkpoint and not self.pretrained:
                raise ValueError("model type 'open_clip' needs 'checkpoint' (a local file) or 'pretrained' (a tag)")
        if self.type == "hf_clip" and not self.checkpoint:
            raise ValueError("model type 'hf_clip' needs 'checkpoint': a folder saved with save_pretrained")
        return self


# Which data fields each format reads; a field set for a format that ignores it is an error, not a no-op.
_FORMAT_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # format -> (required, optional)
    "coco": ({"annotations", "images"}, set()),
    "karpathy": ({"annotations", "images"}, {"split"}),
    "hf": ({"path"}, {"split", "image_column", "caption_column", "image_id_column"}),
    "shapes": (set(), {"split", "n_images", "seed", "image_size"}),
}
_COMMON_DATA_FIELDS = {"format", "on_bad_image", "limit"}


class DataConfig(_Strict):
    """Where a benchmark's images and texts come from. Fields used depend on `format`."""

    format: str = Field(description="coco | karpathy | hf | shapes")
    annotations: Path | None = Field(None, description="annotation JSON (coco, karpathy)")
    images: Path | None = Field(None, description="image folder (coco, karpathy)")
    split: str | None = Field(None, description="karpathy: test|val|train|restval; hf: dataset split; shapes")
    path: str | None = Field(None, description="hf: a hub id, a local dataset folder or a save_to_disk folder")
    image_column: str = "image"
    caption_column: str = "caption"
    image_id_column: str | None = None
    n_images: int = Field(1000, gt=0, description="shapes: number of scenes")
    seed: int = Field(0, description="shapes: generator seed")
    image_size: int = Field(64, gt=0, description="shapes: rendered size in pixels")
    on_bad_image: Literal["skip", "fail"] = Field("fail", description="a corrupt or missing image: skip or fail")
    limit: int | None = Field(None, gt=0, description="evaluate only the first N images (quick runs)")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in DATA_FORMATS:
            raise ValueError(unknown_name_message("data format", value, DATA_FORMATS))
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "file")

    @field_validator("images")
    @classmethod
    def _images_exist(cls, value: Path | None) -> Path | None:
        return _existing(value, "folder")

    @model_validator(mode="after")
    def _fields_for_format(self) -> DataConfig:
        required, optional = _FORMAT_FIELDS[self.format]
        missing = sorted(f for f in required if getattr(self, f) is None)
        unused = sorted(self.model_fields_set - required - optional - _COMMON_DATA_FIELDS)
        problems = []
        if missing:
            problems.append(f"format '{self.format}' needs: {', '.join(missing)}")
        if unused:
            problems.append(f"format '{self.format}' does not use: {', '.join(unused)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BenchmarkConfig(_Strict):
    """One benchmark: a unique name, a task and its data."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="unique; used in report keys")
    task: str = Field(description="task: " + ", ".join(TASKS))
    data: DataConfig
    recall_k: list[int] = Field([1, 5, 10], min_length=1, description="k values for recall@k")

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


class RuntimeConfig(_Strict):
    """How to run: device, numeric precision, batching, workers, seed."""

    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = fp32 on CPU, bf16 autocast on CUDA"
    )
    batch_size: int = Field(64, gt=0)
    num_workers: int | None = Field(None, ge=0, description="DataLoader workers (default: from the core count)")
    seed: int = 0


class OutputConfig(_Strict):
    """Where reports go. A report never overwrites an earlier one."""

    dir: Path = Path("reports")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="report file stem")
    per_sample: bool = Field(True, description="also write per-query ranks next to the report")


class RunConfig(_Strict):
    model: ModelConfig
    benchmarks: list[BenchmarkConfig] = Field(min_length=1)
    runtime: RuntimeConfig = RuntimeConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        names = [b.name for b in self.benchmarks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"benchmark names must be unique; repeated: {', '.join(duplicates)}")
        can = MODELS[self.model.type].capability
        for bench in self.benchmarks:
            needs = TASKS[bench.task].capability
            if needs != can:
                raise ValueError(
                    f"benchmark '{bench.name}': task '{bench.task}' needs a model with capability "
                    f"'{needs}', but model type '{self.model.type}' provides '{can}'"
                )
        return self


def format_loc(loc: tuple[Any, ...]) -> str:
    """('benchmarks', 0, 'data', 'images') -> 'benchmarks[0].data.images'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class that owns the key at `loc`, to suggest its real field names."""
    current: Any = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        args = typing.get_args(annotation)
        current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        hint = did_you_mean(str(loc[-1]), known)
        return f"{format_loc(loc)}: unknown key.{hint} Valid keys here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{format_loc(loc)}: required key is missing"
    if error["type"] != "value_error" and "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return f"{format_loc(loc)}: {message}"


def _parse_override(item: str) -> tuple[list[str | int], Any]:
    if "=" not in item:
        raise ValueError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    parts: list[str | int] = []
    for token in re.split(r"\.|\[(\d+)\]", key.strip()):
        if token:
            parts.append(int(token) if token.isdigit() else token)
    return parts, yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set a.b[0].c=value` overrides (values parsed as YAML) to the raw config mapping."""
    for item in overrides:
        try:
            parts, value = _parse_override(item)
            node: Any = raw
            for part in parts[:-1]:
                if isinstance(node, list):
                    node = node[int(part)]
                else:
                    node = node.setdefault(part, {})
            if isinstance(node, list):
                node[int(parts[-1])] = value
            else:
                node[parts[-1]] = value
        except (IndexError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
            raise ConfigError("--set", [f"{item}: cannot apply ({exc})"]) from exc
    return raw


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a run config; raise ConfigError listing every problem."""
    source = str(path)
    if not path.is_file():
        raise ConfigError(source, [f"config file not found: {path.resolve()}"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {' '.join(str(exc).split())}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not a UTF-8 text file ({exc.reason})"]) from exc
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"expected a mapping with keys model, benchmarks, ...; got {type(raw).__name__}"])
    raw = apply_overrides(raw, overrides or [])
    return validate_mapping(raw, source)


def validate_mapping(raw: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e) for e in exc.errors()]) from exc
