"""Test-only fault injection for a real ``gossip-node``: ``SWARMLIST_FAULTS`` and ``DATA_DIR/faults.json``.

This machine has no ``tc netem`` and no iptables, so reliability tests make a real node's
network bad from inside: with ``SWARMLIST_FAULTS`` set, the node wraps its gossip transport in
``gossip.faults.FaultyTransport`` (drop, delay, jitter, duplicate, reorder, and cut to named
peers). The value is a JSON object, every key optional::

    SWARMLIST_FAULTS='{"drop": 0.3, "delay_s": 0.05, "jitter_s": 0.02, "duplicate": 0.1,
                       "reorder": 0.2, "reorder_delay_s": 0.05, "cut": ["127.0.0.1:7071"], "seed": 1}'

``drop``, ``duplicate`` and ``reorder`` are probabilities per request (``drop`` per leg),
delays are seconds (at most ``MAX_DELAY_S``), ``cut`` lists ``host:port`` addresses of peers
this node cannot reach at all (faults apply to the requests this node makes: cut both ends for
a symmetric cut), ``seed`` seeds the random fates (in the variable only: read once, at startup).
``{}`` enables the machinery with no faults yet; unset or empty, nothing is wrapped and no file
is read, so a production node never pays for, or trips over, any of this.

At run time, ``DATA_DIR/faults.json`` (the same JSON, without ``seed``) replaces the faults
while it exists, and its removal restores the variable's: the node polls it every
``POLL_INTERVAL_S`` and re-reads it at once on SIGUSR1; write it atomically (temp file +
rename). A bad value at startup is a ``ConfigError`` (``gossip-node`` exits 2); a bad file at
run time is logged and ignored.
Active injection is logged as a warning starting ``FAULT INJECTION ACTIVE``. It is an
environment variable only, on purpose: it stays out of ``--help`` and of config files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gossip.auth import Wire
from gossip.errors import TransportError
from gossip.faults import Faults, FaultyTransport
from gossip.http_transport import parse_address
from gossip.transport import Transport
from node.cluster import TransportFactory
from node.errors import ConfigError

__all__ = [
    "FAULTS_ENV",
    "FAULTS_FILE",
    "MAX_DELAY_S",
    "POLL_INTERVAL_S",
    "FaultSpec",
    "FaultInjector",
    "parse_faults",
]

log = logging.getLogger(__name__)

FAULTS_ENV = "SWARMLIST_FAULTS"
FAULTS_FILE = "faults.json"  # in the node's data dir
POLL_INTERVAL_S = 1.0
MAX_DELAY_S = 60.0  # longer than any gossip timeout: more only hides a typo (ms for s)
_MAX_SPEC_BYTES = 64 << 10
_MAX_CUT = 1000
_PROBABILITIES = ("drop", "duplicate", "reorder")
_DELAYS = ("delay_s", "jitter_s", "reorder_delay_s")
_COUNTS = ("requests", "cut", "request_lost", "reply_lost", "duplicated", "delayed")  # FaultyTransport.counts
_KEYS = frozenset(one.name for one in fields(Faults)) | {"seed"}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Faults to inject and the seed of their random fates."""

    faults: Faults = field(default_factory=Faults)
    seed: int = 0

    def describe(self) -> str:
        """The faults that are on, e.g. ``drop=0.3 delay_s=0.05 cut=[127.0.0.1:7071]``, or ``none``."""
        default = Faults()
        parts = []
        for name in (one.name for one in fields(Faults)):
            value = getattr(self.faults, name)
            if name == "reorder_delay_s" and not self.faults.reorder:
                continue  # meaningless without reordering
            if value != getattr(default, name):
                parts.append(f"{name}=[{', '.join(sorted(value))}]" if name == "cut" else f"{name}={value:g}")
        return " ".join(parts) or "none"


def parse_faults(text: str, *, source: str = FAULTS_ENV, seed: int | None = None) -> FaultSpec:
    """A ``FaultSpec`` from its JSON text; ``ConfigError`` naming ``source`` and the bad key otherwise.

    With ``seed`` given (the file, read after startup) the text may not set one: the fates'
    random sequence is seeded once.
    """
    if len(text.encode("utf-8", "surrogatepass")) > _MAX_SPEC_BYTES:
        raise ConfigError(f"{source}: longer than {_MAX_SPEC_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f'{source}: not valid JSON ({exc}); expected e.g. {{"drop": 0.3, "delay_s": 0.05}}') from exc
    if not isinstance(data, dict):
        raise ConfigError(f'{source}: expected a JSON object such as {{"drop": 0.3}}, got {type(data).__name__}')
    if seed is not None and "seed" in data:
        raise ConfigError(f"{source}: seed can only be set in {FAULTS_ENV} (it is read once, at startup)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise ConfigError(f"{source}: unknown key(s) {shown}; known: {', '.join(sorted(_KEYS))}")
    values: dict[str, Any] = {}  # each checked below: Faults validates again
    for name in _PROBABILITIES:
        if name in data:
            values[name] = _number(source, name, data[name], 0.0, 1.0, "a probability in [0, 1]")
    for name in _DELAYS:
        if name in data:
            values[name] = _number(source, name, data[name], 0.0, MAX_DELAY_S, f"seconds in [0, {MAX_DELAY_S:g}]")
    if "cut" in data:
        values["cut"] = _addresses(source, data["cut"])
    if seed is None:
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ConfigError(f"{source}: seed must be an integer in [0, 2**64), got {seed!r}")
    return FaultSpec(replace(Faults(), **values), seed)


def _number(source: str, name: str, value: object, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{source}: {name} must be {what}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{source}: {name} must be {what}, got {value!r}")
    return float(value)


def _addresses(source: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > _MAX_CUT:
        raise ConfigError(f"{source}: cut must be a list of at most {_MAX_CUT} host:port strings, got {value!r}")
    for address in value:
        if not isinstance(address, str):
            raise ConfigError(f"{source}: cut must hold host:port strings, got {address!r}")
        try:
            parse_address(address)
        except TransportError as exc:
            raise ConfigError(f"{source}: cut: {exc}") from exc
    return frozenset(value)


class FaultInjector:
    """Applies a ``FaultSpec`` to a node's gossip transport and follows ``DATA_DIR/faults.json``.

    ``wrap`` the node's transport factory before the node is built; ``start`` on the node's
    loop (logs the warning, installs SIGUSR1, polls the file); ``aclose`` stops polling.
    """

    def __init__(self, initial: FaultSpec, *, file: Path, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self._initial = initial
        self._file = file
        self._poll_interval_s = poll_interval_s
        self._spec = initial
        self._file_seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the file last read
        self._transports: list[FaultyTransport] = []
        self._poller: asyncio.Task[None] | None = None
        self._signal_installed = False

    def __repr__(self) -> str:
        return f"<FaultInjector {self._spec.describe()} file={self._file} transports={len(self._transports)}>"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], data_dir: Path) -> FaultInjector | None:
        """The injector ``SWARMLIST_FAULTS`` asks for (None when unset or empty); ``ConfigError`` if
        the variable, or a ``faults.json`` already in ``data_dir``, is invalid."""
        text = environ.get(FAULTS_ENV, "").strip()
        if not text:
            return None
        injector = cls(parse_faults(text), file=data_dir / FAULTS_FILE)
        signature = injector._signature()
        if signature is not None:
            injector._spec = injector._read_file()
            injector._file_seen = signature
        return injector

    @property
    def spec(self) -> FaultSpec:
        """The faults in force now."""
        return self._spec

    @property
    def counts(self) -> Counter[str]:
        """What was injected so far, over every wrapped transport (``FaultyTransport.counts``)."""
        total: Counter[str] = Counter()
        for transport in self._transports:
            total.update(transport.counts)
        return total

    def metrics(self) -> dict[str, float]:
        """Injected so far (requests, cut, request_lost, reply_lost, duplicated, delayed) and the faults now."""
        faults = self._spec.faults
        counts = self.counts
        return {
            **{name: counts[name] for name in _COUNTS},
            "drop": faults.drop,
            "delay_s": faults.delay_s,
            "jitter_s": faults.jitter_s,
            "duplicate": faults.duplicate,
            "reorder": faults.reorder,
            "cut_peers": len(faults.cut),
        }

    def wrap(self, factory: TransportFactory) -> TransportFactory:
        """``factory``'s transports, wrapped in a ``FaultyTransport`` that follows this injector."""

        def build(wire: Wire) -> Transport:
            faults = self._spec.faults
            faulty = FaultyTransport(
                factory(wire), seed=self._spec.seed, drop=faults.drop, delay_s=faults.delay_s,
                jitter_s=faults.jitter_s, duplicate=faults.duplicate, reorder=faults.reorder,
                reorder_delay_s=faults.reorder_delay_s, cut=faults.cut,
            )  # fmt: skip
            self._transports.append(faulty)
            return faulty

        return build

    def start(self) -> None:
        """Say loudly that faults are injected, re-read the file on SIGUSR1, and poll it."""
        log.warning(
            "FAULT INJECTION ACTIVE (%s, test only): %s; seed %d; %s is re-read every %g s and on SIGUSR1",
            FAULTS_ENV, self._spec.describe(), self._spec.seed, self._file, self._poll_interval_s,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGUSR1, self.reload)
            self._signal_installed = True
        except (NotImplementedError, RuntimeError):  # not the main thread (tests): polling still works
            pass
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="fault-injection-poll")

    def reload(self) -> None:
        """Re-read ``faults.json`` now (the SIGUSR1 handler), even if it looks unchanged."""
        self._check_file(force=True)

    async def aclose(self) -> None:
        """Stop polling; the wrapped transports close with the node. Safe to call twice."""
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            self._signal_installed = False
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            self._check_file()

    def _check_file(self, *, force: bool = False) -> None:
        signature = self._signature()
        if signature == self._file_seen and not force:
            return
        self._file_seen = signature
        if signature is None:
            self._apply(self._initial, f"{self._file} removed: back to {FAULTS_ENV}")
            return
        try:
            spec = self._read_file()
        except ConfigError as exc:
            log.error("FAULT INJECTION: ignoring %s, keeping %s: %s", self._file, self._spec.describe(), exc)
            return
        self._apply(spec, f"from {self._file}")

    def _apply(self, spec: FaultSpec, why: str) -> None:
        if spec == self._spec:
            return
        self._spec = spec
        for transport in self._transports:
            transport.set_faults(**{one.name: getattr(spec.faults, one.name) for one in fields(Faults)})
        log.warning("FAULT INJECTION CHANGED (%s): %s", why, spec.describe())

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            status = os.stat(self._file)
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable: treated as absent, and said so
            log.error("FAULT INJECTION: cannot stat %s: %s", self._file, exc.strerror)
            return None
        return status.st_ino, status.st_size, status.st_mtime_ns

    def _read_file(self) -> FaultSpec:
        try:
            with open(self._file, "rb") as handle:
                data = handle.read(_MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{self._file}: cannot read: {exc.strerror}") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self._file}: not UTF-8 text") from exc
        return parse_faults(text, source=str(self._file), seed=self._initial.seed)
