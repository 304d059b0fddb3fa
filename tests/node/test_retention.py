"""Tests for node.retention: old observation detail is dropped, the counts and the set stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.codec import encode_record, record_key
from node.hlc import hlc_pack
from node.normalize import entry_id
from node.records import EntryRecord, ItemDetail, MatchKind, ObservationRecord, ObservedItem
from node.retention import DetailRetention, detail_cutoff
from node.state import NodeState
from node.store import Store
from node.view import StateView

DAY_S = 86_400.0
NOW_S = 1_800_000_000.0  # 2027-01-15


def _observation(call: int, age_days: float, texts: tuple[str, ...] = ("Oslo", "Bergen")) -> ObservationRecord:
    stamped_ms = int((NOW_S - age_days * DAY_S) * 1000)
    return ObservationRecord(
        node="n1", call=call, partition="Norway", hlc=hlc_pack(stamped_ms, 0),
        items=tuple(ObservedItem(entry_id(text), MatchKind.EXACT) for text in texts),
        detail=tuple(ItemDetail(text, 1.0) for text in texts),
    )  # fmt: skip


def test_the_cutoff_is_the_clock_stamp_of_now_minus_the_retention_period() -> None:
    assert detail_cutoff(NOW_S, 30) == hlc_pack(int((NOW_S - 30 * DAY_S) * 1000), 0)
    assert detail_cutoff(10.0, 30) == 0  # a clock near the epoch keeps everything


async def _stored(tmp_path: Path, records: list[ObservationRecord]) -> tuple[Store, NodeState]:
    store = await Store.open(tmp_path, topic="towns of Norway")
    await store.add(records)
    state = NodeState()
    state.apply_all(await store.load_records())
    return store, state


async def test_detail_older_than_the_period_is_dropped_and_the_counts_stay(tmp_path: Path) -> None:
    """Calls 40 and 31 days old lose their texts, the 2-day-old one keeps them; the records, their
    keys, the sample counts and the estimate's input are exactly as before."""
    records = [_observation(1, 40), _observation(2, 31), _observation(3, 2)]
    store, state = await _stored(tmp_path, records)
    async with store:
        keys_before = {record_key(encode_record(record)) for record in records}
        counts_before = state.sample_counts()
        retention = DetailRetention(store=store, state=state, keep_days=30, wall=lambda: NOW_S)
        assert await retention.drop_old() == 2
        assert await retention.drop_old() == 0  # nothing older left
        assert retention.dropped == 2 and state.detail_count == 1 and await store.count_details() == 1
        assert state.sample_counts() == counts_before and state.generated_count(entry_id("Oslo")) == 3
        shown = [detail for _, _, detail in state.observations_of(entry_id("Oslo"))]
        assert shown == [None, None, ItemDetail("Oslo")]
    async with await Store.open(tmp_path, topic="towns of Norway") as reopened:
        loaded = await reopened.load_records()
        assert loaded == records  # the set is unchanged
        assert {record_key(encode_record(record)) for record in loaded} == keys_before
        assert [record.detail is not None for record in loaded if isinstance(record, ObservationRecord)] == [
            False, False, True]  # fmt: skip


async def test_the_page_says_the_detail_was_not_kept(tmp_path: Path) -> None:
    """The 'why dropped' view still lists the old call, with no text (the page shows 'detail not kept')."""
    records = [_observation(1, 40, ("Oslo",))]
    store, state = await _stored(tmp_path, records)
    async with store:
        state.apply(EntryRecord(id=entry_id("Oslo"), text="Oslo", partition="Norway", origin="n1", hlc=1))
        await DetailRetention(store=store, state=state, keep_days=30, wall=lambda: NOW_S).drop_old()
        view = StateView(state, node_name="n1", topic="t", members=list, metrics=dict)
        found = view.entry_observations(entry_id("Oslo"))
        assert found is not None
        [observation] = found.observations
        assert (observation.text, observation.score, observation.match, observation.call) == (None, None, "exact", 1)


async def test_a_period_of_zero_keeps_detail_for_ever(tmp_path: Path) -> None:
    store, state = await _stored(tmp_path, [_observation(1, 4000)])
    async with store:
        retention = DetailRetention(store=store, state=state, keep_days=0, wall=lambda: NOW_S)
        assert await retention.drop_old() == 0
        await asyncio.wait_for(retention.run(), timeout=1)  # returns at once: nothing to do, ever
        assert await store.count_details() == 1 and state.detail_count == 1


async def test_the_periodic_check_drops_detail_as_it_ages(tmp_path: Path) -> None:
    """run() checks at once and then every check_s: detail crossing the period later is dropped then."""
    now = [NOW_S]
    store, state = await _stored(tmp_path, [_observation(1, 29.9)])
    async with store:
        retention = DetailRetention(store=store, state=state, keep_days=30, wall=lambda: now[0], check_s=0.01)
        task = asyncio.create_task(retention.run())
        try:
            await asyncio.sleep(0.05)
            assert state.detail_count == 1
            now[0] += 0.2 * DAY_S
            for _ in range(200):
                if state.detail_count == 0:
                    break
                await asyncio.sleep(0.01)
            assert state.detail_count == 0 and await store.count_details() == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _FlakyStore:
    """A store whose first delete fails with an error nobody planned for, then works."""

    def __init__(self) -> None:
        self.calls = 0

    async def prune_details(self, before_hlc: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("disk controller said something odd")
        return 0


async def test_the_periodic_check_survives_an_unexpected_error_and_says_so(caplog) -> None:  # type: ignore[no-untyped-def]
    """An error that is not a refusing disk is logged with its traceback; the next check still runs."""
    store = _FlakyStore()
    retention = DetailRetention(store=store, state=NodeState(), keep_days=30, wall=lambda: NOW_S,  # type: ignore[arg-type]
                                check_s=0.01)  # fmt: skip
    task = asyncio.create_task(retention.run())
    try:
        for _ in range(200):
            if store.calls >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert store.calls >= 3
    assert any("dropping old observation detail failed" in record.getMessage() for record in caplog.records)


def test_a_retention_period_past_the_epoch_keeps_everything() -> None:
    assert detail_cutoff(NOW_S, 36_500) == 0 and detail_cutoff(NOW_S, 1e305) == 0
