"""Concurrency and the response cache of served models (`model.type: openai`), against a local server that
answers every request after a fixed delay (tests/served_server.py, in its own process on 127.0.0.1).

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.):

    python scripts/bench_served.py [--requests 256] [--concurrency 32] [--delay 1.0] [--repeats 3]

For each repeat, --requests distinct (image, question) requests go through the adapter's `answer` (one batch,
at most --concurrency in flight, a fresh response cache each time) and the wall time is measured; the ideal is
requests x delay / concurrency, and efficiency = ideal / measured median (the issue asks >= 80% at C = 32). The
naive path, one request at a time (concurrency 1), is timed on --requests / 32 requests in the same run and the
throughput ratio printed. Finally the last batch is asked again with the cache on: the server must see no
request at all.

What limits efficiency is the client's own cost per request (httpx, JSON, SSE parsing, the cache write: about
3 ms of CPU), paid in one event loop: on the 2-core development machine under a load of ~5 this added ~1.3 s
per 256 requests whatever the delay, so at --delay 1.0 efficiency was 86% and at --delay 0.2 about 50%.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import torch

from mmeval.config.served import ServedConfig  # noqa: E402
from mmeval.models.base import GenerationSettings  # noqa: E402
from mmeval.models.served.adapter import load  # noqa: E402

SETTINGS = GenerationSettings(max_new_tokens=8)


def served_model(base_url: str, concurrency: int, cache_dir: Path | None):
    cfg = ServedConfig(base_url=base_url, model="fake-vlm", image_size=8, max_concurrency=concurrency, timeout_s=30)
    model = load(SimpleNamespace(served=cfg, name=None))
    model.use_runtime(SimpleNamespace(cache=SimpleNamespace(root=cache_dir) if cache_dir else None))
    return model


class ServerProcess:
    """tests/served_server.py in its own process (its own GIL, as a real server), asked for its request count."""

    def __init__(self, delay: float):
        script = Path(__file__).resolve().parent.parent / "tests" / "served_server.py"
        self.process = subprocess.Popen([sys.executable, str(script), "--delay", str(delay)], stdout=subprocess.PIPE,
                                        text=True)  # fmt: skip
        self.base_url = self.process.stdout.readline().strip()

    @property
    def requests(self) -> int:
        return int(httpx.get(self.base_url.removesuffix("/v1") + "/requests", timeout=10).text)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def timed_batch(server: ServerProcess, n: int, concurrency: int, tag: str, cache_dir: Path | None) -> tuple[float, int]:
    """Seconds for n distinct requests at `concurrency`, and how many requests reached the server."""
    model = served_model(server.base_url, concurrency, cache_dir)
    pixels = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    questions = [f"{tag} question {i}?" for i in range(n)]
    before = server.requests
    began = time.perf_counter()
    answers = model.answer(pixels, questions, SETTINGS)
    seconds = time.perf_counter() - began
    assert answers == [f"answer: {q}" for q in questions]
    return seconds, server.requests - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=1.0, help="the server's fixed answer delay (s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = ServerProcess(args.delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = []
            for repeat in range(args.repeats):
                seconds, sent = timed_batch(server, args.requests, args.concurrency, f"r{repeat}", Path(tmp) / f"c{repeat}")
                assert sent == args.requests
                runs.append(seconds)
            median = statistics.median(runs)
            ideal = args.requests * args.delay / args.concurrency
            n_naive = max(4, args.requests // 32)
            naive, _ = timed_batch(server, n_naive, 1, "naive", None)
            cached_s, cached_sent = timed_batch(server, args.requests, args.concurrency, f"r{args.repeats - 1}",
                                                Path(tmp) / f"c{args.repeats - 1}")
    finally:
        server.stop()
    print(f"server delay {args.delay * 1000:.0f} ms, {args.requests} requests at concurrency {args.concurrency}")
    print(f"  measured: median {median:.3f} s over {args.repeats} runs ({', '.join(f'{s:.3f}' for s in runs)})")
    print(f"  ideal N x delay / C: {ideal:.3f} s -> efficiency {ideal / median:.1%}")
    print(f"  throughput {args.requests / median:.1f} req/s; naive (concurrency 1, {n_naive} requests): "
          f"{n_naive / naive:.1f} req/s -> {args.requests / median / (n_naive / naive):.1f}x")
    print(f"  rerun from the response cache: {cached_sent} requests sent, {cached_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
