"""Tests for node.replication: records from peers are validated, merged by key, pushed on once."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from gossip.messages import MAX_NAME_CHARS
from node.codec import MAX_PARTITION_CHARS, encode_detail, encode_record, record_key
from node.hlc import HybridClock, hlc_pack
from node.normalize import entry_id
from node.records import (
    EntryRecord, ItemDetail, MatchKind, ObservationDetail, ObservationRecord, ObservedItem, index_label,
)  # fmt: skip
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
    """After merging a record from the (near) future, local timestamps order after it."""
    clock = HybridClock(lambda: 1.0)
    future = hlc_pack(200_000, 3)  # 199 s ahead: within what the clock follows (node.hlc.MAX_AHEAD_S)
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=clock)
        await exchange.merge([encode_record(_entry("Bergen", hlc=future))])
    assert clock.now() > future


async def test_a_record_stamped_at_the_end_of_time_does_not_drag_the_clock_past_64_bits(tmp_path: Path) -> None:
    """Found by fuzzing: after one record stamped 2**64 - 1, no record could be encoded again."""
    clock = HybridClock(lambda: 1.0)
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=clock)
        assert len(await exchange.merge([encode_record(_entry("Narvik", hlc=2**64 - 1))])) == 1  # kept: it is data
        local = _entry("Tromsø", origin="me", hlc=clock.now())
        assert await store.add([local]) == [local]


async def test_a_partition_path_longer_than_a_gossip_label_is_indexed_under_a_stable_short_label(
    tmp_path: Path,
) -> None:
    """Found by fuzzing: a record whose partition path passed 128 characters (a deep plan, or a
    peer) was stored but could not be indexed for anti-entropy — an error, and a node that
    could not restart. Long paths now map to one stable label of at most 128 characters."""
    deep = "/".join(["Region of Somewhere Quite Far Away"] * 10)[:MAX_PARTITION_CHARS]
    indexed: list[tuple[bytes, str]] = []
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        exchange.connect(lambda items: None, index=lambda key, label: indexed.append((key, label)))
        record = EntryRecord(id=entry_id("Hammerfest"), text="Hammerfest", partition=deep, origin="peer", hlc=5)
        assert len(await exchange.merge([encode_record(record)])) == 1
    (_, label), = indexed
    assert label == index_label(record) and len(label) <= MAX_NAME_CHARS and label.startswith(deep[:100])
    other = EntryRecord(id=entry_id("Alta"), text="Alta", partition=deep[:-1] + "x", origin="peer", hlc=5)
    assert index_label(other) != label  # the hash tells two long paths with one head apart
    assert index_label(_entry("Bodø")) == ""  # short paths are their own label


# ------------------------------------------------------------------ observation detail beside the records


def _observation(node: str, call: int, texts: tuple[str, ...], hlc: int = 7) -> ObservationRecord:
    return ObservationRecord(
        node=node, call=call, partition="", hlc=hlc,
        items=tuple(ObservedItem(entry_id(text), MatchKind.NEW) for text in texts),
        detail=tuple(ItemDetail(text.upper()) for text in texts),
    )  # fmt: skip


async def test_a_local_observation_is_published_with_its_detail_and_only_the_record_is_indexed(
    tmp_path: Path,
) -> None:
    """committed() pushes the counts record and its detail; anti-entropy's index hears only the record."""
    published: list[bytes] = []
    indexed: list[bytes] = []
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        exchange.connect(published.extend, index=lambda key, label: indexed.append(key))
        record = _observation("me", 1, ("Oslo", "Bergen"))
        exchange.committed([record])
    detail = ObservationDetail.of(record)
    assert detail is not None
    assert published == [encode_record(record), encode_detail(detail)]
    assert indexed == [bytes.fromhex(record_key(encode_record(record)))]


async def test_a_peers_detail_is_kept_with_its_record_and_pushed_on_once(tmp_path: Path) -> None:
    """A detail arriving with or after its record is kept, shown and pushed on once; one for a
    call this node does not hold is neither kept nor pushed on (it could be anything)."""
    record = _observation("peer", 3, ("Oslo",))
    detail = ObservationDetail.of(record)
    assert detail is not None
    async with await Store.open(tmp_path, topic="t") as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock())
        assert list(await exchange.merge([encode_detail(detail)])) == []  # before its record: dropped
        assert await store.count_details() == 0
        pushed = list(await exchange.merge([encode_record(record), encode_detail(detail)]))
        assert pushed == [encode_record(record), encode_detail(detail)]
        assert list(await exchange.merge([encode_detail(detail)])) == []  # a repeat
        [(_, item, shown)] = state.observations_of(entry_id("Oslo"))
        assert item.match is MatchKind.NEW and shown == ItemDetail("OSLO")
        assert await store.count() == 1 and await store.count_details() == 1  # the detail is no record
    async with await Store.open(tmp_path, topic="t") as store:  # and both are there after a restart
        [loaded] = await store.load_records()
        assert loaded.detail == (ItemDetail("OSLO"),)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "items",
    [
        (ItemDetail("Tromsø"),),  # another number of items
        (ItemDetail("Tromsø"), ItemDetail("Bergen")),  # a new item's text that is not its entry's
    ],
)
async def test_a_detail_that_does_not_fit_its_record_is_refused_and_cannot_shut_out_the_real_one(
    tmp_path: Path, items: tuple[ItemDetail, ...]
) -> None:
    """A forged or garbled detail for a real call is refused, so the genuine one still gets in."""
    record = _observation("peer", 3, ("Oslo", "Bergen"))
    wrong = ObservationDetail(node="peer", call=3, hlc=7, items=items)
    genuine = ObservationDetail.of(record)
    assert genuine is not None
    async with await Store.open(tmp_path, topic="t") as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock())
        assert list(await exchange.merge([encode_record(record), encode_detail(wrong)])) == [encode_record(record)]
        assert [shown for _, _, shown in state.observations_of(entry_id("Oslo"))] == [None]
        assert list(await exchange.merge([encode_detail(genuine)])) == [encode_detail(genuine)]
        assert [shown for _, _, shown in state.observations_of(entry_id("Oslo"))] == [ItemDetail("OSLO")]


async def test_a_detail_too_big_for_a_gossip_payload_stays_local_and_the_record_still_goes(tmp_path: Path) -> None:
    """Hundreds of long items make a detail over the payload bound: the record is pushed, the detail kept locally."""
    texts = tuple(f"{'Ä' * 120} {number}" for number in range(300))
    record = _observation("me", 1, texts)
    published: list[bytes] = []
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        exchange.connect(published.extend)
        assert await store.add([record]) == [record]
        exchange.committed([record])
        assert published == [encode_record(record)]
        assert await store.count_details() == 1


async def test_malformed_detail_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    """A detail is hostile input like a record: refused, counted, nothing kept."""
    async with await Store.open(tmp_path, topic="t") as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock())
        bad = [msgpack.packb([8, "peer", 1, 2, [["Oslo", 7.5]]]), msgpack.packb([8, "peer", 1]),
               msgpack.packb([8, "", 1, 2, []])]  # fmt: skip
        assert list(await exchange.merge(bad)) == [] and exchange.rejected == 3
        assert await store.count_details() == 0 and state.detail_count == 0


async def test_detail_with_64_bit_call_numbers_and_stamps_is_kept(tmp_path: Path) -> None:
    """A valid detail may carry numbers past SQLite's signed integers (found by the gossip fuzzer)."""
    top = 2**64 - 1
    record = ObservationRecord(node="peer", call=top, partition="", hlc=top,
                               items=(ObservedItem(entry_id("Oslo"), MatchKind.NEW),))  # fmt: skip
    detail = ObservationDetail(node="peer", call=top, hlc=top, items=(ItemDetail("Oslo"),))
    async with await Store.open(tmp_path, topic="t") as store:
        exchange = RecordExchange(store=store, state=NodeState(), clock=HybridClock())
        await exchange.merge([encode_record(record)])
        assert list(await exchange.merge([encode_detail(detail)])) == [encode_detail(detail)]
        assert await store.prune_details(top) == 0  # the capped stamp is never older than a cutoff
        assert await store.count_details() == 1
