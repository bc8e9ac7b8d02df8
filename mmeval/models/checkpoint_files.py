"""What a checkpoint file is, when it cannot be read as one: told apart from a real architecture mismatch.

torch and safetensors fail on a damaged or wrong file with messages that name neither the file nor the problem
(`[Errno 22] Invalid argument` for a cut-off `torch.save` file, `KeyError: 101` for a text file, a 300-word note
on `weights_only` for random bytes). `check_file` looks at the file's first bytes (and a zip archive's
directory, a safetensors header) before any model is built, and `read_failure` explains a loader's error
afterwards (a cut-off legacy pickle is only found by reading it). Both give one line: the file, what it is, what
was expected. A finding is confirmed by the real reader before it is reported, and its error is chained, so
`mmeval --debug` shows it; a file the reader accepts after all is never refused here.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

from mmeval.errors import ModelLoadError

EXPECTED = "expected a torch.save file (zip archive or pickle) or a .safetensors file"
_HEAD = 4096
_PICKLE = 0x80  # a pickle of protocol 2 or later (torch.save's legacy format) starts with the PROTO opcode


def _size_text(size: int) -> str:
    return f"{size:,} bytes"


def _zip_finding(path: Path, size: int) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return (f"a truncated or corrupt zip archive ({_size_text(size)}, its directory at the end is missing or "
                f"damaged: the copy or download was probably cut off)")
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        return f"a zip archive without data.pkl ({len(names)} members), not one torch.save wrote"
    return None


def _safetensors_finding(path: Path, head: bytes, size: int) -> str | None:
    """A problem with a safetensors file's header or length, or None when it looks whole."""
    if len(head) < 8:
        return f"not a safetensors file (only {_size_text(size)})"
    (length,) = struct.unpack("<Q", head[:8])
    if length == 0 or length > size - 8 or head[8:9] != b"{":
        return "not a safetensors file (its first 8 bytes are not the length of a JSON header)"
    with open(path, "rb") as file:
        file.seek(8)
        try:
            header = json.loads(file.read(length))
        except ValueError:
            return "a corrupt safetensors file (its JSON header does not parse)"
    ends = [entry["data_offsets"][1] for entry in header.values()
            if isinstance(entry, dict) and "data_offsets" in entry]  # fmt: skip
    needed = 8 + length + max(ends, default=0)
    if needed > size:
        return (f"a truncated safetensors file ({_size_text(size)}; its header describes "
                f"{_size_text(needed)}: the copy or download was probably cut off)")
    return None


def _looks_like_text(head: bytes) -> bool:
    """Printable UTF-8 (a character cut by the read at most), no NUL: a text file, never a checkpoint."""
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") <= 3 and all(c.isprintable() or c in "\t\r\n\f" for c in text)


def _finding(path: Path) -> str | None:
    """What is wrong with `path` as a checkpoint, judged from its bytes; None when nothing is plainly wrong."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    with open(path, "rb") as file:
        head = file.read(_HEAD)
    if path.suffix in (".npz", ".npy"):
        return None  # numpy arrays (big_vision weights), read by open_clip
    if head.startswith(b"PK\x03\x04"):
        return _zip_finding(path, size)
    if path.suffix == ".safetensors":
        return _safetensors_finding(path, head, size)
    if head[0] == _PICKLE:
        return None  # whole or not, only reading it tells (see read_failure)
    if _looks_like_text(head):
        first = head.decode("utf-8", errors="replace").strip().splitlines()[0][:40] if head.strip() else ""
        return f"a text file ({_size_text(size)}, starting {first!r})"
    if _safetensors_finding(path, head, size) is None:
        return None  # safetensors under another suffix
    shown = " ".join(f"{byte:02x}" for byte in head[:8])
    return f"bytes of no checkpoint format, neither a zip archive, a pickle nor safetensors (first bytes {shown})"


def _confirm(path: Path) -> BaseException | None:
    """The error the real reader raises on `path` (weights only: nothing in the file runs), or None."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as opened:
                list(opened.keys())
        else:
            torch.load(path, map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # whatever the reader says about a file it cannot read
        return exc
    return None


def _error(path: Path, finding: str, field: str) -> ModelLoadError:
    """The one line for a file that is not a readable checkpoint (`field` names the config key)."""
    return ModelLoadError(f"{field}: {path} is not a readable checkpoint: {finding}; {EXPECTED}")


def check_file(path: Path | str, field: str = "model.checkpoint") -> None:
    """Raise ModelLoadError for a file that is plainly not a checkpoint: empty, a cut-off zip or safetensors
    file, text, or bytes of no checkpoint format. Cheap (the first bytes, a zip directory, a JSON header), so
    it runs before any model is built; the reader's own error is chained to the one raised."""
    path = Path(path)
    if not path.is_file():
        return
    finding = _finding(path)
    if finding is None:
        return
    cause = _confirm(path)
    if cause is None:
        return  # the reader accepts it after all: not ours to refuse
    raise _error(path, finding, field) from cause


def read_failure(path: Path | str, exc: BaseException, field: str = "model.checkpoint") -> ModelLoadError | None:
    """A loader's error explained as a damaged checkpoint (a pickle cut off mid-way, a corrupt one), or None
    when `exc` is not about reading the file (an architecture mismatch, a refused pickle)."""
    path = Path(path)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if isinstance(current, EOFError) or "unexpected EOF" in text or "pickle data was truncated" in text:
            size = path.stat().st_size if path.is_file() else 0
            finding = f"a truncated pickle ({_size_text(size)}; it ends before its data does)"
            return _error(path, finding, field)
        if isinstance(current, pickle.UnpicklingError) and "Weights only load failed" not in text:
            return _error(path, f"a corrupt pickle ({text.strip().rstrip('.')})", field)
        if "PytorchStreamReader failed" in text:
            finding = f"a corrupt torch.save archive ({text.strip().splitlines()[0]})"
            return _error(path, finding, field)
        current = current.__cause__ or current.__context__
    return None
