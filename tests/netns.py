"""Real networks between real processes on one machine: Linux network namespaces joined by a bridge.

A ``NamespaceNetwork(n)`` is n "hosts", each a network namespace with ``eth0`` at its own
address (``10.77.0.1``, ``10.77.0.2``…, /24), every ``eth0`` the end of a veth pair whose
other end is a port of one bridge, in a namespace of its own. Nothing is created in the root
namespace, so concurrent runs cannot collide on addresses or interface names, and every name
carries the test process's pid. A process runs on a host with ``Namespace.popen`` /
``Namespace.run`` (``ip netns exec``) or, for code in the test process, ``Namespace.call``: a
thread that enters the namespace with setns(2), so the sockets it opens belong to that host
(``Namespace.get_json(url)`` is the usual use). ``NamespaceProcess(host, argv)`` runs a
long-lived program there and collects its output (``wait_for_output``, ``stop``).

A partition is real: ``disconnect`` sets the host's bridge port down, as if its cable were
pulled at the switch. Its ``eth0`` loses carrier and every packet either way is dropped
silently, so peers time out (they are not refused); connections in flight stall and resume
on ``reconnect``. ``partition(*hosts)`` / ``heal()`` do it for several hosts at once.

Everything is removed by ``close`` (also on ``with`` exit, and safe twice): processes still in
the namespaces are killed (they can only be this run's), then the namespaces are deleted, which
deletes their links. ``remove_stale()`` deletes namespaces left by a run whose process died
before it could clean up. Root is required; ``require_root`` says so clearly.

    with NamespaceNetwork(3) as network:
        first = network[0]
        server = first.popen(["python3", "-m", "http.server", "--bind", first.address, "8000"])
        network.partition(network[2])   # network[2] can reach no one, no one can reach it
        network.heal()
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

__all__ = [
    "network_for_test",
    "NETNS_PREFIX",
    "ROOT_REQUIRED",
    "Bridge",
    "Namespace",
    "NamespaceNetwork",
    "NamespaceProcess",
    "NetnsError",
    "ip",
    "remove_stale",
    "require_root",
]

_T = TypeVar("_T")

NETNS_PREFIX = "swl"  # every namespace this module makes is named swl<pid>-<network>-<role>
ROOT_REQUIRED = "needs root for network namespaces (ip netns, veth pairs, a bridge): run the tests as root"
_NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_OWNED = re.compile(rf"^{NETNS_PREFIX}(\d+)-")
_networks = itertools.count(1)  # several networks in one test process get distinct names


class NetnsError(RuntimeError):
    """A namespace, link or address could not be set up or used; the message has ip's own words."""


def require_root() -> None:
    """Raise ``NetnsError`` with a clear message unless this process can make network namespaces."""
    if os.geteuid() != 0:
        raise NetnsError(f"{ROOT_REQUIRED} (euid is {os.geteuid()})")
    if shutil.which("ip") is None:
        raise NetnsError("needs the ip command (iproute2) for network namespaces")


def ip(*args: str, namespace: str | None = None) -> str:
    """Run ``ip [-n namespace] args…`` and return its output; ``NetnsError`` with its stderr if it fails."""
    command = ["ip", *(("-n", namespace) if namespace else ()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def _namespace_pids(name: str) -> list[int]:
    try:
        return [int(pid) for pid in ip("netns", "pids", name).split()]
    except NetnsError:
        return []


def _delete_namespace(name: str) -> None:
    """Kill what still runs in ``name`` (this run's processes), then delete it with its links."""
    for pid in _namespace_pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while _namespace_pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    if (_NETNS_DIR / name).exists():
        ip("netns", "delete", name)


def remove_stale() -> list[str]:
    """Delete namespaces this module made in processes that no longer exist; returns their names."""
    removed = []
    for path in sorted(_NETNS_DIR.glob(f"{NETNS_PREFIX}*")) if _NETNS_DIR.is_dir() else []:
        match = _OWNED.match(path.name)
        if match is None or Path(f"/proc/{match.group(1)}").exists() or _namespace_pids(path.name):
            continue  # not ours, its run is alive, or something still runs in it: leave it be
        ip("netns", "delete", path.name)
        removed.append(path.name)
    return removed


class Bridge:
    """A Linux bridge (``br0``) alone in a namespace of its own: the switch the hosts are cabled to."""

    def __init__(self, namespace: str, device: str = "br0") -> None:
        self.namespace = namespace
        self.device = device
        self.ports: list[str] = []

    def __repr__(self) -> str:
        return f"<Bridge {self.namespace}/{self.device} ports={len(self.ports)}>"

    def create(self) -> None:
        ip("netns", "add", self.namespace)
        ip("link", "add", self.device, "type", "bridge", namespace=self.namespace)
        ip("link", "set", self.device, "up", namespace=self.namespace)

    def attach(self, port: str) -> None:
        """Make ``port`` (a link already in the bridge's namespace) a port of the bridge, up."""
        ip("link", "set", port, "master", self.device, namespace=self.namespace)
        ip("link", "set", port, "up", namespace=self.namespace)
        self.ports.append(port)

    def destroy(self) -> None:
        _delete_namespace(self.namespace)


class Namespace:
    """One host: a network namespace with ``eth0`` at ``address``, cabled to ``bridge`` through ``port``."""

    def __init__(self, name: str, address: str, bridge: Bridge, port: str, *, prefix_length: int = 24) -> None:
        self.name = name
        self.address = address
        self.bridge = bridge
        self.port = port  # the bridge-side end of this host's veth pair
        self.prefix_length = prefix_length
        self.device = "eth0"

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Namespace {self.name} {self.address} {state}>"

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "set", "lo", "up", namespace=self.name)
        # Both ends are made directly in their namespaces: nothing appears in the root namespace.
        ip("link", "add", "name", self.port, "netns", self.bridge.namespace, "type", "veth",
           "peer", "name", self.device, "netns", self.name)  # fmt: skip
        ip("addr", "add", f"{self.address}/{self.prefix_length}", "dev", self.device, namespace=self.name)
        ip("link", "set", self.device, "up", namespace=self.name)
        self.bridge.attach(self.port)

    def destroy(self) -> None:
        _delete_namespace(self.name)

    # -- the cable --

    @property
    def connected(self) -> bool:
        """Whether this host's bridge port is up."""
        flags = ip("-o", "link", "show", self.port, namespace=self.bridge.namespace)
        return bool(re.search(r"<[^>]*\bUP\b[^>]*>", flags))

    def disconnect(self) -> None:
        """Pull the cable: the bridge port goes down; nothing reaches this host or leaves it."""
        ip("link", "set", self.port, "down", namespace=self.bridge.namespace)

    def reconnect(self) -> None:
        ip("link", "set", self.port, "up", namespace=self.bridge.namespace)

    # -- running things on the host --

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace (``ip netns exec`` execs it: the pid is argv's own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.command(argv), **options)

    def run(self, argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(argv), **options)

    def pids(self) -> list[int]:
        """Processes running in this namespace now."""
        return _namespace_pids(self.name)

    def call(self, function: Callable[..., _T], *args: Any, timeout_s: float = 60.0) -> _T:
        """``function(*args)`` on a fresh thread inside this namespace (its sockets belong to this host)."""
        outcome: dict[str, Any] = {}

        def enter_and_run() -> None:
            try:
                _enter(self.name)
                outcome["value"] = function(*args)
            except BaseException as exc:  # re-raised in the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=enter_and_run, name=f"netns-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise NetnsError(f"a call inside {self.name} did not finish within {timeout_s:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    def get_json(self, url: str, *, timeout_s: float = 10.0) -> Any:
        """GET ``url`` from this host and decode the JSON answer."""

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return json.loads(response.read())

        return self.call(fetch, timeout_s=timeout_s + 5)


def _enter(name: str) -> None:
    """Move the calling thread (only it: network namespaces are per thread) into namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(_NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise NetnsError(f"setns into {name}: {os.strerror(error)}")
    finally:
        os.close(fd)


class NamespaceNetwork:
    """``count`` hosts on one bridge, at ``<subnet>.1``… (``with`` it: ``close`` removes everything)."""

    def __init__(self, count: int, *, subnet: str = "10.77.0") -> None:
        if not 1 <= count <= 250:
            raise ValueError(f"count must be within 1..250, got {count}")
        if not re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}", subnet):
            raise ValueError(f"subnet must be the first three octets, e.g. 10.77.0, got {subnet!r}")
        self.tag = f"{NETNS_PREFIX}{os.getpid()}-{next(_networks)}"
        self.bridge = Bridge(f"{self.tag}-br")
        self.hosts = [Namespace(f"{self.tag}-h{i}", f"{subnet}.{i}", self.bridge, f"p{i}") for i in range(1, count + 1)]
        self._created: list[Bridge | Namespace] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<NamespaceNetwork {self.tag} hosts={len(self.hosts)} created={len(self._created)}>"

    def __enter__(self) -> NamespaceNetwork:
        self.create()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getitem__(self, index: int) -> Namespace:
        return self.hosts[index]

    def __iter__(self) -> Iterator[Namespace]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def create(self) -> None:
        """Make the bridge and every host; on a failure, remove what was made and raise."""
        require_root()
        remove_stale()
        try:
            parts: list[Bridge | Namespace] = [self.bridge, *self.hosts]
            for part in parts:
                self._created.append(part)  # before create: a half-made part is removed too
                part.create()
        except BaseException:
            self.close()
            raise

    def partition(self, *hosts: Namespace) -> None:
        """Cut ``hosts`` off: each can reach no one and no one can reach it (until ``heal``)."""
        for host in hosts:
            host.disconnect()

    def heal(self) -> None:
        """Reconnect every host."""
        for host in self.hosts:
            host.reconnect()

    def close(self) -> None:
        """Kill what runs on the hosts, delete every namespace (and so every link). Safe twice."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for part in reversed(self._created):
            try:
                part.destroy()
            except NetnsError as exc:  # keep removing the rest
                errors.append(str(exc))
        if errors:
            raise NetnsError("cleanup failed: " + "; ".join(errors))


class NamespaceProcess:
    """A process on one host, its stdout and stderr collected on a thread (for logs and assertions)."""

    def __init__(self, host: Namespace, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.host = host
        self.process: subprocess.Popen[str] = host.popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []
        self._sent: set[int] = set()
        self._reader = threading.Thread(target=self._read, name=f"output-{host.name}", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<NamespaceProcess pid={self.process.pid} on {self.host.name} returncode={self.process.returncode}>"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, pattern: str, *, timeout_s: float = 60.0) -> re.Match[str]:
        """The first match of ``pattern`` in the output; ``AssertionError`` if the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = regex.search(self.output)
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"{self.host.name}: exited with {self.process.returncode}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"{self.host.name}: no {pattern!r} within {timeout_s:g} s:\n{self.output}")

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` once: a second SIGTERM would land after the program restored the default
        handler on its way out, and kill it mid-shutdown."""
        if self.process.poll() is None and sig not in self._sent:
            self._sent.add(sig)
            self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, *, timeout_s: float = 30.0) -> int:
        """Send ``sig`` (unless already sent) and wait; SIGKILL after ``timeout_s``. Returns the exit code."""
        self.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


@contextmanager
def network_for_test(hosts: int) -> Iterator[NamespaceNetwork]:
    """``hosts`` namespace hosts on one bridge for a test: it fails (never skips) without root,
    and everything is removed even when it fails."""
    try:
        require_root()
    except NetnsError as exc:
        pytest.fail(str(exc))
    with NamespaceNetwork(hosts) as made:
        yield made
