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
the same directory is refused by an exclusive lock on ``DATA_DIR/lock``.
"""

from __future__ import annotations

import asyncio
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

from node.codec import RecordDecodeError, decode_record, encode_record, record_key
from node.errors import NodeError
from node.records import Record

__all__ = [
    "Store",
    "NodeIdentity",
    "StoreError",
    "DataDirLocked",
    "TopicMismatch",
    "SchemaTooNew",
    "CorruptStore",
    "SCHEMA_VERSION",
    "DB_FILENAME",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_FILENAME = "swarmlist.db"
_LOCK_FILENAME = "lock"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- local arrival order
    key TEXT NOT NULL UNIQUE,               -- BLAKE2b-128 of body
    body BLOB NOT NULL                      -- canonical record encoding (node.codec)
);
"""


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
        lock_file = open(path / _LOCK_FILENAME, "a+", encoding="utf-8")  # noqa: SIM115 - held for the store's life
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
            connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            connection.close()
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
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            for key, value in (
                ("schema_version", str(SCHEMA_VERSION)),
                ("topic", topic),
                ("node_name", name),
                ("incarnation", str(incarnation)),
            ):
                connection.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return connection, NodeIdentity(name, incarnation)

    @staticmethod
    def _check_existing(connection: sqlite3.Connection, db_path: Path, topic: str) -> None:
        """Validate a database found on disk before writing anything to it."""
        status = connection.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {status}")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "records"} <= tables:
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

        def write() -> list[Record]:
            added: list[Record] = []
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for record, body in encoded:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO records(key, body) VALUES (?, ?)", (record_key(body), body)
                    )
                    if cursor.rowcount:
                        added.append(record)
            return added

        added = await self._run(write)
        self._count += len(added)
        return added

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

        await self._run(write)

    async def load_keyed(self) -> list[tuple[bytes, Record]]:
        """Every stored record with its 16-byte key, in local arrival order."""

        def read() -> list[tuple[bytes, Record]]:
            rows = self._db.execute("SELECT key, body FROM records ORDER BY seq").fetchall()
            try:
                return [(bytes.fromhex(key), decode_record(bytes(body))) for key, body in rows]
            except RecordDecodeError as exc:
                raise CorruptStore(f"{self._data_dir / DB_FILENAME} holds an undecodable record: {exc}") from exc

        return await self._run(read)

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
