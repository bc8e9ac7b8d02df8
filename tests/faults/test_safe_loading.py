"""Safe checkpoint loading: no code from a checkpoint runs unless the user passes --trust-checkpoint.

The hostile checkpoints here hold an object whose `__reduce__` opens (creates) a marker file when unpickled,
and a transformers folder whose config maps AutoModel to its own module, which writes a marker when
imported. Without the flag each is refused with one line naming the flag, and the marker never appears;
with it the checkpoint loads. The report's `model.loaded_with` says which loading path ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PLUGIN_HEADER

from mmeval.config.run import ModelConfig
from mmeval.engine.evaluate import load_model
from mmeval.errors import ModelLoadError
from mmeval.models import safe_load
from mmeval.reporting.report import validate_report


class OpensAFile:
    """Unpickled as `open(path, "w")`: running code from a checkpoint, made visible by the file it creates."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def refusal(path: Path, needs: str = "io.open") -> str:
    return (f"model.checkpoint: {path} is a pickle that runs code when loaded (it needs {needs}); mmeval loads "
            "only safetensors and weights-only pickles unless you pass --trust-checkpoint (do so only for a file "
            "you trust)")


@pytest.fixture
def hostile_open_clip(tiny_open_clip, tmp_path: Path) -> dict:
    """The tiny open_clip weights saved as a training checkpoint that also holds a code-running object."""
    state = torch.load(tiny_open_clip["checkpoint"], weights_only=True)
    path = tmp_path / "hostile.pt"
    torch.save({"state_dict": state, "epoch": 3, "logger": OpensAFile(tmp_path / "marker")}, path)
    return {**tiny_open_clip, "checkpoint": path, "marker": tmp_path / "marker"}


def open_clip_cfg(ckpt: dict) -> ModelConfig:
    return ModelConfig(type="open_clip", arch=ckpt["arch"], arch_config=ckpt["arch_config"],
                       checkpoint=ckpt["checkpoint"])


def run_cli(tmp_path: Path, cfg: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "run.yaml").write_text(json.dumps(cfg))
    return subprocess.run([sys.executable, "-m", "mmeval", *args, "-c", "run.yaml"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **(env or {})})


def run_yaml(model: dict, tmp_path: Path) -> dict:
    return {"model": model,
            "benchmarks": [{"name": "shapes", "task": "retrieval", "data": {"format": "shapes", "n_images": 4}}],
            "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
            "output": {"dir": str(tmp_path / "reports"), "name": "run"}}  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------------------------- open_clip


def test_code_running_pickle_is_refused_and_runs_nothing(hostile_open_clip: dict) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(open_clip_cfg(hostile_open_clip))
    assert str(caught.value) == refusal(hostile_open_clip["checkpoint"])
    assert not hostile_open_clip["marker"].exists()


@pytest.mark.slow
def test_cli_refuses_without_the_flag_and_loads_with_it(hostile_open_clip: dict, tmp_path: Path) -> None:
    ckpt = hostile_open_clip
    model = {"type": "open_clip", "arch": ckpt["arch"], "arch_config": str(ckpt["arch_config"]),
             "checkpoint": str(ckpt["checkpoint"])}
    cfg = run_yaml(model, tmp_path)

    for command in ("run", "bench"):
        refused = run_cli(tmp_path, cfg, command)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert error_lines(refused.stderr) == [f"error: {refusal(ckpt['checkpoint'])}"]
        assert not ckpt["marker"].exists()
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").glob("*.json"))

    trusted = run_cli(tmp_path, cfg, "run", "--trust-checkpoint")

    assert trusted.returncode == 0, trusted.stderr
    assert ckpt["marker"].exists()  # the pickle's code ran: only because the user said so
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    validate_report(report)
    assert report["model"]["loaded_with"] == safe_load.TRUSTED_PICKLE
    assert "--trust-checkpoint" in report["command"].split()


def test_plain_state_dict_loads_weights_only_even_when_trusted(tiny_open_clip: dict) -> None:
    """A checkpoint that needs no code is read weights-only with or without the flag, and says so."""
    for trust in (False, True):
        assert load_model(open_clip_cfg(tiny_open_clip), trust).info.loaded_with == safe_load.WEIGHTS_ONLY


def test_safetensors_checkpoint_records_safetensors(tiny_open_clip: dict, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(tiny_open_clip["checkpoint"], weights_only=True)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = load_model(open_clip_cfg({**tiny_open_clip, "checkpoint": path}))
    assert model.info.loaded_with == safe_load.SAFETENSORS
    reference = load_model(open_clip_cfg(tiny_open_clip))
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_image(pixels), reference.encode_image(pixels))


def test_a_pickled_module_names_its_class(tiny_open_clip: dict, tmp_path: Path) -> None:
    """torch.save(model) stores classes, which weights-only unpickling refuses to import."""
    import open_clip

    path = tmp_path / "whole-model.pt"
    torch.save(open_clip.create_model("tiny-clip"), path)
    with pytest.raises(ModelLoadError) as caught:
        load_model(open_clip_cfg({**tiny_open_clip, "checkpoint": path}))
    assert str(caught.value) == refusal(path, "open_clip.model.CLIP")


def test_reference_model_is_safetensors() -> None:
    assert load_model(ModelConfig(type="reference")).info.loaded_with == safe_load.SAFETENSORS


# -------------------------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def hf_clip_folder(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from tiny_hf import save_clip

    return save_clip(tmp_path_factory.mktemp("hf") / "clip")


def _copy(folder: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, to))


def test_hf_safetensors_folder_is_loaded_without_remote_code(hf_clip_folder: Path, monkeypatch) -> None:
    import transformers

    seen: dict[str, dict] = {}
    for name in ("AutoModel", "AutoTokenizer", "AutoImageProcessor"):
        auto = getattr(transformers, name)
        real = auto.from_pretrained.__func__

        def spy(cls, *args, _real=real, _name=name, **kwargs):
            seen[_name] = kwargs
            return _real(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(spy))
    model = load_model(ModelConfig(type="hf_clip", checkpoint=hf_clip_folder))

    assert model.info.loaded_with == "transformers from_pretrained (safetensors)"
    assert {name: kwargs["trust_remote_code"] for name, kwargs in seen.items()} == dict.fromkeys(seen, False)
    assert len(seen) == 3 and seen["AutoModel"]["use_safetensors"] is True
    assert seen["AutoModel"]["weights_only"] is True


def _as_bin(folder: Path, extra: dict | None = None) -> Path:
    """The folder with its weights as pytorch_model.bin (a pickle), plus `extra` entries."""
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**state, **(extra or {})}, folder / "pytorch_model.bin")
    return folder


def test_hf_bin_folder_is_read_weights_only(hf_clip_folder: Path, tmp_path: Path) -> None:
    folder = _as_bin(_copy(hf_clip_folder, tmp_path / "bin"))
    model = load_model(ModelConfig(type="hf_clip", checkpoint=folder))
    assert model.info.loaded_with == "transformers from_pretrained (torch.load(weights_only=True))"


def test_hf_code_running_bin_is_refused(hf_clip_folder: Path, tmp_path: Path) -> None:
    folder = _as_bin(_copy(hf_clip_folder, tmp_path / "hostile"), {"logger": OpensAFile(tmp_path / "marker")})
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelConfig(type="hf_clip", checkpoint=folder))
    assert str(caught.value) == refusal(folder / "pytorch_model.bin")
    assert not (tmp_path / "marker").exists()


REMOTE_CODE = '''
from pathlib import Path

Path({marker!r}).write_text("imported")
from transformers import CLIPModel as MyClip  # the folder's own model class (here: CLIP itself)
'''


def _with_remote_code(folder: Path, marker: Path) -> Path:
    (folder / "my_modeling.py").write_text(REMOTE_CODE.format(marker=str(marker)))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "my_modeling.MyClip"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
def test_hf_folder_with_its_own_code_needs_the_flag(hf_clip_folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = _with_remote_code(_copy(hf_clip_folder, tmp_path / "remote"), marker)
    cfg = run_yaml({"type": "hf_clip", "checkpoint": str(folder)}, tmp_path)
    env = {"HF_HOME": str(tmp_path / "hf-home")}  # transformers copies the folder's code under its modules cache

    refused = run_cli(tmp_path, cfg, "run", env=env)

    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert error_lines(refused.stderr) == [
        (f"error: model.checkpoint: {folder} needs its own Python code to load (config.json 'auto_map'); mmeval runs "
        "no code from a checkpoint unless you pass --trust-checkpoint (do so only for a folder you trust)")]
    assert not marker.exists()

    trusted = run_cli(tmp_path, cfg, "run", "--trust-checkpoint", env=env)

    assert trusted.returncode == 0, trusted.stderr
    assert marker.read_text() == "imported"
    report = json.loads((tmp_path / "reports" / "run.json").read_text())
    assert report["model"]["loaded_with"] == "transformers from_pretrained (safetensors, the folder's own code)"


# ------------------------------------------------------------------------------------------------- plugins

PLUGIN = PLUGIN_HEADER + '''
from mmeval.models import safe_load
from mmeval.models.base import ModelInfo


class Encoder:
    def __init__(self, weights, loaded_with):
        self.module = torch.nn.Linear(3, 4)
        self.module.load_state_dict(weights)
        self.image_transform = SmallPixels(4)
        self.info = ModelInfo("mine", "mine", None, None, 16, loaded_with=loaded_with)

    def tokenize(self, texts):
        return torch.ones(len(texts), 3)

    def encode_image(self, pixels):
        return self.module(pixels.mean(dim=(2, 3)))

    def encode_text(self, tokens):
        return self.module(tokens)


def careful(checkpoint, trust_checkpoint):
    contents, how = safe_load.load_state_dict(checkpoint, trust_checkpoint)
    return Encoder(contents["state_dict"], how)


def careless(checkpoint):
    return Encoder(torch.load(checkpoint, weights_only=True)["state_dict"], None)
'''


@pytest.fixture
def plugin_checkpoints(tmp_path: Path, monkeypatch) -> dict:
    (tmp_path / "mmeval_fault_loading.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    state = torch.nn.Linear(3, 4).state_dict()
    torch.save({"state_dict": state}, tmp_path / "plain.pt")
    torch.save({"state_dict": state, "logger": OpensAFile(tmp_path / "marker")}, tmp_path / "hostile.pt")
    return {"plain": tmp_path / "plain.pt", "hostile": tmp_path / "hostile.pt", "marker": tmp_path / "marker"}


def plugin_cfg(factory: str, checkpoint: Path, **options) -> ModelConfig:
    return ModelConfig(type="plugin", entry=f"mmeval_fault_loading:{factory}", checkpoint=checkpoint, options=options)


def test_plugin_factory_is_told_the_flag_and_records_its_loading(plugin_checkpoints: dict) -> None:
    ckpt = plugin_checkpoints
    assert load_model(plugin_cfg("careful", ckpt["plain"])).info.loaded_with == safe_load.WEIGHTS_ONLY
    with pytest.raises(ModelLoadError) as caught:
        load_model(plugin_cfg("careful", ckpt["hostile"]))
    assert str(caught.value) == refusal(ckpt["hostile"])
    assert not ckpt["marker"].exists()
    assert load_model(plugin_cfg("careful", ckpt["hostile"]), True).info.loaded_with == safe_load.TRUSTED_PICKLE
    assert ckpt["marker"].exists()


def test_plugin_without_its_own_record_and_no_trust_in_options(plugin_checkpoints: dict) -> None:
    info = load_model(plugin_cfg("careless", plugin_checkpoints["plain"])).info
    assert info.loaded_with == "plugin factory mmeval_fault_loading:careless (its own loading)"
    with pytest.raises(ModelLoadError) as caught:
        load_model(plugin_cfg("careful", plugin_checkpoints["plain"], trust_checkpoint=True))
    assert str(caught.value) == ("model.options: 'trust_checkpoint' cannot be set in a config; pass "
                                 "--trust-checkpoint on the command line")
