"""Tests for node.store: durability, idempotent merge, identity, and refusing bad data dirs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.normalize import entry_id
from node.records import EntryRecord, ItemDetail, MatchKind, ObservationRecord, ObservedItem
from node.store import (
    DB_FILENAME,
    CorruptStore,
    DataDirLocked,
    SchemaTooNew,
    Store,
    TopicMismatch,
)

TOPIC = "museums in Paris"


def entry(text: str, hlc: int = 1, origin: str = "n1") -> EntryRecord:
    return EntryRecord(id=entry_id(text), text=text, partition="art", origin=origin, hlc=hlc)


async def test_records_survive_reopen_in_arrival_order(tmp_path: Path) -> None:
    """What add() acknowledged is there after closing and reopening, in the same order."""
    observation = ObservationRecord(
        node="n1", call=1, partition="art", hlc=3,
        items=(ObservedItem(entry_id("Louvre"), MatchKind.NEW),), detail=(ItemDetail("Louvre"),),
    )  # fmt: skip
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        added = await store.add([entry("Louvre"), entry("Musée d'Orsay", 2), observation])
        assert len(added) == 3
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        loaded = await store.load_records()
        assert loaded == [entry("Louvre"), entry("Musée d'Orsay", 2), observation]
        assert loaded[2].detail == (ItemDetail("Louvre"),)  # type: ignore[union-attr]


async def test_adding_a_known_record_is_a_no_op(tmp_path: Path) -> None:
    """The set is grow-only: re-adding returns nothing new and stores nothing twice."""
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        await store.add([entry("Louvre")])
        assert await store.add([entry("Louvre"), entry("Louvre", hlc=9)]) == [entry("Louvre", hlc=9)]
        assert await store.count() == 2


async def test_identity_is_kept_and_incarnation_grows(tmp_path: Path) -> None:
    """The node name persists and every start has a higher incarnation."""
    async with await Store.open(tmp_path, topic=TOPIC, node_name="alpha") as store:
        first = store.identity
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        second = store.identity
    assert first.name == second.name == "alpha"
    assert second.incarnation == first.incarnation + 1


async def test_second_node_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    """The data dir lock refuses a second store while the first is open."""
    async with await Store.open(tmp_path, topic=TOPIC):
        with pytest.raises(DataDirLocked, match="in use"):
            await Store.open(tmp_path, topic=TOPIC)
    async with await Store.open(tmp_path, topic=TOPIC):
        pass  # released on close


async def test_another_topic_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    """A data dir of another topic is a clear error that leaves its file untouched."""
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        await store.add([entry("Louvre")])
    before = (tmp_path / DB_FILENAME).read_bytes()
    with pytest.raises(TopicMismatch, match="museums in Paris"):
        await Store.open(tmp_path, topic="cities of Europe")
    assert (tmp_path / DB_FILENAME).read_bytes() == before


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A data dir written by a newer swarmlist is refused, not downgraded."""
    async with await Store.open(tmp_path, topic=TOPIC):
        pass
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew, match="99"):
        await Store.open(tmp_path, topic=TOPIC)


async def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path: Path) -> None:
    """Garbage in the database file is reported as corrupt and never overwritten."""
    garbage = b"this is not sqlite" * 100
    (tmp_path / DB_FILENAME).write_bytes(garbage)
    with pytest.raises(CorruptStore, match="move it aside"):
        await Store.open(tmp_path, topic=TOPIC)
    assert (tmp_path / DB_FILENAME).read_bytes() == garbage


async def test_an_undecodable_row_is_reported_as_corruption(tmp_path: Path) -> None:
    """A damaged record body makes loading fail with CorruptStore, naming the file."""
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        await store.add([entry("Louvre")])
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        db.execute("UPDATE records SET body = x'c1c1c1'")
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        with pytest.raises(CorruptStore, match="undecodable"):
            await store.load_records()


async def test_close_is_idempotent(tmp_path: Path) -> None:
    """aclose() twice is safe."""
    store = await Store.open(tmp_path, topic=TOPIC)
    await store.aclose()
    await store.aclose()


def _database_with(path: Path, *statements: str) -> None:
    """A database as a start killed mid-creation leaves it: WAL header written, then ``statements``."""
    db = sqlite3.connect(path / DB_FILENAME, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


@pytest.mark.parametrize(
    "statements",
    [(), ("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",)],
    ids=["header only", "empty meta table"],
)
async def test_a_first_start_killed_before_its_schema_committed_is_not_refused(
    tmp_path: Path, statements: tuple[str, ...]
) -> None:
    """Regression (issue #13): kill -9 between setting WAL mode and creating the tables left a
    database the restart refused as corrupt; it holds nothing, so the store finishes it."""
    _database_with(tmp_path, *statements)
    async with await Store.open(tmp_path, topic=TOPIC, node_name="alpha") as store:
        assert await store.add([entry("Louvre")]) == [entry("Louvre")]
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        assert await store.load_records() == [entry("Louvre")]
        assert store.identity.name == "alpha"


async def test_a_database_of_another_program_is_refused_and_kept(tmp_path: Path) -> None:
    """A SQLite file with tables that are not ours is refused, not taken over."""
    _database_with(tmp_path, "CREATE TABLE users (name TEXT)", "INSERT INTO users VALUES ('ada')")
    before = (tmp_path / DB_FILENAME).read_bytes()
    with pytest.raises(CorruptStore, match="missing swarmlist tables"):
        await Store.open(tmp_path, topic=TOPIC)
    assert (tmp_path / DB_FILENAME).read_bytes() == before
