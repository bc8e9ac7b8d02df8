"""The opt-in judge for captions (image and video) and open-ended video QA, through a real loopback server
(served_server.py's scripted judge): verdicts against the scripted rule recomputed here, the judge metric beside
the rule-based ones, agreement figures against hand computations, the cache on rerun (no request), failed and
unparseable judge requests counted and named, the gate and headline ignoring judge metrics unless named."""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from served_server import FakeServer, scripted_judge  # noqa: E402

from mmeval.config.gate import GateRules  # noqa: E402
from mmeval.config.run import RuntimeConfig, validate_mapping  # noqa: E402
from mmeval.config.served import ServedConfig  # noqa: E402
from mmeval.data.loaders import load_retrieval_data  # noqa: E402
from mmeval.engine.evaluate import run_config  # noqa: E402
from mmeval.engine.runtime import resolve_runtime  # noqa: E402
from mmeval.errors import ConfigError, ModelLoadError  # noqa: E402
from mmeval.metrics.judge_agreement import binary_agreement, graded_agreement  # noqa: E402
from mmeval.models.served.judge import PROMPTS, score_1_to_5, yes_no  # noqa: E402
from mmeval.reporting.compare import load_for_comparison  # noqa: E402
from mmeval.reporting.gate import evaluate  # noqa: E402
from mmeval.reporting.leaderboard import headline_metrics  # noqa: E402
from mmeval.tasks.base import RunContext  # noqa: E402
from mmeval.tasks.judge_block import check_judge, judge_captions  # noqa: E402
from mmeval.tasks.video_block import video_data  # noqa: E402

SHAPES_VIDEO = {"format": "shapes_video", "n_videos": 8, "split": "test"}
CAPTION_METRICS = ["Bleu", "ROUGE_L", "CIDEr"]


# ------------------------------------------------------------------------------------ independent references


def words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()} - {""}


def expected_score(caption: str, references: list[str]) -> int:
    """The scripted judge's rule (served_server.py's docstring), written again here."""
    if caption.strip().lower() in {r.strip().lower() for r in references}:
        return 5
    known = set().union(*(words(r) for r in references))
    return max(1, 4 - len(words(caption) - known))


def kappa_by_hand(a: list[bool], b: list[bool]) -> float:
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    p_e = (sum(a) / n) * (sum(b) / n) + (1 - sum(a) / n) * (1 - sum(b) / n)
    return (p_o - p_e) / (1 - p_e)


def average_ranks(values: list[float]) -> list[float]:
    """Rank 1 = smallest; tied values share the mean of their positions (brute force)."""
    return [sum(1 for w in values if w < v) + (sum(1 for w in values if w == v) + 1) / 2 for v in values]


def spearman_by_hand(x: list[float], y: list[float]) -> float:
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


# ------------------------------------------------------------------------------------ prompts and agreement


def test_each_kind_has_its_own_versioned_prompt_and_reader() -> None:
    assert len({p.version for p in PROMPTS.values()}) == len(PROMPTS) == 5
    assert PROMPTS["image_answer"].version == "mmeval-answer-judge-v1"  # unchanged: cached VQA verdicts stay valid
    caption = PROMPTS["video_caption"].text("", "a dog runs", ["a dog runs fast", "a dog runs fast", "a brown dog"])
    assert "Reference captions:\n- a dog runs fast\n- a brown dog\nCandidate caption: a dog runs\n" in caption
    assert "a caption of a video. You cannot see the video" in caption and "5 = accurate" in caption
    assert "You cannot hear the audio clip" in PROMPTS["audio_caption"].text("", "x", ["y"])
    answer = PROMPTS["video_answer"].text("what moves?", "cat", ["cat", "kitten"])
    assert "a question about a video." in answer and "Reference answers: cat; kitten\n" in answer
    assert [yes_no(t) for t in ("Yes.", "no", " NO!", "maybe", "")] == [True, False, False, None, None]
    assert [score_1_to_5(t) for t in ("4", "Score: 3", "2/5", "10", "six", "0")] == [4, 3, 2, None, None, None]


def test_binary_agreement_equals_the_hand_formula() -> None:
    rng = random.Random(3)
    judged = [rng.random() < 0.6 for _ in range(40)]
    rule = [j if rng.random() < 0.75 else not j for j in judged]
    got = binary_agreement(judged, rule)
    assert got["n"] == 40
    assert got["accuracy"] == pytest.approx(sum(a == b for a, b in zip(judged, rule)) / 40)
    assert got["cohen_kappa"] == pytest.approx(kappa_by_hand(judged, rule))
    assert binary_agreement([True] * 3, [True] * 3) == {"n": 3, "accuracy": 1.0, "cohen_kappa": None}
    assert binary_agreement([], []) == {"n": 0, "accuracy": None, "cohen_kappa": None}


def test_graded_agreement_equals_hand_ranks_and_median_split() -> None:
    rng = random.Random(7)
    scores = [rng.randint(1, 5) for _ in range(31)]
    rule = [s * 0.4 + rng.random() for s in scores]
    rule[3] = rule[4]  # a tie in the rule too
    got = graded_agreement(scores, rule)
    assert got["spearman"] == pytest.approx(spearman_by_hand(scores, rule))
    median = sorted(rule)[15]
    assert got["rule_median"] == median and got["judge_threshold"] == 4
    judged, ruled = [s >= 4 for s in scores], [r >= median for r in rule]
    assert got["accuracy"] == pytest.approx(sum(a == b for a, b in zip(judged, ruled)) / 31)
    assert got["cohen_kappa"] == pytest.approx(kappa_by_hand(judged, ruled))
    even = graded_agreement([1, 5, 3, 4], [0.1, 0.9, 0.3, 0.5])
    assert even["rule_median"] == pytest.approx(0.4) and even["spearman"] == pytest.approx(1.0)
    assert graded_agreement([4, 4, 4], [0.1, 0.2, 0.3])["spearman"] is None  # a constant judge: undefined


# ------------------------------------------------------------------------------------ end to end


def _qa_judge(image, prompt: str, max_tokens: int) -> str:
    """The scripted judge, except that it refuses every answer about speed (so judge and rule disagree)."""
    return "no" if "slowly or quickly" in prompt else scripted_judge(image, prompt, max_tokens)


def _config(folder: Path, model: dict, benchmarks: list[dict], name: str):
    return validate_mapping({"model": model, "benchmarks": benchmarks,
                             "runtime": {"device": "cpu", "batch_size": 4, "num_workers": 0},
                             "bootstrap": {"n": 500}, "output": {"dir": str(folder), "name": name}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Image captions (reference model on shapes), video captions and video QA (reference_video), one judge."""
    patch = pytest.MonkeyPatch()
    patch.setenv("MMEVAL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and fair to a shared machine
    server = FakeServer(model="judge-llm", answer_fn=_qa_judge).start()
    folder = tmp_path_factory.mktemp("runs")
    judge = {"base_url": server.base_url, "model": "judge-llm"}
    image_cfg = _config(folder, {"type": "reference"}, [
        {"name": "cap", "task": "coco_captions", "data": {"format": "shapes", "n_images": 12},
         "metrics": CAPTION_METRICS, "judge": judge}], "image")
    video_cfg = _config(folder, {"type": "reference_video"}, [
        {"name": "vcap", "task": "video_captioning", "data": SHAPES_VIDEO, "metrics": CAPTION_METRICS, "judge": judge},
        {"name": "qa", "task": "video_qa", "data": SHAPES_VIDEO, "judge": judge}], "video")
    try:
        outcomes = {"image": run_config(image_cfg), "video": run_config(video_cfg)}
        sent = server.requests
        again = run_config(image_cfg)  # a rerun: every verdict from the response cache
        yield SimpleNamespace(outcomes=outcomes, again=again, sent=sent, server=server, image_cfg=image_cfg,
                              video_cfg=video_cfg, requests_after_rerun=server.requests)
    finally:
        server.stop()
        patch.undo()
        torch.set_num_threads(threads)


def _samples(outcome) -> dict:
    return json.loads(outcome.samples_path.read_text())


def test_image_caption_judge_scores_agreement_and_report(runs) -> None:
    outcome = runs.outcomes["image"]
    assert not outcome.errors, outcome.errors
    bench = outcome.report["benchmarks"]["cap"]
    rows = _samples(outcome)["cap"]["captions"]
    data = load_retrieval_data(runs.image_cfg.benchmarks[0].data)
    references: dict = {}
    for text, owner in zip(data.texts, data.text_image_index):
        references.setdefault(data.image_ids[owner], []).append(text)
    expected = [expected_score(row["caption"], references[row["image_id"]]) for row in rows]
    assert [row["judge"] for row in rows] == expected and len(set(expected)) > 1
    assert bench["metrics"]["judge_score"]["value"] == pytest.approx(sum(expected) / len(expected))
    assert {"CIDEr", "Bleu_4", "ROUGE_L"} <= set(bench["metrics"])  # the rule-based metrics stay
    block = bench["judge"]
    assert block["prompt_version"] == "mmeval-image-caption-judge-v1" and block["model"] == "judge-llm"
    assert block["server_model_ids"] == ["judge-llm"] and block["scale"] == "1-5" and block["status"] == "complete"
    assert block["n_judged"] == len(rows) == 12 and block["n_failed"] == 0 and block["rule"] == "per-caption CIDEr-D"
    assert block["requests_answered"] == 12 and block["output_tokens"] == 12 * 2  # "Score: N", as the server counts
    cider = [row["CIDEr"] for row in rows]
    agreement = block["agreement"]
    assert agreement["spearman"] == pytest.approx(spearman_by_hand(expected, cider))
    median = (sorted(cider)[5] + sorted(cider)[6]) / 2
    assert agreement["rule_median"] == pytest.approx(median)
    assert agreement["cohen_kappa"] == pytest.approx(kappa_by_hand([s >= 4 for s in expected],
                                                                   [c >= median for c in cider]))
    assert headline_metrics("coco_captions", list(bench["metrics"])) == ["CIDEr", "Bleu_4"]  # no judge metric
    # its interval: percentile bootstrap over the judged captions, near the normal one for a mean of 12 scores
    low, high = bench["metrics"]["judge_score"]["ci95"]
    spread = 1.96 * statistics.pstdev(expected) / math.sqrt(len(expected))
    assert low < bench["metrics"]["judge_score"]["value"] < high
    assert (high - low) == pytest.approx(2 * spread, rel=0.3)
    assert block["bootstrap"]["unit"] == "judged captions" and block["bootstrap"]["resampled"] == "rows"


def test_rerun_reads_every_verdict_from_the_cache(runs) -> None:
    assert runs.requests_after_rerun == runs.sent  # not one request
    block = runs.again.report["benchmarks"]["cap"]["judge"]
    assert block["cache"] == {"hits": 12, "misses": 0}
    first = runs.outcomes["image"].report["benchmarks"]["cap"]
    assert runs.again.report["benchmarks"]["cap"]["metrics"]["judge_score"] == first["metrics"]["judge_score"]


def test_video_captions_and_video_qa_judged(runs) -> None:
    outcome = runs.outcomes["video"]
    assert not outcome.errors, outcome.errors
    samples = _samples(outcome)
    vcap = outcome.report["benchmarks"]["vcap"]
    data = video_data(runs.video_cfg.benchmarks[0], "captions")
    refs = {data.videos.ids[i]: list(data.captions[i]) for i in range(len(data.videos))}
    rows = samples["vcap"]["captions"]
    expected = [expected_score(row["caption"], refs[row["video_id"]]) for row in rows]
    assert [row["judge"] for row in rows] == expected
    assert vcap["metrics"]["judge_score"]["value"] == pytest.approx(sum(expected) / len(expected))
    assert vcap["judge"]["prompt_version"] == "mmeval-video-caption-judge-v1" and "CIDEr" in vcap["metrics"]

    qa = outcome.report["benchmarks"]["qa"]
    rows = samples["qa"]["answers"]
    judged = [row["answer"].strip().lower() in [a.lower() for a in row["accepted"]]
              and row["type"] != "speed" for row in rows]
    rule = [row["correct"] > 0 for row in rows]
    assert [row["judge"] for row in rows] == judged
    assert qa["metrics"]["judge_accuracy"]["value"] == pytest.approx(sum(judged) / len(judged))
    low, high = qa["metrics"]["judge_accuracy"]["ci95"]
    assert 0 <= low < qa["metrics"]["judge_accuracy"]["value"] < high <= 1
    # a video's questions drawn together, as exact_match's interval does: against a brute-force cluster bootstrap
    assert qa["judge"]["bootstrap"]["resampled"] == "clusters" and qa["judge"]["bootstrap"]["unit"].startswith("videos")
    by_video: dict[str, list[float]] = {}
    for row, verdict in zip(rows, judged):
        by_video.setdefault(row["video_id"], []).append(float(verdict))
    groups = list(by_video.values())
    rng = np.random.default_rng(0)
    means = []
    for _ in range(4000):
        drawn = [groups[k] for k in rng.integers(0, len(groups), len(groups))]
        means.append(sum(map(sum, drawn)) / sum(map(len, drawn)))
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=0.04)
    assert "exact_match" in qa["metrics"]
    block = qa["judge"]
    assert block["prompt_version"] == "mmeval-video-answer-judge-v1" and block["scale"] == "yes/no"
    assert block["agreement"]["n"] == len(rows)
    assert block["agreement"]["accuracy"] == pytest.approx(sum(a == b for a, b in zip(judged, rule)) / len(rows))
    assert 0 < block["agreement"]["accuracy"] < 1  # the speed questions: the judge disagrees
    assert block["agreement"]["cohen_kappa"] == pytest.approx(kappa_by_hand(judged, rule))


def test_a_gate_checks_judge_metrics_only_when_a_rule_names_them(runs) -> None:
    candidate = load_for_comparison([runs.outcomes["image"].report_path], with_samples=False)[0]
    every = evaluate(GateRules(rules=[{"metric": "cap/*", "min": 0}]), candidate)
    assert sorted(c.target for c in every.checks) == ["cap/Bleu_1", "cap/Bleu_2", "cap/Bleu_3", "cap/Bleu_4",
                                                      "cap/CIDEr", "cap/ROUGE_L"]
    named = evaluate(GateRules(rules=[{"metric": "*/judge_*", "min": 4.5}]), candidate)
    assert [(c.target, c.status) for c in named.checks] == [("cap/judge_score", "fail")]


# ------------------------------------------------------------------------------------ failures


def _context(tmp_path: Path) -> RunContext:
    return RunContext(resolve_runtime(RuntimeConfig(device="cpu", batch_size=4, num_workers=0,
                                                    cache_dir=tmp_path / "cache")))


def _bench(server: FakeServer, policy: str):
    judge = ServedConfig(base_url=server.base_url, model="judge-llm", max_retries=1, backoff_s=0.0,
                         timeout_s=5.0, on_failed_request=policy)
    return SimpleNamespace(name="caps", judge=judge)


CAPTIONS = ["a red circle", "a blue square on grey", "a green star", "mumble", "a red circle and a cat"]
REFERENCES = [["a red circle"], ["a blue square"], ["a green star on white"], ["a cat"], ["a red circle"]]
RULE = [3.0, 1.0, 2.0, 0.5, 0.2]


def _judge_once(server: FakeServer, policy: str, tmp_path: Path) -> tuple[dict, dict, list[dict]]:
    metrics: dict = {}
    extra: dict = {}
    rows = [{"id": n} for n in range(len(CAPTIONS))]
    judge_captions(_bench(server, policy), _context(tmp_path), "image", list(range(len(CAPTIONS))), CAPTIONS,
                   REFERENCES, RULE, "CIDEr-D", rows, metrics, extra)
    warnings = extra.get("warnings", [])  # a failed judge request is one warning in the benchmark's report entry
    assert len(warnings) == (1 if extra["judge"]["n_failed"] else 0)
    assert all("1 of 5 judge request(s)" in w for w in warnings)
    return metrics, extra["judge"], rows


def test_failed_and_unparseable_judge_requests_are_counted_named_and_never_silently_scored(tmp_path: Path) -> None:
    def answer(image, prompt, max_tokens):  # "mumble" gets a reply with no score in it
        return "I cannot tell." if "Candidate caption: mumble" in prompt else scripted_judge(image, prompt, max_tokens)

    def fault(prompt):  # every request about the blue square fails with a 500
        return "500" if "Candidate caption: a blue square on grey" in prompt else None

    server = FakeServer(model="judge-llm", answer_fn=answer, fault_fn=fault).start()
    try:
        metrics, block, rows = _judge_once(server, "fail", tmp_path)
        assert "judge_score" not in metrics and "agreement" not in block  # withheld, not computed on a subset
        assert block["status"] == "failed" and block["n_failed"] == 1 and block["failed"][0]["item"] == 1
        assert block["failed"][0]["attempts"] == 2 and "500" in block["failed"][0]["error"]
        assert "1 of 5 judge request(s)" in block["error"] and "judge metrics withheld" in block["error"]
        assert block["n_unparseable"] == 1 and block["unparseable"][0] == {"item": 3, "answer": "mumble",
                                                                            "reply": "I cannot tell."}
        assert all("judge" not in row for row in rows)

        metrics, block, rows = _judge_once(server, "score_as_wrong", tmp_path)
        expected = [5, 1, 4, None, 2]  # the failed request scored 1 (the lowest); the unparseable reply left out
        assert [row["judge"] for row in rows] == expected and block["failed_scored_as"] == 1
        assert metrics["judge_score"]["value"] == pytest.approx((5 + 1 + 4 + 2) / 4)
        assert block["agreement"]["n"] == 4
        assert block["agreement"]["spearman"] == pytest.approx(spearman_by_hand([5, 1, 4, 2], [3.0, 1.0, 2.0, 0.2]))
        assert block["cache"] == {"hits": 4, "misses": 1}  # received verdicts were cached by the first call

        server.fault_fn = None  # the judge recovers: a rerun sends only the request that failed
        before = server.requests
        metrics, block, rows = _judge_once(server, "fail", tmp_path)
        assert server.requests == before + 1 and block["status"] == "complete"
        assert [row["judge"] for row in rows] == [5, 2, 4, None, 2]  # 'on', 'grey' are in no reference: 4 - 2
    finally:
        server.stop()


def test_a_judge_that_cannot_be_reached_or_does_not_serve_the_model_is_one_clear_error(tmp_path: Path) -> None:
    server = FakeServer(model="another").start()
    try:
        with pytest.raises(ModelLoadError, match=r"judge.model: .* does not serve 'judge-llm'; it lists: another"):
            check_judge(_bench(server, "fail"), _context(tmp_path))
    finally:
        server.stop()
    with pytest.raises(ModelLoadError, match="judge.base_url"):
        check_judge(_bench(server, "fail"), _context(tmp_path))  # stopped: nothing listens there now


def test_a_judge_on_multiple_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"judge: a judge grades open-ended answers"):
        validate_mapping({"model": {"type": "reference_video"}, "benchmarks": [
            {"name": "qa", "task": "video_qa", "style": "choice", "data": SHAPES_VIDEO,
             "judge": {"base_url": "http://127.0.0.1:9/v1", "model": "j"}}]})


def test_robustness_reruns_send_no_judge_request(tmp_path: Path) -> None:
    from mmeval.perturb import Cell

    server = FakeServer(model="judge-llm", answer_fn=scripted_judge).start()
    try:
        ctx = _context(tmp_path)
        ctx.perturbation = Cell("image", "gaussian_noise", 1, 0)
        metrics: dict = {}
        extra: dict = {}
        check_judge(_bench(server, "fail"), ctx)
        judge_captions(_bench(server, "fail"), ctx, "image", [0], ["a cat"], [["a cat"]], [1.0], "CIDEr-D",
                       [{}], metrics, extra)
    finally:
        server.stop()
    assert server.requests == 0 and metrics == {} and extra == {}


def test_the_judge_request_carries_its_settings_and_prompt(tmp_path: Path) -> None:
    bodies: list[dict] = []
    server = FakeServer(model="judge-llm", answer_fn=scripted_judge).start()
    original = server.handle
    server.handle = lambda h, body: (bodies.append(body), original(h, body))[1]
    bench = SimpleNamespace(name="caps", judge=ServedConfig(
        base_url=server.base_url, model="judge-llm", system_prompt="Be strict.", stop=["\n"], seed=3, max_tokens=2,
        prices={"input_per_million": 1e6, "output_per_million": 0}))
    metrics: dict = {}
    extra: dict = {}
    try:
        judge_captions(bench, _context(tmp_path), "image", ["x"], ["a cat"], [["a cat", "a cat"]], None, None,
                       [{}], metrics, extra)
    finally:
        server.stop()
    body = bodies[0]
    prompt = PROMPTS["image_caption"].text("", "a cat", ["a cat"])
    assert body["messages"] == [{"role": "system", "content": "Be strict."}, {"role": "user", "content": prompt}]
    assert body["stop"] == ["\n"] and body["seed"] == 3 and body["max_tokens"] == 2 and body["temperature"] == 0
    assert "stream" not in body and metrics["judge_score"]["value"] == 5
    assert "agreement" not in extra["judge"]  # no rule-based per-caption values were given
    tokens = len(prompt.split()) + 1  # the test server's usage count
    assert extra["judge"]["input_tokens"] == tokens and extra["judge"]["cost"] == {"value": tokens, "currency": "USD"}


def test_judge_metrics_have_paired_values_from_each_rows_verdict(runs) -> None:
    """Paired tests on a judge metric use each row's verdict, matched by the task's key and cluster."""
    from mmeval.reporting.sample_values import paired_values

    image = _samples(runs.outcomes["image"])["cap"]
    data = paired_values("coco_captions", "judge_score", image, image, ["CIDEr", "judge_score"])
    assert not data.reason and list(data.strata[0][0]) == [float(r["judge"]) for r in image["captions"]]
    video = _samples(runs.outcomes["video"])
    qa = paired_values("video_qa", "judge_accuracy", video["qa"], video["qa"], ["exact_match", "judge_accuracy"])
    assert qa.unit == "videos" and list(qa.strata[0][1]) == [float(r["judge"]) for r in video["qa"]["answers"]]
    shifted = {"answers": [{**r, "judge": not r["judge"]} if n < 3 else r for n, r in enumerate(video["qa"]["answers"])]}
    flipped = paired_values("video_qa", "judge_accuracy", video["qa"], shifted, ["judge_accuracy"])
    assert (flipped.strata[0][0] != flipped.strata[0][1]).sum() == 3
    unjudged = {"answers": [{**r, "judge": None} for r in video["qa"]["answers"]]}
    assert paired_values("video_qa", "judge_accuracy", video["qa"], unjudged, ["judge_accuracy"]).reason
