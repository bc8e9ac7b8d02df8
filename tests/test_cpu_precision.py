"""bf16 on the CPU (issue #14, item 3): bf16 hardware is read from the CPU flags, a bf16 run on a CPU without it
is warned about once, and the report's runtime block records what was found."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mmeval.config.run import validate_mapping
from mmeval.config.runtime import RuntimeConfig
from mmeval.engine import runtime as rt
from mmeval.engine.evaluate import run_config
from mmeval.reporting.report import validate_report

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma {extra}\nbogomips\t: 5192.26\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes {extra}\nCPU implementer\t: 0x41\n"
WARNING = ("runtime.precision: bf16 on a CPU without bf16 hardware (no amx_bf16 / avx512_bf16 in its flags): torch "
           "emulates it, which is usually several times slower than fp32; use precision fp32 (or auto) on this CPU")


def cpuinfo(tmp_path: Path, template: str, extra: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(template.format(extra=extra) * 2)  # one block per core, as Linux writes it
    return str(path)


@pytest.mark.parametrize(("template", "extra", "native"), [
    (X86, "", False),  # AVX2 only (the Zen 3)
    (X86, "avx512f avx512bw", False),  # AVX-512 without its BF16 extension
    (X86, "avx512f avx512_bf16", True),  # Zen 4, Cooper Lake
    (X86, "avx512f amx_tile amx_bf16", True),  # Sapphire Rapids
    (ARM, "sve", False),
    (ARM, "sve bf16", True),  # Arm's BF16 instructions (Graviton 3, Neoverse V1)
])  # fmt: skip
def test_native_bf16_from_the_cpu_flags(tmp_path: Path, monkeypatch, template: str, extra: str, native: bool) -> None:
    path = cpuinfo(tmp_path, template, extra)
    monkeypatch.setattr(rt, "cpu_flags", lambda real=rt.cpu_flags: real(path))
    assert rt.native_bf16() is native


def test_unreadable_flags_are_unknown_unless_amx(monkeypatch, tmp_path: Path) -> None:
    assert rt.cpu_flags(str(tmp_path / "absent")) is None
    monkeypatch.setattr(rt, "cpu_flags", lambda: None)
    monkeypatch.setattr(rt, "cpu_has_amx", lambda: False)
    assert rt.native_bf16() is None
    monkeypatch.setattr(rt, "cpu_has_amx", lambda: True)
    assert rt.native_bf16() is True


def test_this_machines_flags_match_lscpu_words() -> None:
    """The parser against the file read independently: every word of the first flags line."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")]
    if not lines:
        assert rt.cpu_flags() is None
        return
    assert rt.cpu_flags() == set(lines[0].split(":", 1)[1].split())


@pytest.fixture
def fresh_warning(monkeypatch) -> None:
    monkeypatch.setattr(rt, "_warned_bf16", False)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == rt.__name__]


def test_bf16_without_hardware_is_warned_once(fresh_warning, monkeypatch, caplog) -> None:
    monkeypatch.setattr(rt, "native_bf16", lambda: False)
    caplog.set_level(logging.WARNING)

    fp32 = rt.resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", cache="off"))
    assert warnings_of(caplog) == [] and fp32.cpu_native_bf16 is False
    bf16 = rt.resolve_runtime(RuntimeConfig(device="cpu", precision="bf16", cache="off"))
    rt.resolve_runtime(RuntimeConfig(device="cpu", precision="bf16", cache="off"))
    assert bf16.precision == "bf16"  # a warning, not a refusal
    assert warnings_of(caplog) == [WARNING]


def test_a_bench_sweep_into_bf16_warns_once(fresh_warning, monkeypatch, caplog) -> None:
    """`mmeval bench --precisions fp32,bf16` switches precision through match_weights, not resolve_runtime."""
    import dataclasses

    import torch

    monkeypatch.setattr(rt, "native_bf16", lambda: False)
    caplog.set_level(logging.WARNING)
    runtime = rt.resolve_runtime(RuntimeConfig(device="cpu", precision="fp32", cache="off"))

    class Model:
        module = torch.nn.Linear(2, 2)
        bf16_weights_on_cpu = True

    for precision in ("fp32", "bf16", "fp32", "bf16"):
        rt.match_weights(Model(), dataclasses.replace(runtime, precision=precision))
    assert warnings_of(caplog) == [WARNING]


def test_no_warning_with_bf16_hardware_or_unknown_flags(fresh_warning, monkeypatch, caplog) -> None:
    caplog.set_level(logging.WARNING)
    for native in (True, None):
        monkeypatch.setattr(rt, "native_bf16", lambda native=native: native)
        rt.resolve_runtime(RuntimeConfig(device="cpu", precision="bf16", cache="off"))
    assert warnings_of(caplog) == []


def test_the_report_records_it(fresh_warning, monkeypatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setattr(rt, "native_bf16", lambda: False)
    caplog.set_level(logging.WARNING)
    cfg = validate_mapping({
        "model": {"type": "reference"},
        "benchmarks": [{"name": "shapes", "task": "retrieval", "data": {"format": "shapes", "n_images": 8}}],
        "runtime": {"device": "cpu", "precision": "bf16", "batch_size": 8, "num_workers": 0, "cache": "off"},
        "output": {"dir": str(tmp_path), "name": "run"}})  # fmt: skip

    outcome = run_config(cfg)

    validate_report(outcome.report)
    assert outcome.report["runtime"]["cpu_native_bf16"] is False
    assert outcome.report["runtime"]["precision"] == "bf16"
    assert warnings_of(caplog) == [WARNING]
