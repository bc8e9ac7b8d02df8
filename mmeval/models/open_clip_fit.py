"""Why a checkpoint does not fit an open_clip architecture, and which registered architecture it fits instead.

torch's strict `load_state_dict` lists every missing, unexpected and reshaped tensor in one line (9,000
characters for ViT-B-16 weights given as ViT-B-32). This module compares the checkpoint's tensor names and
shapes with the architecture's instead, and says it in counts and at most five examples. It then looks for the
registered architecture the checkpoint fits: a shortlist chosen from each config's telltale sizes (embedding
width, patch size, tower widths and depths, context length), each candidate built on the meta device (shapes
without memory or initialisation), within a time budget. It runs only after a load failed.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

Shapes = dict[str, tuple[int, ...]]
EXAMPLES = 5  # example keys in a message
SHORTLIST = 4  # candidate architectures built to compare exactly
BUDGET_S = 10.0  # time for the search, after the first candidate


@dataclass
class Misfit:
    """How a checkpoint's tensors differ from an architecture's (each list sorted by key)."""

    missing: list[str] = field(default_factory=list)  # in the architecture, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the architecture
    reshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, have, want

    @property
    def count(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.reshaped)


def shapes_of(contents: Any) -> Shapes:
    """Tensor name -> shape of a state dict, as open_clip reads one: inside a training checkpoint's
    'state_dict', without DataParallel's 'module.' prefix; entries that are not tensors are left out."""
    if isinstance(contents, torch.nn.Module):
        contents = contents.state_dict()
    if isinstance(contents, Mapping) and isinstance(contents.get("state_dict"), Mapping):
        contents = contents["state_dict"]
    if not isinstance(contents, Mapping):
        return {}
    tensors = {str(k): tuple(v.shape) for k, v in contents.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def read_shapes(path: Path | str) -> Shapes:
    """The tensor shapes of a checkpoint file without reading its data (safetensors header; a torch.save file
    mapped onto the meta device). Weights only: raises for a file that needs code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as opened:
            return {key: tuple(opened.get_slice(key).get_shape()) for key in opened.keys()}  # noqa: SIM118 (not a dict)
    return shapes_of(torch.load(path, map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path)))


def architecture_shapes(arch: str) -> Shapes | None:
    """Tensor name -> shape of open_clip architecture `arch`, built on the meta device; None if it cannot be."""
    import open_clip

    try:
        with torch.device("meta"):
            model = open_clip.create_model(arch, device="meta")
    except Exception:  # an architecture that cannot be built offline or on meta is no candidate
        return None
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def compare(have: Shapes, want: Shapes) -> Misfit:
    """The differences between a checkpoint's shapes (`have`) and an architecture's (`want`). A one-element
    tensor fits any one-element shape (open_clip reshapes `logit_scale`)."""
    def same(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return a == b or (torch.Size(a).numel() == 1 and torch.Size(b).numel() == 1)

    return Misfit(
        missing=sorted(k for k in want if k not in have),
        unexpected=sorted(k for k in have if k not in want),
        reshaped=sorted((k, have[k], want[k]) for k in have if k in want and not same(have[k], want[k])),
    )


# --- telltale sizes: a cheap shortlist from the config files -------------------------------------------------


def _depth(shapes: Shapes, prefix: str) -> int | None:
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return len(blocks) or None


def _checkpoint_sizes(shapes: Shapes) -> dict[str, int | None]:
    conv = shapes.get("visual.conv1.weight")
    tokens = shapes.get("token_embedding.weight")
    projection = shapes.get("text_projection") or shapes.get("visual.proj")
    return {
        "embed_dim": projection[-1] if projection else None,
        "vision_width": conv[0] if conv else None,
        "patch_size": conv[-1] if conv else None,
        "vision_layers": _depth(shapes, "visual.transformer.resblocks."),
        "text_width": tokens[1] if tokens else None,
        "vocab_size": tokens[0] if tokens else None,
        "text_layers": _depth(shapes, "transformer.resblocks."),
        "context_length": shapes["positional_embedding"][0] if "positional_embedding" in shapes else None,
    }


def _config_sizes(config: Mapping[str, Any]) -> dict[str, int | None]:
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision, text = config.get("vision_cfg", {}), config.get("text_cfg", {})

    def size(section: Mapping[str, Any], defaults: type, key: str) -> int | None:
        value = section.get(key, getattr(defaults, key, None))
        return value if isinstance(value, int) else None

    return {
        "embed_dim": config.get("embed_dim"),
        "vision_width": size(vision, CLIPVisionCfg, "width"),
        "patch_size": size(vision, CLIPVisionCfg, "patch_size"),
        "vision_layers": size(vision, CLIPVisionCfg, "layers"),
        "text_width": size(text, CLIPTextCfg, "width"),
        "vocab_size": size(text, CLIPTextCfg, "vocab_size"),
        "text_layers": size(text, CLIPTextCfg, "layers"),
        "context_length": size(text, CLIPTextCfg, "context_length"),
    }


def _agreement(have: dict[str, int | None], config: Mapping[str, Any]) -> int:
    """Telltale sizes that agree minus those that disagree (sizes either side lacks count for neither)."""
    want = _config_sizes(config)
    pairs = [(have[k], want[k]) for k in have if have[k] is not None and want[k] is not None]
    return sum(1 if a == b else -1 for a, b in pairs)


def shortlist(shapes: Shapes, exclude: str, limit: int = SHORTLIST) -> list[str]:
    """The registered architectures whose configs agree best with the checkpoint's telltale sizes; configs
    that need another library's model (an `hf_model_name` text tower, a `timm_model_name` image tower) are
    left out: building them may download or import much."""
    import open_clip

    sizes = _checkpoint_sizes(shapes)
    scored = []
    for name in open_clip.list_models():
        config = open_clip.get_model_config(name)
        if name == exclude or not config or "hf_model_name" in config.get("text_cfg", {}) \
                or "timm_model_name" in config.get("vision_cfg", {}):  # fmt: skip
            continue
        score = _agreement(sizes, config)
        if score > 0:
            scored.append((-score, name))
    return [name for _, name in sorted(scored)[:limit]]


def candidates(shapes: Shapes, exclude: str, budget_s: float = BUDGET_S,
               build: Callable[[str], Shapes | None] = architecture_shapes) -> list[tuple[str, Misfit]]:
    """The shortlisted architectures compared exactly, fewest differences first (ties by name); the search
    stops when `budget_s` has passed."""
    found = []
    deadline = time.monotonic() + budget_s
    for name in shortlist(shapes, exclude):
        want = build(name)
        if want is not None:
            found.append((name, compare(shapes, want)))
        if time.monotonic() > deadline:
            break
    return sorted(found, key=lambda pair: (pair[1].count, pair[0]))


# --- the message --------------------------------------------------------------------------------------------


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _examples(misfit: Misfit) -> str:
    lines = [f"size mismatch for {key}: checkpoint {_shape(have)}, architecture {_shape(want)}"
             for key, have, want in misfit.reshaped]  # fmt: skip
    lines += [f"unexpected key {key}" for key in misfit.unexpected]
    lines += [f"missing key {key}" for key in misfit.missing]
    shown = "; ".join(lines[:EXAMPLES])
    return shown + (f"; and {len(lines) - EXAMPLES} more" if len(lines) > EXAMPLES else "")


def describe(arch: str, have: Shapes, want: Shapes, budget_s: float = BUDGET_S) -> str:
    """'does not fit ...': counts, up to five examples, and the registered architecture it fits better."""
    misfit = compare(have, want)
    counts = (f"of its {len(have)} tensors {len(misfit.reshaped)} have another shape and {len(misfit.unexpected)} "
              f"are not in the architecture, and {len(misfit.missing)} of the architecture's {len(want)} are "
              "missing")  # fmt: skip
    text = f"does not fit open_clip architecture '{arch}': {counts} ({_examples(misfit)})"
    found = [pair for pair in candidates(have, arch, budget_s) if pair[1].count < misfit.count]
    if not found:
        return text + "; no registered open_clip architecture fits it better"
    name, better = found[0]
    if better.count:
        return text + (f"; the nearest registered open_clip architecture is '{name}' ({better.count} differences "
                       f"instead of {misfit.count})")
    twins = [other for other, fit in found[1:] if fit.count == 0]
    same = f"; {', '.join(repr(t) for t in twins)} {'has' if len(twins) == 1 else 'have'} the same shapes" if twins else ""
    return text + f"; it fits open_clip architecture '{name}' exactly (model.arch: {name}{same})"
