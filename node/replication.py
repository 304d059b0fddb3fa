"""Records in and out of the gossip layer: the node's side of dissemination and anti-entropy.

Out: every record the node commits (entries it accepted, observations of its calls) is
encoded canonically and handed to the broadcaster. In: records from peers are decoded and
validated as hostile input, merged *by key* into the store — never fuzzy-dropped, or two
nodes' sets would never agree (design.md) — and applied to the in-memory state once
committed; the ones that were new go back to the broadcaster to be pushed on.

An observation's detail (what the model wrote) travels beside its record as an item of its
own (``node.codec.encode_detail``): pushed with the record and pushed on when new, but never
indexed for anti-entropy — it is not in the set, so a node that missed it, or dropped it under
the retention policy, still has the same set and digest as every other.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

from gossip.messages import MAX_PAYLOAD_BYTES
from node.codec import RecordDecodeError, decode_item, encode_detail, encode_record
from node.hlc import HybridClock
from node.normalize import entry_id
from node.records import EntryRecord, ObservationDetail, ObservationRecord, Record, index_label
from node.state import NodeState
from node.store import Store, StoreWriteError

__all__ = ["RecordExchange"]

log = logging.getLogger(__name__)


class RecordExchange:
    """Implements ``gossip.broadcast.RecordDelegate`` and ``gossip.anti_entropy.RecordStore``
    for a node; runs on the event loop."""

    def __init__(
        self,
        *,
        store: Store,
        state: NodeState,
        clock: HybridClock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._state = state
        self._clock = clock
        self._on_change = on_change
        self._publish: Callable[[Sequence[bytes]], None] = lambda items: None
        self._index: Callable[[bytes, str], object] = lambda key, partition: None
        self.received = 0
        self.merged = 0
        self.rejected = 0
        self.refused_by_disk = 0  # peers' records the disk would not take (full, read-only)
        self._disk_trouble: str | None = None  # why the last merge could not commit, until one can

    @property
    def clock(self) -> HybridClock:
        """The node's hybrid clock (records it commits are stamped with it)."""
        return self._clock

    def __repr__(self) -> str:
        return f"<RecordExchange received={self.received} merged={self.merged} rejected={self.rejected}>"

    def connect(
        self,
        publish: Callable[[Sequence[bytes]], None],
        index: Callable[[bytes, str], object] = lambda key, partition: None,
    ) -> None:
        """Where committed records go: ``publish`` pushes local ones to peers (the broadcaster);
        ``index(key, partition)`` hears of every stored record (anti-entropy's key index)."""
        self._publish = publish
        self._index = index

    def _indexed(self, records: Sequence[Record]) -> list[bytes]:
        encoded = [encode_record(record) for record in records]
        for record, body in zip(records, encoded, strict=True):
            self._index(hashlib.blake2b(body, digest_size=16).digest(), index_label(record))
        return encoded

    def committed(self, records: Sequence[Record]) -> None:
        """The node committed ``records`` itself: index them and push them (and their detail) to peers."""
        if records:
            self._publish(self._indexed(records))
            details = [encoded for record in records if isinstance(record, ObservationRecord)
                       if (detail := ObservationDetail.of(record)) is not None
                       and len(encoded := encode_detail(detail)) <= MAX_PAYLOAD_BYTES]  # fmt: skip
            # A detail too big for one gossip payload (hundreds of long items) stays local: it
            # is best-effort, and the broadcaster refuses an oversized item outright.
            if details:
                self._publish(details)

    async def fetch(self, keys: Sequence[bytes]) -> Sequence[bytes]:
        """Stored records by key, for anti-entropy (unknown keys are left out)."""
        return await self._store.bodies(keys)

    def _valid(self, data: bytes) -> Record | ObservationDetail | None:
        try:
            record = decode_item(data)
        except RecordDecodeError as exc:
            self.rejected += 1
            log.debug("rejected a record from a peer: %s", exc)
            return None
        if isinstance(record, EntryRecord) and entry_id(record.text) != record.id:
            self.rejected += 1  # a forged id would make the list differ between nodes
            log.debug("rejected entry %s: id does not match its text", record.id)
            return None
        return record

    async def merge(self, items: Sequence[bytes]) -> Sequence[bytes]:
        """Store what is new among ``items`` (by key); returns the new ones, to push on."""
        self.received += len(items)
        valid = [item for item in map(self._valid, items) if item is not None]
        records = [item for item in valid if not isinstance(item, ObservationDetail)]
        details = [item for item in valid if isinstance(item, ObservationDetail)]
        if not records:
            return await self._merge_details(details)
        for record in records:
            if not self._clock.observe(record.hlc):  # our next timestamps order after what we have seen
                log.debug("not following the clock of a %s record stamped far ahead of ours", type(record).__name__)
        try:
            added = await self._store.add(records)
        except StoreWriteError as exc:
            # Nothing was stored and nothing is lost: peers keep the records and anti-entropy
            # offers them again. One line per episode, not one traceback per gossip batch.
            self.refused_by_disk += len(records)
            if self._disk_trouble is None:
                log.error("cannot store records from peers until the disk takes writes again: %s", exc)
            self._disk_trouble = str(exc)
            return []
        if self._disk_trouble is not None:
            log.warning("storing records from peers again (the disk takes writes)")
            self._disk_trouble = None
        for record in added:
            self._state.apply(record)
        if added:
            self.merged += len(added)
            self._on_change()
        indexed = self._indexed(added)  # indexed before returning: anti-entropy's digest must be current
        return [*indexed, *await self._merge_details(details)]

    async def _merge_details(self, details: Sequence[ObservationDetail]) -> list[bytes]:
        """Keep peers' observation detail that fits an observation held here; returns the new
        ones, to push on. Best-effort: a disk that refuses it loses only detail, which the set
        does not depend on."""
        fitting = [detail for detail in details if self._state.wants_detail(detail)]
        if len(fitting) < len(details):
            log.debug("not keeping %d observation details from peers: known already, or no observation here "
                      "they fit", len(details) - len(fitting))  # fmt: skip
        if not fitting:
            return []
        try:
            added = await self._store.add_details(fitting)
        except StoreWriteError as exc:
            log.debug("not keeping %d observation details from peers: %s", len(fitting), exc)
            return []
        for detail in added:
            self._state.keep_detail(detail)
        return [encode_detail(detail) for detail in added]
