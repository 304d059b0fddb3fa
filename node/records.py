"""The replicated records: immutable values in one grow-only set, each keyed by a content hash.

design.md "Data model": merge is set union (a G-Set CRDT), nothing is modified or deleted.
This module defines the record kinds the node produces and their keys; how they are encoded
on the wire and on disk lives with the transport and the store.

- ``EntryRecord`` — an accepted entry, identified by its entry id (hash of the normal form).
  Two records with one id may exist (accepted concurrently on two nodes); the one with the
  smallest ``(hlc, origin)`` is shown.
- ``ObservationRecord`` — what one LLM call produced: for each generated item, the entry it
  resolved to and how (new, exact, fuzzy). The exhaustion estimate and the "why was this
  dropped" view are computed from these.

Every record's key in the set is the hash of its canonical encoding (``node.codec``), so a
key always names exactly one content.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from node.normalize import EntryId

__all__ = ["EntryRecord", "MatchKind", "ObservedItem", "ObservationRecord", "Record"]


class MatchKind(StrEnum):
    """How a generated item was resolved."""

    NEW = "new"  # no existing entry matched: it became a new entry
    EXACT = "exact"  # same normal form (same id) as an existing entry
    FUZZY = "fuzzy"  # a verified near-duplicate of an existing entry


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An accepted entry, as first generated."""

    id: EntryId  # hash of the normal form of ``text``
    text: str  # display form, as the model wrote it
    partition: str  # the partition the producing call was asked about
    origin: str  # name of the node that accepted it
    hlc: int  # hybrid logical clock at acceptance: orders concurrent acceptances

    @property
    def precedence(self) -> tuple[int, str]:
        """Among records with one id, the smallest precedence is the one shown."""
        return (self.hlc, self.origin)


@dataclass(frozen=True, slots=True)
class ObservedItem:
    """One generated item of an LLM call and the entry it resolved to."""

    text: str  # the item as generated
    entry_id: EntryId  # the entry it resolved to (its own id when ``match`` is NEW)
    match: MatchKind
    score: float = 1.0  # similarity of a fuzzy match (1.0 for exact and new)


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """What one LLM call produced, item by item, in answer order."""

    node: str  # the node that made the call
    call: int  # that node's call sequence number (with ``node``, unique)
    partition: str
    hlc: int
    items: tuple[ObservedItem, ...]


Record = EntryRecord | ObservationRecord
"""Any replicated record."""
