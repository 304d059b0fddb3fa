"""A candidate exhaustion estimate: how many real entries as many calls again would add, from the discovery curve.

``node.estimate``'s docstring defines the quantity (issue #6) and why Chao1 misses it under
our prompting; ``scripts/bench/estimator.py`` measures this forecast against the simulator's
truth ("Exhaustion estimate" in docs/benchmarks.md). Its centre is within a few times the
truth where the node's plan-aware Chao1 is ~15× off (held out), but an interval that holds the truth in 95% of held-out runs is
~200× wide, so the node does not show or stop on it yet; it lives here, measured, for the
next step (per-leaf forecasts with verification verdicts as the invention discount).

Pure function of counts: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from node.estimate import DEFAULT_CONFIDENCE

__all__ = ["DiscoveryForecast", "discovery_forecast"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryForecast:
    """How many real entries the next ``horizon_calls`` calls should add, with an interval."""

    calls: int  # calls made so far (c)
    horizon_calls: int  # calls forecast (= c: the doubling horizon)
    last_doubling: int  # A: new entries of calls [c/2, c)
    previous_doubling: int  # B: new entries of calls [c/4, c/2)
    real_share: float  # share of new entries taken as real (the invention discount)
    expected: float  # forecast of real new entries in the horizon
    low: float
    high: float  # inf when too few calls were made to forecast
    confidence: float = DEFAULT_CONFIDENCE

    def __str__(self) -> str:
        high = "∞" if math.isinf(self.high) else f"{self.high:.0f}"
        return f"+{self.expected:.0f} in {self.horizon_calls} calls ({self.low:.0f}–{high})"


def discovery_forecast(
    new_per_call: Sequence[int],
    *,
    real_share: float = 1.0,
    spread: float = 0.0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> DiscoveryForecast:
    """Real entries that as many calls again would add, from the discovery curve alone.

    ``new_per_call`` is the number of new entries of each call, oldest first. Only first
    discoveries are used: a prompt that suppresses repeats changes how often a known entry
    recurs, not when an entry is first found (the "trap-shy" response of capture–recapture
    model M_b changes recaptures only, which is why its removal estimators use first captures;
    Otis et al. 1978). Discoveries grow as a power of effort (Heaps' law, S(c) ∝ c^β; Heaps
    1978, "Information Retrieval"), so successive doublings of effort yield A = S(c) − S(c/2)
    and B = S(c/2) − S(c/4) in the ratio 2^β, and the next doubling ``A²/B``; capped at ``2A``,
    the most a concave curve allows. ``real_share`` discounts inventions (the share of
    entries found that evidence says are real). The interval is log-normal with the Poisson
    variance of A and B by the delta method, ``4/A + 1/B``, plus ``spread²``: the model error,
    calibrated on the simulator. No discovery in the last half: 0, up to the Poisson bound on
    a zero count at the calls' rate. Fewer than 4 calls: nothing to forecast from.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    if not 0.0 <= real_share <= 1.0:
        raise ValueError(f"real_share must be in [0, 1], got {real_share!r}")
    if not spread >= 0.0:
        raise ValueError(f"spread must be ≥ 0, got {spread!r}")
    counts = list(new_per_call)
    if any(count < 0 for count in counts):
        raise ValueError("a call cannot find a negative number of new entries")
    calls = len(counts)
    last = sum(counts[calls // 2 :])
    previous = sum(counts[calls // 4 : calls // 2])

    def result(expected: float, low: float, high: float) -> DiscoveryForecast:
        return DiscoveryForecast(
            calls=calls, horizon_calls=calls, last_doubling=last, previous_doubling=previous,
            real_share=real_share, expected=expected, low=low, high=high, confidence=confidence,
        )  # fmt: skip

    if calls < 4:
        return result(math.inf, 0.0, math.inf)
    if last == 0:
        # Zero events in the last half: its rate is below -ln(1 - confidence) per half with
        # that confidence, and the next doubling is at most two halves at that rate.
        return result(0.0, 0.0, 2.0 * real_share * -math.log1p(-confidence) * math.exp(z * spread))
    expected = real_share * (min(last * last / previous, 2.0 * last) if previous else 2.0 * last)
    log_sd = math.sqrt(4.0 / last + (1.0 / previous if previous else 0.0) + spread * spread)
    factor = math.exp(z * log_sd)
    return result(expected, math.floor(expected / factor), expected * factor)
