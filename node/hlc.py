"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).

A timestamp is one 64-bit integer: milliseconds of physical time in the high 48 bits and a
logical counter in the low 16. It never goes backwards, stays close to wall time, and after
``observe(remote)`` is greater than every timestamp the node has seen — so "smallest
``(hlc, origin)`` wins" orders concurrent acceptances the same way on every node.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["HybridClock", "hlc_physical_ms", "hlc_pack", "LOGICAL_BITS"]

LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def hlc_pack(physical_ms: int, logical: int) -> int:
    """One timestamp from its two parts."""
    return (physical_ms << LOGICAL_BITS) | (logical & _LOGICAL_MASK)


def hlc_physical_ms(timestamp: int) -> int:
    """The wall-clock milliseconds part of a timestamp."""
    return timestamp >> LOGICAL_BITS


class HybridClock:
    """Not thread-safe; runs on the event loop. ``wall`` returns seconds (injectable for tests)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._last = 0

    def __repr__(self) -> str:
        return f"<HybridClock last={hlc_physical_ms(self._last)}ms+{self._last & _LOGICAL_MASK}>"

    def now(self) -> int:
        """A timestamp greater than every one this clock has issued or observed."""
        physical = hlc_pack(int(self._wall() * 1000), 0)
        self._last = physical if physical > self._last else self._last + 1
        return self._last

    def observe(self, remote: int) -> None:
        """Account for a timestamp received from a peer (it bounds what ``now`` issues next)."""
        if remote > self._last:
            self._last = remote
