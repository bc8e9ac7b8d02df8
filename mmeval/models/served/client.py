"""Sending chat-completions requests: asynchronous, a bounded number in flight, retries, streaming timings.

httpx.AsyncClient does the HTTP; what is written here is the policy no library gives as one piece for this
protocol: which failures are retried (429, 408, 5xx, connection errors, timeouts, malformed JSON, truncated
streams), how long to wait (Retry-After when the server sends it, else exponential backoff with full jitter,
both capped), a whole-request deadline that also covers a stream that stalls, and the per-request timings of a
server-sent-events stream (time to first token, output tokens). Every loop is bounded: at most 1 + max_retries
tries per request, each under `timeout_s`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUS = {408, 429}  # and every 5xx


@dataclass
class Reply:
    """One answered request."""

    text: str
    model: str | None  # the model id the server says answered
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    tokens_from: str  # "usage" (the server's count) or "stream chunks" (one per content delta) or "none"
    e2e_s: float
    ttft_s: float | None  # streaming only
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Failure:
    """A request that still failed after its retries (or failed in a way retrying cannot fix)."""

    error: str
    attempts: int
    errors: list[str] = field(default_factory=list)  # every try's error, in order


class RequestError(Exception):
    """One try failed; `retryable` says whether another try may succeed, `retry_after` the server's wait."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class Policy:
    """How requests are sent (from `ServedConfig`)."""

    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    max_concurrency: int = 8
    stream: bool = True

    @classmethod
    def of(cls, cfg: Any) -> Policy:
        return cls(cfg.timeout_s, cfg.max_retries, cfg.backoff_s, cfg.backoff_max_s, cfg.max_concurrency, cfg.stream)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, policy: Policy, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before try `attempt + 1` (attempt counts from 0): the server's Retry-After when given,
    else full jitter over an exponentially growing window; capped at `backoff_max_s` either way."""
    if retry_after is not None:
        return min(retry_after, policy.backoff_max_s)
    return rng.uniform(0.0, min(policy.backoff_max_s, policy.backoff_s * (2 ** attempt)))


def _check_model(got: Any, asked: str) -> str | None:
    if got is None or not isinstance(got, str):
        return None
    # Servers may answer with a dated or namespaced form of the id asked for (gpt-4o -> gpt-4o-2024-08-06).
    if got != asked and not got.startswith(asked) and not asked.endswith("/" + got) and not got.endswith("/" + asked):
        raise RequestError(f"the server answered with model '{got}', but '{asked}' was asked for", retryable=False)
    return got


def _status_error(response: httpx.Response, body_text: str) -> RequestError:
    retryable = response.status_code in RETRY_STATUS or response.status_code >= 500
    excerpt = " ".join(body_text.split())[:200]
    return RequestError(f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else ""), retryable,
                        retry_after_seconds(response.headers.get("retry-after")))


async def _plain(client: httpx.AsyncClient, url: str, body: dict[str, Any], started: float) -> Reply:
    response = await client.post(url, json=body)
    text = response.text
    if response.status_code != 200:
        raise _status_error(response, text)
    try:
        payload = json.loads(text)
        message = payload["choices"][0]["message"]
        content = message.get("content") or ""
        if not isinstance(content, str):
            raise TypeError("content is not a string")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RequestError(f"malformed reply ({type(exc).__name__}: {str(exc)[:100]})", retryable=True) from None
    usage = payload.get("usage") or {}
    model = _check_model(payload.get("model"), body["model"])
    has_usage = usage.get("completion_tokens") is not None
    return Reply(content, model, payload["choices"][0].get("finish_reason"), usage.get("prompt_tokens"),
                 usage.get("completion_tokens"), "usage" if has_usage else "none", time.perf_counter() - started, None)


async def _streamed(client: httpx.AsyncClient, url: str, body: dict[str, Any], started: float) -> Reply:
    parts: list[str] = []
    ttft, chunks, finish, model, usage, done = None, 0, None, None, {}, False
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise _status_error(response, (await response.aread()).decode("utf-8", "replace"))
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (": keep-alive"), event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                model = _check_model(chunk.get("model"), body["model"]) or model
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        parts.append(piece)
                        chunks += 1
                    finish = choice.get("finish_reason") or finish
                done = done or finish is not None  # some servers (transformers serve) send no [DONE]
            except (ValueError, TypeError, AttributeError) as exc:
                raise RequestError(f"malformed stream chunk ({type(exc).__name__})", retryable=True) from None
    if not done:
        raise RequestError("truncated stream (ended without a finish_reason or [DONE])", retryable=True)
    has_usage = usage.get("completion_tokens") is not None
    return Reply("".join(parts), model, finish, usage.get("prompt_tokens"),
                 usage.get("completion_tokens") if has_usage else chunks, "usage" if has_usage else "stream chunks",
                 time.perf_counter() - started, ttft)


async def send_one(client: httpx.AsyncClient, url: str, body: dict[str, Any], policy: Policy,
                   rng: random.Random) -> Reply | Failure:  # fmt: skip
    """One request with its retries: a Reply, or a Failure naming every try's error."""
    errors: list[str] = []
    for attempt in range(policy.max_retries + 1):
        started = time.perf_counter()
        try:
            call = _streamed if body.get("stream") else _plain
            reply = await asyncio.wait_for(call(client, url, body, started), policy.timeout_s)
            reply.attempts = attempt + 1
            return reply
        except RequestError as exc:
            error = exc
        except (asyncio.TimeoutError, httpx.TimeoutException):
            error = RequestError(f"timed out after {policy.timeout_s:g} s", retryable=True)
        except httpx.TransportError as exc:  # connection refused / reset, a response cut off mid-body
            error = RequestError(f"connection error ({type(exc).__name__}: {str(exc)[:100]})", retryable=True)
        errors.append(str(error))
        if not error.retryable or attempt == policy.max_retries:
            break
        await asyncio.sleep(backoff_delay(attempt, policy, error.retry_after, rng))
    return Failure(errors[-1], len(errors), errors)


async def _send_all(url: str, bodies: list[dict[str, Any]], headers: dict[str, str], policy: Policy,
                    on_result: Callable[[int, Reply | Failure], None], seed: int) -> list[Reply | Failure]:  # fmt: skip
    limit = asyncio.Semaphore(policy.max_concurrency)
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=policy.max_concurrency, max_keepalive_connections=policy.max_concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=policy.timeout_s, limits=limits) as client:

        async def one(n: int) -> Reply | Failure:
            async with limit:
                result = await send_one(client, url, bodies[n], policy, rng)
            on_result(n, result)  # e.g. into the response cache at once, so Ctrl-C loses nothing answered
            return result

        return list(await asyncio.gather(*(one(n) for n in range(len(bodies)))))


def send_all(url: str, bodies: list[dict[str, Any]], headers: dict[str, str], policy: Policy,
             on_result: Callable[[int, Reply | Failure], None] = lambda n, r: None,
             seed: int = 0) -> list[Reply | Failure]:  # fmt: skip
    """Send every body to `url`, at most `policy.max_concurrency` at once; results in the order of `bodies`."""
    if not bodies:
        return []
    return asyncio.run(_send_all(url, bodies, headers, policy, on_result, seed))


def list_models(base_url: str, headers: dict[str, str], timeout_s: float) -> list[dict[str, Any]]:
    """GET {base_url}/models: the `data` entries (each with an `id`). Raises RequestError when unusable."""
    try:
        response = httpx.get(f"{base_url}/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise RequestError(f"cannot reach {base_url}/models ({type(exc).__name__}: {str(exc)[:100]})", True) from None
    if response.status_code != 200:
        raise _status_error(response, response.text)
    try:
        data = response.json()["data"]
        return [dict(entry) for entry in data if isinstance(entry, dict) and "id" in entry]
    except (ValueError, KeyError, TypeError) as exc:
        raise RequestError(f"{base_url}/models: malformed reply ({type(exc).__name__})", False) from None
