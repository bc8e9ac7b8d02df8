"""The versioned report: building it, validating it against the published JSON Schema, writing it safely.

A report is written atomically (temporary file, fsync, then a hard link to the final name) and a name that
already exists gets a numeric suffix, so an earlier report is never overwritten, even by a parallel run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from mmeval import __version__
from mmeval.errors import MmevalError
from mmeval.tasks.base import BenchmarkResult

SCHEMA_VERSION = "1.1.0"  # 1.1.0: p95 and per-call times in latency, ci95 beside values
SCHEMA_FILE = "report.schema.json"


def git_commit(where: Path | None = None) -> str | None:
    """HEAD of the git repository the run was started in (with '-dirty' for local changes), if any."""
    try:
        cwd = str(where or Path.cwd())
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_driver() -> str | None:
    """The NVIDIA driver version (nvidia-smi), so latency figures are compared like for like."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_info(device: torch.device) -> dict[str, Any]:
    """The software and hardware a report's numbers came from."""
    on_cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if on_cuda else None,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if on_cuda else _cpu_name(),
        "cpu_name": _cpu_name(),
        "gpu_driver": _gpu_driver() if on_cuda else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": {p: _version(p) for p in ("open_clip_torch", "transformers", "pycocotools", "datasets")},
    }


def new_report(config: dict[str, Any], model_info, runtime, config_path: str | None) -> dict[str, Any]:
    """The report skeleton; `runtime` is None when no model ran (`mmeval score`)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "mmeval_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "command": sys.argv[1:] and " ".join(["mmeval", *sys.argv[1:]]) or None,
        "config_path": config_path,
        "config": config,
        "runtime": None if runtime is None else {
            "device": str(runtime.device), "precision": runtime.precision, "batch_size": runtime.batch_size,
            "num_workers": runtime.num_workers, "seed": runtime.seed, "warmup_batches": runtime.warmup_batches,
            "world_size": runtime.dist.world_size, "distributed_backend": runtime.dist.backend,
            **({"cpu_native_bf16": runtime.cpu_native_bf16} if runtime.device.type == "cpu" else {})},
        "model": asdict(model_info),
        "environment": environment_info(runtime.device if runtime is not None else torch.device("cpu")),
        "status": "complete",
        "benchmarks": {},
    }


def add_result(report: dict[str, Any], name: str, result: BenchmarkResult) -> None:
    report["benchmarks"][name] = {
        "status": "complete",
        "task": result.task,
        "dataset": result.dataset,
        "metrics": result.metrics,
        "timings": result.timings,
        **result.extra,
    }


def add_failure(report: dict[str, Any], name: str, task: str, error: str) -> None:
    report["benchmarks"][name] = {"status": "failed", "task": task, "error": error}
    report["status"] = "partial"


def load_schema() -> dict[str, Any]:
    return json.loads(files("mmeval.schemas").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_report(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `report` does not follow the published schema."""
    import jsonschema

    jsonschema.validate(report, load_schema())


def check_writable(directory: Path) -> None:
    """Fail at once, before a long run, when reports cannot be written to `directory` (created if missing)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mmeval-write-check.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MmevalError(f"output.dir: cannot write to {directory} ({exc.strerror or exc})") from exc


def write_json_no_clobber(payload: Any, directory: Path, stem: str, suffix: str = ".json") -> Path:
    """Write JSON atomically to directory/stem[-N]suffix, picking the first name not already taken.

    Nothing half-written is ever left under a final name: a failure while writing (disk full, the folder gone)
    removes the temporary file and raises MmevalError naming the file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise MmevalError(f"output.dir: cannot write to {directory} ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False, allow_nan=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        for n in range(10_000):
            target = directory / f"{stem}{'' if n == 0 else f'-{n}'}{suffix}"
            try:
                os.link(tmp, target)  # fails if the name exists: never overwrite an earlier report
                return target
            except FileExistsError:
                continue
        raise MmevalError(f"output.dir: no free report name for {stem} in {directory}")
    except OSError as exc:
        raise MmevalError(f"output.dir: writing {stem}{suffix} to {directory} failed ({exc.strerror or exc})") from exc
    finally:
        with contextlib.suppress(OSError):  # must not hide the error above
            tmp.unlink(missing_ok=True)
