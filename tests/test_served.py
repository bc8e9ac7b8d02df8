"""The served-model backend (`model.type: openai`) against a fault-injecting loopback server (served_server.py):
retries and their outcomes, Retry-After, the response cache, the API key kept out of everything written, config
and load errors, and a whole `mmeval run` whose serving figures land in the report."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from served_server import FakeServer  # noqa: E402
from test_vqa import ColourAnswerer, context, vqav2_data  # noqa: E402  (imported here: pytest rewrites it once)

from mmeval.config.run import validate_mapping  # noqa: E402
from mmeval.engine.runtime import place_model, resolve_runtime  # noqa: E402
from mmeval.errors import ConfigError, MmevalError, ModelLoadError  # noqa: E402
from mmeval.models.base import GenerationSettings, capabilities_of  # noqa: E402
from mmeval.models.served.adapter import data_url, load  # noqa: E402
from mmeval.models.served.client import Policy, backoff_delay, retry_after_seconds  # noqa: E402

SETTINGS = GenerationSettings(max_new_tokens=8)


@pytest.fixture
def server():
    fake = FakeServer(hang_s=2.5).start()
    yield fake
    fake.stop()


def config(base_url: str, tmp_path: Path, **served):  # a 1.2 s timeout: a loaded CI machine stays under it
    return validate_mapping({
        "model": {"type": "openai", "served": {"base_url": base_url, "model": "fake-vlm", "image_size": 8,
                                               "timeout_s": 1.2, "backoff_s": 0.01, "max_retries": 2, **served}},
        "benchmarks": [{"name": "v", "task": "vqa", "data": {"format": "shapes_vqa", "n_images": 3}}],
        "runtime": {"device": "cpu", "batch_size": 16, "num_workers": 0},
        "output": {"dir": str(tmp_path / "out")},
    })


def loaded(base_url: str, tmp_path: Path, **served):
    cfg = config(base_url, tmp_path, **served)
    model = load(cfg.model)
    place_model(model, resolve_runtime(cfg.runtime))
    return model


def pixels(n: int) -> torch.Tensor:
    return torch.stack([torch.full((3, 8, 8), 10 * i, dtype=torch.uint8) for i in range(n)])


def test_answers_cache_hits_and_settings_in_the_key(server: FakeServer, tmp_path: Path) -> None:
    model = loaded(server.base_url, tmp_path)
    assert capabilities_of(model) == {"captioner", "answerer", "video_captioner", "video_answerer"}  # no audio_input
    questions = ["what colour?", "how many?", "is it red?"]
    assert model.answer(pixels(3), questions, SETTINGS) == [f"answer: {q}" for q in questions]
    assert server.requests == 3
    first = model.serving_block()
    assert first["cache"] == {"on": True, "hits": 0, "misses": 3}
    assert first["requests_answered"] == 3 and first["output_tokens"] == sum(len(f"answer: {q}".split()) for q in questions)
    assert first["server_model_ids"] == ["fake-vlm"] and first["ttft_ms"]["p50"] <= first["e2e_ms"]["p50"]

    again = loaded(server.base_url, tmp_path)  # a new run, same cache folder: no request at all
    assert again.answer(pixels(3), questions, SETTINGS) == [f"answer: {q}" for q in questions]
    assert server.requests == 3
    assert again.serving_block()["cache"] == {"on": True, "hits": 3, "misses": 0}

    hotter = loaded(server.base_url, tmp_path, temperature=0.5)  # another generation setting: another key
    hotter.answer(pixels(1), questions[:1], SETTINGS)
    assert server.requests == 4


def test_no_cache_sends_every_time(server: FakeServer, tmp_path: Path) -> None:
    cfg = config(server.base_url, tmp_path)
    for _ in range(2):
        model = load(cfg.model)
        place_model(model, resolve_runtime(cfg.runtime.model_copy(update={"cache": "off"})))
        model.answer(pixels(2), ["a?", "b?"], SETTINGS)
    assert server.requests == 4


@pytest.mark.parametrize("fault,requests,stream", [("429x2", 3, True), ("500x1", 2, False), ("hangx1", 2, True),
                                                   ("badjsonx1", 2, True), ("badjsonx1", 2, False)])
def test_transient_faults_are_retried_and_answered(server: FakeServer, tmp_path: Path, stream: bool, fault: str,
                                                   requests: int) -> None:  # fmt: skip
    model = loaded(server.base_url, tmp_path, stream=stream)
    prompt = f"[fault:{fault}] q"
    assert model.answer(pixels(2), [prompt, "fine?"], SETTINGS) == [f"answer: {prompt}", "answer: fine?"]
    assert server.seen[prompt] == requests
    block = model.serving_block()
    assert block["retries"] == requests - 1 and block["requests_failed"] == 0


def test_truncated_stream_is_retried(server: FakeServer, tmp_path: Path) -> None:
    model = loaded(server.base_url, tmp_path, stream=True)
    assert model.answer(pixels(1), ["[fault:truncx1] two words"], SETTINGS) == ["answer: [fault:truncx1] two words"]
    assert server.seen["[fault:truncx1] two words"] == 2


@pytest.mark.parametrize("fault,tries,error", [
    ("500", 3, "HTTP 500"), ("hang", 3, "timed out after 1.2 s"), ("badjson", 3, "malformed"),
    ("trunc", 3, "truncated stream"), ("429", 3, "HTTP 429"),
    ("wrongmodel", 1, "answered with model 'other-model'"),  # not retried: another try would not fix it
])
def test_persistent_faults_fail_the_benchmark_keeping_the_answers(server: FakeServer, tmp_path: Path, fault: str,
                                                                   tries: int, error: str) -> None:  # fmt: skip
    model = loaded(server.base_url, tmp_path)
    prompt = f"[fault:{fault}] q"
    with pytest.raises(MmevalError, match=f"1 of 3 request.*{error}.*kept in the response cache"):
        model.answer(pixels(3), ["ok one?", prompt, "ok two?"], SETTINGS)
    assert server.seen[prompt] == tries
    # the rerun (or --resume) sends only the failed request again: the two answers were kept
    again = loaded(server.base_url, tmp_path, on_failed_request="score_as_wrong")
    assert again.answer(pixels(3), ["ok one?", prompt, "ok two?"], SETTINGS) == ["answer: ok one?", "", "answer: ok two?"]
    assert server.seen["ok one?"] == server.seen["ok two?"] == 1 and server.seen[prompt] == 2 * tries
    block = again.serving_block()
    assert block["cache"]["hits"] == 2 and block["requests_failed"] == 1
    assert block["failed"][0]["prompt"] == prompt and error in block["failed"][0]["error"]
    assert block["failed"][0]["attempts"] == tries


def test_retry_after_is_honoured_over_the_backoff(server: FakeServer, tmp_path: Path) -> None:
    model = loaded(server.base_url, tmp_path, backoff_s=20.0, backoff_max_s=20.0)  # backoff alone would wait seconds
    began = time.perf_counter()
    model.answer(pixels(1), ["[fault:429x2] q"], SETTINGS)
    assert time.perf_counter() - began < 2.0  # two waits of Retry-After: 0.05
    assert retry_after_seconds("1.5") == 1.5 and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now
    policy = Policy(backoff_s=1.0, backoff_max_s=5.0)
    rng = random.Random(0)
    delays = [backoff_delay(attempt, policy, None, rng) for attempt in range(6) for _ in range(50)]
    assert all(0 <= d <= min(5.0, 2 ** (n // 50)) for n, d in enumerate(delays))  # full jitter under the window
    assert max(delays[250:]) > 2.5  # late windows are capped at 5 s, not 32 s, and are used
    assert backoff_delay(0, policy, 30.0, rng) == 5.0  # Retry-After capped at backoff_max_s


def test_api_key_is_sent_but_never_written(server: FakeServer, tmp_path: Path, monkeypatch, own_cache: Path) -> None:
    secret = "sk-test-SECRET-123"
    seen: list[str] = []
    monkeypatch.setenv("MY_KEY", secret)
    model = loaded(server.base_url, tmp_path, api_key_env="MY_KEY", headers={"X-Team": "eval"})
    original = server.handle
    server.handle = lambda h, body: (seen.append(h.headers.get("Authorization")), original(h, body))[1]
    model.answer(pixels(1), ["q?"], SETTINGS)
    assert seen == [f"Bearer {secret}"]
    assert secret not in json.dumps(model.info.extra)
    for file in own_cache.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes()
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ModelLoadError, match="environment variable MY_KEY is not set"):
        load(config(server.base_url, tmp_path, api_key_env="MY_KEY").model)


def test_load_errors_name_the_field(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not serve 'nope'; it lists: fake-vlm"):
        load(config(server.base_url, tmp_path, model="nope").model)
    with pytest.raises(ModelLoadError, match="model.served.base_url: cannot reach http://127.0.0.1:9/v1/models"):
        load(config("http://127.0.0.1:9/v1", tmp_path).model)
    with pytest.raises(ConfigError, match="temprature"):
        config(server.base_url, tmp_path, temprature=0)
    with pytest.raises(ConfigError, match="on_failed_request"):
        config(server.base_url, tmp_path, on_failed_request="ignore")
    with pytest.raises(ConfigError, match="served"):
        validate_mapping({"model": {"type": "openai"}, "benchmarks": [{"name": "v", "task": "vqa",
                          "data": {"format": "shapes_vqa"}}]})


def test_images_go_as_lossless_png_or_jpeg_data_urls() -> None:
    import base64
    import io

    from PIL import Image

    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    url = data_url(image, "png", 90)
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert torch.equal(torch.from_numpy(__import__("numpy").array(decoded)).permute(2, 0, 1), image)
    assert data_url(image, "jpeg", 50).startswith("data:image/jpeg;base64,")


def test_mmeval_run_reports_serving_figures_and_reruns_from_the_cache(server: FakeServer, tmp_path: Path) -> None:
    from mmeval.engine.evaluate import run_config
    from mmeval.reporting.report import validate_report

    cfg = config(server.base_url, tmp_path, prices={"input_per_million": 1.0, "output_per_million": 2.0})
    report = run_config(cfg).report
    bench = report["benchmarks"]["v"]
    serving = bench["latency"]["serving"]
    assert serving["requests_answered"] == 9 == server.requests  # 3 images x 3 questions
    assert serving["cost"]["value"] == pytest.approx((serving["input_tokens"] + 2 * serving["output_tokens"]) / 1e6)
    assert report["model"]["adapter"] == "openai"
    assert report["model"]["extra"]["models_endpoint"] == [{"id": "fake-vlm", "owned_by": "tests"}]
    assert bench["metrics"]["vqa_accuracy"]["value"] == 0.0  # the fake answers "answer: <prompt>"
    validate_report(report)  # the published schema, latency.serving included
    assert bench["latency"]["passes"]["ttft"]["sample_ms"] == serving["ttft_ms"]  # what gate latency rules read
    again = run_config(cfg).report["benchmarks"]["v"]["latency"]["serving"]
    assert server.requests == 9 and again["cache"]["hits"] == 9 and again["requests_sent"] == 0
    failing = config(server.base_url, tmp_path, max_retries=0)
    failing.benchmarks[0].prompt_template = "[fault:500] {question}"
    failed = run_config(failing).report
    validate_report(failed)
    assert failed["benchmarks"]["v"]["status"] == "failed"
    assert failed["benchmarks"]["v"]["serving"]["requests_failed"] == 9
    assert failed["benchmarks"]["v"]["serving"]["failed"][0]["error"] == "HTTP 500: {\"error\": \"internal\"}"


def test_ctrl_c_keeps_the_replies_received_and_resume_sends_the_rest(server: FakeServer, tmp_path: Path,
                                                                    monkeypatch) -> None:  # fmt: skip
    from mmeval.engine.evaluate import run_config
    from mmeval.models.served.cache import ResponseCache

    real_put, stored = ResponseCache.put, []

    def put_then_interrupt(self, key, model_id, reply):
        real_put(self, key, model_id, reply)
        stored.append(key)
        if len(stored) == 4:
            raise KeyboardInterrupt  # as Ctrl-C would, while other requests are in flight

    monkeypatch.setattr(ResponseCache, "put", put_then_interrupt)
    cfg = config(server.base_url, tmp_path, max_concurrency=2)
    outcome = run_config(cfg)
    assert outcome.interrupted and outcome.report["benchmarks"]["v"]["status"] == "interrupted"
    monkeypatch.setattr(ResponseCache, "put", real_put)
    sent = server.requests
    report = run_config(cfg, resume=True).report
    serving = report["benchmarks"]["v"]["latency"]["serving"]
    assert serving["cache"]["hits"] == 4 and serving["requests_sent"] == 5  # 9 questions: only the 5 missing sent
    assert server.requests == sent + 5 and report["status"] != "interrupted"


def _fake_judge(image, prompt: str, max_tokens: int) -> str:
    """Yes when the candidate is one of the references, except that it says No to every counting question (so
    the judge and the rule disagree on some items)."""
    lines = dict(line.split(": ", 1) for line in prompt.splitlines() if ": " in line)
    if lines["Question"].startswith("how many"):
        return "No."
    return "Yes" if lines["Candidate answer"] in lines["Reference answers"].split("; ") else "no"


def test_judge_scores_beside_the_rule_and_reports_agreement(tmp_path: Path) -> None:
    from mmeval.models.served.judge import PROMPT_VERSION
    from mmeval.tasks.vqa import run as vqa

    judge_server = FakeServer(model="judge-llm", answer_fn=_fake_judge).start()
    try:
        cfg = validate_mapping({
            "model": {"type": "plugin", "entry": "x:y"},
            "benchmarks": [{"name": "vqa", "task": "vqa", "data": vqav2_data(tmp_path),
                            "judge": {"base_url": judge_server.base_url, "model": "judge-llm"}}],
            "output": {"dir": str(tmp_path / "out")},
        })
        ctx = context(tmp_path)
        result = vqa.run(ColourAnswerer(), cfg.benchmarks[0], ctx)
        sent = judge_server.requests
        again = vqa.run(ColourAnswerer(), cfg.benchmarks[0], ctx)  # re-scoring: verdicts from the cache
    finally:
        judge_server.stop()
    rows = result.per_sample["answers"]
    rule = [row["accuracy"] > 0 for row in rows]
    judged = [row["judge"] for row in rows]
    references = {q.question_id: q.answers for q in vqa.load_questions(cfg.benchmarks[0].data).questions}
    expected = [not row["question"].startswith("how many") and row["answer"] in references[row["question_id"]]
                for row in rows]
    assert judged == expected and sent == len(rows) == 9
    assert result.metrics["judge_accuracy"]["value"] == pytest.approx(sum(judged) / len(judged))
    assert "vqa_accuracy" in result.metrics  # the rule-based metrics stay
    block = result.extra["judge"]
    assert block["prompt_version"] == PROMPT_VERSION and block["model"] == "judge-llm"
    assert block["server_model_ids"] == ["judge-llm"]
    # agreement and Cohen's kappa, by hand: p_o observed agreement, p_e chance agreement from the marginals
    n = len(rule)
    p_o = sum(a == b for a, b in zip(judged, rule)) / n
    p_e = (sum(judged) / n) * (sum(rule) / n) + (1 - sum(judged) / n) * (1 - sum(rule) / n)
    assert p_o < 1.0  # the fake judge disagrees on some items
    assert block["agreement"]["accuracy"] == pytest.approx(p_o)
    assert block["agreement"]["cohen_kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    assert sent == judge_server.requests and again.extra["judge"]["cache"] == {"hits": 9, "misses": 0}


def test_captions_system_prompt_templates_and_generation_settings_in_the_request(server: FakeServer,
                                                                                  tmp_path: Path) -> None:  # fmt: skip
    bodies: list[dict] = []
    original = server.handle
    server.handle = lambda h, body: (bodies.append(body), original(h, body))[1]
    model = loaded(server.base_url, tmp_path, system_prompt="Be brief.", seed=7, stop=["\n"], max_tokens=12,
                   stream=False, image_format="jpeg", jpeg_quality=80, prompt_templates={"vqa": "Q: {question}"})
    assert model.generate(pixels(2), SETTINGS) == ["answer: Write a short caption for this image."] * 2
    assert model.question_template("vqa") == "Q: {question}"
    assert model.question_template("multiple_choice").endswith("Answer with the option's letter from the given "
                                                               "choices directly.")  # the task's own default
    body = bodies[0]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["seed"] == 7 and body["stop"] == ["\n"] and body["max_tokens"] == 12 and body["temperature"] == 0
    assert body["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "stream" not in body
    assert model.info.extra["images"]["encoding"] == "jpeg" and model.info.extra["images"]["jpeg_quality"] == 80
    with pytest.raises(MmevalError, match="num_beams"):
        model.check_settings(GenerationSettings(num_beams=3))
