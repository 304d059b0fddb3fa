"""When a node may start its next LLM call: a token bucket at its rate, lowered by AIMD after 429s.

**Token bucket** (J. Turner, "New directions in communications (or which way to the
information age?)", IEEE Communications Magazine 24(10), 1986; the single-rate meter of
RFC 2697): tokens accrue at ``rate`` up to ``capacity``, and a call takes one. The capacity is
one token, so calls are spaced evenly: at most ``1 + rate·t`` start in any window of ``t``
seconds — inside a provider's requests-per-minute limit of ``rate`` per minute, with no burst
at start-up to trip it.

**AIMD** (D. Chiu and R. Jain, "Analysis of the Increase and Decrease Algorithms for
Congestion Avoidance in Computer Networks", Computer Networks and ISDN Systems 17(1), 1989;
TCP's congestion avoidance, RFC 5681 §3.1): on a congestion signal the rate is multiplied by
``decrease_factor`` (½); while calls succeed it grows back by a constant — ``increase_share``
of the reference rate per minute of calls (each successful call adds ``share · reference /
rate``, so at ``rate`` calls a minute that is ``share · reference`` a minute). Several nodes
sharing one API key's limit this way converge to sharing it fairly, as TCP flows share a link.
Signals: a call that ended in a 429 (``LLMRateLimited``), or that succeeded only after the
backend retried it (the endpoint pushed back). Only calls started *after* the last decrease
count, as TCP decreases once per window: the calls already in flight were sent at the old
rate, and their 429s say nothing about the new one.

A 429's **Retry-After** pauses every start of the node until it has passed (capped at
``max_pause_s``): the backend already waits it out before retrying that call, and the node's
other workers must not walk into the same wall meanwhile.

AIMD works below a configured ceiling (``--max-calls-per-minute``): the reference is the
ceiling and the rate never passes it. With no ceiling there is no rate to lower — a 429 only
pauses the node's starts for its Retry-After. (Lowering an unlimited node to half the rate it
was seen to start at was tried: against the simulated LLM, which answers at once and sends a
429 to 1% of calls, it held a one-node run that took 6.5 s to 84 s, because the additive
increase recovers over minutes of wall time.)

Time comes from an injected ``now`` (seconds; the event loop's clock in a node, virtual in a
simulation, a fake one in tests), so nothing here sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import ConfigError

__all__ = ["AimdConfig", "StartRate", "TokenBucket"]

_EPSILON = 1e-9  # a token that is 1 - 1e-12 after float arithmetic is a whole token


@dataclass(frozen=True, kw_only=True)
class AimdConfig:
    """How the start rate reacts to an endpoint pushing back."""

    decrease_factor: float = 0.5  # the rate after a congestion signal, as a share of before (TCP's ½)
    increase_share: float = 0.1  # per minute of successful calls, this share of the reference is added back
    min_rate_per_min: float = 1.0  # the rate never drops below this (a node must be able to probe)
    max_pause_s: float = 120.0  # the longest Retry-After that pauses the node's starts

    def __post_init__(self) -> None:
        if not 0.0 < self.decrease_factor < 1.0:
            raise ConfigError(f"decrease_factor must be within (0, 1), got {self.decrease_factor}")
        if not self.increase_share > 0.0 or not self.min_rate_per_min > 0.0 or not self.max_pause_s >= 0.0:
            raise ConfigError("increase_share and min_rate_per_min must be > 0, max_pause_s >= 0")


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate_per_s``; not thread-safe."""

    def __init__(self, rate_per_s: float, *, now: float, capacity: float = 1.0, full: bool = True) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)) or not capacity >= 1:
            raise ConfigError(f"a token bucket needs a finite rate > 0 and a capacity >= 1, got {rate_per_s}, {capacity}")
        self._rate_per_s = rate_per_s
        self._capacity = capacity
        self._tokens = capacity if full else 0.0
        self._at = now

    def __repr__(self) -> str:
        return f"<TokenBucket {self._rate_per_s * 60:.3g}/min tokens={self._tokens:.2f}/{self._capacity:g}>"

    @property
    def rate_per_s(self) -> float:
        return self._rate_per_s

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate_per_s)
            self._at = now

    def set_rate(self, rate_per_s: float, now: float) -> None:
        """Change the rate from ``now`` on (what accrued so far accrued at the old one)."""
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ConfigError(f"a token bucket needs a finite rate > 0, got {rate_per_s}")
        self._refill(now)
        self._rate_per_s = rate_per_s

    def wait_s(self, now: float) -> float:
        """Seconds until a token is there (0 = one is there now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self._rate_per_s

    def take(self, now: float) -> None:
        """Take a token (call after ``wait_s`` said 0)."""
        self._refill(now)
        self._tokens = max(0.0, self._tokens - 1.0)


class StartRate:
    """The pace at which one node starts LLM calls; runs on the event loop.

    Ask ``wait_s()`` before a start (sleep that long and ask again until it says 0), then call
    ``started()``; report how each call ended with ``succeeded``, ``retried`` or ``rate_limited``
    (giving the ``started()`` time of that call).
    """

    def __init__(self, *, ceiling_per_min: float = 0.0, now: Callable[[], float], config: AimdConfig | None = None) -> None:
        if not (ceiling_per_min >= 0 and math.isfinite(ceiling_per_min)):
            raise ConfigError(f"max calls per minute must be a finite number >= 0, got {ceiling_per_min}")
        self._config = config or AimdConfig()
        self._now = now
        self._ceiling = ceiling_per_min
        self._rate: float | None = ceiling_per_min or None  # calls per minute; None = no limit
        self._bucket = TokenBucket(ceiling_per_min / 60.0, now=now()) if ceiling_per_min else None
        self._paused_until = -math.inf
        self._last_decrease_at = -math.inf
        self.decreases = 0  # congestion signals acted on

    def __repr__(self) -> str:
        rate = "unlimited" if self._rate is None else f"{self._rate:.3g}/min"
        return f"<StartRate {rate} ceiling={self._ceiling:g}/min decreases={self.decreases}>"

    @property
    def rate_per_min(self) -> float | None:
        """The current limit in calls per minute; None = no limit."""
        return self._rate

    def paused_s(self) -> float:
        """Seconds a Retry-After still holds every start back (0 = none)."""
        return max(0.0, self._paused_until - self._now())

    def wait_s(self) -> float:
        """Seconds until the next call may start (0 = now)."""
        now = self._now()
        bucket = self._bucket.wait_s(now) if self._bucket is not None else 0.0
        wait = max(self._paused_until - now, bucket)
        # What float rounding leaves of a pause that is over is no reason to wait again: a sleep
        # that short may not even move a clock reading this large (a few of its ulps).
        return wait if wait > max(_EPSILON, 4 * math.ulp(now)) else 0.0

    def started(self) -> float:
        """A call starts now; returns its start time (to hand back when it ends)."""
        now = self._now()
        if self._bucket is not None:
            self._bucket.take(now)
        return now

    def succeeded(self, started_at: float) -> None:
        """A call ended well on its first attempt: additive increase."""
        if self._rate is None:
            return
        rate = self._rate + self._config.increase_share * self._ceiling / self._rate
        if rate >= self._ceiling:  # back at the ceiling
            self._set_rate(self._ceiling)
        else:
            self._set_rate(rate)

    def retried(self, started_at: float) -> None:
        """A call succeeded only after the backend retried it: the endpoint pushed back."""
        self._decrease(started_at)

    def rate_limited(self, started_at: float, retry_after_s: float | None) -> None:
        """A call ended in a 429: pause for its Retry-After, and decrease."""
        if retry_after_s is not None and retry_after_s > 0:
            pause_s = min(retry_after_s, self._config.max_pause_s)
            self._paused_until = max(self._paused_until, self._now() + pause_s)
        self._decrease(started_at)

    def _decrease(self, started_at: float) -> None:
        if not self._ceiling:
            return  # no rate to lower: the Retry-After pause is all (module docstring)
        if started_at < self._last_decrease_at:
            return  # sent at the old rate: its push-back was already acted on
        now = self._now()
        base = self._rate if self._rate is not None else self._ceiling
        floor = min(self._config.min_rate_per_min, self._ceiling)  # a decrease never lifts a ceiling below the floor
        self._set_rate(max(floor, base * self._config.decrease_factor))
        self._last_decrease_at = now
        self.decreases += 1

    def _set_rate(self, rate_per_min: float | None) -> None:
        now = self._now()
        self._rate = rate_per_min
        if rate_per_min is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = TokenBucket(rate_per_min / 60.0, now=now, full=False)
        else:
            self._bucket.set_rate(rate_per_min / 60.0, now)
