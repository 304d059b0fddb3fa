"""A bad network in a wrapper: drop, delay, jitter, duplicate, reorder and cut any Transport.

This machine has no ``tc netem`` and no iptables, so real processes get their faults in the
application: ``FaultyTransport`` wraps a node's transport and applies them to the requests it
makes (and, through a dropped reply leg, to the replies it receives). Faults apply to outgoing
requests only: to cut two nodes apart, cut each from the other (wrap both). Switchable at run
time with ``set_faults``; every random choice for a request is drawn from one
``random.Random(seed)`` when the request starts, so the same sequence of requests meets the
same faults.

A lost leg behaves as on a real network: the caller hears nothing and times out after its full
``timeout_s``. A lost *reply* means the peer did handle the request. A duplicate is the same
message sent again (sealed afresh, so a keyed peer's replay cache does not refuse it); its reply
is discarded.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from gossip.errors import GossipError, RequestTimeout
from gossip.messages import Message
from gossip.transport import Handler, Transport

__all__ = ["Faults", "FaultyTransport"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """What happens to each outgoing request. Probabilities are per request (per leg for drop)."""

    drop: float = 0.0  # probability the request leg is lost, and again the reply leg
    delay_s: float = 0.0  # added before every request is sent
    jitter_s: float = 0.0  # plus a uniform random delay in [0, jitter_s]
    duplicate: float = 0.0  # probability the request is sent a second time
    reorder: float = 0.0  # probability a request is held back up to reorder_delay_s (later ones overtake it)
    reorder_delay_s: float = 0.05
    cut: frozenset[str] = frozenset()  # peer addresses this node cannot reach at all

    def __post_init__(self) -> None:
        for name in ("delay_s", "jitter_s", "reorder_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("drop", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "cut", frozenset(self.cut))


_FAULT_FIELDS = frozenset(field.name for field in fields(Faults))


@dataclass(frozen=True, slots=True)
class _Fate:
    """Every random choice for one request, drawn up front (determinism under concurrency)."""

    request_lost: bool
    reply_lost: bool
    delay_s: float
    duplicated: bool


class FaultyTransport:
    """Wraps a ``Transport`` and injects ``Faults`` into the requests it makes."""

    def __init__(
        self,
        inner: Transport,
        *,
        seed: int,
        drop: float = 0.0,
        delay_s: float = 0.0,
        jitter_s: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        reorder_delay_s: float = 0.05,
        cut: Iterable[str] = (),
    ) -> None:
        self._inner = inner
        self._random = random.Random(seed)
        self._faults = Faults(drop=drop, delay_s=delay_s, jitter_s=jitter_s, duplicate=duplicate, reorder=reorder,
                              reorder_delay_s=reorder_delay_s, cut=frozenset(cut))  # fmt: skip
        self._duplicates: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()  # requests, cut, request_lost, reply_lost, duplicated, delayed

    def __repr__(self) -> str:
        return f"<FaultyTransport {self._inner!r} {self._faults}>"

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, **changes: Any) -> None:
        """Change some faults from now on, e.g. ``set_faults(drop=0.3, cut={"10.0.0.2:7000"})``."""
        unknown = set(changes) - _FAULT_FIELDS
        if unknown:
            raise TypeError(f"unknown faults {sorted(unknown)}; known: {sorted(_FAULT_FIELDS)}")
        self._faults = replace(self._faults, **changes)

    def clear(self) -> None:
        """No faults from now on."""
        self._faults = Faults()

    @property
    def inner(self) -> Transport:
        return self._inner

    @property
    def local_address(self) -> str:
        return self._inner.local_address

    async def start(self, handler: Handler) -> None:
        await self._inner.start(handler)

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        faults = self._faults
        fate = self._draw(faults)
        self.counts["requests"] += 1
        if address in faults.cut:
            self.counts["cut"] += 1
            await self._time_out(address, deadline, timeout_s)
        if fate.request_lost:
            self.counts["request_lost"] += 1
            await self._time_out(address, deadline, timeout_s)
        if fate.delay_s > 0:
            self.counts["delayed"] += 1
            await asyncio.sleep(min(fate.delay_s, max(0.0, deadline - loop.time())))
            if loop.time() >= deadline:
                raise RequestTimeout(f"no reply from {address} within {timeout_s:g} s (delayed by faults)")
        if fate.duplicated:
            self.counts["duplicated"] += 1
            task = loop.create_task(self._send_duplicate(address, message, timeout_s))
            self._duplicates.add(task)
            task.add_done_callback(self._duplicates.discard)
        reply = await self._inner.request(address, message, timeout_s=max(0.0, deadline - loop.time()))
        if fate.reply_lost:
            self.counts["reply_lost"] += 1
            await self._time_out(address, deadline, timeout_s)
        return reply

    async def aclose(self) -> None:
        for task in list(self._duplicates):
            task.cancel()
        await asyncio.gather(*self._duplicates, return_exceptions=True)
        await self._inner.aclose()

    def _draw(self, faults: Faults) -> _Fate:
        draw = self._random.random
        request_lost = bool(faults.drop) and draw() < faults.drop
        reply_lost = bool(faults.drop) and draw() < faults.drop
        delay = faults.delay_s
        if faults.jitter_s:
            delay += self._random.uniform(0.0, faults.jitter_s)
        if faults.reorder and draw() < faults.reorder:
            delay += self._random.uniform(0.0, faults.reorder_delay_s)
        duplicated = bool(faults.duplicate) and draw() < faults.duplicate
        return _Fate(request_lost, reply_lost, delay, duplicated)

    @staticmethod
    async def _time_out(address: str, deadline: float, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        raise RequestTimeout(f"no reply from {address} within {timeout_s:g} s")

    async def _send_duplicate(self, address: str, message: Message, timeout_s: float) -> None:
        try:
            await self._inner.request(address, message, timeout_s=timeout_s)
        except GossipError as exc:  # nobody waits for this copy's outcome
            logger.debug("duplicate of %s to %s: %s", type(message).__name__, address, exc)
