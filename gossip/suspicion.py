"""Lifeguard's suspicion timer: how long a suspect has to refute before it is declared dead.

SWIM (Das, Gupta, Motivala, DSN 2002, §4.2) gives a suspected member a fixed time to refute
the suspicion before it is declared dead. Lifeguard (Dadgar, Phillips, Currey 2018,
arXiv:1707.00788, §IV-B "Dogpile") makes the timeout start long and shrink as *independent*
members confirm the suspicion: one member's slow network alone cannot kill a healthy peer
quickly, while a real failure seen by many is declared quickly. This module follows
hashicorp/memberlist (``suspicion.go``, ``util.go``):

- the nominal timeout is ``suspicion_mult × max(1, log10 N) × probe_interval`` — the time a
  rumour needs to reach the whole cluster grows with log N;
- the timer starts at ``max = suspicion_max_timeout_mult × nominal`` and, after ``n`` of the
  ``k = suspicion_mult − 2`` expected confirmations, lasts
  ``max − (max − min) × log(n + 1) / log(k + 1)`` (never below ``min = nominal``): the first
  confirmation buys the largest cut;
- ``k`` is 0 (the timer is ``min`` at once) when the cluster is too small to supply ``k``
  confirmers besides us and the suspect.

``Suspicion`` holds one timer's state and no clock: its ``deadline_s`` is absolute in the
caller's time base, and the caller (re)arms a loop timer when ``confirm`` says it moved.
"""

from __future__ import annotations

import math

__all__ = [
    "suspicion_timeout_s",
    "expected_confirmations",
    "suspicion_duration_s",
    "remaining_suspicion_s",
    "Suspicion",
]


def suspicion_timeout_s(suspicion_mult: int, cluster_size: int, probe_interval_s: float) -> float:
    """The nominal (minimum) suspicion timeout for a cluster of ``cluster_size`` members."""
    node_scale = max(1.0, math.log10(max(1, cluster_size)))
    return suspicion_mult * node_scale * probe_interval_s


def expected_confirmations(suspicion_mult: int, cluster_size: int) -> int:
    """k: independent confirmations that drive the timer to its minimum.

    Two below the multiplier so the minimum is reached about two probe periods before the
    nominal timeout would end (memberlist's reasoning); 0 when fewer than k members besides us
    and the suspect exist to confirm.
    """
    wanted = suspicion_mult - 2
    if cluster_size - 2 < wanted:
        return 0
    return max(0, wanted)


def suspicion_duration_s(confirmations: int, expected: int, min_s: float, max_s: float) -> float:
    """Total time from the start of a suspicion to death after ``confirmations`` of ``expected``."""
    if expected < 1:
        return min_s
    fraction = math.log(confirmations + 1.0) / math.log(expected + 1.0)
    return max(min_s, max_s - fraction * (max_s - min_s))


def remaining_suspicion_s(confirmations: int, expected: int, elapsed_s: float, min_s: float, max_s: float) -> float:
    """Time left once ``elapsed_s`` has passed; negative means the suspect is already overdue."""
    return suspicion_duration_s(confirmations, expected, min_s, max_s) - elapsed_s


class Suspicion:
    """One suspected member's timer: who accused it, and when it will be declared dead.

    The first accuser does not count as a confirmation (our own suspicion may come back to us
    through gossip); each other distinct accuser does, up to ``expected``.
    """

    __slots__ = ("_accusers", "_confirmations", "_expected", "_max_s", "_min_s", "_started_at_s")

    def __init__(self, *, accuser: str, expected: int, min_s: float, max_s: float, started_at_s: float) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s} and {max_s}")
        self._accusers = {accuser}
        self._confirmations = 0
        self._expected = max(0, expected)
        self._min_s = min_s
        self._max_s = max_s
        self._started_at_s = started_at_s

    @property
    def confirmations(self) -> int:
        """Independent confirmations counted so far (the first accuser excluded)."""
        return self._confirmations

    @property
    def expected(self) -> int:
        return self._expected

    @property
    def started_at_s(self) -> float:
        return self._started_at_s

    @property
    def deadline_s(self) -> float:
        """When the suspect is to be declared dead, in the time base of ``started_at_s``."""
        return self._started_at_s + suspicion_duration_s(self._confirmations, self._expected, self._min_s, self._max_s)

    def confirm(self, accuser: str) -> bool:
        """Count ``accuser``'s suspicion; True if it was new and moved the deadline earlier."""
        if self._confirmations >= self._expected or accuser in self._accusers:
            return False
        self._accusers.add(accuser)
        self._confirmations += 1
        return True

    def __repr__(self) -> str:
        return (
            f"<Suspicion confirmations={self._confirmations}/{self._expected} "
            f"deadline={self.deadline_s:.3f}>"
        )
