"""The page's pulse: sample the node's metrics into a bounded history and push live events.

One background task per application. About once a second (``tick_s``) it takes
``view.metrics()`` — the snapshot that ``/api/metrics`` and ``/metrics`` serve, so a client
polling them never makes the node recompute its estimate — keeps its numeric values in a
ring (the charts' history, ``/api/series``), and publishes a ``metrics`` event; when the
membership changed it publishes ``members``. New entries reported by the view are batched
and published every ``flush_s`` as one ``entries`` event, bounded: a burst (a gossip merge of
thousands) sends the first ones and ``more: true``, and the page reloads its list.

When ``metrics()`` is expensive (the node's estimate grows with the list), sampling slows
down so it never takes more than ``1 / MAX_LOAD_FACTOR`` of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast

from webui.events import EventHub
from webui.json_values import entry_json, member_json
from webui.view import MemberView, NodeView

__all__ = ["MAX_LOAD_FACTOR", "Sampler", "flatten_numbers", "json_safe", "next_tick_delay"]

log = logging.getLogger(__name__)

MAX_LOAD_FACTOR = 10  # wait at least this many times what the last metrics() call took
MAX_PENDING_ENTRIES = 200  # entries per "entries" event; beyond, the page reloads its list
MAX_SERIES_KEYS = 64  # numeric metrics kept per sample, so a huge metrics map stays bounded


def next_tick_delay(tick_s: float, last_cost_s: float) -> float:
    """Seconds until the next sample: ``tick_s``, or longer when sampling is expensive."""
    return max(tick_s, MAX_LOAD_FACTOR * last_cost_s)


def json_safe(value: object) -> object:
    """``value`` with non-finite floats as None (JSON has no infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def flatten_numbers(metrics: Mapping[str, object], prefix: str = "") -> dict[str, float]:
    """The finite numeric leaves of nested mappings, keyed by dotted path (booleans excluded)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_numbers(value, f"{path}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[path] = float(value)
    return flat


def _member_signature(members: list[MemberView]) -> tuple[tuple[str, str, str, int], ...]:
    # last_heard moves every second for a healthy member: not a membership change.
    return tuple(sorted((m.name, m.address, m.state, m.incarnation) for m in members))


class Sampler:
    """Lives on the event loop; ``run()`` is its task."""

    def __init__(
        self,
        view: NodeView,
        hub: EventHub,
        *,
        tick_s: float = 1.0,
        flush_s: float = 0.25,
        history: int = 1800,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._view = view
        self._hub = hub
        self.tick_s = tick_s
        self._flush_s = flush_s
        self._clock = clock
        self._ring: deque[dict[str, float]] = deque(maxlen=history)
        self._pending: dict[str, None] = {}  # new entry ids, in arrival order, deduplicated
        self._overflow = False
        self._members_signature: tuple[tuple[str, str, str, int], ...] | None = None
        self.latest: dict[str, object] = {}
        self.sampled_at = 0.0
        self.members: list[MemberView] = []
        self.last_cost_s = 0.0
        self._ticked_at = -math.inf  # time.monotonic() of the last tick

    def __repr__(self) -> str:
        return f"<Sampler samples={len(self._ring)} pending={len(self._pending)} cost={self.last_cost_s:.3f}s>"

    def on_entry(self, entry_id: str) -> None:
        """The view's listener: remember a new entry for the next flush (never blocks)."""
        if not self._hub.clients:
            return
        if len(self._pending) >= MAX_PENDING_ENTRIES:
            self._overflow = True
            return
        self._pending[entry_id] = None

    def tick(self) -> None:
        """Take one metrics sample and publish it (and the members, when they changed)."""
        started = time.perf_counter()
        self._ticked_at = time.monotonic()  # set first: a failing tick is retried at the same pace
        now = self._clock()
        self.latest = cast(dict[str, object], json_safe(self._view.metrics()))
        self.sampled_at = now
        numbers = dict(list(flatten_numbers(self.latest).items())[:MAX_SERIES_KEYS])
        self._ring.append({"t": now, **numbers})
        self.members = self._view.members()
        self.last_cost_s = time.perf_counter() - started
        members = [member_json(m) for m in self.members]
        self._hub.publish("metrics", {"t": now, "metrics": self.latest, "sample": self._ring[-1], "members": members})
        signature = _member_signature(self.members)
        if signature != self._members_signature:
            self._members_signature = signature
            self._hub.publish("members", {"t": now, "members": members})

    def flush_entries(self) -> None:
        """Publish the entries that arrived since the last flush as one event."""
        if not self._pending and not self._overflow:
            return
        ids, more = list(self._pending), self._overflow
        self._pending.clear()
        self._overflow = False
        if not self._hub.clients:
            return
        views = [view for view in map(self._view.entry, ids) if view is not None]
        self._hub.publish("entries", {"entries": [entry_json(view) for view in views], "more": more})

    def series(self, max_points: int) -> list[dict[str, float]]:
        """The sampled history, at most ``max_points`` samples, evenly spaced, the newest included."""
        samples = list(self._ring)
        if len(samples) <= max_points:
            return samples
        step = len(samples) / max_points
        picked = [samples[int(i * step)] for i in range(max_points - 1)]
        return [*picked, samples[-1]]

    def ensure_sampled(self) -> None:
        """Take a first sample now if none was taken yet (a request before the first tick)."""
        if not self.sampled_at:
            self.tick()

    async def run(self) -> None:
        """Sample and flush until cancelled; a failing round is logged, not fatal.

        The first round waits ``flush_s``: the task starts while the server is still starting,
        and the node's view may not be complete (its address, say) until the server listens.
        """
        failing = False
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                self.flush_entries()
                if time.monotonic() - self._ticked_at >= next_tick_delay(self.tick_s, self.last_cost_s):
                    self.tick()
                failing = False
            except Exception:
                if not failing:  # once per run of failures, not every second
                    log.exception("web UI sampler round failed")
                failing = True
