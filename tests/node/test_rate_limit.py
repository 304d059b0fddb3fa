"""Tests for node.rate_limit: the token bucket and the AIMD start rate, on a fake clock."""

from __future__ import annotations

import itertools
import math

import pytest

from node.errors import ConfigError
from node.rate_limit import AimdConfig, StartRate, TokenBucket


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _run_starts(rate: StartRate, clock: FakeClock, count: int) -> list[float]:
    """Start ``count`` calls as fast as ``rate`` allows; returns their start times."""
    times = []
    for _ in range(count):
        clock.advance(rate.wait_s())
        assert rate.wait_s() == 0.0
        times.append(rate.started())
    return times


@pytest.mark.parametrize(
    ("rate_per_s", "elapsed_s", "expected_wait_s"),
    [(1.0, 0.0, 1.0), (1.0, 0.25, 0.75), (0.5, 1.0, 1.0), (2.0, 0.5, 0.0), (2.0, 10.0, 0.0)],
)
def test_token_bucket_wait_after_one_take(rate_per_s: float, elapsed_s: float, expected_wait_s: float) -> None:
    """After taking the only token, the next one is 1/rate away, less what accrued since."""
    bucket = TokenBucket(rate_per_s, now=0.0)
    assert bucket.wait_s(0.0) == 0.0
    bucket.take(0.0)
    assert bucket.wait_s(elapsed_s) == pytest.approx(expected_wait_s)


def test_token_bucket_does_not_save_up_more_than_its_capacity() -> None:
    """An idle hour buys one call, not 3,600: no burst after a quiet spell."""
    bucket = TokenBucket(1.0, now=0.0)
    bucket.take(0.0)
    bucket.take(3600.0)
    assert bucket.wait_s(3600.0) == pytest.approx(1.0)


def test_token_bucket_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ConfigError):
        TokenBucket(0.0, now=0.0)


def test_a_ceiling_spaces_starts_evenly() -> None:
    """--max-calls-per-minute 30: one start every 2 s, at most 1 + 30·t/60 in any window t."""
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=30, now=clock)
    times = _run_starts(rate, clock, 31)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([2.0] * 30)
    assert times[-1] - times[0] == pytest.approx(60.0)


def test_no_ceiling_and_no_429_means_no_waiting() -> None:
    clock = FakeClock()
    rate = StartRate(now=clock)
    assert _run_starts(rate, clock, 50) == [clock.t] * 50
    assert rate.rate_per_min is None


def test_a_429_halves_the_rate_and_its_retry_after_pauses_every_start() -> None:
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=60, now=clock)
    started = rate.started()
    clock.advance(1.0)
    rate.rate_limited(started, retry_after_s=5.0)
    assert rate.rate_per_min == 30
    assert rate.wait_s() == pytest.approx(5.0)
    assert rate.paused_s() == pytest.approx(5.0)
    clock.advance(5.0)
    assert rate.wait_s() == 0.0  # the pause is over and a token accrued meanwhile


def test_calls_started_before_a_decrease_do_not_decrease_again() -> None:
    """Four calls in flight all hit the 429 wall: one halving, not four (TCP: once per window)."""
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=600, now=clock)
    starts = _run_starts(rate, clock, 4)
    clock.advance(0.5)
    for started in starts:
        rate.rate_limited(started, retry_after_s=None)
    assert rate.rate_per_min == 300
    assert rate.decreases == 1
    later = _run_starts(rate, clock, 1)[0]
    rate.rate_limited(later, retry_after_s=None)
    assert rate.rate_per_min == 150


def test_successes_climb_back_additively_to_the_ceiling_and_never_past_it() -> None:
    """After halving 60 → 30/min, +10% of 60 a minute of calls: back at 60 in about 5 minutes."""
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=60, now=clock)
    rate.rate_limited(rate.started(), retry_after_s=None)
    assert rate.rate_per_min == 30
    minutes = []
    while rate.rate_per_min is not None and rate.rate_per_min < 60:
        started = _run_starts(rate, clock, 1)[0]
        rate.succeeded(started)
        minutes.append(clock.t)
    elapsed_min = (minutes[-1] - minutes[0]) / 60
    assert 4.0 <= elapsed_min <= 6.0
    assert rate.rate_per_min == 60
    for _ in range(20):
        rate.succeeded(rate.started())
    assert rate.rate_per_min == 60


def test_a_retried_success_is_a_congestion_signal() -> None:
    """A call that needed the backend's retries to succeed slows the node like a 429 (no pause)."""
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=40, now=clock)
    rate.retried(rate.started())
    assert rate.rate_per_min == 20
    assert rate.paused_s() == 0.0


def test_the_rate_never_drops_below_the_floor() -> None:
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=4, now=clock, config=AimdConfig(min_rate_per_min=1.0))
    for _ in range(10):
        clock.advance(120.0)
        rate.rate_limited(rate.started(), retry_after_s=None)
    assert rate.rate_per_min == 1.0


def test_without_a_ceiling_a_429_pauses_for_its_retry_after_and_sets_no_rate() -> None:
    """Unlimited: 120 starts/min, then a 429 with Retry-After 5 s → every start waits 5 s, then no limit."""
    clock = FakeClock()
    rate = StartRate(now=clock)
    last = 0.0
    for _ in range(120):  # two a second for a minute
        last = rate.started()
        clock.advance(0.5)
    rate.rate_limited(last, retry_after_s=5.0)
    rate.retried(last)
    assert rate.rate_per_min is None and rate.decreases == 0
    assert rate.wait_s() == pytest.approx(5.0)
    clock.advance(5.0)
    assert rate.wait_s() == 0.0


def test_what_rounding_leaves_of_a_finished_pause_is_no_wait() -> None:
    """A pause that ends at ``now`` up to float rounding says 0, not 1e-13: a caller sleeping
    1e-13 s and asking again must not go round for ever."""
    clock = FakeClock(start=987654.321)
    rate = StartRate(now=clock)
    rate.rate_limited(rate.started(), retry_after_s=0.1)
    end = clock.t + rate.wait_s()
    clock.t = math.nextafter(end, -math.inf)  # a hair (one ulp, ~1e-10 s) before the end of the pause
    assert rate.wait_s() == 0.0
    clock.t = end - 0.001  # a real millisecond left is still waited for
    assert rate.wait_s() == pytest.approx(0.001)


def test_a_remainder_of_a_few_ulps_of_a_large_clock_is_no_wait() -> None:
    """At 3e7 s an ulp is 3.7e-9 s, above the 1 ns floor: two ulps left are no wait either."""
    clock = FakeClock(start=3e7)
    rate = StartRate(now=clock)
    rate.rate_limited(rate.started(), retry_after_s=0.1)
    end = clock.t + rate.wait_s()
    clock.t = math.nextafter(math.nextafter(end, -math.inf), -math.inf)
    assert 1e-9 < end - clock.t and rate.wait_s() == 0.0


def test_a_long_retry_after_is_capped() -> None:
    clock = FakeClock()
    rate = StartRate(now=clock, config=AimdConfig(max_pause_s=30.0))
    rate.rate_limited(rate.started(), retry_after_s=3600.0)
    assert rate.paused_s() == pytest.approx(30.0)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_a_bad_ceiling_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError):
        StartRate(ceiling_per_min=bad, now=FakeClock())


def test_a_429_never_lifts_a_ceiling_below_the_floor() -> None:
    """Half a ceiling of 0.5 calls a minute stays at most 0.5: the floor of 1/min must not raise it."""
    clock = FakeClock()
    rate = StartRate(ceiling_per_min=0.5, now=clock, config=AimdConfig(min_rate_per_min=1.0))
    rate.rate_limited(rate.started(), retry_after_s=None)
    assert rate.rate_per_min is not None and rate.rate_per_min <= 0.5
