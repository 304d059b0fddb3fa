"""The node package's error tree: one flat hierarchy that callers can catch at the right depth.

Third-party exceptions (openai, sqlite3, aiohttp) are translated into these at the boundary
with ``raise ... from exc`` so nothing above the boundary imports a vendor's exception types.
"""

from __future__ import annotations

__all__ = [
    "NodeError",
    "ConfigError",
    "LLMError",
    "LLMRateLimited",
    "LLMTimeout",
    "LLMServerError",
    "LLMConnectionError",
    "LLMRequestError",
    "LLMBadResponse",
]


class NodeError(Exception):
    """Base of every error raised by the node package."""


class ConfigError(NodeError):
    """A configuration value is invalid; the message names the option and what is allowed."""


class LLMError(NodeError):
    """An LLM call failed. ``retryable`` says whether trying again later may succeed."""

    retryable: bool = False


class LLMRateLimited(LLMError):
    """The endpoint answered 429; ``retry_after_s`` is its Retry-After hint when it gave one."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMTimeout(LLMError):
    """The endpoint did not answer (or stopped streaming) within the configured timeout."""

    retryable = True


class LLMServerError(LLMError):
    """The endpoint answered with a 5xx status."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMConnectionError(LLMError):
    """The endpoint could not be reached (refused, reset, DNS)."""

    retryable = True


class LLMRequestError(LLMError):
    """The endpoint refused the request itself (4xx other than 429): bad key, unknown model...

    Retrying the same request cannot help, so it is not retryable.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMBadResponse(LLMError):
    """The endpoint answered 2xx but the body was not a usable chat completion."""

    retryable = True
