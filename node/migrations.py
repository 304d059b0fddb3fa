"""The data dir's SQLite schema: its current tables, and the migrations that bring an older one forward.

``SCHEMA_STATEMENTS`` create the current schema (version ``SCHEMA_VERSION``) in an empty
database; ``node.store`` runs them in one transaction at every start (each is ``IF NOT
EXISTS``). A data dir written by an older swarmlist is first brought forward by
``migrate_forward``: the registry ``MIGRATIONS`` holds one step per version, ``k → k+1``, in
order, and each step runs in a transaction of its own that also stamps the new
``schema_version`` in ``meta``. SQLite's DDL is transactional and the database is in WAL
mode, so a step either commits whole — schema, data and version together — or not at all: a
node killed mid-migration restarts on the old version, intact, and simply migrates again. No
backup copy is needed, and none is made. A step that fails (a bug, a full disk) is rolled
back and raises ``MigrationFailed``, naming the version the data dir was left at.

A data dir newer than this code is never touched: ``node.store`` refuses it before anything
runs (``SchemaTooNew``), since an older swarmlist cannot know what a newer one stored.

The versions:

1. ``meta(key, value)``; ``records(seq, key, body)`` — the grow-only set, in arrival order.
2. ``records.kind`` (``record_kind``: ``entry``, ``observation``, ``plan``, ``verdict``,
   ``usage``…; ``''`` for a body that does not decode) and the index
   ``records_by_kind(kind, seq)``: the record kinds become countable and selectable without
   decoding every body. ``Store.count_by_kind`` uses it (the startup line says what a data
   dir holds), and it is the access path that spending totals (one usage record per call)
   and the retention of old observation detail need. The step decodes each stored body once
   to fill the column.

3. ``observation_detail(call_key, hlc, body)`` (``detail_row``) and the index ``observation_detail_by_hlc``:
   an observation record keeps only its counts (the entry each item resolved to, and how),
   and what the model wrote moves beside it, where the retention policy can drop it. The step
   rewrites every observation record in the counts-only encoding (its key changes with it:
   protocol version 3 speaks only the new one) and moves its texts and scores to the new table.

Adding version 4 = append a ``Migration(4, ...)`` to ``MIGRATIONS``, change
``SCHEMA_STATEMENTS`` to what a fresh database should look like, and extend
``_unstamped_version``; tests/node/test_migrations.py checks that a migrated database and a
fresh one have the same tables, columns and indexes.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack

from node.codec import RecordDecodeError, decode_record, encode_detail, encode_record, record_key
from node.errors import NodeError
from node.records import ItemDetail, MatchKind, ObservationDetail, ObservationRecord, ObservedItem, Record

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_STATEMENTS",
    "Migration",
    "MIGRATIONS",
    "MigrationFailed",
    "migrate_forward",
    "stored_version",
    "record_kind",
    "detail_row",
    "stored_stamp",
]

log = logging.getLogger(__name__)

_BATCH_ROWS = 2000  # rows read and updated at a time by a step that rewrites every record


def record_kind(record: Record) -> str:
    """The ``records.kind`` of a record: its class's name without "Record", in lower case
    (``EntryRecord`` → ``entry``), so that a kind added to ``node.records`` has one at once."""
    return type(record).__name__.removesuffix("Record").lower()


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: ``apply`` turns a database of version ``to_version - 1`` into one of ``to_version``.

    ``apply`` runs inside the step's transaction and must not commit (no ``executescript``,
    which commits first); the version is stamped by ``migrate_forward``, not by the step.
    """

    to_version: int
    summary: str  # for the log line, e.g. "records.kind and its index"
    apply: Callable[[sqlite3.Connection], None]


class MigrationFailed(NodeError):
    """A schema migration failed and was rolled back: the data dir is at the version the message names."""


def _add_record_kinds(connection: sqlite3.Connection) -> None:
    """Version 1 → 2: ``records.kind``, filled from each body, and the index ``records_by_kind``."""
    connection.execute("ALTER TABLE records ADD COLUMN kind TEXT NOT NULL DEFAULT ''")
    last_seq = 0
    while True:
        rows = connection.execute(
            "SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (last_seq, _BATCH_ROWS)
        ).fetchall()
        if not rows:
            break
        connection.executemany("UPDATE records SET kind = ? WHERE seq = ?",
                               [(_kind_of_body(bytes(body)), seq) for seq, body in rows])  # fmt: skip
        last_seq = rows[-1][0]
    connection.execute("CREATE INDEX records_by_kind ON records(kind, seq)")


def _kind_of_body(body: bytes) -> str:
    try:
        return record_kind(decode_record(body))
    except RecordDecodeError:
        if _version_2_observation(body) is not None:  # the next step rewrites it
            return "observation"
        return ""  # left for loading to report as corruption, naming the file, as before


_DETAIL_TABLE = """CREATE TABLE IF NOT EXISTS observation_detail (
        call_key TEXT PRIMARY KEY,              -- BLAKE2b-128 of the observation's (node, call, hlc)
        hlc INTEGER NOT NULL,                   -- the observation's stamp (capped to SQLite's integers)
        body BLOB NOT NULL                      -- node.codec.encode_detail
    )"""
_DETAIL_INDEX = "CREATE INDEX IF NOT EXISTS observation_detail_by_hlc ON observation_detail(hlc)"
_SQLITE_MAX_INTEGER = 2**63 - 1  # a stamp may use all 64 bits; SQLite's integers are signed


def detail_row(detail: ObservationDetail) -> tuple[str, int, bytes]:
    """``observation_detail``'s row for ``detail``: its call key, capped stamp and encoding.

    The key is a hash because call numbers and stamps may use all 64 bits (a peer's record is
    valid with them), past what SQLite's signed integers hold; only the stamp is kept as a
    number, capped — a stamp that far in the future is never old enough to drop anyway.
    """
    call_key = hashlib.blake2b(msgpack.packb(list(detail.call_id)), digest_size=16).hexdigest()
    return call_key, stored_stamp(detail.hlc), encode_detail(detail)


def stored_stamp(hlc: int) -> int:
    """A hybrid-clock stamp as ``observation_detail.hlc`` holds it (capped to SQLite's integers)."""
    return min(hlc, _SQLITE_MAX_INTEGER)


_V2_MATCH_KINDS = (MatchKind.NEW, MatchKind.EXACT, MatchKind.FUZZY)  # version 2's match codes


def _split_observation_detail(connection: sqlite3.Connection) -> None:
    """Version 2 → 3: observation records counts-only (re-keyed), their detail in ``observation_detail``."""
    connection.execute(_DETAIL_TABLE)
    connection.execute(_DETAIL_INDEX)
    last_seq = 0
    while True:
        rows = connection.execute(
            "SELECT seq, body FROM records WHERE kind = 'observation' AND seq > ? ORDER BY seq LIMIT ?",
            (last_seq, _BATCH_ROWS),
        ).fetchall()
        if not rows:
            break
        for seq, body in rows:
            record = _version_2_observation(bytes(body))
            if record is None:  # left as it was, for loading to report as corruption, naming the file
                continue
            counts = encode_record(record)
            try:
                connection.execute("UPDATE records SET key = ?, body = ? WHERE seq = ?", (record_key(counts), counts, seq))
            except sqlite3.IntegrityError:  # two calls that differed only in their texts: one record now
                connection.execute("DELETE FROM records WHERE seq = ?", (seq,))
            detail = ObservationDetail.of(record)
            assert detail is not None  # a version-2 body always had its texts
            connection.execute("INSERT OR IGNORE INTO observation_detail(call_key, hlc, body) VALUES (?, ?, ?)",
                               detail_row(detail))  # fmt: skip
        last_seq = rows[-1][0]


def _version_2_observation(body: bytes) -> ObservationRecord | None:
    """A version-2 observation body, ``[2, node, call, partition, hlc, [[text, entry_id, match, score]…]]``,
    as a record with its detail; None if it is not one (the store validated it when it came in)."""
    try:
        kind, node, call, partition, hlc, raw_items = msgpack.unpackb(body, raw=False)
        items = tuple(ObservedItem(entry_id=entry, match=_V2_MATCH_KINDS[code]) for _, entry, code, _ in raw_items)
        detail = tuple(ItemDetail(text=text, score=float(score)) for text, _, _, score in raw_items)
        record = ObservationRecord(node=node, call=call, partition=partition, hlc=hlc, items=items, detail=detail)
        decode_record(encode_record(record))  # the counts must be a valid record of this version
    except (ValueError, TypeError, IndexError, RecordDecodeError, msgpack.UnpackException):
        return None
    return record if kind == 2 else None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "records.kind and its index records_by_kind", _add_record_kinds),
    Migration(3, "observation detail beside the records, observations counts-only", _split_observation_detail),
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)

SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- local arrival order
        key TEXT NOT NULL UNIQUE,               -- BLAKE2b-128 of body
        body BLOB NOT NULL,                     -- canonical record encoding (node.codec)
        kind TEXT NOT NULL DEFAULT ''           -- record_kind(): entry, observation, plan, verdict, usage...
    )""",
    "CREATE INDEX IF NOT EXISTS records_by_kind ON records(kind, seq)",
    _DETAIL_TABLE,
    _DETAIL_INDEX,
)


def stored_version(connection: sqlite3.Connection) -> int | None:
    """The schema version of the database ``connection`` holds; None if it has no records table yet."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "records" not in tables:
        return None
    if "meta" in tables:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
    return _unstamped_version(connection)


def _unstamped_version(connection: sqlite3.Connection) -> int:
    """The version of a database whose first start was killed after its tables were created but
    before its ``meta`` was written (swarmlist 1 created them in separate transactions). It
    holds no records — they come only after a start completes — so its shape tells its version."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "observation_detail" in tables:
        return 3
    columns = {row[1] for row in connection.execute("PRAGMA table_info(records)")}
    return 2 if "kind" in columns else 1


def migrate_forward(
    connection: sqlite3.Connection,
    db_path: Path,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the database to the last version of ``migrations``, one committed step at a time.

    Returns the version it found; a database without tables counts as current (the caller
    creates them with ``SCHEMA_STATEMENTS``). ``connection`` must be in autocommit mode
    (``isolation_level=None``) and outside a transaction. Raises ``MigrationFailed`` if a
    step fails — that step rolled back, the earlier ones kept — or if the database is newer
    than ``migrations`` know.
    """
    latest = 1 + len(migrations)
    found = stored_version(connection)
    if found is None:
        return latest
    if found > latest:
        raise MigrationFailed(f"{db_path} has schema version {found}, newer than this swarmlist's {latest}; "
                              "upgrade swarmlist")  # fmt: skip
    version = found
    for migration in migrations[version - 1 :]:
        _run_step(connection, db_path, version, migration)
        version = migration.to_version
    return found


def _run_step(connection: sqlite3.Connection, db_path: Path, version: int, migration: Migration) -> None:
    if migration.to_version != version + 1:
        raise MigrationFailed(f"migration registry out of order: step to {migration.to_version} after {version}")
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    try:
        migration.apply(connection)
        connection.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                           (str(migration.to_version),))  # fmt: skip
        connection.execute("COMMIT")
    except BaseException as exc:
        if connection.in_transaction:
            try:
                connection.execute("ROLLBACK")
            except sqlite3.Error:  # a failing disk may refuse it; an uncommitted WAL transaction is void anyway
                pass
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, cancellation: rolled back all the same
        raise MigrationFailed(
            f"migrating {db_path} from schema version {version} to {migration.to_version} ({migration.summary}) "
            f"failed: {type(exc).__name__}: {exc}; rolled back, the data dir is unchanged at version {version} "
            "(fix the cause, e.g. free disk space, and start again)"
        ) from exc
    log.info("migrated %s from schema version %d to %d (%s) in %.2f s",
             db_path, version, migration.to_version, migration.summary, time.perf_counter() - started)  # fmt: skip
