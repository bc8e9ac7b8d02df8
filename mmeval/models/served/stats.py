"""The serving block of a benchmark's latency: what a served model's requests cost in time, tokens and money.

Per request (sent ones only; cache hits cost nothing and are counted apart): end-to-end latency, and with
streaming the time to first token (TTFT) and the time per output token after it (TPOT = (e2e - TTFT) /
(output tokens - 1), as vLLM's and SGLang's benchmarks define it). Percentiles use the same function as the
rest of the latency block (`engine.latency.distribution_ms`). Throughput is over the wall time spent sending
(requests/s, output tokens/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmeval.engine.latency import distribution_ms
from mmeval.models.served.client import Reply

MAX_NAMED_FAILURES = 50  # failed requests named one by one in the report; the rest are counted


@dataclass
class ServingStats:
    """What one benchmark's requests did, gathered call by call (`block()` reads it out and starts afresh)."""

    replies: list[Reply] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    wall_s: float = 0.0

    def block(self, prices: Any | None, cache_on: bool) -> dict[str, Any]:
        sent = self.replies
        out_tokens = [r.output_tokens for r in sent if r.output_tokens is not None]
        in_tokens = [r.input_tokens for r in sent if r.input_tokens is not None]
        tpot = [(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in sent
                if r.ttft_s is not None and r.output_tokens is not None and r.output_tokens > 1]
        n_requests = len(sent) + len(self.failures)
        block: dict[str, Any] = {
            "requests_sent": n_requests,
            "requests_answered": len(sent),
            "requests_failed": len(self.failures),
            "failed": self.failures[:MAX_NAMED_FAILURES],
            "server_model_ids": sorted({r.model for r in sent if r.model}),  # as the replies name it
            "retries": sum(r.attempts - 1 for r in sent) + sum(f["attempts"] - 1 for f in self.failures),
            "cache": {"on": cache_on, "hits": self.hits, "misses": self.misses},
            "e2e_ms": distribution_ms([r.e2e_s for r in sent]),
            "ttft_ms": distribution_ms([r.ttft_s for r in sent if r.ttft_s is not None]),
            "tpot_ms": distribution_ms(tpot),
            "input_tokens": sum(in_tokens),
            "output_tokens": sum(out_tokens),
            "tokens_counted_by": sorted({r.tokens_from for r in sent}),
            "wall_s": self.wall_s,
            "requests_per_s": len(sent) / self.wall_s if self.wall_s > 0 else None,
            "output_tokens_per_s": sum(out_tokens) / self.wall_s if self.wall_s > 0 else None,
        }
        if prices is not None:
            cost = (block["input_tokens"] * prices.input_per_million
                    + block["output_tokens"] * prices.output_per_million) / 1e6
            block["cost"] = {"value": cost, "currency": prices.currency,
                             "input_per_million": prices.input_per_million,
                             "output_per_million": prices.output_per_million}
        self.replies, self.failures, self.hits, self.misses, self.wall_s = [], [], 0, 0, 0.0
        return block
