"""Schema migrations: an older data dir opens, migrates forward with every record intact, and
a failed or killed migration leaves the old version as it was."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

import msgpack
import pytest

from node.codec import encode_record, record_key
from node.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    MigrationFailed,
    migrate_forward,
    record_kind,
    stored_version,
)
from node.normalize import entry_id
from node.records import (
    CapacityRecord,
    EntryRecord,
    ItemDetail,
    MatchKind,
    ObservationRecord,
    ObservedItem,
    PlanAction,
    PlanRecord,
    Record,
    VerdictRecord,
)
from node.store import DB_FILENAME, CorruptStore, SchemaTooNew, Store
from tests import suite_report

TOPIC = "countries of the world"

# What swarmlist 1 created (node/store.py at schema version 1), verbatim: the fixture every
# migration must start from, whatever the current schema looks like.
V1_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- local arrival order
    key TEXT NOT NULL UNIQUE,               -- BLAKE2b-128 of body
    body BLOB NOT NULL                      -- canonical record encoding (node.codec)
);
"""


def _sample_records(count: int = 0) -> list[Record]:
    """One record of each kind swarmlist 1 stored, then ``count`` more entries and observations."""
    records: list[Record] = [
        EntryRecord(id=entry_id("France"), text="France", partition="Europe", origin="n1", hlc=1),
        ObservationRecord(node="n1", call=1, partition="Europe", hlc=2,
                          items=(ObservedItem(entry_id("France"), MatchKind.NEW),),
                          detail=(ItemDetail("France"),)),  # fmt: skip
        PlanRecord(action=PlanAction.SPLIT, partition="", children=("Europe", "Asia"), node="n1", hlc=3,
                   reason="known entries pass the prompt budget"),  # fmt: skip
        CapacityRecord(node="n1", concurrency=2, hlc=4),
        VerdictRecord(entry=entry_id("France"), real=True, node="n1", call=1, partition="Europe", hlc=5),
    ]
    for index in range(count):
        text = f"Country {index}"
        records.append(EntryRecord(id=entry_id(text), text=text, partition="Asia", origin="n2", hlc=10 + index))
        if index % 2 == 0:
            records.append(ObservationRecord(node="n2", call=index + 2, partition="Asia", hlc=10 + index,
                                             items=(ObservedItem(entry_id(text), MatchKind.NEW),),
                                             detail=(ItemDetail(text.upper(), 1.0),)))  # fmt: skip
    return records


_V2_MATCH_CODES = {MatchKind.NEW: 0, MatchKind.EXACT: 1, MatchKind.FUZZY: 2}


def old_body(record: Record) -> bytes:
    """A record as swarmlist stored it before schema 3: an observation with its texts and scores
    inline, ``[2, node, call, partition, hlc, [[text, entry_id, match, score]…]]``; the rest as now."""
    if not isinstance(record, ObservationRecord):
        return encode_record(record)
    assert record.detail is not None
    items = [[detail.text, item.entry_id, _V2_MATCH_CODES[item.match], detail.score]
             for item, detail in zip(record.items, record.detail, strict=True)]  # fmt: skip
    packed: bytes = msgpack.packb([2, record.node, record.call, record.partition, record.hlc, items], use_bin_type=True)
    return packed


def make_v1_data_dir(data_dir: Path, records: Sequence[Record], *, stamped: bool = True) -> Path:
    """A data dir as swarmlist 1 left it: its DDL, its meta rows (unless ``stamped`` is False: a
    first start killed before writing them), its records in arrival order."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / DB_FILENAME
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(V1_DDL)
        connection.execute("BEGIN")
        if stamped:
            meta = {"schema_version": "1", "topic": TOPIC, "node_name": "old-node", "incarnation": "7"}
            for key, value in meta.items():
                connection.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, value))
        for record in records:
            body = old_body(record)
            connection.execute("INSERT INTO records(key, body) VALUES (?, ?)", (record_key(body), body))
        connection.execute("COMMIT")
    finally:
        connection.close()
    return db_path


def _shape(db_path: Path) -> dict[str, object]:
    """Tables with their columns, indexes with theirs, and the stored version: what a schema is."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]  # fmt: skip
        shape: dict[str, object] = {"version": stored_version(connection)}
        for table in tables:
            shape[f"table {table}"] = [row[1:] for row in connection.execute(f"PRAGMA table_info({table})")]
            for index in connection.execute(f"PRAGMA index_list({table})"):
                columns = [row[2] for row in connection.execute(f"PRAGMA index_info({index[1]})")]
                shape[f"index {index[1]}"] = (index[2], columns)  # (unique, columns)
        return shape
    finally:
        connection.close()


def _execute(db_path: Path, sql: str, *params: object) -> None:
    """One statement, committed, connection closed (so the WAL is checkpointed into the file)."""
    connection = sqlite3.connect(db_path)
    try:
        with connection:
            connection.execute(sql, params)
    finally:
        connection.close()


def _rows(db_path: Path) -> list[tuple[int, str, bytes]]:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT seq, key, body FROM records ORDER BY seq")
        return [(seq, key, bytes(body)) for seq, key, body in rows]
    finally:
        connection.close()


# ------------------------------------------------------------------ the registry


def test_the_registry_steps_one_version_at_a_time_up_to_the_schema_version() -> None:
    assert [migration.to_version for migration in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))
    assert SCHEMA_VERSION == 3


def test_every_record_kind_has_its_own_name() -> None:
    """record_kind names each kind of node.records.Record distinctly (entry, observation, …)."""
    kinds = {record_kind(record) for record in _sample_records()}
    assert kinds == {"entry", "observation", "plan", "capacity", "verdict"}
    record_types = typing.get_args(Record)
    names = {cls.__name__.removesuffix("Record").lower() for cls in record_types}
    assert len(names) == len(record_types) and "" not in names


# ------------------------------------------------------------------ migrating forward


def _details(records: Sequence[Record]) -> list[tuple[ItemDetail, ...] | None]:
    return [record.detail for record in records if isinstance(record, ObservationRecord)]


async def test_a_v1_data_dir_migrates_to_v3_with_every_record_identity_and_order_intact(tmp_path: Path) -> None:
    """Every record comes back in arrival order, observations counts-only under their new key
    with their texts and scores beside them; every other row is untouched."""
    records = _sample_records(count=20)
    db_path = make_v1_data_dir(tmp_path, records)
    before = _rows(db_path)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        loaded = await store.load_records()
        assert loaded == records  # every record, in arrival order
        assert _details(loaded) == _details(records)  # and every observation's detail
        assert await store.count_details() == 11
        assert (store.identity.name, store.identity.incarnation) == ("old-node", 8)
        assert await store.count_by_kind() == {"capacity": 1, "entry": 21, "observation": 11, "plan": 1, "verdict": 1}
        fresh = EntryRecord(id=entry_id("Japan"), text="Japan", partition="Asia", origin="old-node", hlc=99)
        assert await store.add([fresh]) == [fresh]
        assert (await store.count_by_kind())["entry"] == 22
    after = _rows(db_path)[: len(before)]
    assert [seq for seq, _, _ in after] == [seq for seq, _, _ in before]  # arrival order kept
    for record, (_, key, body) in zip(records, after, strict=True):
        assert body == encode_record(record) and key == record_key(body)  # the key a peer of version 3 computes
    untouched = [row for row, record in zip(before, records, strict=True) if not isinstance(record, ObservationRecord)]
    assert set(untouched) <= set(after)  # keys, bodies and sequence numbers of the other kinds untouched
    assert _shape(db_path)["version"] == SCHEMA_VERSION
    async with await Store.open(tmp_path, topic=TOPIC) as store:  # a second start has nothing to migrate
        assert await store.load_records() == [*records, fresh]


async def test_a_migrated_database_has_the_shape_of_a_fresh_one(tmp_path: Path) -> None:
    """The migrations and the current DDL agree: same tables, columns, indexes and version."""
    migrated = make_v1_data_dir(tmp_path / "old", _sample_records())
    async with await Store.open(tmp_path / "old", topic=TOPIC):
        pass
    async with await Store.open(tmp_path / "new", topic=TOPIC) as store:
        await store.add(_sample_records())
    assert _shape(migrated) == _shape(tmp_path / "new" / DB_FILENAME)
    assert "index records_by_kind" in _shape(migrated)


async def test_a_v1_first_start_killed_before_its_meta_was_written_opens_as_v2(tmp_path: Path) -> None:
    """swarmlist 1 created its tables, then its meta rows, in two transactions: such a data dir
    has v1 tables and no version; it is recognised by its shape and migrated."""
    db_path = make_v1_data_dir(tmp_path, [], stamped=False)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        record = _sample_records()[0]
        assert await store.add([record]) == [record]
        assert await store.count_by_kind() == {"entry": 1}
    assert _shape(db_path)["version"] == SCHEMA_VERSION


async def test_an_undecodable_body_migrates_as_kind_unknown_and_loading_still_reports_it(tmp_path: Path) -> None:
    """A damaged record does not stop the migration; loading names the file, as before."""
    db_path = make_v1_data_dir(tmp_path, _sample_records())
    _execute(db_path, "UPDATE records SET body = x'c1c1c1' WHERE seq = 2")
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        assert (await store.count_by_kind())[""] == 1
        with pytest.raises(CorruptStore, match="undecodable"):
            await store.load_records()


# ------------------------------------------------------------------ refusing, failing, crashing


async def test_a_data_dir_newer_than_this_code_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    db_path = make_v1_data_dir(tmp_path, _sample_records())
    _execute(db_path, "UPDATE meta SET value = ? WHERE key = 'schema_version'", str(SCHEMA_VERSION + 1))
    before = db_path.read_bytes()
    newer = f"schema version {SCHEMA_VERSION + 1}, newer than this swarmlist's {SCHEMA_VERSION}"
    with pytest.raises(SchemaTooNew, match=newer):
        await Store.open(tmp_path, topic=TOPIC)
    assert db_path.read_bytes() == before
    assert not (tmp_path / (DB_FILENAME + "-wal")).exists() or (tmp_path / (DB_FILENAME + "-wal")).stat().st_size == 0


def _failing_after_the_real_step(connection: sqlite3.Connection) -> None:
    MIGRATIONS[0].apply(connection)  # the whole real step: column added, every row updated, index built
    raise RuntimeError("simulated failure at the end of the step")


async def test_a_step_that_fails_is_rolled_back_whole_and_a_retry_succeeds(tmp_path: Path) -> None:
    records = _sample_records(count=50)
    db_path = make_v1_data_dir(tmp_path, records)
    v1_shape, v1_rows = _shape(db_path), _rows(db_path)
    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(MigrationFailed, match="unchanged at version 1") as failed:
            migrate_forward(connection, db_path, migrations=(Migration(2, "failing", _failing_after_the_real_step),))
        assert "simulated failure" in str(failed.value)
        assert not connection.in_transaction
    finally:
        connection.close()
    assert _shape(db_path) == v1_shape and _rows(db_path) == v1_rows
    async with await Store.open(tmp_path, topic=TOPIC) as store:  # the next start migrates
        assert await store.load_records() == records
    assert _shape(db_path)["version"] == SCHEMA_VERSION


_KILLED_MID_STEP = """
import sqlite3, sys, time
from pathlib import Path
from node.migrations import MIGRATIONS, Migration, migrate_forward

db_path, marker = Path(sys.argv[1]), Path(sys.argv[2])

def step_then_hang(connection):
    MIGRATIONS[0].apply(connection)
    marker.write_text("applied, not committed")
    time.sleep(120)

connection = sqlite3.connect(db_path, isolation_level=None)
connection.execute("PRAGMA cache_size = 8")  # a small page cache spills the step's changes into the WAL
migrate_forward(connection, db_path, migrations=(Migration(2, "killed mid-step", step_then_hang),))
"""


@pytest.mark.slow
async def test_a_node_killed_mid_migration_restarts_on_the_old_version_intact(tmp_path: Path) -> None:
    """SIGKILL after the step changed every row but before it committed: v1 as it was, then a clean migration."""
    records = _sample_records(count=2000)
    db_path = make_v1_data_dir(tmp_path / "data", records)
    v1_shape, v1_rows = _shape(db_path), _rows(db_path)
    marker = tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", _KILLED_MID_STEP, str(db_path), str(marker)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=Path(__file__).parents[2])  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the step never ran"
            time.sleep(0.05)
        wal = db_path.with_name(DB_FILENAME + "-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the step's changes were written, uncommitted
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert _shape(db_path) == v1_shape and _rows(db_path) == v1_rows
    started = time.perf_counter()
    async with await Store.open(tmp_path / "data", topic=TOPIC) as store:
        assert await store.load_records() == records
    assert _shape(db_path)["version"] == SCHEMA_VERSION
    suite_report.record("ops: schema migration", "killed mid-step, then restarted", records=len(records),
                        lost=0, restart_with_migration_s=round(time.perf_counter() - started, 3))  # fmt: skip


async def test_migrating_a_larger_data_dir(tmp_path: Path) -> None:
    """20,000 records of swarmlist 1 migrate in one start; the time goes to the report."""
    records = _sample_records(count=13_330)
    make_v1_data_dir(tmp_path, records)
    started = time.perf_counter()
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        elapsed_s = time.perf_counter() - started
        assert await store.count() == len(records)
        assert sum((await store.count_by_kind()).values()) == len(records)
    suite_report.record("ops: schema migration", "v1 → v3 on open", records=len(records), lost=0,
                        open_with_migration_s=round(elapsed_s, 3))  # fmt: skip
