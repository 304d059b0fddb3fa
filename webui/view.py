"""What the web UI reads: a narrow, read-only view of a node, and the values it returns.

The node implements ``NodeView`` (``node/view.py``); tests use a fake. The web layer never
imports the node: it sees entries, members and metrics as these plain values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["EntryView", "EntryPage", "MemberView", "NodeView", "ExportFormat"]

ExportFormat = Literal["jsonl", "csv", "txt"]


@dataclass(frozen=True, slots=True)
class EntryView:
    """One line of the global list."""

    id: str
    text: str
    partition: str
    origin: str
    hlc: int
    aliases: tuple[str, ...]
    status: str  # "confirmed" | "unconfirmed" | "rejected"


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of the list; ``next_cursor`` is None on the last page."""

    entries: tuple[EntryView, ...]
    next_cursor: str | None
    total: int  # lines matching the filters


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member of the cluster as this node sees it (itself included)."""

    name: str
    address: str
    state: str  # "alive" | "suspect" | "dead" | "left"
    incarnation: int
    last_heard: float  # wall-clock seconds


class NodeView(Protocol):
    """Read-only access to a node; runs on the event loop and must not block."""

    def entries(self, *, cursor: str | None, limit: int, query: str | None, partition: str | None) -> EntryPage:
        """A page of the list after ``cursor``; raises ``ValueError`` for a cursor it never issued."""
        ...

    def members(self) -> list[MemberView]: ...

    def metrics(self) -> Mapping[str, object]:
        """JSON-ready counters and estimates."""
        ...

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        """The whole list as chunks of text in ``fmt``."""
        ...

    def health(self) -> Mapping[str, object]:
        """Liveness facts: node name, topic, entries, uptime."""
        ...
