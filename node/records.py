"""The replicated records: immutable values in one grow-only set, each keyed by a content hash.

design.md "Data model": merge is set union (a G-Set CRDT), nothing is modified or deleted.
This module defines the record kinds the node produces and their keys; how they are encoded
on the wire and on disk lives with the transport and the store.

- ``EntryRecord`` — an accepted entry, identified by its entry id (hash of the normal form).
  Two records with one id may exist (accepted concurrently on two nodes); the one with the
  smallest ``(hlc, origin)`` is shown.
- ``ObservationRecord`` — what one LLM call produced: for each generated item, the entry it
  resolved to and how (new, exact, fuzzy). The exhaustion estimate and the evidence of each
  entry are computed from these counts. Its ``detail`` — what the model wrote for each item,
  and a fuzzy match's score, for the "why was this dropped" view — is *not* part of the record:
  it is kept beside it for a retention period (``--observation-detail-days``) and pushed to
  peers best-effort as an ``ObservationDetail``, so old detail can be dropped while the set,
  its digest and every estimate stay the same on every node.
- ``PlanRecord`` — one event of the partition plan: a partition split into children, or
  retired. The plan itself is a pure function of these (``partitioning.plan``).
- ``VerdictRecord`` — one verification answer about one entry: the model, asked whether the
  entry is a real item of the topic, said yes or no (``node.evidence`` turns them into statuses).
- ``CapacityRecord`` — how many concurrent LLM calls a node runs, so that every node weighs
  it the same when partitions are assigned (``partitioning.assign``); its latest counts.
- ``UsageRecord`` — what one LLM call of a node cost (any call: enumeration, verification,
  split), so the network's spend is a sum over the set (``node.spend``).
- ``BudgetRecord`` — the network budget a node was started with; the cluster's budget is the
  strictest of the nodes' newest ones (``node.spend.effective_limits``).

Every record's key in the set is the hash of its canonical encoding (``node.codec``), so a
key always names exactly one content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gossip.messages import MAX_NAME_CHARS  # the longest label anti-entropy's summaries carry
from node.normalize import EntryId, entry_id

__all__ = [
    "BudgetRecord", "CapacityRecord", "EntryRecord", "ItemDetail", "MatchKind", "ObservationDetail", "ObservedItem", "detail_fits",
    "ObservationRecord", "PlanAction", "PlanRecord", "Record", "UsageRecord", "VerdictRecord", "index_label",
]  # fmt: skip


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
    """One generated item of an LLM call: the entry it resolved to, and how."""

    entry_id: EntryId  # the entry it resolved to (its own id when ``match`` is NEW)
    match: MatchKind


@dataclass(frozen=True, slots=True)
class ItemDetail:
    """What the model wrote for one generated item (the observation's detail)."""

    text: str  # the item as generated
    score: float = 1.0  # similarity of a fuzzy match (1.0 for exact and new)


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """What one LLM call produced, item by item, in answer order.

    ``detail`` (one ``ItemDetail`` per item, or None once dropped or when a peer's record
    arrived without it) rides along but is not part of the record: equality, the key and the
    digest ignore it.
    """

    node: str  # the node that made the call
    call: int  # that node's call sequence number (with ``node``, unique)
    partition: str
    hlc: int
    items: tuple[ObservedItem, ...]
    detail: tuple[ItemDetail, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def call_id(self) -> tuple[str, int, int]:
        """What an ``ObservationDetail`` names its observation by."""
        return (self.node, self.call, self.hlc)

    @property
    def new_share(self) -> float:
        """The share of the answer's items that became new entries: low when the model mostly
        repeated what was known (a part run dry, where it invents)."""
        return sum(item.match is MatchKind.NEW for item in self.items) / len(self.items) if self.items else 0.0

    def without_detail(self) -> ObservationRecord:
        return self if self.detail is None else replace(self, detail=None)


def detail_fits(record: ObservationRecord, detail: tuple[ItemDetail, ...]) -> bool:
    """Whether ``detail`` can be ``record``'s: one text per item, and every new or exact item's
    text normalises to the entry it resolved to. A fuzzy item's text cannot be checked (it
    differs by design); a detail that fails is someone else's, garbled or forged."""
    if len(detail) != len(record.items):
        return False
    return all(item.match is MatchKind.FUZZY or entry_id(text.text) == item.entry_id
               for item, text in zip(record.items, detail, strict=True))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ObservationDetail:
    """The detail of one observation, as stored beside it and pushed to peers (not a record of the set)."""

    node: str
    call: int
    hlc: int
    items: tuple[ItemDetail, ...]

    @property
    def call_id(self) -> tuple[str, int, int]:
        return (self.node, self.call, self.hlc)

    @staticmethod
    def of(record: ObservationRecord) -> ObservationDetail | None:
        if record.detail is None:
            return None
        return ObservationDetail(node=record.node, call=record.call, hlc=record.hlc, items=record.detail)


class PlanAction(StrEnum):
    """What a plan event does to its partition."""

    SPLIT = "split"  # the partition is divided into ``children``
    RETIRE = "retire"  # the partition is done: no more calls for it


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One event of the partition plan, made by one node.

    Several nodes may act on one partition concurrently; the plan keeps the event with the
    smallest ``(hlc, node)`` (``partitioning.plan``), so every node computes the same plan.
    """

    action: PlanAction
    partition: str  # the partition acted on: its path of labels ("" = the whole topic)
    children: tuple[str, ...]  # the child labels of a split (empty for a retire)
    node: str  # the node that decided it
    hlc: int
    reason: str  # why, for people ("known entries pass the prompt budget", ...)

    @property
    def precedence(self) -> tuple[int, str, str, tuple[str, ...], str]:
        """Among events on one partition, the smallest precedence wins (every field counts, so
        two different events never tie and arrival order never decides)."""
        return (self.hlc, self.node, self.action.value, self.children, self.reason)


@dataclass(frozen=True, slots=True)
class CapacityRecord:
    """A node's capacity as of ``hlc``: the newest one per node counts."""

    node: str
    concurrency: int  # concurrent LLM calls it runs (``--concurrency``)
    hlc: int


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """What one verification call said about one entry."""

    entry: EntryId  # the entry judged (as listed when it was asked)
    real: bool  # the model said it is a real item of the topic
    node: str  # the node that asked
    call: int  # that node's verification call number (counted afresh by each process: with ``hlc``, unique)
    partition: str  # the entry's partition (filed with it for anti-entropy)
    hlc: int


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one LLM call of a node cost, committed when the call ended (failed ones too).

    One record per call, never a running total: the set's union cannot count a call twice
    (one call, one content, one key), and the spend is the sum over the records.
    """

    node: str  # the node that made the call
    call: int  # that node's LLM call number, over every kind of call (with ``node``, unique)
    prompt_tokens: int  # as the endpoint reported them (estimated when it reported none)
    completion_tokens: int
    hlc: int


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """The network budget a node was started with, as of ``hlc``: the newest one per node counts."""

    node: str
    calls: int  # LLM calls the whole network may make (0 = this node sets no limit)
    tokens: int  # prompt + completion tokens the whole network may spend (0 = no limit)
    hlc: int


Record = EntryRecord | ObservationRecord | PlanRecord | CapacityRecord | VerdictRecord | UsageRecord | BudgetRecord
"""Any replicated record."""


def index_label(record: Record) -> str:
    """The partition a record is filed under in anti-entropy's per-partition sketches.

    Its partition path — or, for a path longer than the wire allows a label (a deep plan's
    path may reach MAX_PARTITION_CHARS), its head and a hash of the whole: every node files a
    record under the same label, and anti-entropy can always index it.
    """
    # records of the whole node, not of a partition, are filed under the whole topic
    path = "" if isinstance(record, (CapacityRecord, UsageRecord, BudgetRecord)) else record.partition
    if len(path) <= MAX_NAME_CHARS:
        return path
    digest = hashlib.blake2b(path.encode("utf-8"), digest_size=8).hexdigest()
    return f"{path[: MAX_NAME_CHARS - len(digest) - 1]}#{digest}"
