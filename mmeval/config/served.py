"""`model.served:`: how to reach an OpenAI-compatible chat-completions server (`model.type: openai`).

Only light imports (pydantic): `mmeval validate` checks these fields without importing httpx or torch. The API
key itself never appears here: the config names the environment variable that holds it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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
