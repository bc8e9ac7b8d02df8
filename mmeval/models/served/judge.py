"""An opt-in judge: a second served model grades open-ended answers and captions against the references.

Each kind of item has its own versioned prompt (`PROMPTS[kind].version`, written to the report; change it whenever
the prompt changes, so cached verdicts of an old prompt are never read as new ones):

- answers to a question (`image_answer`, `video_answer`): the question, the reference answers, the candidate;
  the judge replies yes or no (True / False).
- captions (`image_caption`, `video_caption`, `audio_caption`): the reference captions and the candidate; the
  judge replies a score from 1 to 5 on the scale written in the prompt (5 accurate and covering the main
  content ... 1 wrong or unrelated).

Verdicts go through the same response cache as answers (keyed by the judge's model id and the full request), so
re-scoring costs no requests. A request that still fails after its retries, and a reply that holds no verdict,
give None here, and are counted and named in the judge's report block; what the task does with them is
mmeval.tasks.judge_block's job. Judge scores are separate metrics and never replace the rule-based ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeval.errors import ModelLoadError
from mmeval.metrics.judge_agreement import binary_agreement as agreement  # noqa: F401  (the name vqa used)
from mmeval.models.served.cache import ResponseCache, request_key
from mmeval.models.served.client import Policy, Reply, RequestError, list_models, send_all

MAX_NAMED = 50  # failed requests and unparseable replies named one by one in the report; the rest are counted

_ANSWER = ("You are grading an answer to a question about {a_medium}. You cannot see the {medium}; use the reference "
           "answers given by people who saw it.\n"
           "Question: {question}\n"
           "Reference answers: {references}\n"
           "Candidate answer: {answer}\n"
           "Does the candidate answer mean the same as the reference answers? Reply with one word: yes or no.")
_CAPTION = ("You are grading a caption of {a_medium}. You cannot {sense} the {medium}; use the reference captions "
            "written by people who {sensed} it.\n"
            "Reference captions:\n{references}\n"
            "Candidate caption: {answer}\n"
            "Score how well the candidate caption describes the {medium}, judged against the references:\n"
            "5 = accurate and covers the main content\n"
            "4 = accurate, misses minor details\n"
            "3 = partly accurate, or misses important content\n"
            "2 = mostly wrong, with some relevant content\n"
            "1 = wrong or unrelated\n"
            "Reply with the score only: one digit from 1 to 5.")
_WORD = re.compile(r"[a-z]+")
_DIGIT = re.compile(r"(?<!\d)[1-5](?!\d)")


def yes_no(text: str) -> bool | None:
    """yes -> True, no -> False (the first word, case and punctuation ignored); anything else -> None."""
    match = _WORD.search(text.lower())
    word = match.group(0) if match else ""
    return True if word == "yes" else False if word == "no" else None


verdict = yes_no  # the name the VQA judge had


def score_1_to_5(text: str) -> int | None:
    """The first digit 1-5 standing alone in the reply ("4", "Score: 4", "4/5"); anything else -> None."""
    match = _DIGIT.search(text)
    return int(match.group(0)) if match else None


@dataclass(frozen=True)
class JudgePrompt:
    """One kind of judged item: its prompt, how a reply is read, and what the verdicts mean."""

    version: str
    template: str
    medium: str
    scale: str  # "yes/no" or "1-5", written to the report

    def text(self, question: str, answer: str, references: list[str]) -> str:
        unique = list(dict.fromkeys(references))
        sense, sensed = ("hear", "heard") if self.medium == "audio clip" else ("see", "saw")
        article = "an" if self.medium[0] in "aeiou" else "a"
        shown = "; ".join(unique) if self.scale == "yes/no" else "\n".join(f"- {r}" for r in unique)
        return self.template.format(question=question, answer=answer, references=shown, medium=self.medium,
                                    a_medium=f"{article} {self.medium}", sense=sense, sensed=sensed)

    def read(self, reply: str) -> bool | int | None:
        return yes_no(reply) if self.scale == "yes/no" else score_1_to_5(reply)

    @property
    def lowest(self) -> bool | int:
        """The verdict a failed request gets under `on_failed_request: score_as_wrong`."""
        return False if self.scale == "yes/no" else 1


PROMPTS = {
    "image_answer": JudgePrompt("mmeval-answer-judge-v1", _ANSWER, "image", "yes/no"),
    "video_answer": JudgePrompt("mmeval-video-answer-judge-v1", _ANSWER, "video", "yes/no"),
    "image_caption": JudgePrompt("mmeval-image-caption-judge-v1", _CAPTION, "image", "1-5"),
    "video_caption": JudgePrompt("mmeval-video-caption-judge-v1", _CAPTION, "video", "1-5"),
    "audio_caption": JudgePrompt("mmeval-audio-caption-judge-v1", _CAPTION, "audio clip", "1-5"),
}
PROMPT_VERSION = PROMPTS["image_answer"].version  # the VQA judge's (kept: its cached verdicts stay valid)


def _headers(cfg: Any) -> dict[str, str]:
    headers = dict(cfg.headers)
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ModelLoadError(f"judge.api_key_env: the environment variable {cfg.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    return headers


def check_judge(cfg: Any) -> None:
    """The judge's server answers GET /models and lists `cfg.model`; else one ModelLoadError naming the field."""
    _check_served(cfg, _headers(cfg))


def _check_served(cfg: Any, headers: dict[str, str]) -> None:
    try:
        ids = [str(entry["id"]) for entry in list_models(cfg.base_url, headers, min(cfg.timeout_s, 30.0))]
    except RequestError as exc:
        raise ModelLoadError(f"judge.base_url: {exc}") from None
    if cfg.model not in ids:
        raise ModelLoadError(f"judge.model: {cfg.base_url} does not serve '{cfg.model}'; it lists: "
                             f"{', '.join(ids) or 'no model'}")


def judge(cfg: Any, items: list[tuple[str, str, list[str]]], cache_root: Path | None, kind: str = "image_answer",
          ids: list[Any] | None = None) -> tuple[list[Any], list[int], dict[str, Any]]:
    """A verdict per (question, answer, references) item (`question` is unused for captions), the positions of
    the items whose request failed, and the report's judge block (model id, prompt version, counts, cache hits,
    named failures and unparseable replies). A verdict is None for a failed request or an unparseable reply.
    `ids` name the items in the block (default: their positions)."""
    prompt = PROMPTS[kind]
    ids = list(range(len(items))) if ids is None else ids
    headers = _headers(cfg)
    _check_served(cfg, headers)
    cache = ResponseCache(cache_root / "served/responses.sqlite") if cache_root is not None else None
    bodies = []
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    for question, answer, references in items:
        body: dict[str, Any] = {"model": cfg.model, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens or 4,
                                "messages": [*system, {"role": "user",
                                                       "content": prompt.text(question, answer, references)}]}
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        bodies.append(body)
    keys = [request_key(cfg.model, body) for body in bodies]
    texts: list[str | None] = [None] * len(bodies)
    for n, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        texts[n] = hit["text"] if hit is not None else None
    todo = [n for n, text in enumerate(texts) if text is None]

    def arrived(k: int, result) -> None:
        if isinstance(result, Reply) and cache is not None:
            cache.put(keys[todo[k]], cfg.model, result.to_json())

    policy = Policy.of(cfg)
    policy.stream = False
    results = send_all(f"{cfg.base_url}/chat/completions", [bodies[n] for n in todo], headers, policy, arrived) \
        if todo else []
    failed, failed_at, server_ids, replies = [], [], set(), []
    for n, result in zip(todo, results):
        if isinstance(result, Reply):
            texts[n] = result.text
            server_ids.add(result.model)
            replies.append(result)
        else:
            failed_at.append(n)
            failed.append({"item": ids[n], "answer": items[n][1], "error": result.error,
                           "attempts": result.attempts, "errors": result.errors})
    verdicts = [prompt.read(text) if text is not None else None for text in texts]
    unparseable = [{"item": ids[n], "answer": items[n][1], "reply": text[:200]}
                   for n, text in enumerate(texts) if text is not None and verdicts[n] is None]
    block = {"model": cfg.model, "base_url": cfg.base_url, "kind": kind, "prompt_version": prompt.version,
             "scale": prompt.scale, "server_model_ids": sorted(i for i in server_ids if i), "n_items": len(items),
             "n_judged": sum(v is not None for v in verdicts), "n_unparseable": len(unparseable),
             "unparseable": unparseable[:MAX_NAMED], "n_failed": len(failed), "failed": failed[:MAX_NAMED],
             "on_failed_request": cfg.on_failed_request,
             "cache": {"hits": len(bodies) - len(todo), "misses": len(todo)}, **_usage(cfg, replies, failed)}
    return verdicts, failed_at, block


def _usage(cfg: Any, replies: list[Reply], failed: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests sent in this run (cache hits send none): retries, tokens, and the cost with a price table."""
    tokens_in = sum(r.input_tokens or 0 for r in replies)
    tokens_out = sum(r.output_tokens or 0 for r in replies)
    out: dict[str, Any] = {"requests_answered": len(replies), "input_tokens": tokens_in, "output_tokens": tokens_out,
                           "retries": sum(r.attempts - 1 for r in replies) + sum(f["attempts"] - 1 for f in failed)}
    if cfg.prices is not None:
        out["cost"] = {"value": (tokens_in * cfg.prices.input_per_million + tokens_out * cfg.prices.output_per_million)
                       / 1e6, "currency": cfg.prices.currency}
    return out
