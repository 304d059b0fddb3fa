"""Tests for node.replication: records from peers are validated, merged by key, pushed on once."""

from __future__ import annotations

from pathlib import Path

import msgpack

from node.codec import encode_record
from node.hlc import HybridClock, hlc_pack
from node.normalize import entry_id
from node.records import EntryRecord
from node.replication import RecordExchange
from node.state import NodeState
from node.store import Store


def _entry(text: str, origin: str = "peer", hlc: int = 5) -> EntryRecord:
    return EntryRecord(id=entry_id(text), text=text, partition="", origin=origin, hlc=hlc)


async def test_new_records_are_stored_applied_and_returned_once(tmp_path: Path) -> None:
    """A record new to the node is committed, shown, and returned for re-push; a repeat is not."""
    changes: list[int] = []
    async with await Store.open(tmp_path, topic="t") as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock(), on_change=lambda: changes.append(1))
        items = [encode_record(_entry("Lisbon")), encode_record(_entry("Porto"))]
        assert list(await exchange.merge(items)) == items
        assert list(await exchange.merge(items)) == []
        assert {line.record.text for line in state.entries} == {"Lisbon", "Porto"}
        assert await store.count() == 2 and changes == [1]


async def test_near_duplicates_from_peers_are_kept_not_fuzzy_dropped(tmp_path: Path) -> None:
    """Merge is by key: a peer's near-duplicate is stored (the list clusters it), never dropped."""
    async with await Store.open(tmp_path, topic="t") as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock())
        await exchange.merge([encode_record(_entry("Saint Petersburg"))])
        new = await exchange.merge([encode_record(_entry("St. Petersburg", origin="other"))])
        assert len(new) == 1 and await store.count() == 2


async def test_garbage_and_forged_ids_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    """Undecodable bytes and an entry whose id is not its text's are counted and not stored."""
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        forged = EntryRecord(id=entry_id("Paris"), text="Atlantis", partition="", origin="evil", hlc=1)
        result = await exchange.merge([b"\xc1garbage", msgpack.packb([1, 2, 3]), encode_record(forged)])
        assert list(result) == [] and exchange.rejected == 3 and await store.count() == 0


async def test_local_commits_are_published_encoded(tmp_path: Path) -> None:
    """committed() hands the canonical encoding of local records to the broadcaster."""
    published: list[bytes] = []
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        exchange.connect(published.extend)
        exchange.committed([_entry("Oslo", origin="me")])
    assert published == [encode_record(_entry("Oslo", origin="me"))]


async def test_received_timestamps_advance_the_local_clock(tmp_path: Path) -> None:
    """After merging a record from the future, local timestamps order after it."""
    clock = HybridClock(lambda: 1.0)
    future = hlc_pack(10_000_000, 3)
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=clock)
        await exchange.merge([encode_record(_entry("Bergen", hlc=future))])
    assert clock.now() > future
