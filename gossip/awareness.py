"""Lifeguard's local health multiplier: a member that is itself slow waits longer before accusing.

SWIM assumes the member running a probe is healthy; when it is not (CPU starved, GC pause,
overloaded network), its probes time out and it suspects healthy peers. Lifeguard (Dadgar,
Phillips, Currey 2018, arXiv:1707.00788, §IV-A "Local Health Aware Probe") has each member keep
a score of its own health, 0 (healthy) to max − 1, and scale its probe interval and probe
timeout by score + 1. As in hashicorp/memberlist (``awareness.go``, ``state.go``):

- a successful probe lowers the score by 1;
- a failed probe raises it by the number of nacks that did not arrive from the members asked to
  probe indirectly (a nack proves the intermediary is alive and answering, so its absence
  points at us), or by 1 when no intermediary could be asked;
- having to refute a suspicion about ourselves raises it by 1 (others could not hear us).
"""

from __future__ import annotations

__all__ = ["Awareness", "probe_failure_delta"]


def probe_failure_delta(expected_nacks: int, nacks_received: int) -> int:
    """Score change after a failed probe: missing nacks, or 1 with no one to ask."""
    if expected_nacks <= 0:
        return 1
    return max(0, expected_nacks - nacks_received)


class Awareness:
    """This member's health score; ``scale`` stretches probe intervals and timeouts with it."""

    __slots__ = ("_max_multiplier", "_score")

    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError(f"max_multiplier must be >= 1, got {max_multiplier}")
        self._max_multiplier = max_multiplier
        self._score = 0

    @property
    def score(self) -> int:
        """0 = healthy; at most max_multiplier − 1."""
        return self._score

    def apply_delta(self, delta: int) -> int:
        """Move the score by ``delta``, clamped to [0, max − 1]; returns the new score."""
        self._score = min(self._max_multiplier - 1, max(0, self._score + delta))
        return self._score

    def scale(self, duration_s: float) -> float:
        """``duration_s`` stretched by the current health: × (score + 1)."""
        return duration_s * (self._score + 1)

    def __repr__(self) -> str:
        return f"<Awareness score={self._score}/{self._max_multiplier - 1}>"
