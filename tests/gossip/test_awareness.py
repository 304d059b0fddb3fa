"""Lifeguard's local health multiplier."""

from __future__ import annotations

import pytest

from gossip.awareness import Awareness, probe_failure_delta


def test_score_is_clamped_between_zero_and_max_minus_one() -> None:
    """Deltas move the score but never below 0 nor above max − 1 (memberlist's TestAwareness)."""
    awareness = Awareness(8)
    assert awareness.score == 0
    assert awareness.apply_delta(-1) == 0
    assert awareness.apply_delta(3) == 3
    assert awareness.apply_delta(10) == 7
    assert awareness.apply_delta(-2) == 5


@pytest.mark.parametrize(("delta", "scale"), [(0, 1), (1, 2), (3, 4), (7, 8), (20, 8)])
def test_durations_scale_by_score_plus_one(delta: int, scale: int) -> None:
    """A probe interval or timeout is stretched × (score + 1)."""
    awareness = Awareness(8)
    awareness.apply_delta(delta)
    assert awareness.scale(0.5) == pytest.approx(0.5 * scale)


def test_multiplier_of_one_disables_scaling() -> None:
    """max 1: the score stays 0 whatever happens."""
    awareness = Awareness(1)
    awareness.apply_delta(5)
    assert awareness.score == 0 and awareness.scale(1.0) == 1.0


@pytest.mark.parametrize(
    ("expected_nacks", "received", "delta"),
    [(3, 3, 0), (3, 2, 1), (3, 0, 3), (1, 0, 1), (0, 0, 1), (2, 5, 0)],
)
def test_failed_probe_raises_score_by_missing_nacks(expected_nacks: int, received: int, delta: int) -> None:
    """Missing nacks point at us; with no one to ask, any failure counts one."""
    assert probe_failure_delta(expected_nacks, received) == delta


def test_awareness_rejects_a_zero_multiplier() -> None:
    """A multiplier below 1 is a programming error."""
    with pytest.raises(ValueError):
        Awareness(0)
