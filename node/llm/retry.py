"""When to retry a failed LLM call, and how long to wait first.

Capped exponential backoff with *full jitter*, as in Marc Brooker, "Exponential Backoff And
Jitter", AWS Architecture Blog, 2015
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):

    sleep = uniform(0, min(cap, base * 2 ** (attempt - 1)))

The ceiling doubles with every failed attempt up to ``cap``; drawing the whole sleep uniformly
below it spreads clients that failed together, so they do not come back in lockstep (the
article shows full jitter needs the fewest calls and the least total work of the variants).

A server that says how long to wait overrides the formula: a 429 carrying ``retry-after-ms``
(OpenAI's extension, milliseconds) or ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an
HTTP-date) is honoured as given, capped at ``RetryPolicy.max_retry_after_s`` so one bad header
cannot park a producer for an hour.

Everything here is a pure function of its arguments (randomness comes from the caller's
``random.Random``), so the policy is tested with tables and no clock.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from node.errors import ConfigError, LLMError, LLMRateLimited

__all__ = ["RetryPolicy", "backoff_delay_s", "parse_retry_after_s", "retry_delay_s"]

# 2**62 times any sane base is already far past any cap; stopping the exponent here keeps
# float conversion from overflowing on absurd attempt numbers.
_MAX_BACKOFF_EXPONENT = 62


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How many times a call is tried and how the waits between tries grow."""

    max_attempts: int  # total tries, the first included; 1 = never retry
    backoff_base_s: float  # ceiling of the first backoff draw; doubles on each failure
    backoff_max_s: float  # the ceiling never grows past this
    max_retry_after_s: float  # a server's Retry-After hint is honoured up to this long

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not self.backoff_base_s >= 0:
            raise ConfigError(f"backoff_base_s must be >= 0, got {self.backoff_base_s}")
        if not self.backoff_max_s >= self.backoff_base_s:
            raise ConfigError(
                f"backoff_max_s must be >= backoff_base_s ({self.backoff_base_s}), "
                f"got {self.backoff_max_s}"
            )
        if not self.max_retry_after_s >= 0:
            raise ConfigError(f"max_retry_after_s must be >= 0, got {self.max_retry_after_s}")


def backoff_delay_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full-jitter delay after failed attempt number ``attempt`` (1-based).

    Drawn uniformly from ``[0, min(max_s, base_s * 2 ** (attempt - 1))]``.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    exponent = min(attempt - 1, _MAX_BACKOFF_EXPONENT)
    ceiling_s = min(max_s, base_s * 2.0**exponent)
    return rng.uniform(0.0, ceiling_s)


def retry_delay_s(
    error: LLMError, attempt: int, policy: RetryPolicy, rng: random.Random
) -> float | None:
    """Seconds to wait before trying again after ``attempt`` failed with ``error``.

    ``None`` means stop: the error is not retryable (a 4xx request error) or the policy's
    attempts are spent. A 429 with a Retry-After hint waits the hint (capped); every other
    retryable error waits a full-jitter backoff.
    """
    if not error.retryable or attempt >= policy.max_attempts:
        return None
    if isinstance(error, LLMRateLimited) and error.retry_after_s is not None:
        return min(max(error.retry_after_s, 0.0), policy.max_retry_after_s)
    return backoff_delay_s(
        attempt, base_s=policy.backoff_base_s, max_s=policy.backoff_max_s, rng=rng
    )


def parse_retry_after_s(headers: Mapping[str, str], *, now_s: float | None = None) -> float | None:
    """The server's "wait this long" hint from response headers, in seconds, or ``None``.

    ``retry-after-ms`` (milliseconds, sent by OpenAI) wins over ``retry-after``, which is
    either delay-seconds or an HTTP-date (RFC 9110 §10.2.3; ``now_s`` is the current Unix
    time, for dates). Unparseable, negative or non-finite values are ignored; a date in the
    past means "now" (0).
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    milliseconds = _parse_non_negative(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _parse_non_negative(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always UTC
        when = when.replace(tzinfo=datetime.UTC)
    current_s = time.time() if now_s is None else now_s
    return max(when.timestamp() - current_s, 0.0)


def _parse_non_negative(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value
