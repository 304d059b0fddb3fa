"""Configuration of the OpenAI-compatible backend: where the endpoint is, how to call it.

``OpenAIConfig`` holds the endpoint, the model, the timeouts, the retry policy's fields and
the concurrency bound, and validates them up front; ``resolve_api_key`` picks the key to
send, failing early when OpenAI's own API would refuse the first call for want of one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final
from urllib.parse import urlsplit

from node.errors import ConfigError
from node.llm.retry import RetryPolicy

__all__ = ["OPENAI_DEFAULT_BASE_URL", "OpenAIConfig", "resolve_api_key"]

OPENAI_DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig:
    """Where the endpoint is and how patiently to call it."""

    model: str  # the model name the endpoint knows, e.g. "gpt-4o-mini"
    base_url: str | None = None  # endpoint root including /v1; None = OpenAI's own API
    api_key: str | None = None  # None = OPENAI_API_KEY; optional for local servers; never shown
    # One attempt's wall time (a stream's: until its headers). Lower notices a hung server
    # sooner; too low cuts off long answers.
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0  # TCP/TLS connect bound, so a dead host fails fast
    stream_idle_timeout_s: float = 30.0  # longest silence between stream chunks before "hung"
    # A whole stream's wall time, headers to last chunk: ends an answer that never finishes
    # (a drip that keeps the idle timeout happy). Too low cuts off long, slow answers.
    stream_total_timeout_s: float = 300.0
    # Bytes one response body may carry (streamed or not), so a runaway endpoint cannot fill
    # memory; a token-by-token stream costs ~250 bytes a token, so 16 MiB is ~64k tokens.
    max_response_bytes: int = 16 * 2**20
    # Tries per call, the first included: more rides out longer outages, reports them later.
    max_attempts: int = 4
    backoff_base_s: float = 0.5  # first backoff ceiling (full jitter), doubled per failure
    backoff_max_s: float = 20.0  # the backoff ceiling stops growing here
    max_retry_after_s: float = 60.0  # a 429's Retry-After is honoured up to this long
    # Calls in flight at once: more throughput, but more 429s from a rate-limited endpoint.
    concurrency: int = 4
    # json_mode sends response_format=json_object; False for endpoints that mishandle it.
    send_response_format: bool = True

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model must be a non-empty model name (--llm-model)")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                    f"got {self.base_url!r}"
                )
        for name in (
            "request_timeout_s",
            "connect_timeout_s",
            "stream_idle_timeout_s",
            "stream_total_timeout_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        if self.connect_timeout_s > self.request_timeout_s:
            raise ConfigError(
                f"connect_timeout_s ({self.connect_timeout_s}) must not exceed "
                f"request_timeout_s ({self.request_timeout_s}), which includes the connect"
            )
        if self.max_response_bytes < 1:
            raise ConfigError(f"max_response_bytes must be >= 1, got {self.max_response_bytes}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        _ = self.retry_policy  # builds a RetryPolicy, which validates the retry fields

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            max_retry_after_s=self.max_retry_after_s,
        )

    def __repr__(self) -> str:
        shown = []
        for config_field in fields(self):
            value = getattr(self, config_field.name)
            if config_field.name == "api_key" and value is not None:
                value = "***"
            shown.append(f"{config_field.name}={value!r}")
        return f"OpenAIConfig({', '.join(shown)})"


def resolve_api_key(
    explicit: str | None, *, base_url: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The key to send: ``explicit``, else ``OPENAI_API_KEY``, else ``None``.

    ``None`` is fine for a local OpenAI-compatible server; for OpenAI's own API it is a
    ``ConfigError`` now rather than a 401 on the first call.
    """
    if explicit:
        return _header_safe(explicit, "the API key")
    from_env = (os.environ if env is None else env).get("OPENAI_API_KEY")
    if from_env:
        return _header_safe(from_env, "OPENAI_API_KEY")
    if _is_openai_api(base_url):
        raise ConfigError(
            "the OpenAI API needs a key: pass --llm-api-key / --llm-api-key-file or set "
            "OPENAI_API_KEY (a local --llm-base-url needs none)"
        )
    return None


def _header_safe(key: str, what: str) -> str:
    """``key``, if it can travel in an HTTP header (printable ASCII); else every call would fail."""
    if not (key.isascii() and key.isprintable()):
        raise ConfigError(f"{what} must be printable ASCII (it is sent in an HTTP header)")
    return key


def _is_openai_api(base_url: str | None) -> bool:
    if base_url is None:
        return True
    hostname = urlsplit(base_url).hostname or ""
    return hostname == "openai.com" or hostname.endswith(".openai.com")
