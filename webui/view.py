"""What the web UI reads: a narrow, read-only view of a node, and the values it returns.

The node implements ``NodeView`` (``node/view.py``); tests use a fake. The web layer never
imports the node: it sees entries, members, partitions and metrics as these plain values.

Views appear when their source exists: ``partitions()`` and ``convergence()`` return None
while the node has no such feature, and the page hides their panels.

``metrics()`` is a JSON-ready mapping; the page and ``/metrics`` read these keys when present
(nested mappings are flattened with dots, e.g. ``estimate.total``), and pass any other
numeric key through as a gauge:

- ``node`` (str), ``entries`` (lines of the list), ``calls``, ``calls_failed``, ``tokens``
  (this node's LLM calls, failures and tokens, cumulative);
- ``generated_items``, ``new_items``, ``observed_calls`` (every observed call's generated
  items and how many became new entries, cumulative, cluster-wide);
- ``estimate``: ``{"total", "low", "high", "remaining", "coverage"}`` (``high`` None = ∞);
- ``gossip``: ``{"messages_in", "messages_out", "bytes_in", "bytes_out"}`` (cumulative);
- ``spend``: the network's LLM spend as the usage records tell it — ``calls``,
  ``prompt_tokens``, ``completion_tokens`` — its budget ``budget_calls``, ``budget_tokens``
  and what is left, ``remaining_calls``, ``remaining_tokens`` (None = no limit), and this
  node's share, ``node_calls``, ``node_prompt_tokens``, ``node_completion_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "STATUSES",
    "ConvergenceView",
    "DiscoveryPoint",
    "EntryObservations",
    "EntryPage",
    "EntryView",
    "ExportFormat",
    "MemberView",
    "NodeView",
    "ObservationView",
    "PartitionView",
]

ExportFormat = Literal["jsonl", "csv", "txt"]

STATUSES = ("confirmed", "unconfirmed", "rejected")
"""An entry's status: confirmed (repeated, or verified real), unconfirmed, rejected (verified not real)."""


@dataclass(frozen=True, slots=True)
class EntryView:
    """One line of the global list."""

    id: str
    text: str
    partition: str
    origin: str
    hlc: int
    aliases: tuple[str, ...]
    status: str  # one of STATUSES


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of the list; ``next_cursor`` is None on the last page."""

    entries: tuple[EntryView, ...]
    next_cursor: str | None
    total: int  # lines matching the filters


@dataclass(frozen=True, slots=True)
class ObservationView:
    """One generated item that resolved to a line's entry: how it was found, or why dropped."""

    text: str | None  # the item as the model wrote it; None: the detail was not kept (retention)
    entry_id: str  # the entry it resolved to (the line's canonical entry or an alias)
    match: str  # "new" (became the entry) | "exact" | "fuzzy" (dropped as a duplicate)
    score: float | None  # similarity of a fuzzy match; 1.0 otherwise; None with ``text``
    node: str  # the node whose call generated it
    call: int  # that node's call number
    partition: str  # the partition the call asked about


@dataclass(frozen=True, slots=True)
class EntryObservations:
    """A line of the list with the generated items that resolved to it."""

    entry: EntryView
    observations: tuple[ObservationView, ...]  # the first ones per entry id, arrival order
    generated: int  # all items that resolved to the line (may exceed len(observations))
    verdicts_real: int = 0  # verification answers that called it real
    verdicts_not_real: int = 0  # ... and not real


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member of the cluster as this node sees it (itself included)."""

    name: str
    address: str
    state: str  # "alive" | "suspect" | "dead" | "left"
    incarnation: int
    last_heard: float  # wall-clock seconds
    rtt_s: float | None = None  # smoothed round trip of this node's SWIM probes to it; None: none yet
    reason: str | None = None  # why it is suspect, dead or left ("no ack to direct probes nor …")
    reason_at: float | None = None  # wall-clock seconds the reason arose


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One partition of the topic with what was found in it."""

    path: str  # labels joined by " > "; "" is the whole topic
    entries: int  # entries first accepted in this partition
    calls: int  # observed LLM calls that asked about it
    items: int  # items those calls generated
    new: int  # of which became new entries (yield = new / calls)
    owner: str | None  # the member assigned to it; None until partitions are assigned
    state: str | None  # "active" | "split" | "retired"; None until there is a partition plan


@dataclass(frozen=True, slots=True)
class ConvergenceView:
    """Estimated similarity of the members' sets: 1.0 on the diagonal and where they agree."""

    nodes: tuple[str, ...]
    similarity: tuple[tuple[float | None, ...], ...]  # [i][j]: Jaccard estimate, None unknown
    # [i][j]: estimated records in one set only; 0.0 exactly when the two digests are equal
    difference: tuple[tuple[float | None, ...], ...] = ()
    counts: tuple[int | None, ...] = ()  # each node's record count as last heard; None unknown


@dataclass(frozen=True, slots=True)
class DiscoveryPoint:
    """The discovery curve after ``calls`` observed calls (cumulative counts)."""

    calls: int
    items: int  # generated items, duplicates included
    new: int  # items that became new entries


class NodeView(Protocol):
    """Read-only access to a node; runs on the event loop and must not block."""

    def entries(
        self, *, cursor: str | None, limit: int, query: str | None, partition: str | None, status: str | None
    ) -> EntryPage:
        """A page of the list after ``cursor``; raises ``ValueError`` for a cursor it never issued."""
        ...

    def entry(self, entry_id: str) -> EntryView | None:
        """The line ``entry_id`` is on (as canonical entry or alias), or None if unknown."""
        ...

    def entry_observations(self, entry_id: str) -> EntryObservations | None:
        """The line of ``entry_id`` and the generated items that resolved to it; None if unknown."""
        ...

    def members(self) -> list[MemberView]: ...

    def metrics(self) -> Mapping[str, object]:
        """JSON-ready counters and estimates (keys: see the module docstring)."""
        ...

    def discovery(self, max_points: int) -> list[DiscoveryPoint]:
        """The discovery curve, at most ``max_points`` points, evenly spaced, the last included."""
        ...

    def partitions(self) -> list[PartitionView] | None:
        """The partitions, by path; None when the node has no partition information."""
        ...

    def convergence(self) -> ConvergenceView | None:
        """The members' pairwise similarity; None until anti-entropy provides it."""
        ...

    def subscribe(self, on_entry: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_entry(entry_id)`` when an entry changes the list; returns the unsubscriber.

        ``on_entry`` is called on the event loop and must not block.
        """
        ...

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        """The whole list as chunks of text in ``fmt``."""
        ...

    def health(self) -> Mapping[str, object]:
        """Liveness facts: node name, topic, entries, uptime."""
        ...
