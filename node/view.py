"""The node as the web UI sees it: ``NodeView`` (webui/view.py) over the node's state.

Read-only and cheap per request: pages come from the global list's sorted order with a keyset
cursor (the last line's sort key, opaque to clients), filters scan only when asked for, and
a search scans a flat map of normal forms (built on the first search, kept current by an
entry listener) rather than the lines themselves. The per-call tallies behind the discovery curve, the partition table and the cluster-wide item
counters are folded in incrementally (only the calls observed since the last request), so
their cost does not grow with the list.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from node.export import iter_csv, iter_jsonl, iter_txt
from node.global_list import ListEntry, SortKey
from node.normalize import normal_form
from node.state import NodeState
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

__all__ = ["StateView", "decode_cursor", "encode_cursor"]

_SCAN_CHUNK = 512


def encode_cursor(key: SortKey) -> str:
    """An opaque, URL-safe cursor for a sort key."""
    raw = json.dumps(list(key), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key of a cursor; ``ValueError`` for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("cursor is not one this node issued") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise ValueError("cursor is not one this node issued")
    return (value[0], value[1])


def _matches(line: ListEntry, partition: str | None, status: str | None, line_status: str) -> bool:
    """``status`` None is the default list: everything but the rejected lines."""
    if partition is not None and line.record.partition != partition:
        return False
    return line_status != "rejected" if status is None else line_status == status


@dataclass(slots=True)
class _PartitionTally:
    calls: int = 0
    items: int = 0
    new: int = 0


class _CallTally:
    """Cumulative counts over the observed calls, folded in as they arrive."""

    def __init__(self) -> None:
        self.seen = 0
        self.items: list[int] = []  # cumulative items after each call
        self.new: list[int] = []  # cumulative new entries after each call
        self.by_partition: dict[str, _PartitionTally] = {}

    def catch_up(self, state: NodeState) -> None:
        for call in state.calls_from(self.seen):
            self.items.append((self.items[-1] if self.items else 0) + call.items)
            self.new.append((self.new[-1] if self.new else 0) + call.new)
            tally = self.by_partition.setdefault(call.partition, _PartitionTally())
            tally.calls += 1
            tally.items += call.items
            tally.new += call.new
            self.seen += 1


class StateView:
    """Implements ``webui.view.NodeView`` for a running node."""

    def __init__(
        self,
        state: NodeState,
        *,
        node_name: str,
        topic: str,
        members: Callable[[], list[MemberView]],
        metrics: Callable[[], Mapping[str, object]],
        convergence: Callable[[], ConvergenceView | None] = lambda: None,
        plan: Callable[[], Mapping[str, tuple[str, str | None]]] | None = None,
    ) -> None:
        self._state = state
        self._node = node_name
        self._topic = topic
        self._members = members
        self._metrics = metrics
        self._convergence = convergence
        self._plan = plan  # path -> (state, owner) of every partition of the plan; None: no partitioning
        self._started = time.time()
        self._tally = _CallTally()
        self._status_counts: tuple[tuple[int, int, int], dict[str, int]] | None = None
        self._search_index: dict[str, str] | None = None  # entry id -> normal form, built on first search
        state.add_entry_listener(self._index_entry)

    def __repr__(self) -> str:
        return f"<StateView {self._node} lines={len(self._state.entries)} calls={self._state.observation_count}>"

    def entries(
        self,
        *,
        cursor: str | None,
        limit: int,
        query: str | None,
        partition: str | None,
        status: str | None = None,
    ) -> EntryPage:
        after = decode_cursor(cursor) if cursor else None
        lines = self._state.entries
        query_nf = normal_form(query) if query else None
        if query_nf == "":
            query_nf = None
        if query_nf is None and partition is None and status is None:
            # the default list by keyset, stepping over the (few) rejected lines
            rejected = self._state.rejected_ids()
            page = [line for line in lines.page(after, limit + 1 + len(rejected)) if line.id not in rejected]
            page = page[: limit + 1]
            total = len(lines) - len(rejected)
        else:
            page = []
            total = 0
            candidates = self._search(query_nf) if query_nf is not None else lines
            for line in candidates:  # a filtered view scans; pages stay keyset-based
                if _matches(line, partition, status, self._status(line)):
                    total += 1
                    if (after is None or line.sort_key > after) and len(page) <= limit:
                        page.append(line)
        shown = page[:limit]
        next_cursor = encode_cursor(shown[-1].sort_key) if len(page) > limit else None
        return EntryPage(tuple(self._entry_view(line) for line in shown), next_cursor, total)

    def _search(self, query_nf: str) -> list[ListEntry]:
        """The lines whose canonical text or an alias contains ``query_nf``, in list order.

        Scans a flat map of normal forms (a substring test per entry, in C) and builds lines
        only for the matches: walking the whole list line by line costs ~10 µs a line, which
        at 100k entries would hold the event loop for a second per keystroke.
        """
        if self._search_index is None:
            self._search_index = {}
            for line in self._state.entries:
                for record in (line.record, *line.aliases):
                    self._search_index[record.id] = normal_form(record.text)
        entries = self._state.entries
        found: dict[SortKey, ListEntry] = {}
        for entry, text in self._search_index.items():
            if query_nf in text:
                line = entries.cluster_of(entry)
                found[line.sort_key] = line
        return [found[key] for key in sorted(found)]

    def _index_entry(self, entry: str) -> None:
        if self._search_index is not None:
            record = self._state.entries.shown(entry)
            if record is not None:
                self._search_index[entry] = normal_form(record.text)

    def _entry_view(self, line: ListEntry) -> EntryView:
        record = line.record
        return EntryView(
            id=record.id,
            text=record.text,
            partition=record.partition,
            origin=record.origin,
            hlc=record.hlc,
            aliases=tuple(alias.text for alias in line.aliases),
            status=self._status(line),
        )

    def _status(self, line: ListEntry) -> str:
        return self._state.status(line).value

    def status_counts(self) -> dict[str, int]:
        """Lines per status (confirmed, unconfirmed, rejected); rescanned only after the records changed."""
        state = self._state
        key = (state.verdict_count, state.observation_count, state.entries.entry_count)
        if self._status_counts is None or self._status_counts[0] != key:
            counts = dict.fromkeys(("confirmed", "unconfirmed", "rejected"), 0)
            for line in state.entries:
                counts[self._status(line)] += 1
            self._status_counts = (key, counts)
        return dict(self._status_counts[1])

    def _line_of(self, entry_id: str) -> ListEntry | None:
        if self._state.entries.shown(entry_id) is None:
            return None
        return self._state.entries.cluster_of(entry_id)

    def entry(self, entry_id: str) -> EntryView | None:
        line = self._line_of(entry_id)
        return None if line is None else self._entry_view(line)

    def entry_observations(self, entry_id: str) -> EntryObservations | None:
        line = self._line_of(entry_id)
        if line is None:
            return None
        observed: list[ObservationView] = []
        generated = 0
        for record in (line.record, *line.aliases):
            generated += self._state.generated_count(record.id)
            for call, item, detail in self._state.observations_of(record.id):
                observed.append(
                    ObservationView(
                        text=None if detail is None else detail.text,
                        entry_id=item.entry_id,
                        match=item.match.value,
                        score=None if detail is None else detail.score,
                        node=call.node,
                        call=call.call,
                        partition=call.partition,
                    )
                )
        evidence = self._state.evidence(line)
        return EntryObservations(
            self._entry_view(line), tuple(observed), generated, evidence.real, evidence.not_real
        )

    def members(self) -> list[MemberView]:
        return self._members()

    def metrics(self) -> Mapping[str, object]:
        self._tally.catch_up(self._state)
        tally = self._tally
        return {  # the page's charts read these: first, so the sampler's key bound never cuts them
            "observed_calls": tally.seen,
            "generated_items": tally.items[-1] if tally.items else 0,
            "new_items": tally.new[-1] if tally.new else 0,
            **self._metrics(),
            "statuses": self.status_counts(),
            "spend": self.spend(),
        }

    def spend(self) -> dict[str, int | None]:
        """The network's LLM spend and budget as the records tell them, and this node's share.

        A pure function of the set (``node.spend``): every node holding the same records says
        the same. ``budget_*`` and ``remaining_*`` are None where there is no limit.
        """
        total = self._state.spend()
        mine = self._state.spend(self._node)
        limits = self._state.budget_limits()
        return {
            "calls": total.calls,
            "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens,
            "budget_calls": limits.calls or None,
            "budget_tokens": limits.tokens or None,
            "remaining_calls": limits.calls_left(total),
            "remaining_tokens": limits.tokens_left(total),
            "node_calls": mine.calls,
            "node_prompt_tokens": mine.prompt_tokens,
            "node_completion_tokens": mine.completion_tokens,
        }

    def discovery(self, max_points: int) -> list[DiscoveryPoint]:
        self._tally.catch_up(self._state)
        calls, items, new = self._tally.seen, self._tally.items, self._tally.new
        origin = DiscoveryPoint(0, 0, 0)
        if calls == 0:
            return [origin]
        count = max(1, min(calls, max_points - 1))  # points after the origin
        positions = sorted({round(calls * k / count) for k in range(1, count + 1)})
        return [origin, *(DiscoveryPoint(n, items[n - 1], new[n - 1]) for n in positions)]

    def partitions(self) -> list[PartitionView] | None:
        self._tally.catch_up(self._state)
        sizes = self._state.partition_sizes()
        tallies = self._tally.by_partition
        plan = self._plan() if self._plan is not None else {}
        return [
            PartitionView(
                path=path,
                entries=sizes.get(path, 0),
                calls=tallies[path].calls if path in tallies else 0,
                items=tallies[path].items if path in tallies else 0,
                new=tallies[path].new if path in tallies else 0,
                owner=plan[path][1] if path in plan else None,
                state=plan[path][0] if path in plan else None,
            )
            for path in sorted(set(sizes) | set(tallies) | set(plan))
        ]

    def convergence(self) -> ConvergenceView | None:
        return self._convergence()

    def subscribe(self, on_entry: Callable[[str], None]) -> Callable[[], None]:
        return self._state.add_entry_listener(on_entry)

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        render = {"jsonl": iter_jsonl, "csv": iter_csv, "txt": iter_txt}[fmt]
        return render(self._state.entries, self._status)

    def health(self) -> Mapping[str, object]:
        return {
            "node": self._node,
            "topic": self._topic,
            "entries": len(self._state.entries),
            "uptime_s": round(time.time() - self._started, 1),
        }
