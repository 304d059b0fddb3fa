"""Tests for node.forecast: the discovery-curve forecast of what as many calls again would add."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter

import pytest

from node.estimate import chao1
from node.forecast import discovery_forecast

Z95 = 1.959963984540054


def _cumulative_weights(size: int, zipf_exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** zipf_exponent for rank in range(size)))


@pytest.mark.parametrize(
    ("new_per_call", "real_share", "last", "previous", "expected", "log_variance"),
    [
        # A = 4 + 4, B = 4: the next doubling A²/B = 16, at the 2A cap.
        ([4, 4, 4, 4], 1.0, 8, 4, 16.0, 4 / 8 + 1 / 4),
        # A = B = 12: a flat doubling curve (Heaps β = 0) forecasts A again.
        ([8, 8, 6, 6, 4, 4, 2, 2], 1.0, 12, 12, 12.0, 4 / 12 + 1 / 12),
        # A = 6, B = 12, discounted to half: 0.5 × 36 / 12.
        ([20, 20, 8, 4, 3, 1, 1, 1], 0.5, 6, 12, 1.5, 4 / 6 + 1 / 12),
        # Growth past the cap (A = 40, B = 2): at most 2A.
        ([0, 0, 1, 1, 10, 10, 10, 10], 1.0, 40, 2, 80.0, 4 / 40 + 1 / 2),
        # Nothing in [c/4, c/2): the cap, with A's variance alone.
        ([5, 0, 3, 3], 1.0, 6, 0, 12.0, 4 / 6),
    ],
)
def test_discovery_forecast_table(new_per_call, real_share, last, previous, expected, log_variance):
    """Hand-computed A, B, A²/B (capped at 2A, discounted) and the log-normal interval."""
    found = discovery_forecast(new_per_call, real_share=real_share)
    assert (found.calls, found.horizon_calls) == (len(new_per_call), len(new_per_call))
    assert (found.last_doubling, found.previous_doubling) == (last, previous)
    assert found.expected == pytest.approx(expected)
    factor = math.exp(Z95 * math.sqrt(log_variance))
    assert found.high == pytest.approx(expected * factor)
    assert found.low == math.floor(expected / factor)


def test_discovery_forecast_without_recent_discoveries_bounds_by_a_zero_count():
    """No discovery in the last half: 0 expected, at most two halves at the zero count's 95% rate."""
    found = discovery_forecast([9, 3, 0, 0, 0, 0], real_share=0.5)
    assert (found.expected, found.low) == (0.0, 0.0)
    assert found.high == pytest.approx(2 * 0.5 * math.log(20))


def test_discovery_forecast_needs_four_calls():
    """With fewer than 4 calls nothing can be forecast: an unbounded interval."""
    found = discovery_forecast([20, 18, 15])
    assert math.isinf(found.expected) and math.isinf(found.high) and found.low == 0.0


def test_spread_widens_the_forecast_interval():
    """The calibrated model error adds to the Poisson variance: same centre, wider interval."""
    counts = [20, 18, 15, 12, 10, 8, 6, 5]
    plain, spread = discovery_forecast(counts), discovery_forecast(counts, spread=1.0)
    assert spread.expected == plain.expected
    assert spread.low <= plain.low and spread.high > plain.high


@pytest.mark.parametrize("kwargs", [{"real_share": -0.1}, {"real_share": 1.5}, {"spread": -1.0}, {"confidence": 1.0}])
def test_discovery_forecast_rejects_invalid_arguments(kwargs):
    """Shares outside [0, 1], a negative spread or a confidence of 1 are refused."""
    with pytest.raises(ValueError):
        discovery_forecast([1, 2, 3, 4], **kwargs)


def _calls_with_suppression(
    rng: random.Random, cum_weights: list[float], calls: int, per_call: int, suppression: float
) -> list[list[int]]:
    """Calls of ``per_call`` distinct draws from a prompt that lists every known entry."""
    total = cum_weights[-1]
    known: set[int] = set()
    answers = []
    for _ in range(calls):
        answer: list[int] = []
        while len(answer) < per_call:
            entry = bisect.bisect_right(cum_weights, rng.random() * total)
            if entry in answer or (entry in known and rng.random() < suppression):
                continue
            answer.append(entry)
        known.update(answer)
        answers.append(answer)
    return answers


def _new_per_call(answers: list[list[int]]) -> list[int]:
    seen: set[int] = set()
    counts = []
    for answer in answers:
        counts.append(sum(entry not in seen for entry in answer))
        seen.update(answer)
    return counts


# Measured with the seeds below (share of runs whose 95% interval held the next doubling's
# discoveries; Chao1's remaining part in brackets): Zipf(1) 2,000 entries, 40 calls of 20,
# suppression 0.85: 95% (Chao1 0%); uniform 500, 10 calls: 100% (Chao1 0%).
@pytest.mark.parametrize(
    ("size", "zipf_exponent", "calls", "at_least"),
    [(2000, 1.0, 40, 0.8), (500, 0.0, 10, 0.75)],
    ids=["zipf1-2000", "uniform-500"],
)
def test_forecast_holds_the_next_doubling_under_suppressed_repeats(size, zipf_exponent, calls, at_least):
    """Under "don't repeat these" prompting the forecast's interval holds what the next calls find."""
    rng = random.Random(size + calls)
    cum = _cumulative_weights(size, zipf_exponent)
    held = chao_held = 0
    runs = 40
    for _ in range(runs):
        answers = _calls_with_suppression(rng, cum, 2 * calls, 20, suppression=0.85)
        new = _new_per_call(answers)
        truth = sum(new[calls:])
        found = discovery_forecast(new[:calls])
        held += found.low <= truth <= found.high
        counts = Counter(entry for answer in answers[:calls] for entry in answer)
        chao = chao1(counts.values())
        chao_held += chao.remaining_low <= truth <= chao.remaining_high
    assert held / runs >= at_least, f"forecast held the truth in {held / runs:.0%}, Chao1 in {chao_held / runs:.0%}"
    assert held > chao_held
