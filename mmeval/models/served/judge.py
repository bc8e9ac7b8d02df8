"""An opt-in judge: a second served model grades open-ended answers against the references.

The judge sees the question, the reference answers and the candidate, with a versioned prompt
(`PROMPT_VERSION`, written to the report; change it whenever the prompt changes), and must reply yes or no.
Verdicts go through the same response cache as answers (keyed by the judge's model id and the full request),
so re-scoring costs no requests. Judge scores are separate metrics (`judge_accuracy`): they never replace the
rule-based ones, and their agreement with the rule-based score on the same items (accuracy and Cohen's kappa,
sklearn.metrics.cohen_kappa_score) is always reported beside them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmeval.errors import ModelLoadError
from mmeval.models.served.cache import ResponseCache, request_key
from mmeval.models.served.client import Policy, Reply, RequestError, list_models, send_all

PROMPT_VERSION = "mmeval-answer-judge-v1"
PROMPT = ("You are grading an answer to a question about an image. You cannot see the image; use the reference "
          "answers given by people who saw it.\n"
          "Question: {question}\n"
          "Reference answers: {references}\n"
          "Candidate answer: {answer}\n"
          "Does the candidate answer mean the same as the reference answers? Reply with one word: yes or no.")
_WORD = re.compile(r"[a-z]+")


def verdict(text: str) -> bool | None:
    """yes -> True, no -> False (the first word, case and punctuation ignored); anything else -> None."""
    match = _WORD.search(text.lower())
    word = match.group(0) if match else ""
    return True if word == "yes" else False if word == "no" else None


def judge(cfg: Any, items: list[tuple[str, str, list[str]]], cache_root: Path | None) -> tuple[list[bool | None], dict]:
    """A verdict per (question, answer, references) item (None: unparseable reply or failed request) and the
    report's judge block (model id, prompt version, counts, named failures)."""
    headers = dict(cfg.headers)
    if cfg.api_key_env:
        import os

        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ModelLoadError(f"judge.api_key_env: the environment variable {cfg.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    try:
        ids = [str(entry["id"]) for entry in list_models(cfg.base_url, headers, min(cfg.timeout_s, 30.0))]
    except RequestError as exc:
        raise ModelLoadError(f"judge.base_url: {exc}") from None
    if cfg.model not in ids:
        raise ModelLoadError(f"judge.model: {cfg.base_url} does not serve '{cfg.model}'; it lists: {', '.join(ids)}")
    cache = ResponseCache(cache_root / "served/responses.sqlite") if cache_root is not None else None
    bodies = []
    for question, answer, references in items:
        prompt = PROMPT.format(question=question, answer=answer, references="; ".join(dict.fromkeys(references)))
        body: dict[str, Any] = {"model": cfg.model, "messages": [{"role": "user", "content": prompt}],
                                "temperature": cfg.temperature, "max_tokens": cfg.max_tokens or 4}
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        bodies.append(body)
    keys = [request_key(cfg.model, body) for body in bodies]
    texts: list[str | None] = [None] * len(bodies)
    for n, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        texts[n] = hit["text"] if hit is not None else None
    todo = [n for n, text in enumerate(texts) if text is None]
    hits = len(bodies) - len(todo)

    def arrived(k: int, result) -> None:
        if isinstance(result, Reply) and cache is not None:
            cache.put(keys[todo[k]], cfg.model, result.to_json())

    policy = Policy.of(cfg)
    policy.stream = False
    results = send_all(f"{cfg.base_url}/chat/completions", [bodies[n] for n in todo], headers, policy, arrived)
    failed, server_ids = [], set()
    for n, result in zip(todo, results):
        if isinstance(result, Reply):
            texts[n] = result.text
            server_ids.add(result.model)
        else:
            failed.append({"question": items[n][0], "answer": items[n][1], "error": result.error,
                           "attempts": result.attempts})
    verdicts = [verdict(text) if text is not None else None for text in texts]
    block = {"model": cfg.model, "base_url": cfg.base_url, "prompt_version": PROMPT_VERSION,
             "server_model_ids": sorted(i for i in server_ids if i), "n_items": len(items),
             "n_judged": sum(v is not None for v in verdicts),
             "n_unparseable": sum(t is not None and verdict(t) is None for t in texts),
             "n_failed": len(failed), "failed": failed[:50], "cache": {"hits": hits, "misses": len(todo)}}
    return verdicts, block


def agreement(judged: list[bool], rule: list[bool]) -> dict[str, Any]:
    """How often the judge and the rule-based score agree on the same items, and Cohen's kappa (chance-corrected;
    None when it is undefined: both raters gave one and the same label to every item)."""
    from sklearn.metrics import cohen_kappa_score

    n = len(judged)
    if n == 0:
        return {"n": 0, "accuracy": None, "cohen_kappa": None}
    accuracy = sum(a == b for a, b in zip(judged, rule)) / n
    kappa = None
    if len(set(judged) | set(rule)) > 1:
        value = float(cohen_kappa_score(rule, judged))
        kappa = value if value == value else None  # NaN (no variation in the expected agreement) -> None
    return {"n": n, "accuracy": accuracy, "cohen_kappa": kappa}
