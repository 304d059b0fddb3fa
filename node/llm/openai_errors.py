"""Translation of the ``openai`` client's exceptions into the ``node.errors.LLMError`` tree.

Vendor exceptions stop at this boundary: the backend raises ``translate_error(exc) from exc``
so callers only ever see ``LLMError``s, classed by what the retry policy needs to know
(rate limited, timed out, server-side, connection, refused request, bad response). Vendor
messages can carry whole request bodies, so the detail kept is bounded.
"""

from __future__ import annotations

from typing import Final

import openai

from node.errors import (
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)
from node.llm.retry import parse_retry_after_s

__all__ = ["error_detail", "rejected_option", "translate_error"]

# Vendor error messages can carry whole request bodies; keep log lines and errors readable.
_MAX_DETAIL_CHARS: Final = 300


def translate_error(exc: openai.OpenAIError) -> LLMError:
    """The ``LLMError`` for a vendor exception (the caller raises it ``from exc``)."""
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base
        return LLMTimeout(f"the request timed out: {error_detail(exc)}")
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__!r})" if exc.__cause__ is not None else ""
        return LLMConnectionError(f"cannot reach the endpoint: {error_detail(exc)}{cause}")
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimited(
            f"rate limited (429): {error_detail(exc)}",
            retry_after_s=parse_retry_after_s(exc.response.headers),
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return LLMServerError(f"server error ({status}): {error_detail(exc)}", status=status)
        if status == 408:
            return LLMTimeout(f"the endpoint timed out the request (408): {error_detail(exc)}")
        return LLMRequestError(f"request refused ({status}): {error_detail(exc)}", status=status)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMBadResponse(f"response failed validation: {error_detail(exc)}")
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        return LLMServerError(f"the endpoint reported an error: {error_detail(exc)}")
    return LLMBadResponse(f"{type(exc).__name__}: {error_detail(exc)}")


def rejected_option(exc: openai.BadRequestError, options: frozenset[str]) -> str | None:
    """The optional parameter a 400 complains about, if it names one we sent."""
    text = str(exc)
    for option in sorted(options):
        if exc.param == option or option in text:
            return option
    return None


def error_detail(exc: BaseException) -> str:
    """The message of ``exc``, cut to ``_MAX_DETAIL_CHARS``."""
    text = str(exc)
    if len(text) > _MAX_DETAIL_CHARS:
        return text[: _MAX_DETAIL_CHARS - 3] + "..."
    return text
