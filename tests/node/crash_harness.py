"""Kill -9 cycles against a real node: a zygote that forks node processes, and what they report.

Starting a Python process that imports the node costs over a second (numpy, scipy, aiohttp), so
a *zygote* — one ``python -m tests.node.crash_harness`` process per test — imports everything
once and forks one child per cycle on request (the forkserver idea of ``multiprocessing``,
kept in the test's hands so the test can kill the whole process group when it ends).

A child opens a real ``node.assembly.Node`` on a real data dir (SQLite, ``list.jsonl``) with
the in-process simulated LLM at a tiny time scale and a single-member in-memory network, then
produces and, at random intervals, merges batches of records a peer gossiped
(``RecordExchange.merge``, the path gossip-in takes) — while the node's own ``ListFileWriter``
rewrites ``list.jsonl``. It reports on the zygote's stdout, one line per event, each written
with one ``write`` under ``PIPE_BUF`` (atomic: a kill cannot tear it):

    <pid> R <records>          the node is open (replayed) and running
    <pid> K <key> <key> ...    these records are acknowledged (their commit returned)
    <pid> B <batch>            a merge of peer batch <batch> begins
    <pid> E <batch> <ms>       ... and ended (every record of it is stored)

The zygote itself writes ``S <pid>`` when it forked a child and ``X <pid> <status>`` once
the child is reaped, after everything the child wrote.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

from node.assembly import Node
from node.codec import encode_record, record_key
from node.config import LLMSettings, NodeConfig
from node.export import LIST_FILENAME
from node.hlc import hlc_pack
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import UniverseItem, load_universe
from node.normalize import entry_id
from node.producer import ProducerConfig
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem, Record
from node.store import Store
from gossip.testing import InMemoryNetwork

TOPIC = "cities of Europe"
UNIVERSE = "european-cities"
PEER = "peer-gossip"  # origin of the records the child merges as if a peer had sent them
PEER_BATCH = 25  # records per merged batch: a merge takes a few ms, a window to kill in
_ADDRESS = "127.0.0.1:1"  # the child's in-memory gossip address (no peer ever calls it)
_PEER_EPOCH_MS = 1_735_689_600_000  # 2025-01-01: the peer's records are older than the node's
_KEYS_PER_LINE = 100  # 100 keys of 33 bytes: one line stays under PIPE_BUF (4096)


class Phase(StrEnum):
    """Where a kill landed (classified after the fact, from the child's reports and the disk)."""

    CREATING = "creating the data dir"  # the first start, before the node ever ran
    STARTING = "starting"  # opening the store and replaying it
    PRODUCING = "producing"  # producer running; no merge or list rewrite in flight
    MERGING = "merging gossiped records"  # between a merge's B and E reports
    REWRITING = "rewriting list.jsonl"  # its temp file written, not yet renamed over


@dataclass(frozen=True)
class ChildPlan:
    """What one forked child runs."""

    data_dir: str
    seed: int  # the node's, the LLM's and the merge timing's random choices
    peer_from: int  # first peer batch to merge (a peer re-sends what was not acknowledged)
    merge_gap_s: tuple[float, float] = (0.03, 0.08)  # pause between merges, drawn uniformly
    list_debounce_s: float = 0.02  # list.jsonl rewrites often: many windows to kill in
    time_scale: float = 0.002  # simulated LLM latency scale (1 = a real model's pace)
    lifetime_s: float = 30.0  # a child the test forgot ends itself


def peer_batch(index: int) -> list[Record]:
    """Peer batch ``index``: entries of the universe (some by an alternate name: near-duplicates
    and alias clusters) and the peer's observation of its call; deterministic, so a re-sent batch
    is the same records (merging it again is a no-op)."""
    items = _peer_order()
    rng = random.Random(index)
    start = (index * PEER_BATCH) % len(items)
    records: list[Record] = []
    observed: list[ObservedItem] = []
    for offset, item in enumerate(items[start : start + PEER_BATCH]):
        use_alternate = item.alternate_names and rng.random() < 0.15
        text = item.alternate_names[0] if use_alternate else item.name
        records.append(EntryRecord(id=entry_id(text), text=text, partition=item.path[0], origin=PEER,
                                   hlc=hlc_pack(_PEER_EPOCH_MS + index * 1000, offset)))  # fmt: skip
        observed.append(ObservedItem(entry_id(text), MatchKind.NEW))
    partition = items[start].path[0]
    hlc = hlc_pack(_PEER_EPOCH_MS + index * 1000 + 999, 0)
    records.append(ObservationRecord(node=PEER, call=index, partition=partition, hlc=hlc, items=tuple(observed)))
    return records


@functools.cache
def _model(time_scale: float) -> SimulatedModel:
    """The simulated LLM (0.15 s to build: the zygote builds it once, every child inherits it)."""
    return SimulatedModel(load_universe(UNIVERSE), SimParams().replace(time_scale=time_scale), knowledge_seed=0)


@functools.cache
def _peer_order() -> tuple[UniverseItem, ...]:
    """The universe's items in the order the peer sends them."""
    items = list(load_universe(UNIVERSE).items)
    random.Random(13).shuffle(items)
    return tuple(items)


def key_of(record: Record) -> str:
    """The store key of a record (32 hex digits)."""
    return record_key(encode_record(record))


# ---------------------------------------------------------------------------- the child


def _emit(line: str) -> None:
    data = f"{os.getpid()} {line}\n".encode()
    assert len(data) <= select.PIPE_BUF, "a report line must be written atomically"
    os.write(1, data)


def _emit_keys(keys: Sequence[str]) -> None:
    for start in range(0, len(keys), _KEYS_PER_LINE):
        _emit("K " + " ".join(keys[start : start + _KEYS_PER_LINE]))


async def _run_child(plan: ChildPlan) -> None:
    rng = random.Random(plan.seed)
    config = NodeConfig(
        topic=TOPIC,
        data_dir=Path(plan.data_dir),
        llm=LLMSettings(universe=UNIVERSE, rng_seed=plan.seed, time_scale=plan.time_scale),
        # Faults stay on (429s, hangs, truncated answers); their backoffs are cut to the cycle's scale.
        producer=ProducerConfig(concurrency=2, backoff_base_s=0.01, backoff_max_s=0.1, max_retry_after_s=0.1),
        gossip_profile="local",
        list_debounce_s=plan.list_debounce_s,
    )
    model = _model(plan.time_scale)
    network = InMemoryNetwork(plan.seed)
    node = await Node.open(
        config,
        backend=lambda: SimulatedBackend(model, seed=plan.seed, hang_timeout_s=0.2),
        transport=lambda wire: network.transport(_ADDRESS, wire),
        address=_ADDRESS,
        rng=random.Random(rng.getrandbits(64)),
        on_committed=lambda records: _emit_keys([key_of(record) for record in records]),
    )
    _emit(f"R {await node.store.count()}")
    await node.start()
    stop = asyncio.Event()

    async def merge_forever() -> None:
        batch = plan.peer_from
        while True:
            await asyncio.sleep(rng.uniform(*plan.merge_gap_s))
            records = peer_batch(batch)
            _emit(f"B {batch}")
            started = time.perf_counter()
            await node.exchange.merge([encode_record(record) for record in records])
            # merge() returned: every record of the batch is stored, the new ones and the known.
            _emit_keys([key_of(record) for record in records])
            _emit(f"E {batch} {(time.perf_counter() - started) * 1000:.2f}")
            batch += 1

    async with asyncio.timeout(plan.lifetime_s):
        async with asyncio.TaskGroup() as group:
            group.create_task(node.produce(stop))
            group.create_task(merge_forever())


def _child(plan: ChildPlan) -> None:
    """Runs in the forked child; never returns into the zygote's loop."""
    code = 0
    try:
        asyncio.run(_run_child(plan))
    except TimeoutError:
        pass  # lived its lifetime_s: the test that started it is gone
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The zygote: read one JSON ``ChildPlan`` per stdin line, fork, report, reap, repeat."""
    _peer_order()  # load the universe and build the model once, before forking
    _model(ChildPlan.time_scale)
    for line in sys.stdin:
        fields = json.loads(line)
        plan = ChildPlan(**{**fields, "merge_gap_s": tuple(fields["merge_gap_s"])})
        pid = os.fork()
        if pid == 0:
            _child(plan)
        os.write(1, f"{os.getpid()} S {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(1, f"{os.getpid()} X {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


# ---------------------------------------------------------------------------- the parent


@dataclass(frozen=True)
class Report:
    """One line a child (or the zygote about a child) wrote."""

    pid: int
    kind: str
    args: tuple[str, ...]


@dataclass
class ChildRun:
    """What one child reported, as the parent read it."""

    pid: int
    forked_at: float = field(default_factory=time.monotonic)
    ready: int | None = None  # records in the store when it opened (None: killed before)
    ready_s: float | None = None  # from fork to its ready report
    acknowledged: set[str] = field(default_factory=set)
    open_merge: int | None = None  # batch of a merge begun and not (yet) reported ended
    merged_batches: list[int] = field(default_factory=list)
    merge_ms: list[float] = field(default_factory=list)
    exit_status: int | None = None


class Zygote:
    """The forking process; use as a context manager (its process group dies on exit)."""

    def __init__(self, log_path: Path) -> None:
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in __exit__
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.node.crash_harness"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, cwd=Path(__file__).resolve().parents[2], env=env, start_new_session=True,
        )  # fmt: skip
        self._buffer = b""
        self.log_path = log_path

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)  # the zygote and any child it forked
        except ProcessLookupError:
            pass
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._log.close()

    def fork(self, plan: ChildPlan, timeout_s: float = 60.0) -> ChildRun:
        """Start a child running ``plan``; returns once it is forked (the zygote may still be importing)."""
        stdin: IO[bytes] | None = self._process.stdin
        assert stdin is not None
        stdin.write((json.dumps(asdict(plan)) + "\n").encode())
        stdin.flush()
        for report in self.reports(timeout_s, until=lambda r: r.kind == "S"):
            if report.kind == "S":
                return ChildRun(pid=int(report.args[0]))
        raise AssertionError(f"the zygote forked nothing within {timeout_s}s; see {self.log_path}")

    def reports(self, timeout_s: float, until: Callable[[Report], bool] | None = None) -> Iterator[Report]:
        """Reports as they come, for up to ``timeout_s``; stops after one ``until(report)`` holds."""
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        polled = False
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                pid, kind, *args = line.decode().split()
                report = Report(int(pid), kind, tuple(args))
                yield report
                if until is not None and until(report):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0 and polled:
                return
            polled = True  # a timeout of 0 still reads what is there once
            if select.select([stdout], [], [], max(remaining, 0))[0]:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the zygote exited; see {self.log_path}")
                self._buffer += chunk

    def follow(self, run: ChildRun, timeout_s: float, until: Callable[[ChildRun], bool] | None = None) -> None:
        """Fold the child's reports for up to ``timeout_s`` into ``run`` (until ``until(run)`` holds)."""
        for report in self.reports(timeout_s, until=lambda report: until is not None and until(run)):
            apply_report(run, report)

    def kill_and_reap(self, run: ChildRun, timeout_s: float = 30.0) -> None:
        """SIGKILL the child, then read everything it wrote up to its death."""
        try:
            os.kill(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.follow(run, timeout_s, until=lambda run: run.exit_status is not None)
        assert run.exit_status is not None, f"child {run.pid} was not reaped within {timeout_s}s"


def apply_report(run: ChildRun, report: Report) -> None:
    if report.kind == "X" and int(report.args[0]) == run.pid:
        run.exit_status = int(report.args[1])
    if report.pid != run.pid:
        return
    if report.kind == "R":
        run.ready = int(report.args[0])
        run.ready_s = time.monotonic() - run.forked_at
    elif report.kind == "K":
        run.acknowledged.update(report.args)
    elif report.kind == "B":
        run.open_merge = int(report.args[0])
    elif report.kind == "E":
        run.open_merge = None
        run.merged_batches.append(int(report.args[0]))
        run.merge_ms.append(float(report.args[1]))


def temp_list_files(data_dir: Path) -> list[Path]:
    """``list.jsonl`` temp files (what a rewrite in flight, or one a kill cut short, leaves)."""
    return sorted(data_dir.glob(f".{LIST_FILENAME}.*.tmp"))


def read_list(path: Path) -> list[dict[str, object]]:
    """Every line of ``list.jsonl``, each a whole JSON object; no half line, no id twice."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path} ends mid-line"
    lines = [json.loads(line) for line in text.splitlines()]
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"{path} lists an entry twice"
    return lines


def listed_ids(lines: list[dict[str, object]]) -> set[str]:
    """Entries a list shows, as lines or as a line's aliases (a line may become an alias of another)."""
    ids = {str(line["id"]) for line in lines}
    ids.update(entry_id(str(alias)) for line in lines for alias in _aliases(line))
    return ids


@dataclass(frozen=True)
class Stored:
    """What a data dir holds: every record's key, and the ids of its entries."""

    keys: frozenset[str]
    entries: frozenset[str]


def _aliases(line: dict[str, object]) -> list[object]:
    aliases = line["aliases"]
    assert isinstance(aliases, list), f"aliases of {line['id']} are not a list"
    return aliases


async def _stored(data_dir: Path, topic: str) -> Stored:
    async with await Store.open(data_dir, topic=topic, inline=True) as store:
        keyed = await store.load_keyed()
    entries = frozenset(record.id for _, record in keyed if isinstance(record, EntryRecord))
    return Stored(keys=frozenset(key.hex() for key, _ in keyed), entries=entries)


def stored(data_dir: Path, topic: str = TOPIC) -> Stored:
    """Open the data dir as a restarting node opens its store (a refusal raises) and read it all."""
    return asyncio.run(_stored(data_dir, topic))


if __name__ == "__main__":
    serve()
