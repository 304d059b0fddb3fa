"""Disk trouble on real file systems (run as root): the store, the list file and the producer
in process, then a real ``gossip-node``.

- A damaged or foreign ``swarmlist.db`` → the node refuses to start: exit 3, one ``error:``
  line, the file byte-identical afterwards.
- A read-only data dir at start → the same refusal, and nothing under it changes.
- A full disk (a 1 MiB tmpfs) → production pauses with one clear log line and no spinning, the
  node keeps serving what it has, nothing committed is lost; with room again (remounted
  bigger) production resumes.
- A disk that turns read-only under the running node (ext4 ``errors=remount-ro`` after an
  error) → production pauses saying why; the node keeps serving; nothing committed is lost.

Mounts are unique per run and always unmounted (``tests.node.mounts``); every process is
stopped in a ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from node.cli import EXIT_DATA_DIR, EXIT_OK
from node.codec import decode_record, encode_record
from node.export import LIST_FILENAME, ListFileWriter, iter_jsonl
from node.hlc import HybridClock
from node.normalize import entry_id
from node.producer import Producer, ProducerConfig
from node.records import EntryRecord
from node.replication import RecordExchange
from node.state import NodeState
from node.store import DB_FILENAME, DiskFull, Store

from tests import suite_report
from tests.node.mounts import digest_tree, ext4_volume, force_read_only, refuses_writes, remount, tmpfs
from tests.node.conftest import make_backend
from tests.node.processes import GOSSIP_NODE, NodeProcess, eventually



@pytest.fixture(autouse=True)
def _root_required() -> None:
    """These tests mount file systems: without root they fail and say so (never skipped)."""
    if os.geteuid() != 0:
        pytest.fail(f"needs root to mount file systems (euid is {os.geteuid()}); run scripts/test.sh as root")

TOPIC = "countries of the world"
SECTION = "reliability: disk"
PAUSED = "production paused"
RESUMED = "production resumed"


def _entry(number: int) -> EntryRecord:
    return EntryRecord(id=entry_id(f"Place {number}"), text=f"Place {number}", partition="", origin="n1", hlc=number)


def _fill_disk(root: Path) -> Path:
    """Write a file under ``root`` until the file system is full; returns it (delete it to make room)."""
    filler = root / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


async def test_a_full_disk_refuses_a_commit_with_disk_full_and_keeps_what_was_committed() -> None:
    """``add`` on a full disk raises ``DiskFull`` and stores nothing; earlier records stay readable;
    ``check_writable`` says full until there is room, then commits succeed again."""
    with tmpfs("8m") as root:
        async with await Store.open(root / "data", topic=TOPIC) as store:
            await store.add([_entry(1), _entry(2)])
            filler = _fill_disk(root)
            with pytest.raises(DiskFull, match="is full"):
                for number in range(3, 500):  # the WAL's slack absorbs a few small commits first
                    await store.add([_entry(number)])
            committed = await store.count()
            with pytest.raises(DiskFull):
                await store.add([_entry(1000)])
            assert await store.count() == committed and (await store.load_records())[:2] == [_entry(1), _entry(2)]
            with pytest.raises(DiskFull):
                await store.check_writable()
            filler.unlink()
            await store.check_writable()
            assert await store.add([_entry(1000)]) == [_entry(1000)]
        async with await Store.open(root / "data", topic=TOPIC) as again:
            assert await again.count() == committed + 1


async def test_records_from_peers_on_a_full_disk_are_refused_with_one_line_and_taken_once_there_is_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Gossip keeps arriving while the disk is full: each merge stores nothing and returns
    nothing (peers keep the records; anti-entropy offers them again), one ERROR line for the
    whole episode, no exception into the gossip layer; with room again the same records merge."""
    with tmpfs("8m") as root:
        async with await Store.open(root / "data", topic=TOPIC) as store:
            state = NodeState()
            exchange = RecordExchange(store=store, state=state, clock=HybridClock())
            filler = _fill_disk(root)
            batches = [[encode_record(_entry(number * 10 + k)) for k in range(10)] for number in range(30)]
            with caplog.at_level(logging.WARNING, logger="node.replication"):
                refused = [await exchange.merge(batch) for batch in batches]
                assert refused == [[]] * len(batches) and state.entries.entry_count == 0
                assert await store.count() == 0 and exchange.refused_by_disk == 300
                errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
                assert len(errors) == 1 and "disk" in errors[0].getMessage(), errors
                filler.unlink()
                assert list(await exchange.merge(batches[0])) == batches[0]
            assert await store.count() == 10 and "again" in caplog.records[-1].getMessage()


async def test_the_list_file_writer_survives_a_full_disk_and_writes_once_there_is_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused rewrite keeps the old file whole, leaves no temp file, is logged once, and the
    next flush after room is made writes the current list."""
    with tmpfs("1m") as root:
        state = NodeState()
        state.apply(_entry(1))
        writer = ListFileWriter(state.entries, root, debounce_s=0.01)
        await writer.flush()
        before = (root / LIST_FILENAME).read_bytes()
        filler = _fill_disk(root)
        for number in range(2, 200):  # more than the file system's last free block can hold
            state.apply(_entry(number))
        with caplog.at_level(logging.ERROR, logger="node.export"):
            for _ in range(3):
                writer.changed()
                await writer.flush()
        assert writer.failures == 3 and (root / LIST_FILENAME).read_bytes() == before
        assert sorted(path.name for path in root.iterdir()) == ["filler", LIST_FILENAME]  # no temp file left
        assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
        filler.unlink()
        await writer.flush()
        await writer.aclose()
        assert writer.failures == 0 and (root / LIST_FILENAME).read_text() == "".join(iter_jsonl(state.entries))


async def test_the_producer_pauses_on_a_full_disk_without_calling_the_llm_and_resumes_with_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Commits fail: one ERROR line, no LLM call while paused, the store asked after 1, 2, 4 s;
    room made at the third ask: production resumes and spends its budget; nothing listed is lost."""
    with tmpfs("256k") as root:
        pause_asks: list[int] = []  # prompts sent so far, at each pause
        backend = make_backend()

        async def sleep(seconds: float) -> None:
            if seconds >= 1.0:  # a pause between asks of the store (no LLM faults: no other long sleep)
                pause_asks.append(len(backend.prompts))
                if len(pause_asks) == 3:
                    remount(root, "size=8m")

        async with await Store.open(root / "data", topic=TOPIC) as store:
            state = NodeState()
            producer = Producer(config=ProducerConfig(concurrency=2, max_calls=30), backend=backend, store=store,
                                state=state, clock=HybridClock(), topic=TOPIC, sleep=sleep)  # fmt: skip
            with caplog.at_level(logging.INFO, logger="node.producer"):
                reason = await producer.run(asyncio.Event())
            committed = {record.id for record in await store.load_records() if isinstance(record, EntryRecord)}
    messages = [record.getMessage() for record in caplog.records]
    assert "budget" in reason and producer.stats.store_pauses == 1
    assert len(pause_asks) == 3 and len(set(pause_asks)) == 1, pause_asks  # no prompt sent while paused
    assert len(backend.prompts) > pause_asks[0], "production resumed after the remount"
    assert sum("production paused" in m for m in messages) == 1 and sum("resumed" in m for m in messages) == 1
    assert {line.id for line in state.entries} <= committed


def _refusal(data_dir: Path) -> subprocess.Popen[str]:
    command = [GOSSIP_NODE, "--topic", TOPIC, "--data-dir", str(data_dir), "--port", "0", "--gossip-profile", "local"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _fill_store(data_dir: Path, topic: str, entries: int) -> None:
    """A healthy swarmlist data dir holding ``entries`` entries."""

    async def fill() -> None:
        async with await Store.open(data_dir, topic=topic) as store:
            await store.add([EntryRecord(id=entry_id(f"Place {i}"), text=f"Place {i}", partition="", origin="n1",
                                         hlc=i) for i in range(1, entries + 1)])  # fmt: skip

    asyncio.run(fill())


def _damaged_dirs(root: Path) -> dict[str, tuple[Path, str]]:
    """Data dirs whose ``swarmlist.db`` the node must refuse: name -> (dir, what the error says)."""
    rng = random.Random(20240613)
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, message: str) -> Path:
        path = root / name
        path.mkdir()
        cases[name] = (path, message)
        return path / DB_FILENAME

    case("random bytes", "not a healthy swarmlist database").write_bytes(rng.randbytes(16384))
    case("SQLite header, then garbage", "not a healthy swarmlist database").write_bytes(
        b"SQLite format 3\x00" + rng.randbytes(16368)
    )
    truncated = case("truncated database", "not a healthy swarmlist database")
    _fill_store(truncated.parent, TOPIC, 3000)
    os.truncate(truncated, truncated.stat().st_size // 2)
    other_app = case("another application's SQLite file", "missing swarmlist tables")
    with sqlite3.connect(other_app) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT NOT NULL)")
        db.executemany("INSERT INTO photos(path) VALUES (?)", [(f"img{i}.jpg",) for i in range(100)])
    db.close()
    other_topic = case("another topic's data dir", "holds topic 'rivers of the world'")
    _fill_store(other_topic.parent, "rivers of the world", 50)
    return cases


@pytest.mark.slow
def test_a_damaged_or_foreign_database_is_refused_by_the_node_and_left_byte_identical(tmp_path: Path) -> None:
    """Random bytes, a garbage file with SQLite's header, a truncated database, another app's
    SQLite file, another topic's dir: exit 3, one ``error:`` line saying why, the file unchanged."""
    cases = _damaged_dirs(tmp_path)
    before = {name: digest_tree(path) for name, (path, _) in cases.items()}
    started = time.perf_counter()
    processes = {name: _refusal(path) for name, (path, _) in cases.items()}  # concurrently: startup dominates
    outcomes = {name: process.communicate(timeout=120) for name, process in processes.items()}
    elapsed_s = time.perf_counter() - started
    findings = []
    for name, (path, message) in cases.items():
        _, stderr = outcomes[name]
        errors = _error_lines(stderr)
        after = digest_tree(path)
        if processes[name].returncode != EXIT_DATA_DIR or len(errors) != 1 or message not in errors[0]:
            findings.append(f"{name}: exit {processes[name].returncode}, error lines {errors}: {stderr[-800:]}")
        if "Traceback" in stderr:
            findings.append(f"{name}: traceback: {stderr[-800:]}")
        # The lock file is the only thing a refused start may add; the database must be untouched.
        if after[DB_FILENAME] != before[name][DB_FILENAME] or set(after) - set(before[name]) - {"lock"}:
            findings.append(f"{name}: changed the data dir: {sorted(set(after) ^ set(before[name]))}")
    suite_report.record(SECTION, "damaged or foreign swarmlist.db", faults=len(cases),
                        refused_cleanly=len(cases) - len({f.split(":")[0] for f in findings}),
                        files_changed=sum("changed" in f for f in findings), real_s=round(elapsed_s, 1))  # fmt: skip
    assert not findings, "\n".join(findings)


@pytest.mark.slow
def test_on_a_read_only_data_dir_the_node_refuses_to_start_and_changes_nothing() -> None:
    """A data dir with state, an empty one and a missing one, on a read-only mount: exit 3,
    one ``error:`` line naming the read-only file system, every byte unchanged."""
    with tmpfs("8m") as root:
        _fill_store(root / "with-state", TOPIC, 200)
        (root / "with-state" / LIST_FILENAME).write_text('{"id":"x"}\n', encoding="utf-8")
        (root / "empty").mkdir()
        remount(root, "ro")
        before = digest_tree(root)
        cases = {"with state": (root / "with-state", "read-only file system"),
                 "empty": (root / "empty", "read-only file system"),
                 "missing": (root / "missing", "cannot create data dir")}  # fmt: skip
        processes = {name: _refusal(path) for name, (path, _) in cases.items()}
        outcomes = {name: process.communicate(timeout=120) for name, process in processes.items()}
        after = digest_tree(root)
        remount(root, "rw")
    findings = []
    for name, (_, message) in cases.items():
        stderr = outcomes[name][1]
        errors = _error_lines(stderr)
        if processes[name].returncode != EXIT_DATA_DIR or len(errors) != 1 or message not in errors[0].lower():
            findings.append(f"{name}: exit {processes[name].returncode}, error lines {errors}: {stderr[-800:]}")
        if "Traceback" in stderr:
            findings.append(f"{name}: traceback: {stderr[-800:]}")
    suite_report.record(SECTION, "read-only data dir at start", faults=len(cases),
                        refused_cleanly=len(cases) - len(findings), files_changed=int(after != before))  # fmt: skip
    assert after == before and before, "a refused start changed the read-only data dir"
    assert not findings, "\n".join(findings)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _entries(node: NodeProcess) -> dict[str, str]:
    """id -> text of every line the node's API lists now (all pages)."""
    listed: dict[str, str] = {}
    cursor = ""
    while True:
        page = node.get("/api/entries?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""))
        listed.update((entry["id"], entry["text"]) for entry in page["entries"])
        if not page["next_cursor"]:
            return listed
        cursor = page["next_cursor"]


def _committed_entry_ids(data_dir: Path) -> set[str]:
    """Entry ids committed in the node's database, read by a second, read-only connection."""
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        bodies = [bytes(body) for (body,) in connection.execute("SELECT body FROM records")]
    finally:
        connection.close()
    return {record.id for record in map(decode_record, bodies) if isinstance(record, EntryRecord)}


def _page_served(node: NodeProcess) -> bool:
    with urllib.request.urlopen(node.url + "/", timeout=10) as response:
        return response.status == 200 and b"<html" in response.read(4096).lower()


def _watch_paused(node: NodeProcess, seconds: float) -> tuple[int, float]:
    """Over ``seconds`` of a pause: LLM calls started and the share of one core the node used."""
    calls, cpu = node.get("/api/metrics")["calls"], _cpu_s(node.process.pid)
    time.sleep(seconds)  # the point is to let time pass: a spinning producer would call or burn CPU
    return node.get("/api/metrics")["calls"] - calls, (_cpu_s(node.process.pid) - cpu) / seconds


@pytest.mark.slow
def test_a_full_disk_pauses_production_keeps_serving_and_resumes_once_there_is_room() -> None:
    """On a 1 MiB tmpfs the node fills the disk: it stays up, says so once, makes no calls and
    burns no CPU while paused, serves its page and API; remounted at 64 MiB (room for the WAL to grow again) it resumes; every
    entry it listed is committed."""
    with tmpfs("1m") as root:
        data_dir = root / "data"
        node = NodeProcess(data_dir, "--universe", "european-cities", "--sim-time-scale", "0.02",
                           topic="cities of Europe")  # fmt: skip
        try:
            node.wait_started()
            started = time.monotonic()
            eventually(lambda: PAUSED in node.output, 120, "production pauses on the full disk")
            fill_s = time.monotonic() - started
            time.sleep(2.0)  # calls in flight when the disk filled end (their commits fail too)
            listed_at_pause = _entries(node)
            calls_paused, cpu_share = _watch_paused(node, 4.0)
            assert node.process.poll() is None, node.output
            assert _entries(node) == listed_at_pause and listed_at_pause, "the node serves what it had"
            assert _page_served(node) and node.get("/healthz")
            paused_metric = node.get("/api/metrics")["paused"]  # what the page shows the operator
            assert isinstance(paused_metric, str) and "full" in paused_metric, paused_metric
            output_at_pause = node.output
            remount(root, "size=64m")
            room_at = time.monotonic()
            eventually(lambda: RESUMED in node.output, 60, "production resumes once there is room")
            resume_s = time.monotonic() - room_at
            eventually(lambda: len(_entries(node)) >= len(listed_at_pause) + 20, 60, "new entries after the resume")
            listed_after = _entries(node)
            # not at once: a commit that was already failing when room came back can pause it once more,
            # for a check interval or so (seen in 2 of 5 runs; see docs/reliability.md, known limits)
            eventually(lambda: node.get("/api/metrics")["paused"] is None, 30, "the page stops saying paused")
        finally:
            code = node.stop()
        committed = _committed_entry_ids(data_dir)
        on_file = {line.split('"id":"')[1].split('"')[0]
                   for line in (data_dir / LIST_FILENAME).read_text(encoding="utf-8").splitlines()}  # fmt: skip
    lost = len((set(listed_at_pause) | set(listed_after)) - committed)
    error_lines = [line for line in output_at_pause.splitlines() if " ERROR " in line]
    suite_report.record(SECTION, "full disk (1 MiB tmpfs, then 64 MiB)", faults=1, survived=int(code == EXIT_OK),
                        fill_s=round(fill_s, 1), entries_at_pause=len(listed_at_pause),
                        calls_while_paused=calls_paused, cpu_while_paused=round(cpu_share, 3),
                        error_lines=len(error_lines), resume_s=round(resume_s, 1),
                        entries_after=len(listed_after), lost=lost)  # fmt: skip
    assert "Traceback" not in node.output, node.output
    assert output_at_pause.count(PAUSED) == 1 and "disk" in output_at_pause and "full" in output_at_pause
    assert len(error_lines) <= 3, error_lines  # the producer's pause, the list file's: once each
    assert calls_paused == 0, "the paused producer kept calling the LLM"
    assert cpu_share < 0.2, f"the paused node used {cpu_share:.0%} of a core"
    assert code == EXIT_OK, node.output[-3000:]
    assert lost == 0 and set(listed_after) <= on_file


@pytest.mark.slow
def test_a_disk_that_turns_read_only_pauses_production_and_the_node_keeps_serving() -> None:
    """ext4 remounted read-only by a disk error under the running node: it says production paused
    because the file system is read-only, makes no more calls, serves its list; nothing it
    listed is lost."""
    with tempfile.TemporaryDirectory(prefix="swarmlist-disk-") as scratch, ext4_volume(Path(scratch)) as root:
        data_dir = root / "data"
        node = NodeProcess(data_dir, "--universe", "european-cities", "--sim-time-scale", "0.05",
                           topic="cities of Europe")  # fmt: skip
        try:
            node.wait_started()
            eventually(lambda: len(_entries(node)) >= 30, 60, "the node produces")
            force_read_only(root)
            assert refuses_writes(root)
            eventually(lambda: PAUSED in node.output, 60, "production pauses on the read-only disk")
            # The commit in flight may fail as an I/O error (the journal aborts first); the
            # pause's next look at the disk names the cause.
            eventually(lambda: any("paused" in line and "read-only file system" in line
                                   for line in node.output.splitlines()), 30, "the node says the disk is read-only")  # fmt: skip
            time.sleep(2.0)  # calls in flight end
            listed = _entries(node)
            calls_paused, cpu_share = _watch_paused(node, 3.0)
            assert node.process.poll() is None, node.output
            assert _entries(node) == listed and _page_served(node)
            output_at_pause = node.output
        finally:
            code = node.stop()
        committed = _committed_entry_ids(data_dir)
    lost = len(set(listed) - committed)
    suite_report.record(SECTION, "disk turns read-only while running (ext4)", faults=1,
                        survived=int(node.process.returncode is not None and "Traceback" not in node.output),
                        entries_at_pause=len(listed), calls_while_paused=calls_paused,
                        cpu_while_paused=round(cpu_share, 3), lost=lost, exit_code=code)  # fmt: skip
    assert output_at_pause.count(PAUSED) == 1
    assert len([line for line in output_at_pause.splitlines() if " ERROR " in line]) <= 3  # pause, cause, list file
    assert calls_paused == 0 and cpu_share < 0.2
    assert lost == 0
    # Stopping cannot save the incarnation on a read-only disk: the node says so in one line (exit 3).
    assert "Traceback" not in node.output, node.output[-3000:]
    assert code == EXIT_OK, node.output[-3000:]  # a disk that cannot take the incarnation is no reason to fail the stop
