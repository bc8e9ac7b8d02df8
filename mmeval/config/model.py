"""`model:`: which checkpoint to evaluate and through which adapter, and which fields each adapter reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mmeval.config.base import (
    Loc,
    _existing,
    _expand,
    _field_problems,
    _known,
    _raise_unless_checked,
    _set_fields,
    _Strict,
)
from mmeval.config.model_list import is_pattern, matches
from mmeval.config.served import ServedConfig, capability_problem
from mmeval.registry import MODELS, unknown_name_message


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
    language: str | None = Field(None, description="hf_whisper: the spoken language, e.g. en (None: detected)")
    asr_task: Literal["transcribe", "translate"] = Field("transcribe", description="hf_whisper: transcribe or translate")
    grammar: Path | None = Field(None, description="pocketsphinx: a JSGF grammar file (instead of the language model)")
    lm: Path | None = Field(None, description="pocketsphinx: an ARPA / binary language model (default: its en-us)")
    dictionary: Path | None = Field(None, description="pocketsphinx: a pronunciation dictionary (default: its en-us)")
    acoustic_model: Path | None = Field(None, description="pocketsphinx: an acoustic model folder (default: en-us)")
    frame_size: int | tuple[int, int] | None = Field(
        None, description="hf_video_lm, native-resolution models (Qwen2-VL): frames resized to this side or "
                          "[height, width] (default 336)")
    video_pooling: Literal["mean", "max"] | None = Field(
        None, description="video tasks with an image-text model: pool its frame embeddings by mean (default) or max")
    served: ServedConfig | None = Field(None, description="openai: the OpenAI-compatible endpoint and its settings")

    @field_validator("entry")
    @classmethod
    def _entry_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"expected 'package.module:factory', got {value!r}")
        return value

    @field_validator("frame_size")
    @classmethod
    def _positive_frame_size(cls, value: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
        sides = (value,) if isinstance(value, int) else value or ()
        if any(side < 1 for side in sides):
            raise ValueError(f"expected positive pixel sizes, got {value}")
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
    "reference_video": (set(), {"checkpoint"}),
    "open_clip": ({"arch"}, {"checkpoint", "pretrained", "arch_config"}),
    "hf_clip": ({"checkpoint"}, set()),
    "hf_captioner": ({"checkpoint"}, set()),
    "plugin": ({"entry"}, {"checkpoint", "options"}),
    "reference_audio": (set(), {"checkpoint"}),
    "hf_clap": ({"checkpoint"}, set()),
    "hf_whisper": ({"checkpoint"}, {"language", "asr_task"}),
    "hf_ctc": ({"checkpoint"}, set()),
    "pocketsphinx": (set(), {"grammar", "lm", "dictionary", "acoustic_model"}),
    "hf_xclip": ({"checkpoint"}, set()),
    "hf_video_lm": ({"checkpoint"}, {"frame_size"}),
    "video_plugin": ({"entry"}, {"checkpoint", "options"}),
    "openai": ({"served"}, set()),
}
_COMMON_MODEL_FIELDS = {"type", "name", "video_pooling"}
_CHECKPOINT_KIND = {  # adapter -> (file or folder, what it should hold)
    "reference": ("folder", "a folder with config.json and model.safetensors"),
    "reference_video": ("folder", "a folder with config.json and model.safetensors"),
    "hf_clip": ("folder", "a folder saved with save_pretrained"),
    "hf_captioner": ("folder", "a folder saved with save_pretrained"),
    "hf_whisper": ("folder", "a folder saved with save_pretrained"),
    "hf_ctc": ("folder", "a folder saved with save_pretrained"),
    "open_clip": ("file", "a state-dict file"),
    "reference_audio": ("folder", "a folder with config.json, model.safetensors and captions.json"),
    "hf_clap": ("folder", "a folder saved with save_pretrained"),
    "hf_xclip": ("folder", "a folder saved with save_pretrained"),
    "hf_video_lm": ("folder", "a folder saved with save_pretrained"),
}




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
        for given in matches(checkpoint) if is_pattern(checkpoint) else [Path(checkpoint)]:
            try:
                path = _expand(given).resolve()
            except ValueError:  # reported by the checkpoint's own validator
                continue
            if (expected == "folder" and path.is_file()) or (expected == "file" and path.is_dir()):
                got = "a file" if path.is_file() else "a folder"  # the path as the user wrote it (or the glob found)
                problems.append((("checkpoint",), f"model type '{kind}' needs {holds}, got {got}: {given}"))
    return problems


def _model_entries(raw: dict[str, Any]) -> list[tuple[Loc, dict[str, Any]]]:
    """The raw model mappings with their place: ('model',) for one, ('model', i) for each of a list."""
    model = raw.get("model")
    if isinstance(model, dict):
        return [(("model",), model)]
    if isinstance(model, list):
        return [(("model", n), entry) for n, entry in enumerate(model) if isinstance(entry, dict)]
    return []


# Model types whose settings decide some of their capabilities (a served model takes audio only when its server
# does): type -> check(raw entry, needed capability) -> why not, or None.
_ENTRY_CAPABILITY_CHECKS = {"openai": capability_problem}


def entry_capability_problem(entry: dict[str, Any], needs: str) -> str | None:
    """Why this raw model entry's settings rule out capability `needs` (its type has it), or None."""
    check = _ENTRY_CAPABILITY_CHECKS.get(entry.get("type"))
    return check(entry, needs) if check is not None else None
