"""Virtual time and a deterministic in-memory network, for gossip tests and simulations.

``VirtualTimeLoop`` is an asyncio event loop whose clock only moves when nothing is ready to
run: instead of blocking in ``select()`` it jumps to the next timer. ``asyncio.sleep``,
``wait_for``, ``asyncio.timeout`` and ``call_later`` all run in virtual time, so a thousand
protocol periods take milliseconds, and a run is a pure function of its inputs. Real threads
stay correct: while an executor job (``run_in_executor``, ``asyncio.to_thread``, e.g. SQLite
work) is in flight the clock stands still and the loop waits for real until it finishes.
Real sockets do not mix with virtual time (their waits are real, their timeouts virtual).

Running tests on it — the simplest robust pattern is a plain (sync) test::

    def test_probe_times_out() -> None:
        async def main() -> None:
            ...  # await asyncio.sleep(3600) takes no real time
        run_virtual(main)

or the ``@virtual_time`` decorator on an ``async def`` test (sync fixtures only)::

    @virtual_time
    async def test_probe_times_out(tmp_path) -> None: ...

``InMemoryNetwork`` connects ``InMemoryTransport``s (the ``gossip.transport.Transport``
protocol) with per-link latency, jitter, loss (the request and the reply legs lost
independently), duplication and reordering; partitions (symmetric and one-way); dead nodes
(they never answer) and stalled ones (a CPU-starved process: late to answer and to send). Every
message is sealed by the sender's ``Wire`` and opened by the receiver's, so encoding, size
limits and authentication are exercised exactly as over HTTP: a wrong key or another cluster
makes the caller raise ``AuthError`` / ``ClusterMismatch``. All randomness comes from one
``random.Random(seed)``: with the virtual loop, one seed gives one run, event for event.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar, TypeVarTuple

from gossip.auth import Refusal, RejectionLog, Wire
from gossip.clock import LoopClock
from gossip.errors import GossipError, ProtocolError, RequestTimeout, TransportError
from gossip.messages import Message, MessageType, message_type
from gossip.transport import Handler, Sender

__all__ = [
    "VirtualTimeLoop",
    "run_virtual",
    "virtual_time",
    "DEFAULT_WALL_START",
    "LinkConditions",
    "Leg",
    "NetworkEvent",
    "TrafficCount",
    "InMemoryNetwork",
    "InMemoryTransport",
    "make_wire",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

DEFAULT_WALL_START = 1_700_000_000.0  # virtual wall clock at start: fixed, so runs repeat exactly
_REAL_POLL_S = 0.05  # how long to wait for real, at most, while an executor job is in flight


# --- virtual time ---------------------------------------------------------------------------


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that jumps to the next timer whenever the loop is idle."""

    # BaseEventLoop internals this loop reads (private, but stable since Python 3.4).
    _scheduled: list[asyncio.TimerHandle]  # the heap of pending timers
    _ready: collections.deque[asyncio.Handle]  # callbacks to run on this iteration
    _clock_resolution: float

    def __init__(self, *, start_time: float = 0.0, wall_start: float = DEFAULT_WALL_START) -> None:
        self._now = float(start_time)
        self._wall_offset = wall_start - self._now
        self._executor_jobs = 0
        super().__init__(_VirtualSelector(selectors.DefaultSelector(), self))
        # Timers fire when ``when < time() + resolution``; the clock lands exactly on ``when``,
        # so the resolution must stay representable next to large virtual times.
        self._clock_resolution = max(self._clock_resolution, 1e-6)

    def __repr__(self) -> str:
        return f"<VirtualTimeLoop t={self._now:.6f} timers={len(self._scheduled)} executor_jobs={self._executor_jobs}>"

    def time(self) -> float:
        """Virtual monotonic seconds."""
        return self._now

    def wall_time(self) -> float:
        """Virtual wall-clock seconds (``time.time()`` of this virtual world; ``LoopClock.wall``)."""
        return self._now + self._wall_offset

    @property
    def executor_jobs(self) -> int:
        """Executor jobs in flight; while there are any, virtual time does not advance."""
        return self._executor_jobs

    def run_in_executor(self, executor: Executor | None, func: Callable[[*_Ts], _T], *args: *_Ts) -> asyncio.Future[_T]:
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _future: asyncio.Future[Any]) -> None:
        self._executor_jobs -= 1

    def _idle_select(self, real: selectors.BaseSelector, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = real.select(0)
        # ``_ready`` may have been filled by call_soon_threadsafe since the loop computed timeout.
        if ready or self._ready or (timeout is not None and timeout <= 0):
            return ready
        if self._executor_jobs:
            # A thread is working for us: its result must land at the virtual time it was
            # asked for, so wait for real (its completion wakes the self-pipe).
            return real.select(_REAL_POLL_S)
        if timeout is None:
            # No timer at all: only another thread (call_soon_threadsafe) can wake us.
            return real.select(None)
        target = self._now + timeout
        if self._scheduled:
            # Land exactly on the next timer (``timeout`` is ``when - now``, rounded).
            target = min(target, self._scheduled[0].when())
        self._now = max(self._now, target)
        return []


class _VirtualSelector(selectors.BaseSelector):
    """A real selector whose ``select`` lets the virtual loop decide how long to wait."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._loop._idle_select(self._real, timeout)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


def run_virtual(
    main: Callable[[], Awaitable[_T]] | Coroutine[Any, Any, _T],
    *,
    start_time: float = 0.0,
    wall_start: float = DEFAULT_WALL_START,
) -> _T:
    """Run ``main`` (a coroutine, or a function returning an awaitable) on a fresh ``VirtualTimeLoop``.

    Like ``asyncio.run``: leftover tasks are cancelled and the default executor shut down.
    """

    async def _main() -> _T:
        return await (main if isinstance(main, Coroutine) else main())  # called on the loop

    def _new_loop() -> VirtualTimeLoop:
        return VirtualTimeLoop(start_time=start_time, wall_start=wall_start)

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(_main())


def virtual_time(test: Callable[_P, Coroutine[Any, Any, _T]]) -> Callable[_P, _T]:
    """Turn an ``async def`` (test) into a plain function that runs it with ``run_virtual``."""

    @functools.wraps(test)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return run_virtual(test(*args, **kwargs))

    return run


# --- the in-memory network ------------------------------------------------------------------


def make_wire(
    address: str,
    *,
    name: str | None = None,
    cluster: str = "test-cluster",
    key: bytes | None = b"test-cluster-key",
    **options: Any,
) -> Wire:
    """A ``Wire`` for tests and simulations, stamped with the running loop's (virtual) wall clock.

    Call it inside the loop's run or pass it to code that runs there (the clock is read lazily).
    ``options`` go to ``Wire`` (``max_skew_s``, ``replay_window_s``, ``max_remembered_nonces``).
    """
    return Wire(cluster, key=key, name=name or address, address=address, clock=LoopClock().wall, **options)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConditions:
    """How one direction of one link behaves. Probabilities are per message leg."""

    latency_s: float = 0.001  # one-way delay of every leg
    jitter_s: float = 0.0  # plus a uniform random delay in [0, jitter_s]
    loss: float = 0.0  # probability a leg is lost (the caller times out)
    duplicate: float = 0.0  # probability a request is delivered twice (the handler runs twice)
    reorder: float = 0.0  # probability a leg is held back by up to reorder_delay_s (overtaken)
    reorder_delay_s: float = 0.01

    def __post_init__(self) -> None:
        for name in ("latency_s", "jitter_s", "reorder_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")


_LINK_FIELDS = frozenset(field.name for field in fields(LinkConditions))


class Leg(StrEnum):
    """Which half of a request/response exchange."""

    REQUEST = "request"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """One leg's fate, recorded when known (with ``record_events=True``)."""

    time: float  # virtual time the leg was sent
    source: str
    target: str
    type: MessageType  # the exchange's request type (a PING's reply leg is counted as PING)
    leg: Leg
    size: int  # bytes on the wire (0 for an empty reply or a refusal)
    outcome: str  # delivered | lost | blocked | dead | duplicated


@dataclass(frozen=True, slots=True)
class TrafficCount:
    messages: int = 0
    bytes: int = 0

    def plus(self, size: int) -> TrafficCount:
        return TrafficCount(self.messages + 1, self.bytes + size)


# What travels back to a caller: the reply's bytes, no body, a refusal, or "connection refused".
_Outcome = bytes | None | Refusal | TransportError


class InMemoryNetwork:
    """Connects in-memory transports; deterministic under ``seed`` on a ``VirtualTimeLoop``."""

    def __init__(
        self,
        seed: int,
        *,
        latency_s: float = 0.001,
        jitter_s: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        reorder_delay_s: float = 0.01,
        record_events: bool = False,
    ) -> None:
        self._random = random.Random(seed)
        self._defaults = LinkConditions(latency_s=latency_s, jitter_s=jitter_s, loss=loss, duplicate=duplicate,
                                        reorder=reorder, reorder_delay_s=reorder_delay_s)  # fmt: skip
        self._links: dict[tuple[str, str], LinkConditions] = {}
        self._blocked: set[tuple[str, str]] = set()
        self._dead: set[str] = set()
        self._stalled_until: dict[str, float] = {}
        self._transports: dict[str, InMemoryTransport] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._record_events = record_events
        self.events: list[NetworkEvent] = []
        self._sent: dict[tuple[MessageType, Leg], TrafficCount] = {}
        self._lost: dict[tuple[MessageType, Leg], int] = {}
        self._by_node: dict[str, TrafficCount] = {}

    def __repr__(self) -> str:
        return (f"<InMemoryNetwork nodes={len(self._transports)} dead={len(self._dead)} "
                f"blocked_links={len(self._blocked)} in_flight={len(self._tasks)}>")  # fmt: skip

    # -- nodes --

    def transport(self, address: str, wire: Wire) -> InMemoryTransport:
        """A transport reachable at ``address`` that seals with ``wire`` (its address must match)."""
        if wire.address != address:
            raise ValueError(f"wire seals sender address {wire.address!r}, transport is at {address!r}")
        current = self._transports.get(address)
        if current is not None and not current.closed:
            raise ValueError(f"address {address} is already taken by {current!r}")
        transport = InMemoryTransport(self, address, wire)
        self._transports[address] = transport
        return transport

    @property
    def addresses(self) -> list[str]:
        """Addresses of the open transports, in the order they joined."""
        return [address for address, transport in self._transports.items() if not transport.closed]

    def kill(self, address: str) -> None:
        """The node at ``address`` goes silent: nothing it sends or is sent arrives, it never answers."""
        self._dead.add(address)

    def revive(self, address: str) -> None:
        self._dead.discard(address)

    def is_dead(self, address: str) -> bool:
        return address in self._dead

    def stall(self, address: str, seconds: float) -> None:
        """From now for ``seconds``, the node handles requests late, sends late and reads replies late.

        Emulates a CPU-starved process (Lifeguard's local health): its own timers still fire on
        time, so its probes time out, and its peers see it answer late or not at all.
        """
        until = asyncio.get_running_loop().time() + seconds
        self._stalled_until[address] = max(self._stalled_until.get(address, until), until)

    # -- links --

    @property
    def defaults(self) -> LinkConditions:
        return self._defaults

    def set_defaults(self, **changes: Any) -> None:
        """Change the conditions of every link without an override (e.g. ``loss=0.1``)."""
        self._defaults = replace(self._defaults, **_checked_link_changes(changes))

    def set_link(self, a: str, b: str, *, symmetric: bool = True, **changes: Any) -> None:
        """Override conditions from ``a`` to ``b`` (and back, if ``symmetric``), e.g. ``latency_s=0.2``."""
        checked = _checked_link_changes(changes)
        for pair in ((a, b), (b, a)) if symmetric else ((a, b),):
            self._links[pair] = replace(self.link(*pair), **checked)

    def clear_link(self, a: str, b: str, *, symmetric: bool = True) -> None:
        for pair in ((a, b), (b, a)) if symmetric else ((a, b),):
            self._links.pop(pair, None)

    def link(self, source: str, target: str) -> LinkConditions:
        """The conditions a leg from ``source`` to ``target`` meets."""
        return self._links.get((source, target), self._defaults)

    def partition(self, group_a: Iterable[str], group_b: Iterable[str]) -> None:
        """Nothing crosses between the two groups, either way (until ``heal``)."""
        side_b = list(group_b)
        for a in group_a:
            for b in side_b:
                self._blocked.update(((a, b), (b, a)))

    def block(self, a: str, b: str) -> None:
        """One-way cut: every leg from ``a`` to ``b`` is dropped (requests and replies alike).

        So ``a``'s requests to ``b`` are lost, and ``b``'s requests to ``a`` arrive but their
        replies are lost: in request/response, a one-way cut breaks both callers.
        """
        self._blocked.add((a, b))

    def unblock(self, a: str, b: str) -> None:
        self._blocked.discard((a, b))

    def heal(self) -> None:
        """Remove every partition and block (link overrides, dead and stalled nodes stay)."""
        self._blocked.clear()

    def is_blocked(self, source: str, target: str) -> bool:
        return (source, target) in self._blocked

    # -- counters --

    def traffic(self) -> dict[tuple[MessageType, Leg], TrafficCount]:
        """Legs put on the wire (lost ones included), by the exchange's request type and leg."""
        return dict(self._sent)

    def lost(self) -> dict[tuple[MessageType, Leg], int]:
        """Legs that never arrived (loss, blocks, dead nodes)."""
        return dict(self._lost)

    def node_traffic(self) -> dict[str, TrafficCount]:
        """Legs sent by each address (requests it made and replies it gave)."""
        return dict(self._by_node)

    def total(self) -> TrafficCount:
        return TrafficCount(sum(count.messages for count in self._sent.values()),
                            sum(count.bytes for count in self._sent.values()))  # fmt: skip

    def reset_counters(self) -> None:
        self._sent.clear()
        self._lost.clear()
        self._by_node.clear()
        self.events.clear()

    async def aclose(self) -> None:
        """Cancel every message still in flight."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- delivery --

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _exchange(self, caller: InMemoryTransport, target: str, kind: MessageType, data: bytes,
                        reply: asyncio.Future[_Outcome]) -> None:  # fmt: skip
        source = caller.local_address
        await self._wait_out_stall(source)
        if not await self._carry(source, target, kind, Leg.REQUEST, len(data)):
            return  # the caller times out
        receiver = self._transports.get(target)
        outcome: _Outcome
        if receiver is None or not receiver.serving:
            # Nothing listens there: the refusal comes back like a TCP reset.
            outcome = TransportError(f"connection refused by {target} (nothing serving there)")
        else:
            if self._random.random() < self.link(source, target).duplicate:
                self._record(source, target, kind, Leg.REQUEST, len(data), "duplicated")
                self._spawn(self._serve_duplicate(receiver, source, target, kind, data))
            await self._wait_out_stall(target)
            if target in self._dead:
                self._record_loss(source, target, kind, Leg.REQUEST, len(data), "dead")
                return
            outcome = await receiver._serve(data, source)
        if not await self._carry(target, source, kind, Leg.REPLY, _size(outcome)):
            return
        await self._wait_out_stall(source)
        if not reply.done():
            reply.set_result(outcome)

    async def _serve_duplicate(self, receiver: InMemoryTransport, source: str, target: str, kind: MessageType,
                               data: bytes) -> None:  # fmt: skip
        await asyncio.sleep(self._delay(self.link(source, target)))
        await self._wait_out_stall(target)
        if target not in self._dead and receiver.serving:
            await receiver._serve(data, source)  # the caller already has (or will have) its one reply

    async def _carry(self, source: str, target: str, kind: MessageType, leg: Leg, size: int) -> bool:
        """Send one leg; after its delay, whether it arrived."""
        if source in self._dead:
            return False  # a dead node sends nothing
        key = (kind, leg)
        self._sent[key] = self._sent.get(key, TrafficCount()).plus(size)
        self._by_node[source] = self._by_node.get(source, TrafficCount()).plus(size)
        link = self.link(source, target)
        if (source, target) in self._blocked:
            self._record_loss(source, target, kind, leg, size, "blocked")
            return False
        if link.loss and self._random.random() < link.loss:
            self._record_loss(source, target, kind, leg, size, "lost")
            return False
        sent_at = asyncio.get_running_loop().time()
        await asyncio.sleep(self._delay(link))
        if target in self._dead:
            self._record_loss(source, target, kind, leg, size, "dead", sent_at)
            return False
        self._record(source, target, kind, leg, size, "delivered", sent_at)
        return True

    def _delay(self, link: LinkConditions) -> float:
        delay = link.latency_s
        if link.jitter_s:
            delay += self._random.uniform(0.0, link.jitter_s)
        if link.reorder and self._random.random() < link.reorder:
            delay += self._random.uniform(0.0, link.reorder_delay_s)
        return delay

    async def _wait_out_stall(self, address: str) -> None:
        loop = asyncio.get_running_loop()
        while (until := self._stalled_until.get(address, 0.0)) > loop.time():
            await asyncio.sleep(until - loop.time())

    def _record_loss(self, source: str, target: str, kind: MessageType, leg: Leg, size: int, outcome: str,
                     sent_at: float | None = None) -> None:  # fmt: skip
        self._lost[(kind, leg)] = self._lost.get((kind, leg), 0) + 1
        self._record(source, target, kind, leg, size, outcome, sent_at)

    def _record(self, source: str, target: str, kind: MessageType, leg: Leg, size: int, outcome: str,
                sent_at: float | None = None) -> None:  # fmt: skip
        if self._record_events:
            time = asyncio.get_running_loop().time() if sent_at is None else sent_at
            self.events.append(NetworkEvent(time, source, target, kind, leg, size, outcome))


class InMemoryTransport:
    """One member's endpoint on an ``InMemoryNetwork`` (implements ``gossip.transport.Transport``)."""

    def __init__(self, network: InMemoryNetwork, address: str, wire: Wire) -> None:
        self._network = network
        self._address = address
        self._wire = wire
        self._handler: Handler | None = None
        self._closed = False
        self._pending: set[asyncio.Future[_Outcome]] = set()
        self._rejections = RejectionLog(logger)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving" if self._handler else "idle"
        return f"<InMemoryTransport {self._wire.name}@{self._address} {state} pending={len(self._pending)}>"

    @property
    def local_address(self) -> str:
        return self._address

    @property
    def wire(self) -> Wire:
        return self._wire

    @property
    def serving(self) -> bool:
        return self._handler is not None and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self, handler: Handler) -> None:
        if self._closed:
            raise TransportError(f"transport {self._address} is closed")
        self._handler = handler

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        if self._closed:
            raise TransportError(f"transport {self._address} is closed")
        data = self._wire.seal(message)
        reply: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._pending.add(reply)
        self._network._spawn(self._network._exchange(self, address, message_type(message), data, reply))
        try:
            async with asyncio.timeout(timeout_s):
                outcome = await reply
        except TimeoutError:
            raise RequestTimeout(f"no reply from {address} within {timeout_s:g} s") from None
        finally:
            self._pending.discard(reply)
        if isinstance(outcome, TransportError):
            raise outcome
        if isinstance(outcome, Refusal):
            raise outcome.error(address, cluster=self._wire.cluster)
        if outcome is None:
            return None
        return self._wire.open(outcome).message

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for reply in self._pending:
            if not reply.done():
                reply.set_result(TransportError(f"transport {self._address} closed during the request"))

    async def _serve(self, data: bytes, source: str) -> _Outcome:
        """Open, handle and answer one request, as the HTTP server does; errors become refusals."""
        handler = self._handler
        if handler is None or self._closed:
            return TransportError(f"connection refused by {self._address} (not serving)")
        try:
            envelope = self._wire.open(data)
        except GossipError as exc:
            self._rejections.refused(source, str(exc))
            return Refusal.of(exc, cluster=self._wire.cluster)
        try:
            answer = await handler(envelope.message, Sender(envelope.sender, envelope.sender_address))
        except ProtocolError as exc:  # the handler cannot serve this request
            return Refusal.of(exc, cluster=self._wire.cluster)
        except Exception as exc:
            logger.exception("%s: handler failed on %s from %s", self._address, type(envelope.message).__name__, source)
            return Refusal(500, f"{type(exc).__name__}: {exc}")
        if answer is None:
            return None
        try:
            return self._wire.seal(answer)
        except ProtocolError as exc:  # our handler built a reply the protocol cannot carry: our bug
            logger.exception("%s: cannot seal the %s reply to %s", self._address, type(answer).__name__, source)
            return Refusal(500, f"reply could not be sealed: {exc}")


def _checked_link_changes(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - _LINK_FIELDS
    if unknown:
        raise TypeError(f"unknown link conditions {sorted(unknown)}; known: {sorted(_LINK_FIELDS)}")
    return changes


def _size(outcome: _Outcome) -> int:
    return len(outcome) if isinstance(outcome, bytes) else 0
