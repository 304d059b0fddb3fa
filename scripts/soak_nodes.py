"""The processes of ``scripts/soak.py``: one ``gossip-node`` per data dir, started, killed, restarted and sampled.

Each ``SoakNode`` owns a data dir and a fixed loopback port for the whole soak: a restart
comes back on the same address (the server binds with ``SO_REUSEADDR``), so peers see the
same member return with a higher incarnation. Every process runs in its own session, so a
Ctrl-C at the terminal reaches only the soak, which then kills each node's process group.
Samples come from outside, the way an operator would look: ``/proc/PID/status`` for memory,
the node's API for its counts and membership view, its SQLite file (read-only) for the
records it committed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, IO

from node.fault_injection import FAULTS_ENV, FAULTS_FILE
from node.sim_report import committed_keys
from tests.node.crash_harness import listed_ids

__all__ = ["GOSSIP_NODE", "TOPIC", "UNIVERSE", "Run", "Sample", "SoakNode", "free_ports"]

GOSSIP_NODE = Path(sys.executable).parent / "gossip-node"
TOPIC = "cities of Europe"
UNIVERSE = "european-cities"  # 7,782 cities: enough to keep five nodes producing for minutes
HTTP_TIMEOUT_S = 5.0  # a node on a loaded 2-core machine can be slow; a sample may be skipped
_STOP_TIMEOUT_S = 30.0  # a SIGTERM'd node leaves the cluster and flushes its list well within this


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (all held open together, so no repeats)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at one node process."""

    at_s: float  # seconds since the soak began
    rss_mib: float
    records: int | None  # committed records (anti-entropy's key count); None: the API did not answer
    entries: int | None
    members: Mapping[str, str] = field(default_factory=dict)  # name -> state, as this node sees the cluster
    producing: bool | None = None
    refutations: int = 0  # times this process refuted a suspicion of itself (it was suspected while alive)
    faults: Mapping[str, float] = field(default_factory=dict)  # what its fault injector did so far


@dataclass
class Run:
    """One process lifetime of a node, from spawn to its end."""

    pid: int
    started_s: float
    extra_args: tuple[str, ...] = ()
    ready_s: float | None = None  # first time its API answered
    ended_s: float | None = None
    end_signal: str | None = None  # SIGKILL, SIGTERM; None while running (or if it died by itself)
    exit_code: int | None = None
    samples: list[Sample] = field(default_factory=list)


class SoakNode:
    """One node of the soak: its data dir, its port, and the processes it ran there (``runs``)."""

    def __init__(self, index: int, *, root: Path, port: int, key_file: Path, faults: Mapping[str, float | int],
                 sim_time_scale: float, calls_per_minute: float, began: float) -> None:  # fmt: skip
        self.name = f"soak{index + 1}"
        self.data_dir = root / self.name
        self.log_path = root / f"{self.name}.log"
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        self.runs: list[Run] = []
        self._index = index
        self._key_file = key_file
        self._faults = dict(faults)
        self._sim_time_scale = sim_time_scale
        self._calls_per_minute = calls_per_minute
        self._began = began
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "down"
        return f"<SoakNode {self.name} {self.address} {state} runs={len(self.runs)}>"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def run(self) -> Run | None:
        """The current (or last) process."""
        return self.runs[-1] if self.runs else None

    def start(self, seeds: Sequence[str], *extra_args: str) -> None:
        """Spawn a process on the data dir, joining through ``seeds``; returns at once (see ``ready``)."""
        assert not self.running, f"{self.name} is already running"
        command = [str(GOSSIP_NODE), "--topic", TOPIC, "--universe", UNIVERSE, "--name", self.name,
                   "--data-dir", str(self.data_dir), "--port", str(self.port), "--gossip-profile", "local",
                   "--cluster-key-file", str(self._key_file), "--rng-seed", str(self._index + 1),
                   "--sim-time-scale", f"{self._sim_time_scale:g}",
                   "--max-calls-per-minute", f"{self._calls_per_minute:g}", "--log-level", "warning"]  # fmt: skip
        for seed in seeds:
            command += ["--seed", seed]
        command += extra_args
        # One thread per numeric library: five nodes share two cores.
        env = {**os.environ, FAULTS_ENV: json.dumps(self._faults), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self._log.write(f"==> {time.strftime('%H:%M:%S')} start: {' '.join(command)}\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                         env=env, start_new_session=True)  # fmt: skip
        self.runs.append(Run(pid=self._process.pid, started_s=self._now(), extra_args=tuple(extra_args)))

    def ready(self) -> bool:
        """Whether the current process serves its API (remembers when it first did)."""
        run = self.run
        if run is None or not self.running:
            return False
        if run.ready_s is None:
            try:
                self.get("/healthz")
            except OSError:
                return False
            run.ready_s = self._now()
        return True

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the running process's group without waiting (``stop`` reaps it)."""
        run = self.run
        if run is not None and self.running:
            self._signal_group(sig)
            run.end_signal = sig.name

    def stop(self, sig: signal.Signals, timeout_s: float = _STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` to the process group and reap it (SIGKILL after ``timeout_s``); its exit code."""
        process, run = self._process, self.run
        if process is None or run is None or run.ended_s is not None:
            return None
        if process.poll() is None and run.end_signal is None:
            self._signal_group(sig)
            run.end_signal = sig.name
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            code = process.wait()
        run.ended_s = self._now()
        run.exit_code = code
        return code

    def close(self) -> None:
        """Kill whatever still runs (cleanup on any exit path); safe to call twice."""
        if self.running:
            self.stop(signal.SIGKILL, timeout_s=10.0)
        if self._log is not None:
            self._log.close()
            self._log = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=HTTP_TIMEOUT_S) as response:
            return json.loads(response.read())

    def listed(self) -> set[str]:
        """Entry ids the node's list shows now (its lines and their aliases)."""
        with urllib.request.urlopen(self.url + "/api/export?format=jsonl", timeout=30) as response:
            lines = [json.loads(line) for line in response.read().decode("utf-8").splitlines()]
        return listed_ids(lines)

    def committed(self) -> set[str]:
        """The record keys committed in the node's SQLite file (read-only: safe while it runs)."""
        return set(committed_keys(self.data_dir))

    def set_faults(self, faults: Mapping[str, float]) -> None:
        """Replace the faults through ``DATA_DIR/faults.json``, written atomically; the node polls it
        every second (no SIGUSR1: sent before the node installs its handler, it would kill it)."""
        path = self.data_dir / FAULTS_FILE
        temporary = path.with_name(f".{FAULTS_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(dict(faults)), encoding="utf-8")
        os.replace(temporary, path)

    def sample(self) -> Sample | None:
        """Memory from /proc, counts and membership from the API; None if the process is gone."""
        run = self.run
        if run is None or not self.running or not self.ready():
            return None
        rss_mib = _rss_mib(run.pid)
        if rss_mib is None:
            return None
        try:
            metrics = self.get("/api/metrics")
            members = {m["name"]: m["state"] for m in self.get("/api/members")["members"]}
        except (OSError, ValueError):  # slow or restarting: memory alone is still worth keeping
            found = Sample(at_s=self._now(), rss_mib=rss_mib, records=None, entries=None)
        else:
            found = Sample(
                at_s=self._now(), rss_mib=rss_mib, records=metrics.get("anti_entropy", {}).get("keys"),
                entries=metrics.get("entries"), members=members, producing=metrics.get("stopped") is None,
                refutations=int(metrics.get("membership", {}).get("refutations", 0)),
                faults={k: v for k, v in metrics.get("faults", {}).items() if isinstance(v, int | float)},
            )  # fmt: skip
        run.samples.append(found)
        return found

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass

    def _now(self) -> float:
        return time.monotonic() - self._began


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None
