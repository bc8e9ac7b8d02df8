"""Loading checkpoint files without running code from them, unless the user says `--trust-checkpoint`.

A PyTorch `.pt` / `.bin` file is a pickle, and unpickling can call any Python function the file names (a
`__reduce__` that runs a shell command). mmeval therefore reads weights only through loaders that cannot
run code: safetensors, or `torch.load(weights_only=True)`, whose unpickler accepts tensors, containers and
plain values and refuses every other global. A file that needs more (a whole pickled `nn.Module`, an
`argparse.Namespace` saved beside the weights, anything with a `__reduce__`) is refused with one line that
names what it needs and the flag; with `--trust-checkpoint` it is unpickled as it is.

The adapters record how their weights were read in `ModelInfo.loaded_with` (one of the constants below, or
a short phrase for a library's own loader), and the report carries it in its `model` block.

A trusted pickle may hold a whole model (`torch.save(model)`): its weights are taken with `state_dict()`
(`unwrap_modules`), so the architecture named in the config is still the one evaluated. A file that is not a
checkpoint at all (cut off, text, random bytes) is told apart by `mmeval.models.checkpoint_files`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from mmeval.errors import ModelLoadError
from mmeval.models import checkpoint_files

T = TypeVar("T")
SAFETENSORS = "safetensors"
WEIGHTS_ONLY = "torch.load(weights_only=True)"
TRUSTED_PICKLE = "torch.load(trusted pickle)"
FLAG = "--trust-checkpoint"


def needs_code(exc: BaseException) -> str | None:
    """What a refused pickle wanted to run ('it needs io.open'), or None if `exc` is not such a refusal.

    `exc` may be the refusal itself or any exception it caused (libraries wrap it)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            if found:
                return f"it needs {found.group(1)}"
            found = re.search(r"WeightsUnpickler error: ([^\n]+)", str(exc))
            return found.group(1).strip().rstrip(".") if found else "it holds Python objects, not only tensors"
        exc = exc.__cause__ or exc.__context__
    return None


def refusal(path: Path | str, reason: str, field: str = "model.checkpoint") -> ModelLoadError:
    """The one-line error for a checkpoint that would run code when loaded."""
    return ModelLoadError(
        f"{field}: {path} is a pickle that runs code when loaded ({reason}); mmeval loads only safetensors "
        f"and weights-only pickles unless you pass {FLAG} (do so only for a file you trust)"
    )


def remote_code_refusal(folder: Path | str) -> ModelLoadError:
    """The one-line error for a transformers folder whose config asks for its own Python code (auto_map)."""
    return ModelLoadError(
        f"model.checkpoint: {folder} needs its own Python code to load (config.json 'auto_map'); mmeval runs "
        f"no code from a checkpoint unless you pass {FLAG} (do so only for a folder you trust)"
    )


def load_state_dict(path: Path | str, trust_checkpoint: bool = False) -> tuple[dict[str, Any], str]:
    """Read a weights file (safetensors, or a PyTorch pickle) on the CPU; returns (contents, loaded_with).

    For plugins that load their own checkpoints: the same rule as mmeval's adapters, with the same error.
    """
    path = Path(path)
    checkpoint_files.check_file(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path)), SAFETENSORS
    try:
        contents, safe = weights_only_first(lambda weights_only: torch.load(path, map_location="cpu",
                                                                            weights_only=weights_only),
                                            path, trust_checkpoint)  # fmt: skip
    except ModelLoadError:
        raise
    except Exception as exc:
        damaged = checkpoint_files.read_failure(path, exc)
        if damaged is None:
            raise
        raise damaged from exc
    return (contents, WEIGHTS_ONLY) if safe else (unwrap_modules(contents), TRUSTED_PICKLE)


def unwrap_modules(contents: Any) -> Any:
    """A trusted pickle's contents with each whole `nn.Module` (at the top, or a value of a top-level dict such
    as a training checkpoint's 'model') replaced by its `state_dict()`: `torch.save(model)` then loads like
    `torch.save(model.state_dict())`."""
    if isinstance(contents, torch.nn.Module):
        return contents.state_dict()
    if isinstance(contents, dict):
        return {k: v.state_dict() if isinstance(v, torch.nn.Module) else v for k, v in contents.items()}
    return contents


def state_dict_in(contents: Any, path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's contents: a state dict, or a training checkpoint's 'state_dict' / 'model'
    entry (whole modules already unwrapped); one-line error naming what the file holds instead."""
    contents = unwrap_modules(contents)
    for key in ("state_dict", "model"):
        if isinstance(contents, dict) and isinstance(contents.get(key), dict):
            contents = contents[key]
            break
    tensors = {k: v for k, v in contents.items() if isinstance(v, torch.Tensor)} if isinstance(contents, dict) else {}
    if not tensors:
        raise ModelLoadError(f"model.checkpoint: {path} holds a {type(contents).__name__} without tensors; expected a "
                             "state dict (torch.save(model.state_dict())), a training checkpoint with one under "
                             "'state_dict', or a whole model (torch.save(model))")
    return tensors


def weights_only_first(load: Callable[[bool], T], path: Path | str, trust_checkpoint: bool) -> tuple[T, bool]:
    """`load(weights_only=True)`; when the file needs code, one-line refusal, or with `trust_checkpoint` a
    second `load(weights_only=False)`. Returns the result and whether the weights-only read sufficed (tried
    first also when trusted, so the report says when the safe path was enough)."""
    try:
        return load(True), True
    except Exception as exc:  # libraries wrap the unpickler's refusal in their own errors
        reason = needs_code(exc)
        if reason is None:
            raise
        if not trust_checkpoint:
            raise refusal(path, reason) from exc
    return load(False), False
