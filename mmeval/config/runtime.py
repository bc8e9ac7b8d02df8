"""The run-wide config sections: `runtime` (device, precision, batching, caches), `output` and `bootstrap`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mmeval.config.base import _expand, _Strict, _valid_name
from mmeval.files import FOLDER_EXPECTED, file_in_the_way


class RuntimeConfig(_Strict):
    """How to run: device, numeric precision, batching, workers, seed."""

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 autocast on CUDA and on CPUs with AMX, fp32 on other CPUs"
    )
    batch_size: int = Field(64, gt=0)
    num_workers: int | None = Field(None, ge=0, description="DataLoader workers (default: from the core count)")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's own, the core count)")
    seed: int = 0
    warmup_batches: int = Field(2, ge=0, description="model batches left out of the latency percentiles")
    chunk_size: int = Field(1024, gt=0, description="images or texts of a pass saved together as it runs, so "
                            "`--resume` after a crash redoes at most one chunk (rounded up to whole batches)")
    cache: Literal["on", "pixels", "off"] = Field(
        "on", description="on: reuse cached model outputs and preprocessed images; pixels: only preprocessed "
        "images (e.g. to time the model on warm data); off: neither (--no-cache). true / false mean on / off")

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_bool(cls, value: Any) -> Any:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    cache_dir: Path | None = Field(None, description="cache folder (default $MMEVAL_CACHE_DIR, else "
                                   "$XDG_CACHE_HOME/mmeval or ~/.cache/mmeval)")

    @field_validator("device")
    @classmethod
    def _device_spec(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError(f"expected auto, cpu, cuda or cuda:N (e.g. cuda:1), got {value!r}")
        return value


class OutputConfig(_Strict):
    """Where reports go. A report never overwrites an earlier one."""

    dir: Path = Path("reports")
    name: str | None = Field(None, description="report file stem")
    per_sample: bool = Field(True, description="also write per-query ranks next to the report")

    @field_validator("dir")
    @classmethod
    def _not_a_file(cls, value: Path) -> Path:
        _expand(value)  # an unknown `~user`: a problem with the value, named as such
        blocker = file_in_the_way(value)  # found now, not after the whole evaluation has run
        if blocker is not None:
            raise ValueError(f"{FOLDER_EXPECTED}: {blocker}")
        return value

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str | None) -> str | None:
        return _valid_name(value)


MIN_BOOTSTRAP_RESAMPLES = 100


class BootstrapConfig(_Strict):
    """Percentile bootstrap 95% intervals (`ci95`) for every headline metric (mmeval/metrics/stats/bootstrap.py)."""

    n: int = Field(1000, ge=0, description="resamples per benchmark; 0 turns confidence intervals off")
    seed: int = Field(0, description="seed of the resampling: the same seed and data give the same intervals")
    unit: Literal["cluster", "row"] = Field(
        "cluster", description="what is resampled: 'cluster' draws the independent unit (an image, with all of its "
        "captions or questions) where a task knows it; 'row' draws each item alone (too narrow when items of "
        "one image are correlated)")

    @field_validator("n")
    @classmethod
    def _enough(cls, value: int) -> int:
        if 0 < value < MIN_BOOTSTRAP_RESAMPLES:
            raise ValueError(f"expected 0 (off) or at least {MIN_BOOTSTRAP_RESAMPLES} resamples (a 95% percentile "
                             f"interval from fewer is mostly noise), got {value}")
        return value
