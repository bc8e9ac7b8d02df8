"""`model.served:`: how to reach an OpenAI-compatible chat-completions server (`model.type: openai`).

Only light imports (pydantic): `mmeval validate` checks these fields without importing httpx or torch. The API
key itself never appears here: the config names the environment variable that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmeval.config.base import _Strict


class Prices(_Strict):
    """Price table: turns the tokens a benchmark used into cost (any currency; per million tokens)."""

    input_per_million: float = Field(ge=0, description="price of one million input (prompt) tokens")
    output_per_million: float = Field(ge=0, description="price of one million output (completion) tokens")
    currency: str = Field("USD", description="label written next to the cost")


class ServedConfig(_Strict):
    """An OpenAI-compatible endpoint, its generation settings, and how requests are sent."""

    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8000/v1 (chat/completions and models "
                                      "are appended)")
    model: str = Field(description="the model id the server knows (checked against GET /models)")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key "
                                                      "(never written to a report, log or cache)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers sent with every request")
    # generation settings (every one of them is part of the response-cache key)
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    max_tokens: int | None = Field(None, gt=0, description="default: the benchmark's generation.max_new_tokens")
    seed: int | None = Field(None, description="sent as `seed` when set")
    stop: list[str] = Field(default_factory=list, description="stop sequences")
    system_prompt: str | None = Field(None, description="a system message before every request")
    prompt_templates: dict[str, str] = Field(default_factory=dict, description="task name -> question template "
                                             "with {question} (used when the benchmark sets no prompt_template)")
    caption_prompt: str = Field("Write a short caption for this image.", description="the instruction sent "
                                "with each image by captioning tasks (generation.prompt overrides it)")
    # images
    image_format: Literal["png", "jpeg"] = Field("png", description="data-URL encoding: png (lossless) or jpeg")
    jpeg_quality: int = Field(90, ge=1, le=100, description="image_format: jpeg only")
    image_size: int = Field(512, gt=0, description="images are resized (bicubic) to this square size before "
                                                  "encoding; an image already of that size is sent as is")
    image_transport: Literal["data_url", "url"] = Field(
        "data_url", description="how images travel: data_url (encoded here, image_format) or url (the server fetches "
                                "image_base_url + the file's path under image_root; video frames stay data URLs)")
    image_base_url: str | None = Field(None, description="image_transport: url: the URL that serves image_root")
    image_root: Path | None = Field(None, description="image_transport: url: the local folder image_base_url "
                                                     "serves (an image file's URL is its path relative to it)")
    # video: the sampled frames (the benchmark's `frames:`) go as image parts, in time order, in one user message
    video_caption_prompt: str = Field("Write a short caption for this video.", description="the instruction sent "
                                      "with each video's frames by video_captioning (generation.prompt overrides it)")
    # audio: `input_audio` parts (16-bit PCM WAV); only servers that take audio input (say so with audio_input)
    audio_input: bool = Field(False, description="the server accepts input_audio content parts (speech and audio "
                                                 "tasks, spoken_vqa's one-model mode need it)")
    audio_sample_rate: int = Field(16000, gt=0, description="audio_input: clips are resampled to this rate (soxr, "
                                                           "as every audio model) and sent as WAV at it")
    transcription_prompt: str = Field("Transcribe the speech in this audio exactly. Reply with the transcript only.",
                                      description="audio_input: the instruction sent with each clip by "
                                                  "speech_recognition (generation.prompt overrides it)")
    audio_caption_prompt: str = Field("Write a short caption describing the sounds in this audio.", description=(
        "audio_input: the instruction sent with each clip by audio_captioning (generation.prompt overrides it)"))
    # requests
    max_concurrency: int = Field(8, gt=0, description="requests in flight at once (runtime.batch_size should be "
                                                      "at least this: one batch is sent at a time)")
    timeout_s: float = Field(60.0, gt=0, description="per-request timeout (connect, read, whole stream)")
    max_retries: int = Field(4, ge=0, description="retries after 429 / 5xx / connection errors / timeouts / "
                                                  "malformed or truncated replies")
    backoff_s: float = Field(0.5, ge=0, description="first backoff; doubles per retry, with full jitter")
    backoff_max_s: float = Field(30.0, ge=0, description="the longest wait between tries (Retry-After included)")
    on_failed_request: Literal["fail", "score_as_wrong"] = Field(
        "fail", description="a request that still fails after its retries: fail the benchmark (answers received "
                            "are kept in the response cache), or score it as a wrong (empty) answer")
    stream: bool = Field(True, description="stream replies: time to first token and time per output token")
    prices: Prices | None = Field(None, description="optional price table: tokens -> cost in the report")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _url_transport(self) -> ServedConfig:
        if self.image_transport == "url" and (self.image_base_url is None or self.image_root is None):
            raise ValueError("image_transport: url needs image_base_url (the URL serving your images) and image_root "
                             "(the local folder it serves)")
        if self.image_base_url is not None and not self.image_base_url.startswith(("http://", "https://")):
            raise ValueError(f"image_base_url: expected an http:// or https:// URL, got {self.image_base_url!r}")
        return self


IMAGE_CAPABILITIES = ("captioner", "answerer", "video_captioner", "video_answerer")
AUDIO_CAPABILITIES = ("speech_recognizer", "audio_captioner", "spoken_answerer")  # need `audio_input: true`


def served_capabilities(served: Any) -> tuple[str, ...]:
    """What a served model can do given its `served:` settings (a ServedConfig or its raw mapping)."""
    audio = served.get("audio_input") if isinstance(served, dict) else getattr(served, "audio_input", False)
    return IMAGE_CAPABILITIES + (AUDIO_CAPABILITIES if audio is True else ())


def capability_problem(entry: dict[str, Any], needs: str) -> str | None:
    """Why the raw `type: openai` model entry cannot do `needs` (checked with the config, exit code 2), or None."""
    served = entry.get("served")
    if needs in AUDIO_CAPABILITIES and isinstance(served, dict) and served.get("audio_input") is not True:
        return (f"needs a model with capability '{needs}' (audio sent as input_audio parts), but "
                "model.served.audio_input is not true: set it when the server accepts audio input, else use another "
                "model")
    return None
