"""A fake ``NodeView``: an in-memory sorted list with keyset cursors, live events and observations.

Used by the API tests and the browser tests (served by ``create_app`` on a loopback port),
where it holds hostile entries the real node would never be asked to produce on cue.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from webui.view import (
    ConvergenceView,
    DiscoveryPoint,
    EntryObservations,
    EntryPage,
    EntryView,
    ExportFormat,
    MemberView,
    ObservationView,
    PartitionView,
)


def fake_id(text: str) -> str:
    return hashlib.blake2b(text.casefold().encode(), digest_size=16).hexdigest()


class FakeView:
    def __init__(self, node: str = "n1", topic: str = "test topic") -> None:
        self.node = node
        self.topic = topic
        self._keys: list[tuple[str, str]] = []  # (casefolded text, id), sorted
        self._by_id: dict[str, EntryView] = {}
        self._observations: dict[str, list[ObservationView]] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.member_list: list[MemberView] = [MemberView(node, "127.0.0.1:7001", "alive", 1, time.time())]
        self.metric_values: dict[str, object] = {"node": node, "entries": 0, "calls": 0, "tokens": 0}
        self.partition_list: list[PartitionView] | None = None
        self.convergence_view: ConvergenceView | None = None
        self.calls: list[tuple[int, int]] = []  # (items, new) per call
        self.requests: list[dict[str, object]] = []

    # -- building ---------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        partition: str = "",
        origin: str | None = None,
        aliases: tuple[str, ...] = (),
        dropped: tuple[tuple[str, str, float], ...] = (),
    ) -> EntryView:
        """Add a line (and tell subscribers); ``dropped`` = (text, match, score) items resolved to it."""
        entry = EntryView(fake_id(text), text, partition, origin or self.node, len(self._by_id), aliases, "unconfirmed")
        self._by_id[entry.id] = entry
        bisect.insort(self._keys, (text.casefold(), entry.id))
        call = len(self.calls) + 1
        self._observations[entry.id] = [
            ObservationView(text, entry.id, "new", 1.0, entry.origin, call, partition),
            *(ObservationView(t, entry.id, match, score, entry.origin, call, partition) for t, match, score in dropped),
        ]
        self.calls.append((1 + len(dropped), 1))
        self.metric_values["entries"] = len(self._by_id)
        for listener in tuple(self._listeners):
            listener(entry.id)
        return entry

    def set_status(self, text: str, status: str) -> None:
        entry = self._by_id[fake_id(text)]
        self._by_id[entry.id] = replace(entry, status=status)

    # -- NodeView ---------------------------------------------------------------------------

    def entries(
        self, *, cursor: str | None, limit: int, query: str | None, partition: str | None, status: str | None = None
    ) -> EntryPage:
        self.requests.append(
            {"cursor": cursor, "limit": limit, "query": query, "partition": partition, "status": status}
        )
        if cursor and cursor not in self._by_id:
            raise ValueError("cursor is not one this node issued")
        after_key = (self._by_id[cursor].text.casefold(), cursor) if cursor else None
        matching = [
            self._by_id[entry_id]
            for _, entry_id in self._keys
            if self._matches(self._by_id[entry_id], query, partition, status)
        ]
        after = [e for e in matching if after_key is None or (e.text.casefold(), e.id) > after_key]
        page = after[:limit]
        next_cursor = page[-1].id if len(after) > limit else None
        return EntryPage(tuple(page), next_cursor, len(matching))

    @staticmethod
    def _matches(entry: EntryView, query: str | None, partition: str | None, status: str | None) -> bool:
        if partition is not None and entry.partition != partition:
            return False
        if status is not None and entry.status != status:
            return False
        if query is None:
            return True
        return any(query.casefold() in text.casefold() for text in (entry.text, *entry.aliases))

    def entry(self, entry_id: str) -> EntryView | None:
        return self._by_id.get(entry_id)

    def entry_observations(self, entry_id: str) -> EntryObservations | None:
        entry = self._by_id.get(entry_id)
        if entry is None:
            return None
        observations = tuple(self._observations.get(entry_id, ()))
        return EntryObservations(entry, observations, len(observations))

    def members(self) -> list[MemberView]:
        return list(self.member_list)

    def metrics(self) -> Mapping[str, object]:
        return dict(self.metric_values)

    def discovery(self, max_points: int) -> list[DiscoveryPoint]:
        points = [DiscoveryPoint(0, 0, 0)]
        items = new = 0
        for n, (call_items, call_new) in enumerate(self.calls, start=1):
            items += call_items
            new += call_new
            points.append(DiscoveryPoint(n, items, new))
        return points[-max_points:]

    def partitions(self) -> list[PartitionView] | None:
        return self.partition_list

    def convergence(self) -> ConvergenceView | None:
        return self.convergence_view

    def subscribe(self, on_entry: Callable[[str], None]) -> Callable[[], None]:
        self._listeners.append(on_entry)
        return lambda: self._listeners.remove(on_entry)

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        return iter([f"{self._by_id[entry_id].text}\n" for _, entry_id in self._keys])

    def health(self) -> Mapping[str, object]:
        return {"node": self.node, "topic": self.topic, "entries": len(self._by_id)}

    @property
    def listener_count(self) -> int:
        return len(self._listeners)
