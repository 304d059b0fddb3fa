"""Durable node state in SQLite: the replicated records, identity, topic, schema version.

One SQLite file (``DATA_DIR/swarmlist.db``) in WAL mode with ``synchronous=FULL``: a record
counts as acknowledged — shown, exported, gossiped — only once the transaction that wrote it
has committed, so a node killed with SIGKILL restarts with everything it acknowledged.
All SQLite work runs on one dedicated thread (a connection belongs to one thread), off the
event loop — except in *inline* mode, for simulations on a virtual clock (``gossip-sim``):
there it runs on the loop's own thread, so the order in which many nodes' commits complete
cannot depend on thread timing and a seed reproduces a run exactly. A simulation's stores may
also be *non-durable* (``synchronous=NORMAL``): in WAL mode a commit then survives a process
crash — the only crash a simulation emulates — but not a power loss, and costs ~70 µs instead
of an fsync's milliseconds. Records are stored as their canonical encoding under their content key; the set
is grow-only, so an insert of a known key is a no-op and merging is idempotent.

Opening refuses, and overwrites nothing, when the directory holds another topic, a schema
newer than this code, or a file that is not a healthy swarmlist database; a second node on
the same directory is refused by an exclusive lock on ``DATA_DIR/lock`` (an ``flock``: the
kernel releases it when its holder dies, so a killed node's lock never blocks its restart).
A kill during the very first start can leave a database without tables (the schema is
created in one transaction, after the file's header): that one holds nothing and is finished.

A data dir written by an older swarmlist is migrated forward first (``node.migrations``: one
transaction per version, so a kill mid-migration leaves the old version intact and the next
start migrates again); a failed step raises ``MigrationFailed`` and changes nothing.

A commit the disk refuses — full (``DiskFull``), read-only (``StoreReadOnly``), failing
(``StoreWriteError``) — raises, stores nothing of its transaction and leaves the store usable:
what was committed before stays readable, and a later commit succeeds once the disk has room
or is writable again (``check_writable`` asks without committing a record).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from node.codec import RecordDecodeError, decode_detail, decode_record, encode_record, record_key
from node.errors import NodeError
from node.migrations import (
    SCHEMA_STATEMENTS, SCHEMA_VERSION, MigrationFailed, detail_row, migrate_forward, record_kind, stored_stamp,
)  # fmt: skip
from node.records import ObservationDetail, ObservationRecord, Record

__all__ = [
    "Store",
    "NodeIdentity",
    "StoreError",
    "DataDirLocked",
    "TopicMismatch",
    "SchemaTooNew",
    "CorruptStore",
    "StoreWriteError",
    "DiskFull",
    "StoreReadOnly",
    "MigrationFailed",
    "SCHEMA_VERSION",
    "DB_FILENAME",
    "WRITE_HEADROOM_BYTES",
]

log = logging.getLogger(__name__)

DB_FILENAME = "swarmlist.db"
_LOCK_FILENAME = "lock"
WRITE_HEADROOM_BYTES = 1 << 20  # free space ``check_writable`` wants before it reports the disk writable again
_T = TypeVar("_T")

class StoreError(NodeError):
    """The data directory cannot be used; the message says why and what to do."""


class DataDirLocked(StoreError):
    """Another process holds the data directory."""


class TopicMismatch(StoreError):
    """The data directory belongs to another topic."""


class SchemaTooNew(StoreError):
    """The data directory was written by a newer swarmlist."""


class CorruptStore(StoreError):
    """The database file is damaged or is not a swarmlist database."""


class StoreWriteError(StoreError):
    """The disk refused a commit: nothing of that transaction was stored, what was committed
    before is intact, and the same commit may succeed later (after room is made, a remount)."""


class DiskFull(StoreWriteError):
    """The file system holding the data dir is full."""


class StoreReadOnly(StoreWriteError):
    """The data dir is on a read-only file system (mounted so, or remounted after disk errors)."""


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is across restarts; the incarnation grows by one at every start."""

    name: str
    incarnation: int


def default_node_name() -> str:
    """``<hostname>-<4 hex>``: readable in logs, unique enough across a cluster."""
    host = socket.gethostname().split(".")[0][:40] or "node"
    return f"{host}-{secrets.token_hex(2)}"


class Store:
    """Use ``await Store.open(...)``; then ``add``/``load_records``; ``aclose`` when done."""

    def __init__(self, data_dir: Path, connection: sqlite3.Connection, lock_file: IO[str],
                 executor: ThreadPoolExecutor | None, identity: NodeIdentity, topic: str) -> None:  # fmt: skip
        self._data_dir = data_dir
        self._db = connection
        self._lock_file = lock_file
        self._executor = executor
        self._identity = identity
        self._topic = topic
        self._closed = False
        self._count = 0

    def __repr__(self) -> str:
        return f"<Store {self._data_dir} node={self._identity.name} records={self._count}>"

    @property
    def identity(self) -> NodeIdentity:
        return self._identity

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @classmethod
    async def open(
        cls,
        data_dir: Path | str,
        *,
        topic: str,
        node_name: str | None = None,
        inline: bool = False,
        durable: bool = True,
    ) -> Store:
        """Open (or create) the store in ``data_dir`` for ``topic``; bumps the incarnation.

        ``inline``: run SQLite on the calling thread (the event loop's): deterministic under a
        virtual clock, but every call blocks the loop — for simulations, not for real nodes.
        ``durable=False``: commits survive a process crash, not a power loss (see the module
        docstring) — for simulations.
        """
        path = Path(data_dir)
        if inline:
            return cls._open_sync(path, topic, node_name, None, durable)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarmlist-store")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, cls._open_sync, path, topic, node_name, executor, durable)
        except BaseException:
            executor.shutdown(wait=False)
            raise

    @classmethod
    def _open_sync(cls, path: Path, topic: str, node_name: str | None, executor: ThreadPoolExecutor | None,
                   durable: bool) -> Store:  # fmt: skip
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data dir {path}: {exc.strerror or exc}") from exc
        try:
            lock_file = open(path / _LOCK_FILENAME, "a+", encoding="utf-8")  # noqa: SIM115 - held for the store's life
        except OSError as exc:
            raise _unwritable(path, f"cannot open {path / _LOCK_FILENAME}: {exc.strerror or exc}",
                              read_only=exc.errno == errno.EROFS) from exc
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise DataDirLocked(
                f"data dir {path} is in use by {holder}; stop that node or choose another --data-dir"
            ) from exc
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        try:
            connection, identity = cls._open_db(path / DB_FILENAME, topic, node_name, durable)
        except BaseException:
            lock_file.close()
            raise
        store = cls(path, connection, lock_file, executor, identity, topic)
        store._count = connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        log.info("data dir %s (schema version %d): %s", path, SCHEMA_VERSION,
                 _describe_kinds(_count_by_kind(connection)))  # fmt: skip
        return store

    @staticmethod
    def _open_db(db_path: Path, topic: str, node_name: str | None,
                 durable: bool) -> tuple[sqlite3.Connection, NodeIdentity]:  # fmt: skip
        existed = db_path.exists() and db_path.stat().st_size > 0
        try:
            connection = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise CorruptStore(f"cannot open {db_path}: {exc}") from exc
        try:
            if existed:
                Store._check_existing(connection, db_path, topic)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            migrate_forward(connection, db_path)  # an older data dir's schema, brought to SCHEMA_VERSION
            with connection:  # one transaction: a kill leaves no tables or all of them, never half
                connection.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA_STATEMENTS:
                    connection.execute(statement)
        except sqlite3.DatabaseError as exc:
            connection.close()
            refused = _write_failure(exc, db_path)
            if isinstance(refused, DiskFull | StoreReadOnly):  # the disk's fault, not the file's
                raise refused from exc
            raise CorruptStore(
                f"{db_path} is not a healthy swarmlist database ({exc}); move it aside to start afresh"
            ) from exc
        except BaseException:
            connection.close()
            raise
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        name = meta.get("node_name") or node_name or default_node_name()
        if node_name and meta.get("node_name") and node_name != meta["node_name"]:
            log.warning("data dir belongs to node %s; ignoring requested name %s", meta["node_name"], node_name)
        incarnation = int(meta.get("incarnation", "0")) + 1
        try:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                for key, value in (
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("topic", topic),
                    ("node_name", name),
                    ("incarnation", str(incarnation)),
                ):
                    connection.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            connection.close()
            raise _write_failure(exc, db_path) from exc
        return connection, NodeIdentity(name, incarnation)

    @staticmethod
    def _check_existing(connection: sqlite3.Connection, db_path: Path, topic: str) -> None:
        """Validate a database found on disk before writing anything to it."""
        status = connection.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {status}")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "records"} <= tables:
            if Store._schema_unfinished(connection, tables):
                log.info("%s holds no records yet (a first start was cut short); creating its tables", db_path)
                return
            raise sqlite3.DatabaseError("missing swarmlist tables")
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            connection.close()
            raise SchemaTooNew(
                f"{db_path} has schema version {version}, newer than this swarmlist's {SCHEMA_VERSION}; upgrade swarmlist"
            )
        stored_topic = meta.get("topic")
        if stored_topic is not None and stored_topic != topic:
            connection.close()
            raise TopicMismatch(
                f"data dir {db_path.parent} holds topic {stored_topic!r}, not {topic!r}; use another --data-dir"
            )

    @staticmethod
    def _schema_unfinished(connection: sqlite3.Connection, tables: set[str]) -> bool:
        """A database a first start was killed in before its schema committed: setting WAL mode
        writes the file's header first, so it holds no tables — or, written by an older
        swarmlist that created its tables one by one, only an empty ``meta``. Nothing in it to
        keep or to overwrite; anything else missing our tables is not ours and is refused."""
        if not tables:
            return True
        return tables == {"meta"} and connection.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0

    async def _run(self, function: Callable[[], _T]) -> _T:
        if self._closed:
            raise StoreError("store is closed")
        if self._executor is None:  # inline mode
            return function()
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def add(self, records: Sequence[Record]) -> list[Record]:
        """Commit ``records`` in one transaction; returns those that were not stored before.

        When this returns, the returned records are durable (acknowledged).
        """
        if not records:
            return []
        encoded = [(record, encode_record(record)) for record in records]
        details = [detail for record in records if isinstance(record, ObservationRecord)
                   if (detail := ObservationDetail.of(record)) is not None]  # fmt: skip

        def write() -> list[Record]:
            added: list[Record] = []
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for record, body in encoded:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO records(key, body, kind) VALUES (?, ?, ?)",
                        (record_key(body), body, record_kind(record)),
                    )
                    if cursor.rowcount:
                        added.append(record)
                self._insert_details(details)  # with their records: a crash keeps both or neither
            return added

        added = await self._run(self._guarded(write))
        self._count += len(added)
        return added

    def _insert_details(self, details: Sequence[ObservationDetail]) -> list[ObservationDetail]:
        added: list[ObservationDetail] = []
        for detail in details:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO observation_detail(call_key, hlc, body) VALUES (?, ?, ?)", detail_row(detail)
            )
            if cursor.rowcount:
                added.append(detail)
        return added

    async def add_details(self, details: Sequence[ObservationDetail]) -> list[ObservationDetail]:
        """Keep observations' detail (from peers) in one transaction; returns those not kept before.

        Detail is not a record of the set; the caller keeps only detail that fits an observation
        it holds (``NodeState.fits``).
        """
        if not details:
            return []

        def write() -> list[ObservationDetail]:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                return self._insert_details(details)

        return await self._run(self._guarded(write))

    async def prune_details(self, before_hlc: int) -> int:
        """Drop the detail of observations stamped before ``before_hlc`` (the retention policy);
        returns how many were dropped. The records and their counts stay: the set is unchanged."""

        def write() -> int:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute("DELETE FROM observation_detail WHERE hlc < ?", (stored_stamp(before_hlc),))
                return int(cursor.rowcount)

        return await self._run(self._guarded(write))

    async def count_details(self) -> int:
        """Observations whose detail is kept."""
        return await self._run(lambda: int(self._db.execute("SELECT COUNT(*) FROM observation_detail").fetchone()[0]))

    async def load_records(self) -> list[Record]:
        """Every stored record, in local arrival order."""
        return [record for _, record in await self.load_keyed()]

    async def save_incarnation(self, incarnation: int) -> None:
        """Remember an incarnation the node reached while running (refutations raise it), so the
        next start begins above it: a restarted node must outrank rumours of its old self."""

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'incarnation' AND CAST(value AS INTEGER) < ?",
                    (str(incarnation), incarnation),
                )

        await self._run(self._guarded(write))

    async def check_writable(self) -> None:
        """Raise ``StoreWriteError`` while the disk still refuses commits — how a paused producer
        asks without spending an LLM call: the file system must be writable with at least
        ``WRITE_HEADROOM_BYTES`` free, and a tiny commit (a ``meta`` row, no record) must succeed.

        The headroom matters: after a commit failed on a full disk, the space its WAL frames
        took is reused by the next commit, so a tiny write succeeds where a real one would not.
        """

        def write() -> None:
            refused = _unwritable(self._data_dir, f"cannot commit to {self._data_dir / DB_FILENAME}",
                                  headroom_bytes=WRITE_HEADROOM_BYTES)  # fmt: skip
            if isinstance(refused, DiskFull | StoreReadOnly):
                raise refused
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('write_check', ?)",
                                 (secrets.token_hex(4),))  # fmt: skip

        await self._run(self._guarded(write))

    def _guarded(self, write: Callable[[], _T]) -> Callable[[], _T]:
        """``write`` with the disk's refusals translated (``_write_failure``) and its transaction
        rolled back, so the connection is ready for the next commit."""

        def guarded() -> _T:
            try:
                return write()
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    try:
                        self._db.rollback()
                    except sqlite3.Error:  # a failing disk may refuse the rollback too; SQLite recovers on the next BEGIN
                        pass
                raise _write_failure(exc, self._data_dir / DB_FILENAME) from exc

        return guarded

    async def load_keyed(self) -> list[tuple[bytes, Record]]:
        """Every stored record with its 16-byte key, in local arrival order."""

        def read() -> list[tuple[bytes, Record]]:
            rows = self._db.execute("SELECT key, body FROM records ORDER BY seq").fetchall()
            try:
                keyed = [(bytes.fromhex(key), decode_record(bytes(body))) for key, body in rows]
            except RecordDecodeError as exc:
                raise CorruptStore(f"{self._data_dir / DB_FILENAME} holds an undecodable record: {exc}") from exc
            details = self._details_by_call()
            return [(key, _with_detail(record, details)) for key, record in keyed]

        return await self._run(read)

    def _details_by_call(self) -> dict[tuple[str, int, int], ObservationDetail]:
        found: dict[tuple[str, int, int], ObservationDetail] = {}
        for (body,) in self._db.execute("SELECT body FROM observation_detail"):
            try:
                detail = decode_detail(bytes(body))
            except RecordDecodeError as exc:  # only detail: the records are whole, so say so and go on
                log.warning("%s: ignoring an undecodable observation detail: %s", self._data_dir / DB_FILENAME, exc)
                continue
            found[detail.call_id] = detail
        return found

    async def bodies(self, keys: Sequence[bytes]) -> list[bytes]:
        """The encoded records stored under ``keys`` (16 raw bytes each); unknown keys are left out."""
        wanted = [key.hex() for key in keys]

        def read() -> list[bytes]:
            found: list[bytes] = []
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT body FROM records WHERE key IN ({marks})", chunk).fetchall()
                found.extend(bytes(row[0]) for row in rows)
            return found

        return await self._run(read) if wanted else []

    async def count(self) -> int:
        return await self._run(lambda: int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]))

    async def count_by_kind(self) -> dict[str, int]:
        """Stored records per kind (``node.migrations.record_kind``), from the index: no body is decoded."""
        return await self._run(lambda: _count_by_kind(self._db))

    async def aclose(self) -> None:
        """Close the database and release the lock; safe to call twice."""
        if self._closed:
            return

        def close() -> None:
            self._db.close()

        await self._run(close)
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._lock_file.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _unwritable(data_dir: Path, detail: str, *, headroom_bytes: int = 1, read_only: bool = False) -> StoreError:
    """The error for a data dir that refused a write: read-only or full (less than
    ``headroom_bytes`` free) when its file system says so, else a plain write error.

    A file system the kernel turned read-only after disk errors may not say so in its mount
    flags (ext4's ``emergency_ro``), so touching the lock file — ours, and there once the store
    is open — asks it directly: EROFS means read-only.
    """
    try:
        fs = os.statvfs(data_dir)
        if not read_only and not fs.f_flag & os.ST_RDONLY and (data_dir / _LOCK_FILENAME).exists():
            os.utime(data_dir / _LOCK_FILENAME)
    except OSError as exc:
        read_only = read_only or exc.errno == errno.EROFS
        if not read_only:
            return StoreWriteError(f"{detail}; check the disk holding {data_dir}")
    if read_only or fs.f_flag & os.ST_RDONLY:
        return StoreReadOnly(f"{detail}: {data_dir} is on a read-only file system; remount it read-write")
    if fs.f_bavail * fs.f_frsize < headroom_bytes:
        return DiskFull(f"{detail}: the disk holding {data_dir} is full; free some space")
    return StoreWriteError(f"{detail}; check the disk holding {data_dir}")


def _write_failure(exc: sqlite3.Error, db_path: Path) -> StoreError:
    """A failed SQLite write as the node's error: why the disk refused it, in one line.

    SQLite reports a full disk as SQLITE_FULL, but a file system that turned read-only under an
    open database as a read-only *or* an I/O error, and some full disks as I/O errors too: the
    file system's own flags tell which.
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = f"cannot commit to {db_path} ({exc})"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return CorruptStore(f"{db_path} is damaged ({exc}); move it aside to start afresh")
    if name == "SQLITE_FULL":
        return DiskFull(f"{detail}: the disk holding {db_path.parent} is full; free some space")
    if name.startswith(("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return _unwritable(db_path.parent, detail)
    return StoreWriteError(detail)


def _with_detail(record: Record, details: dict[tuple[str, int, int], ObservationDetail]) -> Record:
    """An observation with its kept detail attached. Only detail that fitted its record is ever
    stored (``NodeState.wants_detail``), so a start checks just the item count — not every
    text's entry id again, which would cost a normalisation per item ever generated."""
    if not isinstance(record, ObservationRecord):
        return record
    detail = details.get(record.call_id)
    if detail is None or len(detail.items) != len(record.items):
        return record
    return ObservationRecord(node=record.node, call=record.call, partition=record.partition, hlc=record.hlc,
                             items=record.items, detail=detail.items)  # fmt: skip


def _count_by_kind(connection: sqlite3.Connection) -> dict[str, int]:
    return dict(connection.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind ORDER BY kind").fetchall())


def _describe_kinds(counts: dict[str, int]) -> str:
    """"1,204 records (310 entry, 880 observation, 14 plan)" — what a data dir holds, for the startup line."""
    total = sum(counts.values())
    detail = ", ".join(f"{count:,} {kind or 'undecodable'}" for kind, count in counts.items())
    return f"{total:,} records ({detail})" if total else "no records yet"
