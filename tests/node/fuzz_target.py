"""A real node to fuzz (issue #14): in this process on a thread, or as a ``gossip-node`` process.

``InProcessNode`` assembles a node the way ``node.runtime.run_node`` does — store, producer,
gossip and web routes on one ``NodeServer`` port, a cluster key — with its timeouts and bounds
injectable, and keeps the log lines its thread writes. ``ProcessNode`` runs the real command
with the production defaults. Both spend a few instant LLM calls of the simulated model first,
so the record set is not empty; after that only gossip changes it. Both are a ``Target``:
where the node listens, its committed record keys, its log, whether it is up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gossip.auth import Wire
from gossip.http_transport import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_REQUESTS_PER_PEER,
    AiohttpTransport,
)
from node.assembly import Node
from node.cluster import cluster_id
from node.codec import encode_record, record_key
from node.config import LLMSettings, NodeConfig
from node.producer import ProducerConfig
from node.records import CapacityRecord
from node.runtime import build_backend
from node.server import IDLE_TIMEOUT_S, NodeServer
from node.sim_report import committed_keys
from node.view import StateView
from tests.node.processes import NodeProcess
from webui.app import add_routes

TOPIC = "countries of the world"
CLUSTER = cluster_id(TOPIC)
KEY = b"fuzzing-cluster-key-0123456789ab"  # what the target node is given
TARGET_NAME = "target"  # the node under fuzz: rumours about it test its refutations

# ---------------------------------------------------------------------------- the target


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    logger: str
    text: str


class Target(Protocol):
    """A running node under fuzz: where it listens, its committed record keys, its log."""

    url: str  # http://127.0.0.1:PORT (no trailing slash)
    name: str

    def record_keys(self) -> frozenset[str]: ...

    def log_lines(self) -> list[LogLine]: ...

    def alive(self) -> bool: ...


class InProcessNode:
    """A real node — store, state, producer, gossip and web routes on one ``NodeServer`` port,
    a cluster key — assembled as ``node.runtime.run_node`` does, served by a background
    thread's event loop so a synchronous fuzzer (hypothesis) can drive it.

    It first spends ``calls`` LLM calls of the simulated model (instant), so the record set is
    not empty; after that only gossip can change it. Timeouts and the per-peer bound are
    injectable so the slow-loris and flood tests run in seconds.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        calls: int = 3,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        max_requests_per_peer: int = DEFAULT_MAX_REQUESTS_PER_PEER,
    ) -> None:
        self.data_dir = data_dir
        self.url = ""
        self.name = ""
        self._calls = calls
        self._idle_timeout_s = idle_timeout_s
        self._body_timeout_s = body_timeout_s
        self._max_requests_per_peer = max_requests_per_peer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._node: Node | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="fuzz-target", daemon=True)
        self._lines: list[LogLine] = []
        self._capture = _ThreadLogCapture(self._thread, self._lines)

    def __repr__(self) -> str:
        return f"<InProcessNode {self.name} {self.url}>"

    def start(self) -> InProcessNode:
        logging.getLogger().addHandler(self._capture)
        self._thread.start()
        if not self._ready.wait(60) or self._failure is not None:
            raise AssertionError(f"the target node did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        logging.getLogger().removeHandler(self._capture)

    def record_keys(self) -> frozenset[str]:
        return frozenset(committed_keys(self.data_dir))

    def log_lines(self) -> list[LogLine]:
        return list(self._lines)

    def alive(self) -> bool:
        return self._thread.is_alive() and self._failure is None

    def commit_own_record(self, concurrency: int) -> str:
        """Commit a record of the node's own, stamped by its clock, the way it announces its
        capacity (store, state, anti-entropy index, dissemination); its key. Blocks.

        (Hostile but authenticated plan records may legitimately retire every partition, so an
        LLM call is not a reliable way to make the node commit.)
        """
        assert self._loop is not None and self._node is not None
        node = self._node

        async def commit() -> str:
            record = CapacityRecord(node=node.name, concurrency=concurrency, hlc=node.exchange.clock.now())
            added = await node.store.add([record])
            for new in added:
                node.state.apply(new)
            node.exchange.committed(added)
            return record_key(encode_record(record))

        return asyncio.run_coroutine_threadsafe(commit(), self._loop).result(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start() or alive()
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = NodeConfig(
            topic=TOPIC,
            data_dir=self.data_dir,
            node_name=TARGET_NAME,
            llm=LLMSettings(kind="sim", universe="countries", time_scale=0.0, rng_seed=1),
            producer=ProducerConfig(max_calls=self._calls),
            port=0,
            cluster_key=KEY,
            gossip_profile="local",
            list_debounce_s=0.0,
        )
        server = NodeServer.bind("127.0.0.1", 0, idle_timeout_s=self._idle_timeout_s)
        address = server.address

        def transport(wire: Wire) -> AiohttpTransport:
            built = AiohttpTransport(wire, host="", port=server.port, advertise=address,
                                     body_timeout_s=self._body_timeout_s,
                                     max_requests_per_peer=self._max_requests_per_peer)  # fmt: skip
            built.add_routes(server.app)
            return built

        try:
            node = await Node.open(config, backend=lambda: build_backend(config), transport=transport, address=address)
        except BaseException:
            await server.aclose()
            raise
        self._node = node
        try:
            cluster = node.cluster
            view = StateView(node.state, node_name=node.name, topic=TOPIC, members=cluster.members,
                             metrics=lambda: {"gossip": cluster.broadcaster.metrics(),
                                              "anti_entropy": cluster.anti_entropy.metrics()})  # fmt: skip
            add_routes(server.app, view)
            await server.start()
            await node.start()
            await node.produce(asyncio.Event())  # spends the budget: from now on only gossip adds records
            self.url, self.name = server.url.rstrip("/"), node.name
            self._ready.set()
            await self._stop.wait()
        finally:
            await node.aclose()
            await server.aclose()


class _ThreadLogCapture(logging.Handler):
    """Keeps the log records one thread emits (the target's), so a fuzzer's own are left out."""

    def __init__(self, thread: threading.Thread, lines: list[LogLine]) -> None:
        super().__init__(level=logging.WARNING)
        self._thread = thread
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread.ident:
            level = "ERROR" if record.exc_info and record.levelno < logging.ERROR else record.levelname
            self._lines.append(LogLine(level, record.name, record.getMessage()))


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<text>.*)$")


def parse_log_lines(lines: Sequence[str]) -> list[LogLine]:
    """``gossip-node``'s text log (``%(asctime)s %(levelname)s %(name)s: %(message)s``) as lines;
    a traceback counts as an ERROR line."""
    parsed: list[LogLine] = []
    for line in lines:
        match = _LOG_LINE.match(line)
        if match:
            parsed.append(LogLine(match["level"], match["logger"], match["text"]))
        elif line.startswith("Traceback"):
            parsed.append(LogLine("ERROR", "traceback", line.strip()))
    return parsed


# ---------------------------------------------------------------------------- a node process


class ProcessNode:
    """A ``gossip-node`` process as a fuzz target (production defaults: timeouts, bounds).

    It spends ``calls`` instant LLM calls, then idles: from then on only gossip changes its set.
    """

    def __init__(self, workdir: Path, *, calls: int = 3) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        key_file = workdir / "cluster.key"
        key_file.write_bytes(KEY)
        self.data_dir = workdir / "data"
        self.name = TARGET_NAME
        self._process = NodeProcess(self.data_dir, "--cluster-key-file", str(key_file), "--name", TARGET_NAME,
                                    "--max-calls", str(calls), "--sim-time-scale", "0", "--log-level", "warning",
                                    topic=TOPIC)  # fmt: skip
        self.url = self._process.wait_started().rstrip("/")
        self.pid = self._process.process.pid

    def __repr__(self) -> str:
        return f"<ProcessNode pid={self.pid} {self.url}>"

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until the producer has spent its budget (its record set stops growing)."""
        deadline = time.monotonic() + timeout_s
        last: frozenset[str] = frozenset()
        while time.monotonic() < deadline:
            keys = self.record_keys()
            if keys and keys == last:
                return
            last = keys
            time.sleep(0.5)
        raise AssertionError("the node kept changing its record set")

    def record_keys(self) -> frozenset[str]:
        return frozenset(committed_keys(self.data_dir))

    def log_lines(self) -> list[LogLine]:
        return parse_log_lines(list(self._process.lines))

    def alive(self) -> bool:
        return self._process.process.poll() is None

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> int:
        return self._process.stop()



def rss_bytes(pid: int | str = "self") -> int:
    """A process's resident memory, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
