"""Lifeguard's suspicion timeout: table tests of the formulas (memberlist's values) and the timer."""

from __future__ import annotations

import itertools
import math

import pytest

from gossip.suspicion import (
    Suspicion,
    expected_confirmations,
    remaining_suspicion_s,
    suspicion_duration_s,
    suspicion_timeout_s,
)


@pytest.mark.parametrize(
    ("mult", "size", "interval_s", "expected_s"),
    [
        # memberlist util_test.go TestSuspicionTimeout (mult 3, interval 1 s), then LAN values.
        (3, 5, 1.0, 3.0),  # log10(5) < 1: floor of one
        (3, 10, 1.0, 3.0),
        (3, 50, 1.0, 3 * math.log10(50)),  # 5.097
        (3, 100, 1.0, 6.0),
        (3, 500, 1.0, 3 * math.log10(500)),  # 8.097
        (3, 1000, 1.0, 9.0),
        (4, 1, 1.0, 4.0),
        (4, 0, 1.0, 4.0),  # an empty view still has a timeout
        (4, 20, 0.2, 4 * math.log10(20) * 0.2),
    ],
)
def test_suspicion_timeout_scales_with_log10_of_cluster_size(mult: int, size: int, interval_s: float,
                                                             expected_s: float) -> None:  # fmt: skip
    """mult × max(1, log10 N) × probe interval."""
    assert suspicion_timeout_s(mult, size, interval_s) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("mult", "size", "expected"),
    [(4, 1, 0), (4, 3, 0), (4, 4, 2), (4, 50, 2), (6, 5, 0), (6, 6, 4), (2, 10, 0), (1, 10, 0)],
)
def test_expected_confirmations_need_enough_other_members(mult: int, size: int, expected: int) -> None:
    """k = mult − 2, or 0 when fewer than k members besides us and the suspect could confirm."""
    assert expected_confirmations(mult, size) == expected


@pytest.mark.parametrize(
    ("confirmations", "expected", "elapsed_s", "remaining_s"),
    [
        # memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime (min 2 s, max 30 s).
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.8105),  # memberlist floors to the millisecond: 4.810
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),  # more confirmations than expected: never below min
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_matches_memberlists_table(confirmations: int, expected: int, elapsed_s: float,
                                                       remaining_s: float) -> None:  # fmt: skip
    """The timer shrinks with log(n + 1) / log(k + 1) from max towards min, minus the time elapsed."""
    assert remaining_suspicion_s(confirmations, expected, elapsed_s, 2.0, 30.0) == pytest.approx(remaining_s, abs=1e-3)


def test_duration_is_min_when_no_confirmations_are_expected() -> None:
    """With k = 0 (a small cluster) the suspicion lasts the minimum at once."""
    assert suspicion_duration_s(0, 0, 4.0, 24.0) == 4.0
    assert suspicion_duration_s(3, 0, 4.0, 24.0) == 4.0


def test_duration_falls_monotonically_to_min() -> None:
    """Each confirmation shortens the suspicion; the first buys the largest cut."""
    durations = [suspicion_duration_s(n, 4, 5.0, 30.0) for n in range(6)]
    assert durations[0] == 30.0
    assert durations[4] == durations[5] == 5.0
    cuts = [a - b for a, b in itertools.pairwise(durations[:5])]
    assert all(cut > 0 for cut in cuts) and cuts == sorted(cuts, reverse=True)


def test_suspicion_counts_each_distinct_accuser_once() -> None:
    """The first accuser is not a confirmation; repeats are ignored; other accusers move the deadline."""
    suspicion = Suspicion(accuser="a", expected=2, min_s=4.0, max_s=24.0, started_at_s=100.0)
    assert suspicion.deadline_s == 124.0
    assert not suspicion.confirm("a")  # our own suspicion gossiped back to us
    assert suspicion.confirm("b")
    assert suspicion.deadline_s == pytest.approx(100.0 + 24.0 - 20.0 * math.log(2) / math.log(3))
    assert not suspicion.confirm("b")
    assert suspicion.confirm("c")
    assert suspicion.deadline_s == 104.0
    assert not suspicion.confirm("d")  # enough confirmations: the minimum is reached
    assert suspicion.confirmations == 2


def test_suspicion_with_no_expected_confirmations_starts_at_min() -> None:
    """k = 0: the deadline is start + min, and no confirmation is accepted."""
    suspicion = Suspicion(accuser="a", expected=0, min_s=4.0, max_s=24.0, started_at_s=10.0)
    assert suspicion.deadline_s == 14.0
    assert not suspicion.confirm("b")


def test_suspicion_rejects_an_inverted_range() -> None:
    """min must be positive and not above max."""
    with pytest.raises(ValueError):
        Suspicion(accuser="a", expected=2, min_s=5.0, max_s=4.0, started_at_s=0.0)
