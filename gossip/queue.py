"""Rumours waiting to be piggybacked, each sent a bounded number of times (memberlist's TransmitLimitedQueue).

SWIM (Das, Gupta, Motivala, DSN 2002, §4.1) disseminates membership changes by piggybacking
them on the failure detector's own messages, infection style: a rumour told λ·log N times
reaches every member with high probability. hashicorp/memberlist (``queue.go``) made that a
queue, which this module follows:

- a rumour is sent ``retransmit_mult × ⌈log10(N + 1)⌉`` times, then dropped (N read at each
  ``take``, so the limit follows the cluster's size);
- ``take`` hands out the least-transmitted rumours first — fresh news travels first — and,
  among equally transmitted ones, the larger first (they are the hardest to fit), then the
  newer;
- a rumour with the same key as a queued one replaces it: only the newest word about a member
  (or a record) is worth sending;
- the queue is bounded; past the bound the most-transmitted rumours are dropped (anti-entropy
  repairs whatever they would have told).

It is generic: items are opaque, identified by a hashable key and a size in bytes, so the
dissemination layer reuses it for records. ``on_done`` is called once when a rumour leaves the
queue for any reason (sent enough times, replaced, pruned, cleared) — ``leave()`` waits on it.
Not thread safe: it lives on the event loop like everything else here.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["retransmit_limit", "TransmitLimitedQueue"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def retransmit_limit(retransmit_mult: int, cluster_size: int) -> int:
    """How many times a rumour is sent in a cluster of ``cluster_size``: mult × ⌈log10(N + 1)⌉."""
    node_scale = math.ceil(math.log10(max(0, cluster_size) + 1))
    return retransmit_mult * node_scale


@dataclass(slots=True)
class _Queued(Generic[T]):
    key: Hashable
    item: T
    size_bytes: int
    serial: int  # enqueue order: higher = newer
    on_done: Callable[[], None] | None
    transmits: int = 0

    def order(self) -> tuple[int, int, int]:
        """Sort key of ``take``: fewest transmits, then largest, then newest."""
        return (self.transmits, -self.size_bytes, -self.serial)


class TransmitLimitedQueue(Generic[T]):
    """Keyed rumours, each handed out at most ``retransmit_limit`` times, least-sent first."""

    def __init__(self, *, retransmit_mult: int, cluster_size: Callable[[], int], max_queued: int) -> None:
        if retransmit_mult < 1:
            raise ValueError(f"retransmit_mult must be >= 1, got {retransmit_mult}")
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self._retransmit_mult = retransmit_mult
        self._cluster_size = cluster_size
        self._max_queued = max_queued
        self._entries: dict[Hashable, _Queued[T]] = {}
        self._serials = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> T | None:
        """The queued rumour with ``key``, if any."""
        entry = self._entries.get(key)
        return entry.item if entry is not None else None

    def transmits(self, key: Hashable) -> int | None:
        """How many times the rumour with ``key`` has been handed out; None if not queued."""
        entry = self._entries.get(key)
        return entry.transmits if entry is not None else None

    def enqueue(self, key: Hashable, item: T, *, size_bytes: int = 1,
                on_done: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Queue ``item`` under ``key``, replacing (and finishing) any older rumour with that key."""
        if size_bytes < 0:
            raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
        old = self._entries.pop(key, None)
        if old is not None:
            _finish(old)
        self._entries[key] = _Queued(key, item, size_bytes, next(self._serials), on_done)
        if len(self._entries) > self._max_queued:
            self._prune(self._max_queued)

    def take(self, *, max_items: int, max_bytes: int | None = None, overhead_bytes: int = 0) -> list[T]:
        """Up to ``max_items`` rumours (and ``max_bytes``, counting ``overhead_bytes`` each) to send now.

        Each one handed out counts as one transmission; a rumour that reaches the limit leaves
        the queue.
        """
        if max_items <= 0 or not self._entries:
            return []
        limit = retransmit_limit(self._retransmit_mult, self._cluster_size())
        chosen: list[_Queued[T]] = []
        used_bytes = 0
        for entry in sorted(self._entries.values(), key=_Queued.order):
            if len(chosen) >= max_items:
                break
            if max_bytes is not None:
                cost = overhead_bytes + entry.size_bytes
                if used_bytes + cost > max_bytes:
                    if max_bytes - used_bytes <= overhead_bytes:
                        break  # nothing more can fit
                    continue  # a smaller one further down may still fit
                used_bytes += cost
            chosen.append(entry)
        for entry in chosen:
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[entry.key]
                _finish(entry)
        return [entry.item for entry in chosen]

    def clear(self) -> None:
        """Drop every rumour (each one's ``on_done`` is called)."""
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            _finish(entry)

    def _prune(self, keep: int) -> None:
        """Drop the most-transmitted (then smallest, oldest) rumours until ``keep`` remain."""
        excess = len(self._entries) - keep
        if excess <= 0:
            return
        doomed = sorted(self._entries.values(), key=_Queued.order)[-excess:]
        for entry in doomed:
            del self._entries[entry.key]
            _finish(entry)
        log.debug("transmit queue over its bound of %d: dropped %d rumours", keep, excess)

    def __repr__(self) -> str:
        return f"<TransmitLimitedQueue queued={len(self._entries)} mult={self._retransmit_mult}>"


def _finish(entry: _Queued[T]) -> None:
    if entry.on_done is None:
        return
    callback, entry.on_done = entry.on_done, None
    try:
        callback()
    except Exception:  # a callback's bug must not break the queue that carries everyone's rumours
        log.exception("transmit queue: on_done callback for %r failed", entry.key)
