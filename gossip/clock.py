"""Where the gossip layer reads time: one small injected ``Clock``.

``LoopClock`` reads the running event loop's clock, so code that takes a ``Clock`` runs in
virtual time under ``gossip.testing.VirtualTimeLoop`` (monotonic and wall time alike) and in
real time anywhere else, without being told which.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "LoopClock"]


class Clock(Protocol):
    """Time as the gossip layer sees it. Runs on the event loop."""

    def now(self) -> float:
        """Monotonic seconds: for timeouts and intervals."""
        ...

    def wall(self) -> float:
        """Wall-clock seconds since the epoch: for timestamps other nodes read."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class LoopClock:
    """The running loop's time (``loop.time()``, ``asyncio.sleep``); virtual on a virtual loop."""

    def __repr__(self) -> str:
        return "<LoopClock>"

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        # A loop that simulates time (VirtualTimeLoop) says what the wall clock reads in it.
        wall_time = getattr(asyncio.get_running_loop(), "wall_time", None)
        return float(wall_time()) if callable(wall_time) else time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
