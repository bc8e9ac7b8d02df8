"""Loading checkpoint files without running code from them, unless the user says `--trust-checkpoint`.

A PyTorch `.pt` / `.bin` file is a pickle, and unpickling can call any Python function the file names (a
`__reduce__` that runs a shell command). mmeval therefore reads weights only through loaders that cannot
run code: safetensors, or `torch.load(weights_only=True)`, whose unpickler accepts tensors, containers and
plain values and refuses every other global. A file that needs more (a whole pickled `nn.Module`, an
`argparse.Namespace` saved beside the weights, anything with a `__reduce__`) is refused with one line that
names what it needs and the flag; with `--trust-checkpoint` it is unpickled as it is.

The adapters record how their weights were read in `ModelInfo.loaded_with` (one of the constants below, or
a short phrase for a library's own loader), and the report carries it in its `model` block.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from mmeval.errors import ModelLoadError

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
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path)), SAFETENSORS
    contents, safe = weights_only_first(lambda weights_only: torch.load(path, map_location="cpu",
                                                                        weights_only=weights_only),
                                        path, trust_checkpoint)  # fmt: skip
    return contents, WEIGHTS_ONLY if safe else TRUSTED_PICKLE


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
