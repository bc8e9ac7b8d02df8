"""`model.type: openai`: a captioner and answerer behind an OpenAI-compatible chat-completions endpoint.

Each image goes as a data URL (PNG, lossless, by default; or JPEG at `jpeg_quality`), resized (PIL bicubic)
to `image_size` square first so a batch stacks into one tensor; an image already of that size is sent
unchanged. One engine batch is one round of requests, sent `max_concurrency` at a time (client.py). Every
reply is written to the response cache (cache.py) the moment it arrives, so Ctrl-C, a crash or
`on_failed_request: fail` loses nothing already answered, and a rerun sends only what is missing.

Video goes as its sampled frames (the benchmark's `frames:`), one image part each, in time order, then the
prompt, in one user message. Audio (speech_recognition, audio_captioning, spoken_vqa's one-model mode) goes as
an `input_audio` part (16-bit PCM WAV at `audio_sample_rate`), only when `audio_input: true` says the server
takes it. With `image_transport: url` an image file under `image_root` goes as its URL under `image_base_url`.

The model has no checkpoint hash, so the engine's own output cache stays off for it: the response cache is
its cache (same `runtime.cache` switch: `--no-cache` bypasses both).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from typing import Any

import torch

from mmeval.errors import MmevalError, ModelLoadError
from mmeval.models.base import GenerationSettings, ModelInfo
from mmeval.models.served.cache import ResponseCache, request_key
from mmeval.config.served import served_capabilities
from mmeval.models.served.content import (
    SquareImage,
    UrlOrSquareImage,
    audio_part,
    data_url,
    image_part,
    is_url_row,
    url_of,
    wav_base64,
)
from mmeval.models.served.client import Failure, Policy, Reply, RequestError, list_models, send_all
from mmeval.models.served.stats import ServingStats

log = logging.getLogger(__name__)
CACHE_FILE = "served/responses.sqlite"


class ServedModel:
    """Captions and answers from a served model: images and video frames always; audio when `audio_input`."""

    def __init__(self, cfg: Any, info: ModelInfo, headers: dict[str, str]):
        self.cfg = cfg  # a ServedConfig
        self.info = info
        self.module = torch.nn.Module()  # no weights here; the engine moves and times it like any model
        self.capabilities = served_capabilities(cfg)
        self.image_transform = (UrlOrSquareImage(cfg.image_size, cfg.image_root, cfg.image_base_url)
                                if cfg.image_transport == "url" else SquareImage(cfg.image_size))  # fmt: skip
        self.sample_rate = cfg.audio_sample_rate
        self._headers = headers  # may hold the API key: kept on this object only
        self.cache: ResponseCache | None = None
        self.stats = ServingStats()
        self.url = f"{cfg.base_url}/chat/completions"

    def use_runtime(self, runtime: Any) -> None:
        """Open the response cache in the run's cache folder (none when runtime.cache is off: --no-cache)."""
        self.cache = ResponseCache(runtime.cache.root / CACHE_FILE) if runtime.cache is not None else None

    # --- what tasks call -------------------------------------------------------------------------------------

    def question_template(self, task: str) -> str:
        """`prompt_templates[task]` when configured, else the task's own default template."""
        if task in self.cfg.prompt_templates:
            return self.cfg.prompt_templates[task]
        from mmeval.registry import task_spec  # the task's run module is imported only when it runs anyway

        return getattr(importlib.import_module(task_spec(task).run.partition(":")[0]), "DEFAULT_TEMPLATE")

    def check_settings(self, settings: GenerationSettings) -> None:
        if settings.num_beams != 1:
            raise MmevalError("generation.num_beams: a served model decodes greedily (temperature "
                              f"{self.cfg.temperature:g}); beam search is not part of the chat-completions API")

    def check_answer_settings(self, settings: GenerationSettings) -> None:
        self.check_settings(settings)
        if settings.prompt is not None and "{question}" not in settings.prompt:
            raise MmevalError(f"generation.prompt: must contain {{question}} (got {settings.prompt!r})")

    def generate(self, pixels: torch.Tensor, settings: GenerationSettings) -> list[str]:
        return self.complete(self._image_parts(pixels), [settings.prompt or self.cfg.caption_prompt] * len(pixels),
                             settings)  # fmt: skip

    def answer(self, pixels: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        return self.complete(self._image_parts(pixels), self._wrap(questions, settings), settings)

    def generate_video(self, frames: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """Capability `video_captioner`: each video's frames (B, T, 3, S, S) as T image parts + the prompt."""
        prompt = settings.prompt or self.cfg.video_caption_prompt
        return self.complete(self._frame_parts(frames), [prompt] * len(frames), settings)

    def answer_video(self, frames: torch.Tensor, questions: list[str], settings: GenerationSettings) -> list[str]:
        """Capability `video_answerer`: as `generate_video`, with the question as the prompt."""
        return self.complete(self._frame_parts(frames), self._wrap(questions, settings), settings)

    def describe_video(self) -> dict[str, Any]:
        """How video reached the server (the report's `video` block of video tasks)."""
        cfg = self.cfg
        return {"sent_as": "the sampled frames as image parts (data URLs), in time order, then the prompt, in one "
                           "user message", "frame_encoding": cfg.image_format,
                "jpeg_quality": cfg.jpeg_quality if cfg.image_format == "jpeg" else None,
                "frame_size": cfg.image_size, "resize": "PIL bicubic to a square (unless already that size)"}

    def transcribe(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """Capability `speech_recognizer` (audio_input): each clip as an input_audio part + the transcription
        prompt, through chat completions."""
        prompt = settings.prompt or self.cfg.transcription_prompt
        return self.complete(self._audio_parts(audio, lengths), [prompt] * len(audio), settings)

    def generate_audio(self, audio: torch.Tensor, lengths: torch.Tensor, settings: GenerationSettings) -> list[str]:
        """Capability `audio_captioner` (audio_input): each clip as an input_audio part + the caption prompt."""
        prompt = settings.prompt or self.cfg.audio_caption_prompt
        return self.complete(self._audio_parts(audio, lengths), [prompt] * len(audio), settings)

    def answer_spoken(self, pixels: torch.Tensor, audio: torch.Tensor, lengths: torch.Tensor, prompts: list[str],
                      settings: GenerationSettings) -> list[str]:  # fmt: skip
        """Capability `spoken_answerer` (audio_input): the image part, the spoken question's input_audio part and
        the instruction, in one user message."""
        parts = [image + sound for image, sound in zip(self._image_parts(pixels), self._audio_parts(audio, lengths))]
        return self.complete(parts, self._wrap(prompts, settings), settings)

    def serving_block(self) -> dict[str, Any]:
        """The benchmark's serving figures, read out once per benchmark (then counting starts afresh)."""
        return self.stats.block(self.cfg.prices, self.cache is not None)

    def add_serving(self, latency: dict[str, Any]) -> None:
        """Put the serving figures in a benchmark's latency block: `serving`, and per-request end-to-end, TTFT and
        TPOT as passes `request`, `ttft`, `tpot` (`sample_ms` percentiles), so gate latency rules such as
        `latency: '*/ttft'` read them like any model pass."""
        block = latency["serving"] = self.serving_block()
        for name, key in (("request", "e2e_ms"), ("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
            if block[key]:
                latency["passes"][name] = {"n_batches": block["requests_answered"], "sample_ms": block[key],
                                           "cached": False, "unit": "one request" if name != "tpot" else "one token"}

    # --- content parts ---------------------------------------------------------------------------------------

    @staticmethod
    def _wrap(questions: list[str], settings: GenerationSettings) -> list[str]:
        return [settings.prompt.replace("{question}", q) if settings.prompt else q for q in questions]

    def _encoded(self, row: torch.Tensor, memo: dict[bytes, str]) -> str:
        """One image row as the URL sent: its own URL (image_transport: url) or a data URL, encoded once."""
        if is_url_row(row):
            return url_of(row)
        raw = row.detach().cpu().numpy().tobytes()  # rows of one image repeat its pixels: encode each image once
        if raw not in memo:
            memo[raw] = data_url(row, self.cfg.image_format, self.cfg.jpeg_quality)
        return memo[raw]

    def _image_parts(self, pixels: torch.Tensor) -> list[list[dict[str, Any]]]:
        if self.cfg.image_transport == "url" and len(pixels) and not is_url_row(pixels[0]):
            raise MmevalError(f"model.served.image_transport is 'url', but these images were not read from files "
                              f"under image_root {self.cfg.image_root} (in-memory images, or perturbed ones whose "
                              "URL would show the server the clean file); use image_transport: data_url")
        memo: dict[bytes, str] = {}
        return [[image_part(self._encoded(row, memo))] for row in pixels]

    def _frame_parts(self, frames: torch.Tensor) -> list[list[dict[str, Any]]]:
        memo: dict[bytes, str] = {}
        return [[image_part(self._encoded(frame, memo)) for frame in clip] for clip in frames]

    def _audio_parts(self, audio: torch.Tensor, lengths: torch.Tensor) -> list[list[dict[str, Any]]]:
        return [[audio_part(wav_base64(row, int(n), self.sample_rate))] for row, n in zip(audio, lengths)]

    # --- requests --------------------------------------------------------------------------------------------

    def body(self, parts: list[dict[str, Any]], prompt: str, settings: GenerationSettings) -> dict[str, Any]:
        """The chat-completions request for one row's content parts and prompt (without the streaming switches);
        the parts come first, then the text (for one image exactly the body earlier versions sent)."""
        cfg = self.cfg
        messages: list[dict[str, Any]] = []
        if cfg.system_prompt:
            messages.append({"role": "system", "content": cfg.system_prompt})
        messages.append({"role": "user", "content": [*parts, {"type": "text", "text": prompt}]})
        body: dict[str, Any] = {"model": cfg.model, "messages": messages, "temperature": cfg.temperature,
                                "max_tokens": cfg.max_tokens or settings.max_new_tokens}
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        return body

    def complete(self, parts: list[list[dict[str, Any]]], prompts: list[str], settings: GenerationSettings) -> list[str]:
        """One reply per (content parts, prompt) row: from the cache, else sent; failures per `on_failed_request`."""
        cfg = self.cfg
        bodies = [self.body(row, prompt, settings) for row, prompt in zip(parts, prompts)]
        keys = [request_key(cfg.model, body) for body in bodies]
        answers: list[str | None] = [None] * len(bodies)
        for n, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                answers[n] = hit["text"].strip()
        self.stats.hits += sum(a is not None for a in answers)
        todo = [n for n, a in enumerate(answers) if a is None]
        self.stats.misses += len(todo)
        if not todo:
            return [a or "" for a in answers]
        streamed = [{**bodies[n], "stream": True, "stream_options": {"include_usage": True}} if cfg.stream
                    else bodies[n] for n in todo]  # fmt: skip

        def arrived(k: int, result: Reply | Failure) -> None:
            if isinstance(result, Reply) and self.cache is not None:
                self.cache.put(keys[todo[k]], cfg.model, result.to_json())

        began = time.perf_counter()
        results = send_all(self.url, streamed, self._headers, Policy.of(cfg), arrived)
        self.stats.wall_s += time.perf_counter() - began
        failed = []
        for k, result in zip(todo, results):
            if isinstance(result, Reply):
                answers[k] = result.text.strip()  # as the in-process adapters return answers
                self.stats.replies.append(result)
            else:
                failed.append({"prompt": prompts[k], "error": result.error, "attempts": result.attempts,
                               "errors": result.errors})
        self.stats.failures.extend(failed)
        if failed:
            first = failed[0]
            what = (f"{len(failed)} of {len(bodies)} request(s) to {self.url} failed after retries (first: prompt "
                    f"{first['prompt'][:80]!r}: {first['error']}, {first['attempts']} tries)")
            if cfg.on_failed_request == "fail":
                kept = ("the answers received are kept in the response cache; a rerun or --resume sends only the rest"
                        if self.cache is not None else "the response cache is off, so nothing is kept")
                raise MmevalError(f"model.served.on_failed_request is 'fail': {what}; {kept}")
            log.warning("%s; scored as wrong answers (model.served.on_failed_request: score_as_wrong)", what)
        return [a if a is not None else "" for a in answers]


def _headers(cfg: Any) -> dict[str, str]:
    headers = dict(cfg.headers)
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ModelLoadError(f"model.served.api_key_env: the environment variable {cfg.api_key_env} is not set "
                                 "(it should hold the API key)")
        headers["Authorization"] = f"Bearer {key}"
    return headers


def load(model_cfg: Any, trust_checkpoint: bool = False) -> ServedModel:
    """Registry entry point: check the endpoint serves `served.model` (GET /models) and record what it lists.
    `trust_checkpoint` changes nothing: no weights are read here."""
    cfg = model_cfg.served
    headers = _headers(cfg)
    try:
        listed = list_models(cfg.base_url, headers, min(cfg.timeout_s, 30.0))
    except RequestError as exc:
        raise ModelLoadError(f"model.served.base_url: {exc}") from None
    ids = [str(entry["id"]) for entry in listed]
    if cfg.model not in ids:
        raise ModelLoadError(f"model.served.model: {cfg.base_url} does not serve '{cfg.model}'; it lists: "
                             f"{', '.join(ids) or 'no model'}")
    extra = {
        "base_url": cfg.base_url, "served_model": cfg.model,
        "models_endpoint": [{k: entry.get(k) for k in ("id", "owned_by", "created") if k in entry} for entry in listed],
        "header_names": sorted(cfg.headers),  # names only: values may be secrets
        "images": {"encoding": cfg.image_format, "jpeg_quality": cfg.jpeg_quality if cfg.image_format == "jpeg" else None,
                   "size": cfg.image_size, "resize": "PIL bicubic to a square (unless already that size)",
                   "sent_as": "data URL" if cfg.image_transport == "data_url" else
                   f"URL: {cfg.image_base_url}/<path under {cfg.image_root}> (the server fetches the file as stored)"},
        "video": {"sent_as": "the sampled frames as image parts (data URLs, the images' encoding), in time order, "
                             "then the prompt, in one user message"},
        "audio": ({"sent_as": "input_audio part, format wav (16-bit PCM, mono)", "sample_rate": cfg.audio_sample_rate,
                   "resampler": "soxr (mmeval's audio decoder)"} if cfg.audio_input
                  else "not sent (served.audio_input is false)"),
        "capabilities": list(served_capabilities(cfg)),
        "generation": {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": cfg.seed,
                       "stop": list(cfg.stop), "system_prompt": cfg.system_prompt, "stream": cfg.stream},
        "requests": {"max_concurrency": cfg.max_concurrency, "timeout_s": cfg.timeout_s,
                     "max_retries": cfg.max_retries, "backoff_s": cfg.backoff_s, "backoff_max_s": cfg.backoff_max_s,
                     "on_failed_request": cfg.on_failed_request},
    }
    info = ModelInfo(adapter="openai", name=model_cfg.name or cfg.model.replace("/", "_"), checkpoint=None,
                     sha256=None, n_parameters=0, extra=extra, loaded_with="served over HTTP (no local weights)")
    return ServedModel(cfg, info, headers)
