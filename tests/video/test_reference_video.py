"""The shipped reference video model (mmeval/assets/shapes-video): it tells motion apart where frame-mean
pooling cannot, captions / answers through `mmeval run` (scores equal to independent computations and to
`mmeval score` on the saved caption file), clear errors for broken checkpoints, and a reproducible training."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from mmeval.cli.app import app
from mmeval.config.run import validate_mapping
from mmeval.config.video import FrameSampling
from mmeval.data import shapes_video as sv
from mmeval.engine.evaluate import run_config
from mmeval.errors import ModelLoadError
from mmeval.io.video import read_clip
from mmeval.metrics.caption.scores import score_captions
from mmeval.models.frame_pooling import FramePooledEncoder
from mmeval.models.reference import DEMO_CHECKPOINT, load_folder
from mmeval.models.reference_video import DEMO_VIDEO_CHECKPOINT, load_video_folder
from mmeval.reporting.report import validate_report

ROOT = Path(__file__).resolve().parents[2]
N_VIDEOS = 24
SHAPES = {"format": "shapes_video", "n_videos": 8, "split": "test"}


@pytest.fixture(scope="module", autouse=True)
def quiet_and_small(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()
    torch.set_num_threads(before)


def _frames(model, path: Path) -> torch.Tensor:
    clip = read_clip(path, FrameSampling(frames=8)).frames
    return torch.stack([model.image_transform(Image.fromarray(f)) for f in clip])[None]


def _pairwise(model, specs, paths) -> float:
    """Motion-only pairwise accuracy by a loop: the clip's query scored above each other-direction one."""
    wins = []
    with torch.no_grad():
        for spec, path in zip(specs, paths):
            video = F.normalize(model.encode_video(_frames(model, path)), dim=-1)[0]
            query, others = sv.motion_query(spec)
            texts = F.normalize(model.encode_text(model.tokenize([query, *others])), dim=-1)
            scores = texts @ video
            wins += [float(scores[0] > s) + 0.5 * float(scores[0] == s) for s in scores[1:]]
    return sum(wins) / len(wins)


def test_the_temporal_model_tells_motion_apart_and_mean_pooling_cannot():
    specs, paths = sv.clip_paths("test", N_VIDEOS)
    temporal = load_video_folder(DEMO_VIDEO_CHECKPOINT)
    pooled = FramePooledEncoder(load_folder(DEMO_CHECKPOINT))
    ours, theirs = _pairwise(temporal, specs, paths), _pairwise(pooled, specs, paths)
    assert ours >= 0.8 and ours > theirs + 0.2, (ours, theirs)
    # why: mean pooling cannot see frame order, so a clip played backwards gets the same embedding
    with torch.no_grad():
        frames = _frames(temporal, paths[0])
        assert torch.allclose(pooled.encode_video(frames), pooled.encode_video(frames.flip(1)), atol=1e-6)
        assert not torch.allclose(temporal.encode_video(frames), temporal.encode_video(frames.flip(1)), atol=1e-3)


@pytest.fixture(scope="module")
def run_outputs(tmp_path_factory) -> tuple[dict, dict, Path]:
    folder = tmp_path_factory.mktemp("run")
    cfg = validate_mapping({
        "model": {"type": "reference_video"},
        "benchmarks": [
            {"name": "ret", "task": "video_retrieval", "data": SHAPES},
            {"name": "cap", "task": "video_captioning", "data": SHAPES, "metrics": ["Bleu", "ROUGE_L", "CIDEr"],
             "tokenizer": "python"},
            {"name": "qa", "task": "video_qa", "data": SHAPES},
            {"name": "mc", "task": "video_qa", "style": "choice", "data": SHAPES},
        ],
        "runtime": {"device": "cpu", "batch_size": 3, "num_workers": 0, "cache": "off"},
        "bootstrap": {"n": 100}, "output": {"dir": str(folder), "name": "ref-video"},
    })  # fmt: skip
    outcome = run_config(cfg)
    assert not outcome.errors, outcome.errors
    validate_report(outcome.report)
    return outcome.report, json.loads(outcome.samples_path.read_text()), outcome.report_path


def test_captioning_scores_equal_pycocoevalcap_code_and_mmeval_score(run_outputs, tmp_path):
    report, samples, report_path = run_outputs
    bench = report["benchmarks"]["cap"]
    assert bench["video"]["video_encoder"]["captioning"] == "retrieval from a caption bank"
    data = sv.load_shapes_video_captions("test", 8)
    refs = dict(zip(data.ids, data.captions))
    captions = {row["video_id"]: row["caption"] for row in samples["cap"]["captions"]}
    assert set(captions) == set(data.ids) and all(c in temporal_bank() for c in captions.values())
    expected = score_captions(refs, captions, metrics=("Bleu", "ROUGE_L", "CIDEr"), tokenizer="python").scores
    for name, value in expected.items():
        assert bench["metrics"][name]["value"] == pytest.approx(value, abs=1e-12)
    # the saved caption file, re-scored with no model against MSR-VTT-style annotations
    annotations = tmp_path / "refs.json"
    annotations.write_text(json.dumps({"videos": [{"video_id": v} for v in data.ids],
                                       "sentences": [{"video_id": v, "caption": c} for v in data.ids for c in refs[v]]}))
    results = report_path.parent / bench["predictions_file"]
    done = CliRunner().invoke(app, ["score", "-a", str(annotations), "-r", str(results), "-o", str(tmp_path),
                                    "--metrics", "Bleu,ROUGE_L,CIDEr", "--tokenizer", "python"])
    assert done.exit_code == 0, done.output
    (scored_path,) = [p for p in tmp_path.glob("*-scored-*.json") if not p.name.endswith(".samples.json")]
    scored = json.loads(scored_path.read_text())
    (entry,) = scored["benchmarks"].values()
    for name, value in expected.items():
        assert entry["metrics"][name]["value"] == pytest.approx(value, abs=1e-12)
    # the HTML report: the best and worst captions, by CIDEr
    page = tmp_path / "video.html"
    done = CliRunner().invoke(app, ["report", str(report_path), "--html", str(page)])
    assert done.exit_code == 0, done.output
    html = page.read_text()
    best = min(samples["cap"]["captions"], key=lambda row: (-row["CIDEr"], str(row["video_id"])))
    assert "Best and worst video captions" in html and best["caption"] in html


def temporal_bank() -> set[str]:
    return set(json.loads((DEMO_VIDEO_CHECKPOINT / "config.json").read_text())["captions"])


def _simple_normalise(text: str) -> str:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(w for w in words if w not in ("a", "an", "the"))


def test_qa_exact_match_and_multiple_choice_by_loops(run_outputs):
    report, samples, _ = run_outputs
    qa = sv.load_shapes_video_qa("test", 8)
    rows = samples["qa"]["answers"]
    assert len(rows) == len(qa.questions)
    correct = [float(_simple_normalise(r["answer"]) in {_simple_normalise(a) for a in accepted})
               for r, accepted in zip(rows, qa.answers)]
    metrics = report["benchmarks"]["qa"]["metrics"]
    assert metrics["exact_match"]["value"] == pytest.approx(sum(correct) / len(correct))
    for kind in set(qa.types):
        of_kind = [c for c, t in zip(correct, qa.types) if t == kind]
        assert metrics[f"exact_match_{kind}"]["value"] == pytest.approx(sum(of_kind) / len(of_kind))
    assert metrics["exact_match"]["value"] > 0.5  # the retrieval answerer learned something real
    assert report["benchmarks"]["qa"]["normalisation"].startswith("vqa")
    mc = sv.load_shapes_video_qa("test", 8, style="choice")
    picked = [r["answer"] for r in samples["mc"]["answers"]]
    expected = sum(p == a[0] for p, a in zip(picked, mc.answers)) / len(picked)
    assert report["benchmarks"]["mc"]["metrics"]["mc_accuracy"]["value"] == pytest.approx(expected)


def test_broken_checkpoints_are_one_clear_error(tmp_path):
    broken = tmp_path / "video"
    shutil.copytree(DEMO_VIDEO_CHECKPOINT, broken)
    config = json.loads((broken / "config.json").read_text())
    config["base"] = str(DEMO_CHECKPOINT)
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.safetensors do not exist"):
        load_video_folder(broken)
    config["base_sha256"] = "0" * 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"is not the one this model was trained on"):
        load_video_folder(broken)
    config["unknown"] = 1
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"unknown key\(s\): unknown"):
        load_video_folder(broken)


@pytest.mark.slow
def test_training_is_reproducible(tmp_path):
    """Two tiny trainings with the same seed write the same weights, byte for byte."""
    outs = []
    for n in range(2):
        out = tmp_path / f"run{n}"
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_reference_video.py"), "--out", str(out),
                               "--n-train", "16", "--n-test", "8", "--epochs", "1", "--batch", "8", "--no-ablation"],
                              check=False, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr
        outs.append((out / "model.safetensors").read_bytes())
    assert outs[0] == outs[1]


def test_compare_pairs_video_captions_and_answers(run_outputs):
    """compare's paired tests over the per-video captions and per-question answers (a report against itself:
    every sample matched, no difference)."""
    _, _, report_path = run_outputs
    done = CliRunner().invoke(app, ["compare", str(report_path), str(report_path), "--format", "json",
                                    "--resamples", "100"])  # fmt: skip
    assert done.exit_code == 0, done.output
    rows = {(r["benchmark"], r["metric"]): r for r in json.loads(done.stdout)["rows"]}
    qa = sv.load_shapes_video_qa("test", 8)
    directions = qa.types.count("direction")
    for key, n in ((("cap", "CIDEr"), 8), (("qa", "exact_match"), len(qa.questions)),
                   (("qa", "exact_match_direction"), directions), (("mc", "mc_accuracy"), 8), (("ret", "v2t_R@1"), 8)):
        paired = rows[key]["paired"][1]
        assert paired["n"] == n and paired["p_value"] == 1.0 and paired["delta"] == 0.0, (key, paired)
