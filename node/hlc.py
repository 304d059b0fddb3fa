"""Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).

A timestamp is one 64-bit integer: milliseconds of physical time in the high 48 bits and a
logical counter in the low 16. It never goes backwards, stays close to wall time, and after
``observe(remote)`` is greater than every timestamp the node has seen — so "smallest
``(hlc, origin)`` wins" orders concurrent acceptances the same way on every node.

The paper bounds how far a timestamp may run ahead of physical time (its ε). Here a remote
timestamp more than ``max_ahead_s`` ahead of the local wall clock is not followed: records
carry peers' timestamps, so one far-future (or maximal, 2**64 - 1) timestamp would otherwise
drag every later timestamp of every node with it — past 64 bits, where no record can be
encoded any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["HybridClock", "hlc_physical_ms", "hlc_pack", "LOGICAL_BITS", "MAX_AHEAD_S"]

LOGICAL_BITS = 16
# Far above NTP-synced drift; a peer further ahead cannot gossip anyway (gossip.auth refuses
# envelopes stamped over 60 s away), so only a forged or relayed record gets here.
MAX_AHEAD_S = 300.0
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def hlc_pack(physical_ms: int, logical: int) -> int:
    """One timestamp from its two parts."""
    return (physical_ms << LOGICAL_BITS) | (logical & _LOGICAL_MASK)


def hlc_physical_ms(timestamp: int) -> int:
    """The wall-clock milliseconds part of a timestamp."""
    return timestamp >> LOGICAL_BITS


class HybridClock:
    """Not thread-safe; runs on the event loop. ``wall`` returns seconds (injectable for tests)."""

    def __init__(self, wall: Callable[[], float] = time.time, *, max_ahead_s: float = MAX_AHEAD_S) -> None:
        self._wall = wall
        self._max_ahead_ms = int(max_ahead_s * 1000)
        self._last = 0

    def __repr__(self) -> str:
        return f"<HybridClock last={hlc_physical_ms(self._last)}ms+{self._last & _LOGICAL_MASK}>"

    def now(self) -> int:
        """A timestamp greater than every one this clock has issued or observed."""
        physical = hlc_pack(int(self._wall() * 1000), 0)
        self._last = physical if physical > self._last else self._last + 1
        return self._last

    def observe(self, remote: int) -> bool:
        """Account for a timestamp received from a peer (it bounds what ``now`` issues next).

        False, and nothing changes, if it is over ``max_ahead_s`` ahead of the wall clock.
        """
        if remote <= self._last:
            return True
        if hlc_physical_ms(remote) > int(self._wall() * 1000) + self._max_ahead_ms:
            return False
        self._last = remote
        return True
