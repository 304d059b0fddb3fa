"""The global list as files: JSON lines, CSV and plain text; and the atomic ``list.jsonl`` writer.

Every format is rendered from the ``GlobalList`` in its order, with each line's status; rejected
lines (verified not real) are left out. Two nodes holding the same set write byte-identical
files. ``ListFileWriter`` rewrites ``DATA_DIR/list.jsonl`` atomically
(write a temp file in the same directory, fsync, rename over, fsync the directory): a reader
sees the old file or the new one, never half of one. Rewrites are debounced — many changes in
a burst cost one write — and the last change is always written on ``flush``/``aclose``. A
rewrite cut short by a kill leaves its temp file behind; the next writer on the directory
removes such leftovers before its first write (one node per data dir: the store's lock).
A write the disk refuses (full, read-only) leaves the old file whole and no temp file behind;
it is logged once, retried with a growing pause while the disk refuses, and the next write
that succeeds is logged too: the list file is a copy of the database, never the only one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from node.aio import first_of
from node.global_list import GlobalList, ListEntry

__all__ = [
    "entry_json", "iter_jsonl", "iter_csv", "iter_txt", "ListFileWriter", "LIST_FILENAME", "EXPORT_FORMATS", "StatusOf",
]  # fmt: skip

log = logging.getLogger(__name__)

LIST_FILENAME = "list.jsonl"
EXPORT_FORMATS = ("jsonl", "csv", "txt")
_RETRY_MAX_S = 30.0  # longest pause between attempts while the disk refuses the list file

StatusOf = Callable[[ListEntry], str]
"""A line's status (``node.evidence``); rejected lines are left out of every file."""


def _unverified(line: ListEntry) -> str:
    return "unconfirmed"


def _listed(entries: GlobalList, status: StatusOf) -> Iterator[tuple[ListEntry, str]]:
    for line in entries:
        value = status(line)
        if value != "rejected":
            yield line, value


def entry_json(line: ListEntry, status: str = "unconfirmed") -> dict[str, object]:
    """One list line as the API and ``list.jsonl`` show it."""
    record = line.record
    return {
        "id": record.id,
        "text": record.text,
        "partition": record.partition,
        "origin": record.origin,
        "hlc": record.hlc,
        "aliases": [alias.text for alias in line.aliases],
        "status": status,
    }


def iter_jsonl(entries: GlobalList, status: StatusOf = _unverified) -> Iterator[str]:
    for line, value in _listed(entries, status):
        yield json.dumps(entry_json(line, value), ensure_ascii=False, separators=(",", ":")) + "\n"


def iter_csv(entries: GlobalList, status: StatusOf = _unverified) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "aliases", "partition", "id", "origin", "hlc", "status"])
    for line, value in _listed(entries, status):
        record = line.record
        aliases = "; ".join(alias.text for alias in line.aliases)
        # A leading =, +, - or @ would make a spreadsheet run the cell as a formula: entries are
        # LLM output, so neutralise it (OWASP CSV injection).
        cells = [_csv_safe(record.text), _csv_safe(aliases), _csv_safe(record.partition),
                 record.id, _csv_safe(record.origin), str(record.hlc), value]  # fmt: skip
        writer.writerow(cells)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _csv_safe(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def iter_txt(entries: GlobalList, status: StatusOf = _unverified) -> Iterator[str]:
    for line, _ in _listed(entries, status):
        yield line.record.text.replace("\n", " ") + "\n"


class ListFileWriter:
    """Keeps ``DATA_DIR/list.jsonl`` current; call ``changed()`` whenever the list changes."""

    def __init__(
        self, entries: GlobalList, data_dir: Path, *, debounce_s: float = 1.0, status: StatusOf = _unverified
    ) -> None:
        self._entries = entries
        self._status = status
        self._path = data_dir / LIST_FILENAME
        self._debounce_s = debounce_s
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._write_lock = asyncio.Lock()  # one write at a time, never cancelled mid-way
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._swept = False  # temp files left by a killed writer removed (once, before the first write)
        self.writes = 0
        self.failures = 0  # consecutive writes the disk refused (0 once one succeeds)

    def __repr__(self) -> str:
        return f"<ListFileWriter {self._path} writes={self.writes} dirty={self._dirty.is_set()}>"

    @property
    def path(self) -> Path:
        return self._path

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="list-file-writer")

    def changed(self) -> None:
        self._dirty.set()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await first_of(self._dirty.wait(), self._stopping.wait())
            # Debounce: gather the rest of a burst of changes into this one write.
            await first_of(asyncio.sleep(self._debounce_s), self._stopping.wait())
            await self.flush()
            if self.failures:  # the disk refused: wait longer before each new attempt, don't spin
                pause_s = min(_RETRY_MAX_S, self._debounce_s * 2.0**self.failures)
                await first_of(asyncio.sleep(pause_s), self._stopping.wait())

    async def flush(self) -> None:
        """Write the file now if anything changed since the last write (a refused write is logged,
        not raised: the file stays as it was and is written again later)."""
        async with self._write_lock:
            if not self._swept:
                self._swept = True
                await asyncio.to_thread(_remove_leftover_temporaries, self._path)
            if not self._dirty.is_set() and self._path.exists():
                return
            self._dirty.clear()
            content = "".join(iter_jsonl(self._entries, self._status))  # rendered on the loop: a consistent snapshot
            try:
                await asyncio.to_thread(_write_atomically, self._path, content)
            except OSError as exc:
                self._dirty.set()  # still to be written
                self.failures += 1
                if self.failures == 1:
                    log.error("cannot write %s (%s); it is written again once the disk accepts it "
                              "(the records are safe in the database)", self._path, exc.strerror or exc)  # fmt: skip
                return
            if self.failures:
                log.info("%s written again after %d refused attempt(s)", self._path, self.failures)
                self.failures = 0
            self.writes += 1

    async def aclose(self) -> None:
        """Write any pending change and stop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.flush()


def _remove_leftover_temporaries(path: Path) -> None:
    """Delete temp files of ``path`` that rewrites cut short by a kill left (``.list.jsonl.<pid>.tmp``)."""
    prefix, suffix = f".{path.name}.", ".tmp"
    for leftover in path.parent.glob(f"{prefix}*{suffix}"):
        if leftover.name.removeprefix(prefix).removesuffix(suffix).isdigit():
            try:
                leftover.unlink(missing_ok=True)
            except OSError as exc:  # best effort (a read-only disk): litter must not stop the list file
                log.warning("cannot remove %s, left by a list rewrite that was cut short: %s", leftover, exc)
            else:
                log.info("removed %s, left by a list rewrite that was cut short", leftover)


def _write_atomically(path: Path, content: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a half-written temp file must not keep a full disk full
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
