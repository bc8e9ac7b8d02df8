"""Damaged and wrong checkpoint files, architecture mismatches and whole pickled models (issue #14, items 1-2).

Each bad file gets one line naming it, what it is and what was expected, and exit code 2 through the CLI; the
reader's own error is chained (shown by `mmeval --debug`). A checkpoint of another open_clip architecture is
described by counts and at most five example keys, and the registered architecture it fits is named. The
expected messages are built here from the files' bytes and from the real models' state dicts, not from
mmeval's helpers.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_OPEN_CLIP

from mmeval.config.run import ModelConfig
from mmeval.engine.evaluate import load_model
from mmeval.errors import ModelLoadError
from mmeval.models import open_clip_fit, safe_load

EXPECTED = "expected a torch.save file (zip archive or pickle) or a .safetensors file"


def unreadable(path: Path, finding: str) -> str:
    return f"model.checkpoint: {path} is not a readable checkpoint: {finding}; {EXPECTED}"


def open_clip_cfg(ckpt: dict, checkpoint: Path | None = None) -> ModelConfig:
    return ModelConfig(type="open_clip", arch=ckpt["arch"], arch_config=ckpt["arch_config"],
                       checkpoint=checkpoint or ckpt["checkpoint"])


def load_error(cfg: ModelConfig, trust: bool = False) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load_model(cfg, trust)
    return caught.value


def run_cli(tmp_path: Path, ckpt: dict, checkpoint: Path, *args: str) -> subprocess.CompletedProcess:
    model = {"type": "open_clip", "arch": ckpt["arch"], "arch_config": str(ckpt["arch_config"]),
             "checkpoint": str(checkpoint)}
    cfg = {"model": model,
           "benchmarks": [{"name": "shapes", "task": "retrieval", "data": {"format": "shapes", "n_images": 4}}],
           "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
           "output": {"dir": str(tmp_path / "reports"), "name": "run"}}  # fmt: skip
    (tmp_path / "run.yaml").write_text(json.dumps(cfg))
    before, after = [a for a in args if a == "--debug"], [a for a in args if a != "--debug"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "mmeval", *before, "run", *after, "-c", "run.yaml"], cwd=tmp_path,
                          text=True, capture_output=True, timeout=300, env=env, check=False)  # fmt: skip


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line.removeprefix("error: ") for line in done.stderr.splitlines() if line.startswith("error: ")]


# --------------------------------------------------------------------------------------------- damaged files


def test_truncated_zip_checkpoint(tiny_open_clip: dict, tmp_path: Path) -> None:
    data = Path(tiny_open_clip["checkpoint"]).read_bytes()
    assert data[:4] == b"PK\x03\x04"  # torch.save's zip format
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) * 2 // 3])
    size = len(data) * 2 // 3

    error = load_error(open_clip_cfg(tiny_open_clip, path))

    assert str(error) == unreadable(path, f"a truncated or corrupt zip archive ({size:,} bytes, its directory at the "
                                          "end is missing or damaged: the copy or download was probably cut off)")
    with pytest.raises(Exception) as reader:  # the error mmeval chains is the reader's own
        torch.load(path, weights_only=True)
    assert type(error.__cause__) is type(reader.value)


def test_random_bytes(tiny_open_clip: dict, tmp_path: Path) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(4096))
    path = tmp_path / "noise.bin"
    path.write_bytes(data)
    first = " ".join(f"{b:02x}" for b in data[:8])
    assert str(load_error(open_clip_cfg(tiny_open_clip, path))) == unreadable(
        path, f"bytes of no checkpoint format, neither a zip archive, a pickle nor safetensors (first bytes {first})")


def test_text_file_cli_and_debug_chain(tiny_open_clip: dict, tmp_path: Path) -> None:
    """The issue's case: a text file gave 'cannot load ... (101)'. With --debug the reader's own error shows."""
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not weights\nline two\n")
    with pytest.raises(Exception) as reader:
        torch.load(path, weights_only=True)  # what torch says about it (the text gave KeyError: 101)

    done = run_cli(tmp_path, tiny_open_clip, path)
    loud = run_cli(tmp_path, tiny_open_clip, path, "--debug")

    size = len("these are my notes, not weights\nline two\n")
    expected = unreadable(path, f"a text file ({size} bytes, starting 'these are my notes, not weights')")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert error_lines(done) == [expected]
    assert loud.returncode == 2 and error_lines(loud) == [expected]
    assert "Traceback" in loud.stderr and f"{type(reader.value).__name__}: {reader.value}" in loud.stderr, loud.stderr


def test_truncated_legacy_pickle(tiny_open_clip: dict, tmp_path: Path) -> None:
    """A pre-zip torch.save file cut off: found only by reading it, and said as such (not as a misfit)."""
    state = torch.load(tiny_open_clip["checkpoint"], weights_only=True)
    whole = tmp_path / "legacy.pt"
    torch.save(state, whole, _use_new_zipfile_serialization=False)
    data = whole.read_bytes()
    assert data[0] == 0x80  # a pickle
    path = tmp_path / "legacy-cut.pt"
    path.write_bytes(data[: len(data) // 2])
    assert str(load_error(open_clip_cfg(tiny_open_clip, path))) == unreadable(
        path, f"a truncated pickle ({len(data) // 2:,} bytes; it ends before its data does)")


def test_truncated_safetensors_in_a_transformers_folder(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tiny_hf import save_clip

    folder = save_clip(tmp_path / "clip")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    described = header + max(entry["data_offsets"][1] for key, entry in json.loads(data[8:header]).items()
                             if key != "__metadata__")  # fmt: skip
    assert described == len(data)
    weights.write_bytes(data[:-1000])
    error = load_error(ModelConfig(type="hf_clip", checkpoint=folder))
    assert str(error) == unreadable(weights, f"a truncated safetensors file ({len(data) - 1000:,} bytes; its header "
                                             f"describes {len(data):,} bytes: the copy or download was probably cut off)")


# ------------------------------------------------------------------------------------------ whole pickled models


def test_whole_pickled_open_clip_model(tiny_open_clip: dict, tmp_path: Path) -> None:
    """torch.save(model): refused without --trust-checkpoint (it names the class); with it, the model's
    state_dict is loaded and gives exactly the embeddings of the same weights saved as a state dict."""
    import open_clip

    torch.manual_seed(1)
    model = open_clip.create_model(tiny_open_clip["arch"])
    whole, plain = tmp_path / "whole.pt", tmp_path / "plain.pt"
    torch.save(model, whole)
    torch.save(model.state_dict(), plain)

    refused = load_error(open_clip_cfg(tiny_open_clip, whole))
    trusted = load_model(open_clip_cfg(tiny_open_clip, whole), True)
    reference = load_model(open_clip_cfg(tiny_open_clip, plain))

    assert str(refused) == (f"model.checkpoint: {whole} is a pickle that runs code when loaded (it needs "
                            "open_clip.model.CLIP); mmeval loads only safetensors and weights-only pickles unless you "
                            "pass --trust-checkpoint (do so only for a file you trust)")
    assert trusted.info.loaded_with == safe_load.TRUSTED_PICKLE
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = trusted.tokenize(["a red square", "two blue circles on the left"])
    with torch.no_grad():
        assert torch.equal(trusted.encode_image(pixels), reference.encode_image(pixels))
        assert torch.equal(trusted.encode_text(tokens), reference.encode_text(tokens))
        # the pickled object itself, run directly (not through open_clip's factory): the same to float rounding
        torch.testing.assert_close(trusted.encode_image(pixels), model.eval().encode_image(pixels), atol=1e-5, rtol=0)
    assert not torch.equal(reference.encode_image(pixels),
                           load_model(open_clip_cfg(tiny_open_clip)).encode_image(pixels))  # other weights differ


def test_whole_pickled_model_through_the_cli(tiny_open_clip: dict, tmp_path: Path) -> None:
    import open_clip

    whole = tmp_path / "whole.pt"
    torch.save(open_clip.create_model(tiny_open_clip["arch"]), whole)
    refused = run_cli(tmp_path, tiny_open_clip, whole)
    trusted = run_cli(tmp_path, tiny_open_clip, whole, "--trust-checkpoint")
    assert refused.returncode == 2 and len(error_lines(refused)) == 1
    assert "it needs open_clip.model.CLIP" in error_lines(refused)[0]
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads((tmp_path / "reports" / "run.json").read_text())["model"]["loaded_with"] == safe_load.TRUSTED_PICKLE


def test_plugin_helper_gives_a_whole_models_state_dict(tmp_path: Path) -> None:
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(module, tmp_path / "whole.pt")
    torch.save({"model": module, "epoch": 7}, tmp_path / "training.pt")
    with pytest.raises(ModelLoadError, match="it needs torch.nn.modules.container.Sequential"):
        safe_load.load_state_dict(tmp_path / "whole.pt")
    contents, how = safe_load.load_state_dict(tmp_path / "whole.pt", trust_checkpoint=True)
    training, _ = safe_load.load_state_dict(tmp_path / "training.pt", trust_checkpoint=True)
    want = module.state_dict()
    assert how == safe_load.TRUSTED_PICKLE and list(contents) == list(want) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(torch.equal(contents[k], want[k]) and torch.equal(training["model"][k], want[k]) for k in want)
    assert training["epoch"] == 7


# ---------------------------------------------------------------------------------------- architecture mismatch


def register(tmp_path: Path, name: str, edit) -> str:
    """A tiny open_clip architecture registered under `name` (open_clip's config mechanism)."""
    import open_clip

    config = copy.deepcopy(TINY_OPEN_CLIP)
    edit(config)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def saved_state(tmp_path: Path, arch: str) -> tuple[Path, dict[str, torch.Tensor]]:
    import open_clip

    torch.manual_seed(0)
    state = open_clip.create_model(arch).state_dict()
    path = tmp_path / f"{arch}.pt"
    torch.save(state, path)
    return path, state


def real_state(arch: str) -> dict[str, torch.Tensor]:
    import open_clip

    return open_clip.create_model(arch).state_dict()


def shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def test_mismatch_names_counts_examples_and_the_architecture_that_fits(tiny_open_clip: dict, tmp_path: Path) -> None:
    """ViT-B-16 weights given as ViT-B-32, in small: patch 16 weights for the patch 8 'tiny-clip'."""
    fits = register(tmp_path, "mmeval-test-tiny-p16", lambda c: c["vision_cfg"].update(patch_size=16))
    path, have = saved_state(tmp_path, fits)
    want = real_state(tiny_open_clip["arch"])
    reshaped = sorted(k for k in have if k in want and have[k].shape != want[k].shape)
    assert reshaped == ["visual.conv1.weight", "visual.positional_embedding"] and have.keys() == want.keys()
    examples = "; ".join(f"size mismatch for {k}: checkpoint {shape(have[k])}, architecture {shape(want[k])}"
                         for k in reshaped)  # fmt: skip

    error = load_error(open_clip_cfg(tiny_open_clip, path))

    assert str(error) == (
        f"model.checkpoint: {path} does not fit open_clip architecture 'tiny-clip': of its {len(have)} tensors "
        f"2 have another shape and 0 are not in the architecture, and 0 of the architecture's {len(want)} are "
        f"missing ({examples}); it fits open_clip architecture '{fits}' exactly (model.arch: {fits})")
    assert isinstance(error.__cause__, (RuntimeError, AssertionError))


def test_mismatch_with_many_differences_shows_five(tiny_open_clip: dict, tmp_path: Path) -> None:
    """A deeper text tower: many unexpected keys, five shown, the rest counted; the 3-layer architecture fits."""
    deeper = register(tmp_path, "mmeval-test-tiny-text3", lambda c: c["text_cfg"].update(layers=3))
    path, have = saved_state(tmp_path, deeper)
    want = real_state(tiny_open_clip["arch"])
    unexpected = sorted(k for k in have if k not in want)
    assert len(unexpected) > 5 and all(k in have for k in want)

    message = str(load_error(open_clip_cfg(tiny_open_clip, path)))

    shown = "; ".join(f"unexpected key {k}" for k in unexpected[:5])
    assert message == (
        f"model.checkpoint: {path} does not fit open_clip architecture 'tiny-clip': of its {len(have)} tensors "
        f"0 have another shape and {len(unexpected)} are not in the architecture, and 0 of the architecture's "
        f"{len(want)} are missing ({shown}; and {len(unexpected) - 5} more); it fits open_clip architecture "
        f"'{deeper}' exactly (model.arch: {deeper})")


def test_mismatch_without_a_better_architecture(tiny_open_clip: dict, tmp_path: Path) -> None:
    """Weights of an architecture that is not registered: no name is offered."""
    import open_clip

    config = copy.deepcopy(TINY_OPEN_CLIP)
    config["vision_cfg"]["width"] = 48
    model = open_clip.model.CLIP(**config)  # built directly: never registered
    path = tmp_path / "unregistered.pt"
    torch.save(model.state_dict(), path)

    message = str(load_error(open_clip_cfg(tiny_open_clip, path)))

    have, want = model.state_dict(), real_state(tiny_open_clip["arch"])
    n_reshaped = sum(have[k].shape != want[k].shape for k in have)
    assert f"of its {len(have)} tensors {n_reshaped} have another shape and 0 are not in the architecture" in message
    assert message.count("size mismatch for ") == 5 and f"; and {n_reshaped - 5} more)" in message
    assert message.endswith("; no registered open_clip architecture fits it better")


def test_the_search_keeps_to_its_budget(tiny_open_clip: dict, tmp_path: Path) -> None:
    """Candidates are built one at a time until the time budget is spent (at least one is always tried)."""
    register(tmp_path, "mmeval-test-tiny-p16", lambda c: c["vision_cfg"].update(patch_size=16))
    register(tmp_path, "mmeval-test-tiny-text3", lambda c: c["text_cfg"].update(layers=3))
    have = {k: tuple(v.shape) for k, v in real_state("mmeval-test-tiny-p16").items()}
    built: list[str] = []

    def build(name: str):
        built.append(name)
        return open_clip_fit.architecture_shapes(name)

    assert len(open_clip_fit.candidates(have, "tiny-clip", budget_s=60, build=build)) >= 2
    assert len(built) >= 2
    built.clear()
    found = open_clip_fit.candidates(have, "tiny-clip", budget_s=0, build=build)
    assert len(built) == 1 and [name for name, _ in found] == built
