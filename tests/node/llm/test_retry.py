"""Table tests for the retry policy: full-jitter backoff, Retry-After parsing, when to stop."""

from __future__ import annotations

import random
from typing import Any

import pytest

from node.errors import (
    ConfigError,
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)
from node.llm.retry import (
    RetryPolicy,
    backoff_delay_s,
    parse_retry_after_s,
    retry_delay_s,
)


class _TopOfRange(random.Random):
    """Always draws the top of the requested range, exposing the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


POLICY = RetryPolicy(max_attempts=4, backoff_base_s=0.5, backoff_max_s=4.0, max_retry_after_s=10.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling_s"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (10, 4.0), (10_000, 4.0)],
)
def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap(attempt: int, ceiling_s: float) -> None:
    assert backoff_delay_s(attempt, base_s=0.5, max_s=4.0, rng=_TopOfRange()) == ceiling_s


def test_backoff_is_full_jitter_spread_over_the_whole_range() -> None:
    """Draws cover [0, ceiling] — low values included — and never exceed the ceiling."""
    rng = random.Random(1)
    draws = [backoff_delay_s(3, base_s=0.5, max_s=4.0, rng=rng) for _ in range(2000)]
    assert all(0.0 <= draw <= 2.0 for draw in draws)
    assert min(draws) < 0.1
    assert max(draws) > 1.9
    assert 0.9 < sum(draws) / len(draws) < 1.1  # uniform on [0, 2] has mean 1


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_delay_s(n, base_s=0.1, max_s=5, rng=random.Random(42)) for n in range(1, 6)]
    second = [backoff_delay_s(n, base_s=0.1, max_s=5, rng=random.Random(42)) for n in range(1, 6)]
    assert first == second


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay_s(0, base_s=0.5, max_s=4.0, rng=random.Random())


@pytest.mark.parametrize(
    ("error", "attempt", "expected_s"),
    [
        (LLMServerError("boom", status=500), 1, 0.5),
        (LLMServerError("boom", status=503), 3, 2.0),
        (LLMTimeout("slow"), 2, 1.0),
        (LLMConnectionError("refused"), 1, 0.5),
        (LLMBadResponse("garbage"), 1, 0.5),
        (LLMRateLimited("429"), 2, 1.0),  # no hint: plain backoff
        (LLMRateLimited("429", retry_after_s=3.0), 1, 3.0),  # the hint, not the backoff
        (LLMRateLimited("429", retry_after_s=0.0), 1, 0.0),
        (LLMRateLimited("429", retry_after_s=3600.0), 1, 10.0),  # capped
        (LLMServerError("boom", status=500), 4, None),  # attempts spent
        (LLMRateLimited("429", retry_after_s=1.0), 4, None),
        (LLMRequestError("bad key", status=401), 1, None),  # not retryable
        (LLMRequestError("no such model", status=404), 1, None),
    ],
)
def test_retry_delay_table(error: LLMError, attempt: int, expected_s: float | None) -> None:
    assert retry_delay_s(error, attempt, POLICY, _TopOfRange()) == expected_s


def test_a_single_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1, backoff_base_s=0.1, backoff_max_s=1, max_retry_after_s=1)
    assert retry_delay_s(LLMTimeout("slow"), 1, policy, random.Random()) is None


NOW_S = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({}, None),
        ({"Retry-After": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "200"}, 0.2),
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({"retry-after": "5", "retry-after-ms": "250"}, 0.25),  # milliseconds win
        ({"retry-after": "5", "retry-after-ms": "soon"}, 5.0),  # bad ms falls back
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 -0000"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # already past
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": ""}, None),
    ],
)
def test_parse_retry_after_table(headers: dict[str, str], expected_s: float | None) -> None:
    assert parse_retry_after_s(headers, now_s=NOW_S) == expected_s


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_base_s": -1.0}, "backoff_base_s"),
        ({"backoff_base_s": float("nan")}, "backoff_base_s"),
        ({"backoff_max_s": 0.1}, "backoff_max_s"),
        ({"max_retry_after_s": -1.0}, "max_retry_after_s"),
    ],
)
def test_policy_validation_names_the_field(fields: dict[str, float], message: str) -> None:
    values: dict[str, Any] = {
        "max_attempts": 3,
        "backoff_base_s": 0.5,
        "backoff_max_s": 4.0,
        "max_retry_after_s": 10.0,
    }
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**{**values, **fields})
