"""A small OpenAI-compatible chat-completions server for the served-model tests and scripts/bench_served.py.

`echo=True` (a scripted mode, beside the default below): the answer describes the request instead, so a test can assert what really
went over the wire: `images=<n> audio=<n> seconds=<s> urls=<url|url..> prompt=<text>`, with `images` the number
of image_url parts, `audio` of input_audio parts, `seconds` the summed duration of their WAV data (read back with
the standard library's wave), `urls` the image URLs that are not data URLs. The content parts of every request are
also kept in `contents`.

Loopback only. By default it answers `answer: <prompt>` (or what `answer_fn(image_url, prompt, max_tokens)`
returns), after a fixed `delay_s`. Faults are injected by a marker in the prompt, `[fault:<kind>x<n>]` (the
first n requests with that prompt fail; without `x<n>`, every one):

  429        HTTP 429 with Retry-After: 0.05        500   HTTP 500
  hang       sleeps `hang_s` (past the client's timeout) before answering
  badjson    a 200 reply whose body is not JSON     trunc a stream that stops before [DONE]
  wrongmodel a reply naming another model id

Every request is counted (`requests`, and per prompt `seen`), so tests can check that the cache sent nothing.
`fault_fn(prompt)` may name a fault for a prompt without a marker (e.g. a judge's request about one caption).

`scripted_judge` (`answer_fn=scripted_judge`, or `--judge` on the command line) answers as a judge with a fixed,
checkable rule (mmeval/models/served/judge.py's prompts): to a yes/no prompt, "yes" when the candidate answer is
one of the reference answers (case and surrounding space ignored), else "no"; to a 1-5 caption prompt,
"Score: 5" when the candidate caption is one of the references, else "Score: <4 - m>" (at least 1), m the number of
distinct words of the candidate found in no reference (lower case, split on spaces, "." and "," stripped).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_FAULT = re.compile(r"\[fault:(\w+?)(?:x(\d+))?\]")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen() backlog (default 5): a burst of 32+ connections must not wait for SYN retries

    def handle_error(self, request, client_address) -> None:
        pass  # a client closing a kept-alive connection (or giving up on a hang) is not an error here


def echo_answer(content: list[dict]) -> str:
    """The scripted answer of `echo=True`: what the request's content parts carried."""
    import base64
    import io
    import wave

    images = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    sounds = [part["input_audio"] for part in content if part.get("type") == "input_audio"]
    seconds = 0.0
    for sound in sounds:
        assert sound["format"] == "wav"
        with wave.open(io.BytesIO(base64.b64decode(sound["data"]))) as clip:
            seconds += clip.getnframes() / clip.getframerate()
    urls = "|".join(url for url in images if not url.startswith("data:"))
    return f"images={len(images)} audio={len(sounds)} seconds={seconds:.3f} urls={urls} prompt={content[-1]['text']}"


class FakeServer:
    """Start with `start()` (a daemon thread on 127.0.0.1, a free port), stop with `stop()`."""

    def __init__(self, model: str = "fake-vlm", delay_s: float = 0.0, hang_s: float = 2.0,
                 answer_fn: Callable[[str, str, int], str] | None = None, echo: bool = False,
                 fault_fn: Callable[[str], str | None] | None = None):
        self.model, self.delay_s, self.hang_s, self.answer_fn = model, delay_s, hang_s, answer_fn
        self.echo = echo
        self.contents: list[list[dict]] = []  # the content parts of every chat request, in arrival order
        self.fault_fn = fault_fn
        self.requests = 0
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive for sized replies; a stream is closed when it ends

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/requests":  # for scripts/bench_served.py: how many chat requests came
                    raw = str(server.requests).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                elif self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model",
                                                                 "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                try:
                    server.handle(self, body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            def _json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def handle(self, h, body: dict) -> None:
        content = body["messages"][-1]["content"]
        if isinstance(content, str):  # text only (a judge's request)
            prompt, image = content, None
        else:
            images = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
            prompt, image = content[-1]["text"], images[0] if images else None
        with self.lock:
            if not isinstance(content, str):
                self.contents.append(content)
            self.requests += 1
            self.seen[prompt] += 1
            nth = self.seen[prompt]
        fault = _FAULT.search(prompt)
        kind = None
        if fault and (fault.group(2) is None or nth <= int(fault.group(2))):
            kind = fault.group(1)
        elif self.fault_fn is not None:
            kind = self.fault_fn(prompt)
        time.sleep(self.delay_s)
        if kind == "429":
            return h._json(429, {"error": "rate limited"}, {"Retry-After": "0.05"})
        if kind == "500":
            return h._json(500, {"error": "internal"})
        if kind == "hang":
            time.sleep(self.hang_s)
        if self.echo and not isinstance(content, str):
            text = echo_answer(content)
        else:
            text = self.answer_fn(image, prompt, body.get("max_tokens", 16)) if self.answer_fn else f"answer: {prompt}"
        model = "other-model" if kind == "wrongmodel" else self.model
        if kind == "badjson":  # a body (or, streaming, an event) cut mid-JSON
            raw = b'{"choices": [{"message": {"content": "cut'
            if body.get("stream"):
                raw = b"data: " + raw + b"\n\ndata: [DONE]\n\n"
            h.send_response(200)
            h.close_connection = True
            h.send_header("Content-Type", "text/event-stream" if body.get("stream") else "application/json")
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
            return
        words = text.split(" ")
        usage = {"prompt_tokens": len(prompt.split()) + 1, "completion_tokens": len(words),
                 "total_tokens": len(prompt.split()) + 1 + len(words)}
        if not body.get("stream"):
            return h._json(200, {"id": "x", "object": "chat.completion", "model": model, "usage": usage,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]})
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")  # as uvicorn streams: the connection is kept for the next one
        h.end_headers()

        def event(data: str) -> None:
            raw = f"data: {data}\n\n".encode()
            h.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            h.wfile.flush()

        for n, word in enumerate(words):
            piece = word if n == 0 else " " + word
            event(json.dumps({"model": model, "choices": [{"index": 0, "delta": {"content": piece},
                                                           "finish_reason": None}]}))
            if kind == "trunc":
                break  # the stream ends with neither a finish_reason nor [DONE]
        else:
            event(json.dumps({"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            event(json.dumps({"model": model, "choices": [], "usage": usage}))
            event("[DONE]")
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


def _words(text: str) -> set[str]:
    return {word.strip(".,").lower() for word in text.split()} - {""}


def scripted_judge(image: str | None, prompt: str, max_tokens: int) -> str:
    """A judge with a fixed rule (see the module docstring), reading mmeval's judge prompts."""
    lines = prompt.splitlines()
    field = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines if ": " in line}
    if "Candidate answer" in field:
        references = [r.strip().lower() for r in field["Reference answers"].split("; ")]
        return "yes" if field["Candidate answer"].strip().lower() in references else "no"
    candidate = field["Candidate caption"]
    references = [line[2:] for line in lines if line.startswith("- ")]
    if candidate.strip().lower() in [r.strip().lower() for r in references]:
        return "Score: 5"
    missing = _words(candidate) - set().union(*map(_words, references))
    return f"Score: {max(1, 4 - len(missing))}"


def main() -> None:
    """`python tests/served_server.py --delay 0.2`: serve in this process (its own GIL) until killed; prints the
    base URL on the first line of stdout."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--model", default="fake-vlm")
    parser.add_argument("--judge", action="store_true", help="answer as scripted_judge")
    args = parser.parse_args()
    server = FakeServer(model=args.model, delay_s=args.delay, answer_fn=scripted_judge if args.judge else None).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
