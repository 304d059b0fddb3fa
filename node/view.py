"""The node as the web UI sees it: ``NodeView`` (webui/view.py) over the node's state.

Read-only and cheap per request: pages come from the global list's sorted order with a keyset
cursor (the last line's sort key, opaque to clients), filters scan only when asked for.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Mapping

from node.export import iter_csv, iter_jsonl, iter_txt
from node.global_list import ListEntry, SortKey
from node.normalize import normal_form
from node.state import NodeState
from webui.view import EntryPage, EntryView, ExportFormat, MemberView

__all__ = ["StateView", "encode_cursor", "decode_cursor"]

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


def _matches(line: ListEntry, query_nf: str | None, partition: str | None) -> bool:
    if partition is not None and line.record.partition != partition:
        return False
    if query_nf is None:
        return True
    return any(query_nf in normal_form(record.text) for record in (line.record, *line.aliases))


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
    ) -> None:
        self._state = state
        self._node = node_name
        self._topic = topic
        self._members = members
        self._metrics = metrics
        self._started = time.time()

    def entries(self, *, cursor: str | None, limit: int, query: str | None, partition: str | None) -> EntryPage:
        after = decode_cursor(cursor) if cursor else None
        lines = self._state.entries
        query_nf = normal_form(query) if query else None
        if query_nf == "":
            query_nf = None
        if query_nf is None and partition is None:
            page = lines.page(after, limit + 1)
            total = len(lines)
        else:
            page = []
            total = 0
            for line in lines:  # a filtered view scans; pages stay keyset-based
                if _matches(line, query_nf, partition):
                    total += 1
                    if (after is None or line.sort_key > after) and len(page) <= limit:
                        page.append(line)
        shown = page[:limit]
        next_cursor = encode_cursor(shown[-1].sort_key) if len(page) > limit else None
        return EntryPage(tuple(self._entry_view(line) for line in shown), next_cursor, total)

    def _entry_view(self, line: ListEntry) -> EntryView:
        record = line.record
        return EntryView(
            id=record.id,
            text=record.text,
            partition=record.partition,
            origin=record.origin,
            hlc=record.hlc,
            aliases=tuple(alias.text for alias in line.aliases),
            status="unconfirmed",  # no verification yet (the precision issue adds verdicts)
        )

    def members(self) -> list[MemberView]:
        return self._members()

    def metrics(self) -> Mapping[str, object]:
        return self._metrics()

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        render = {"jsonl": iter_jsonl, "csv": iter_csv, "txt": iter_txt}[fmt]
        return render(self._state.entries)

    def health(self) -> Mapping[str, object]:
        return {
            "node": self._node,
            "topic": self._topic,
            "entries": len(self._state.entries),
            "uptime_s": round(time.time() - self._started, 1),
        }
