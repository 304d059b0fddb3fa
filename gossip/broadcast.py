"""Epidemic dissemination of opaque records: push each new record to random peers, a bounded number of times.

Rumour mongering, push variant (Demers et al., "Epidemic Algorithms for Replicated Database
Maintenance", PODC 1987, §1.4), as hashicorp/memberlist gossips user broadcasts
(``state.go: gossip``, ``queue.go``):

- **Push.** Every round (``interval_s``) a node picks ``fanout`` random live peers and sends
  each one a ``Payloads`` batch taken from its transmit-limited queue (``gossip.queue``):
  the least-sent rumours first, each handout counting as one transmission. A receiver merges
  the batch through the ``RecordDelegate`` and queues what was *new to it*, so it pushes those
  on in turn: an infection that reaches every node in about log_{fanout+1} N rounds plus a
  short tail (Pittel's ``log2 N + ln N`` bound, for fanout 1, is the test's yardstick).
- **How many times.** memberlist sends a rumour λ·⌈log10(N + 1)⌉ times (λ = 4). Demers'
  analysis of blind push says why that is not enough for "everyone, 99 % of the time": when
  every node sends k copies to random peers, a given node is missed by all of them with
  probability about e^−k, so N·e^−k nodes are missed in expectation. The ceiling of log10
  makes k grow in steps, so right below a power of ten k is small for the size: N = 9 gets
  k = 4 (N·e^−4 ≈ 0.16 nodes missed) and N = 50 or 99 get k = 8 (0.017, 0.033). On the
  push model (``scripts/bench/dissemination.py``) memberlist's rule misses someone in 6.6 %
  of loss-free epidemics at N = 9, 0.9 % at N = 50 and 3.4 % at N = 99. So each node here
  sends a rumour k = ⌈ln(N / ε)⌉ times in all (``sends_per_rumour``), with ε =
  ``miss_probability``: N·e^−k ≤ ε, so at most about ε of loss-free epidemics miss anyone.
  With ε = 10⁻³ that is 9 sends at N = 5, 12 at N = 100 and 13 at N = 200 — memberlist's
  count for large clusters, more for small ones. Under message loss p each send lands with
  probability 1 − p and the expectation becomes N·e^−k(1−p) (≈ 0.5 % at 20 % loss); what
  push misses, anti-entropy repairs.
- **Receivers merge by key, never fuzzily** (the design's G-Set): a record's rumour key is
  the BLAKE2b hash of its bytes, so one record received twice is one rumour, and a record
  the delegate already held is not pushed again. Records still in our own queue are known
  to us (we are spreading them) and are not even handed to the delegate.
- **Adaptive pacing** (the design's "progressive synchronisation"). Messages per second are
  bounded by ``fanout / interval_s`` whatever the load, so per-message costs (an HTTP
  request, a MAC, the receiver's SQLite transaction) stay bounded; what a message carries
  grows with the backlog: each batch takes everything queued up to ``max_batch_bytes``
  (and ``MAX_PAYLOADS_PER_MESSAGE`` records). So a quiet node sends small batches and a busy
  one large ones. A quiet node does not even wait for its round: a rumour queued while the
  queue was empty goes out after ``idle_flush_delay_s`` (enough to coalesce one LLM
  answer's records), so news crosses an idle cluster in hops × (delay + latency) rather
  than hops × interval. At most one such flush happens per interval, so the round rate at
  most doubles, and only while the queue keeps emptying: while traffic is low. Past the
  capacity of a round (fanout × max_batch_bytes per interval, shared by k transmissions of
  each record) the queue grows to ``max_queue_items`` and then drops rumours.
- **Bounded queue.** Past ``max_queue_items`` the queue drops the rumours sent most often
  first, and among equals the oldest (memberlist's ``Prune``, "retain the latest"): a
  rumour already sent has copies at other nodes that push it on, so it is the cheapest loss;
  anti-entropy repairs whatever push missed. Each drop is counted.

Piggybacking records on membership pings is not done: a ``Ping`` carries membership updates
only, and carrying records there would change the wire format; a node's records ride on
their own ``Payloads`` requests at the same rate as memberlist's gossip.

Metrics are counters since start and gauges (``metrics()``); see its docstring for what
"age" means — items are opaque, so a receiver cannot know how old a record is, and the
sender measures how long its rumours wait and live instead. Time is the running loop's, so
a virtual-time loop drives it in tests.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from gossip.config import ConfigError
from gossip.errors import GossipError, ProtocolError
from gossip.membership import MemberInfo
from gossip.messages import (
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOADS_PER_MESSAGE,
    Message,
    Payloads,
)
from gossip.queue import TransmitLimitedQueue
from gossip.service import LoopService
from gossip.transport import Sender, Transport

__all__ = [
    "ENVELOPE_HEADROOM_BYTES",
    "RECORDS_CHANNEL",
    "BroadcastConfig",
    "Broadcaster",
    "MemberView",
    "RecordDelegate",
    "payloads_body_bytes",
    "record_key",
    "sends_per_rumour",
]

log = logging.getLogger(__name__)

RECORDS_CHANNEL = "records"  # the Payloads channel this layer sends and serves
# Room left in MAX_MESSAGE_BYTES for the envelope around a batch: version, cluster, sender
# and address (≤ 128 + 128 + 300 characters, up to 4 bytes each in UTF-8), timestamp, nonce,
# type, the body's own header and the MAC come to < 2.5 KiB.
ENVELOPE_HEADROOM_BYTES = 4096
_KEY_BYTES = 16  # BLAKE2b-128: collisions among 2^40 records have probability ~2^-48
_COUNTERS = (
    "published",  # records queued by publish() (new to the queue)
    "republished",  # records queued because a peer's batch was new to us
    "messages_out",  # Payloads requests sent
    "bytes_out",  # their body bytes (the envelope adds ~100-300 B each)
    "items_out",  # records in them (a record sent to 3 peers counts 3)
    "send_failures",  # requests that failed or timed out (counted, never raised)
    "messages_in",
    "bytes_in",
    "items_in",
    "new_items_in",  # received records the delegate did not hold
    "duplicates_in",  # received records already held (by the delegate or our queue)
    "merge_failures",  # batches whose merge raised (a delegate bug; nothing re-pushed)
    "dropped",  # rumours pushed out of the full queue before their last send
    "retired",  # rumours sent their full count
)


def sends_per_rumour(cluster_size: int, miss_probability: float) -> int:
    """Sends per node per rumour: k = ⌈ln(N / ε)⌉, so that N·e^−k ≤ ε (Demers et al. §1.4); ≥ 1."""
    if not 0.0 < miss_probability < 1.0:
        raise ValueError(f"miss_probability must be in (0, 1), got {miss_probability!r}")
    size = max(1, cluster_size)
    return max(1, math.ceil(math.log(size / miss_probability) - 1e-9))


def record_key(item: bytes) -> bytes:
    """A record's rumour key: BLAKE2b-128 of its bytes (one record, one rumour)."""
    return hashlib.blake2b(item, digest_size=_KEY_BYTES).digest()


def payloads_body_bytes(channel: str, item_sizes: Sequence[int]) -> int:
    """Exact msgpack size of a ``Payloads`` body ``[channel, [bin...]]`` with items of these sizes."""
    return 1 + _str_bytes(channel) + _array_header_bytes(len(item_sizes)) + sum(map(_bin_bytes, item_sizes))


def _bin_bytes(size: int) -> int:
    return size + (2 if size < 2**8 else 3 if size < 2**16 else 5)


def _str_bytes(text: str) -> int:
    size = len(text.encode("utf-8"))
    return size + (1 if size < 32 else 2 if size < 2**8 else 3 if size < 2**16 else 5)


def _array_header_bytes(count: int) -> int:
    return 1 if count < 16 else 3 if count < 2**16 else 5


# The most a batch's body spends besides its items: the outer array, the channel, the items' array header.
_BATCH_OVERHEAD_BYTES = payloads_body_bytes(RECORDS_CHANNEL, []) - 1 + _array_header_bytes(MAX_PAYLOADS_PER_MESSAGE)
_MIN_BATCH_BYTES = _BATCH_OVERHEAD_BYTES + _bin_bytes(MAX_PAYLOAD_BYTES)  # the largest record must fit alone


@dataclass(frozen=True, kw_only=True)
class BroadcastConfig:
    """How records are pushed. ``lan()`` for real networks, ``local()`` for loopback and tests."""

    # One gossip round every this often (Serf's and memberlist's GossipInterval). Shorter spreads
    # sooner and sends more requests: a busy node sends fanout requests per round.
    interval_s: float = 0.2
    # Peers pushed to per round (memberlist's GossipNodes). More spreads in fewer rounds
    # (≈ log_{fanout+1} N) and sends more requests; each record's total sends do not change.
    fanout: int = 3
    # Each node sends a rumour ⌈ln(N / miss_probability)⌉ times in all, so a loss-free epidemic
    # misses someone with about this probability (see the module docstring). Lower is surer
    # and costs ln 10 ≈ 2.3 more sends per record and node per decade; anti-entropy repairs misses.
    miss_probability: float = 1e-3
    # Rumours queued at most; past it the most-sent (then oldest) drop first. Larger rides out
    # longer bursts and holds more memory (each rumour is its record's bytes plus ~150 B).
    max_queue_items: int = 8192
    # Body bytes of one batch, at most (≥ the largest record, ≤ MAX_MESSAGE_BYTES minus the
    # envelope's headroom). Larger carries bursts in fewer requests; each costs the receiver more.
    max_batch_bytes: int = 128 * 1024
    # Wait this long for a peer to take a batch (it merges before answering). Shorter frees
    # a slow peer's slot sooner; a timed-out batch is counted as failed, not resent.
    request_timeout_s: float = 1.0
    # A rumour queued while the queue was empty goes out after this delay instead of at the
    # next round (None: wait for the round). Longer coalesces more records per batch; shorter
    # spreads an idle cluster's news sooner. At most one such extra round per interval.
    idle_flush_delay_s: float | None = 0.01

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float | int) and not math.isfinite(value):
                raise ConfigError(f"{field.name} must be a finite number, got {value!r}")
        _require(self.interval_s > 0, "interval_s must be > 0", self.interval_s)
        _require(self.fanout >= 1, "fanout must be >= 1", self.fanout)
        _require(0 < self.miss_probability < 1, "miss_probability must be in (0, 1)", self.miss_probability)
        _require(self.max_queue_items >= 1, "max_queue_items must be >= 1", self.max_queue_items)
        _require(_MIN_BATCH_BYTES <= self.max_batch_bytes <= MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES,
                 f"max_batch_bytes must be in [{_MIN_BATCH_BYTES}, {MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES}] "
                 "(the largest record must fit, and the envelope around the batch)", self.max_batch_bytes)  # fmt: skip
        _require(self.request_timeout_s > 0, "request_timeout_s must be > 0", self.request_timeout_s)
        if self.idle_flush_delay_s is not None:
            _require(0 <= self.idle_flush_delay_s < self.interval_s,
                     "idle_flush_delay_s must be >= 0 and < interval_s (or None)", self.idle_flush_delay_s)  # fmt: skip

    @classmethod
    def lan(cls) -> BroadcastConfig:
        """Serf's LAN gossip: 200 ms rounds to 3 peers; 1 s for a peer to take a batch."""
        return cls()

    @classmethod
    def local(cls) -> BroadcastConfig:
        """Loopback and tests: the same algorithm, 4× quicker (like ``GossipConfig.local``)."""
        return cls(interval_s=0.05, request_timeout_s=0.5, idle_flush_delay_s=0.005)


def _require(condition: bool, message: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{message}, got {value!r}")


class RecordDelegate(Protocol):
    """Where received records go: the node's store. Runs on the event loop; copy what you keep."""

    async def merge(self, items: Sequence[bytes]) -> Sequence[bytes]:
        """Store the records that are new (by key, never fuzzily); return those that were new.

        ``items`` came from a peer: already authenticated and size-bounded, but otherwise
        untrusted. Must not raise for bad items: leave an undecodable one out of the result
        (a raised exception is logged and the whole batch is not re-pushed). Returned items
        not in ``items`` are ignored. Concurrent calls may carry the same record: only one of
        them may report it new.
        """
        ...


class MemberView(Protocol):
    """Who can be pushed to (``gossip.membership.Membership`` is one)."""

    def members(self) -> Sequence[MemberInfo]:
        """Every known member, this node included; the live ones (alive or suspect) are targets."""
        ...


@dataclass(slots=True, eq=False)
class _Rumour:
    key: bytes
    item: bytes
    queued_at: float  # loop time
    first_sent_at: float | None = None


class Broadcaster(LoopService):
    """Pushes new records to random live peers and merges the records peers push; see the module docstring.

    ``name`` is this node's member name (never a target); ``rng`` drives every random choice,
    so a seeded run repeats. The caller routes ``Payloads`` requests to ``handle``.
    """

    def __init__(
        self,
        name: str,
        transport: Transport,
        membership: MemberView,
        *,
        delegate: RecordDelegate,
        config: BroadcastConfig,
        rng: random.Random,
    ) -> None:
        super().__init__(f"broadcast-{name}")
        self._name = name
        self._transport = transport
        self._membership = membership
        self._delegate = delegate
        self._config = config
        self._rng = rng
        self._cluster_size = 1  # live members, us included, as of the last round
        self._limit = sends_per_rumour(1, config.miss_probability)
        # The queue applies memberlist's mult × ⌈log10(N + 1)⌉; with mult 1 and "N" = 10^k − 1
        # that is exactly our k (log10 of an exact power of ten is exact, for ints of any size).
        self._queue: TransmitLimitedQueue[_Rumour] = TransmitLimitedQueue(
            retransmit_mult=1, cluster_size=lambda: 10**self._limit - 1, max_queued=config.max_queue_items
        )
        self._queued: dict[bytes, _Rumour] = {}  # the queue's rumours by key, oldest first
        self._batch_budget_bytes = config.max_batch_bytes - _BATCH_OVERHEAD_BYTES
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._first_send_delay_sum_s = 0.0
        self._first_send_delay_max_s = 0.0
        self._first_sends = 0
        self._lifetime_sum_s = 0.0
        self._taking = False  # a rumour finished inside take() was sent its full count
        self._wakeup = asyncio.Event()
        self._flush: asyncio.TimerHandle | None = None
        self._last_flush_at = -math.inf
        self._task_group: asyncio.TaskGroup | None = None

    # ------------------------------------------------------------------ public surface

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> BroadcastConfig:
        return self._config

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return (f"<Broadcaster {self._name} queue={len(self._queue)} cluster={self._cluster_size} "
                f"limit={self._limit} dropped={self._counters['dropped']}>")  # fmt: skip

    def publish(self, items: Sequence[bytes]) -> int:
        """Queue new local records for pushing; returns how many were not already queued.

        Non-blocking; after ``aclose`` it queues nothing. Publish only records the node has
        stored: a record in the queue counts as held, so copies arriving from peers skip the
        delegate. Raises ``TypeError`` or ``ValueError`` (before queueing anything) for an item
        that is not bytes or is longer than ``MAX_PAYLOAD_BYTES``.
        """
        for item in items:
            if type(item) is not bytes:
                raise TypeError(f"records are bytes, got {type(item).__name__}")
            if len(item) > MAX_PAYLOAD_BYTES:
                raise ValueError(f"a record of {len(item)} bytes is over MAX_PAYLOAD_BYTES ({MAX_PAYLOAD_BYTES})")
        if self._closed:
            return 0
        queued = self._enqueue(items)
        self._counters["published"] += queued
        return queued

    async def handle(self, message: Payloads, sender: Sender) -> Message | None:
        """Serve a ``Payloads`` request: merge its records through the delegate, queue the new ones.

        Count and sizes were bounded by decoding. Answers None (an empty acknowledgement);
        raises ``ProtocolError`` for a channel this layer does not serve.
        """
        if message.channel != RECORDS_CHANNEL:
            raise ProtocolError(f"dissemination does not serve channel {message.channel!r}")
        items = message.items
        self._counters["messages_in"] += 1
        self._counters["bytes_in"] += payloads_body_bytes(message.channel, [len(item) for item in items])
        self._counters["items_in"] += len(items)
        fresh: dict[bytes, bytes] = {}
        for item in items:
            key = record_key(item)
            if key not in self._queued:  # one we are spreading ourselves is held already
                fresh.setdefault(key, item)
        if not fresh:
            self._counters["duplicates_in"] += len(items)
            return None
        try:
            new_items = await self._delegate.merge(list(fresh.values()))
        except Exception:
            self._counters["merge_failures"] += 1
            log.exception("%s: record delegate failed to merge %d records from %s", self._name, len(fresh),
                          sender.name)  # fmt: skip
            return None
        new_keys = {key for key in map(record_key, new_items) if key in fresh}
        self._counters["new_items_in"] += len(new_keys)
        self._counters["duplicates_in"] += len(items) - len(new_keys)
        if new_keys and not self._closed:
            # in the order they came, never a set's: the order of a set of bytes follows the
            # process's hash seed, and a seeded simulation must repeat in any process
            self._counters["republished"] += self._enqueue([item for key, item in fresh.items() if key in new_keys])
        return None

    def metrics(self) -> dict[str, float]:
        """Counters since start (see ``_COUNTERS``) and gauges.

        Gauges: ``queue_depth``, ``queue_bytes`` (records' bytes queued), ``cluster_size`` and
        ``retransmit_limit`` (as of the last round), ``oldest_queued_s`` (how long the oldest
        queued rumour has waited). Ages, measured here because a receiver cannot date an
        opaque record: ``first_send_delay_s_mean``/``_max`` — from queueing a rumour to its
        first send, the delay pacing adds at each hop; ``lifetime_s_mean`` — from queueing to
        its last send. End-to-end delivery ages belong to whoever can date records (the node,
        the tests, the benchmark).
        """
        now = self._now()
        oldest = next(iter(self._queued.values()), None)
        retired = self._counters["retired"]
        return {
            **self._counters,
            "queue_depth": len(self._queue),
            "queue_bytes": sum(len(rumour.item) for rumour in self._queued.values()),
            "cluster_size": self._cluster_size,
            "retransmit_limit": self._limit,
            "oldest_queued_s": now - oldest.queued_at if oldest is not None else 0.0,
            "first_send_delay_s_mean": self._first_send_delay_sum_s / self._first_sends if self._first_sends else 0.0,
            "first_send_delay_s_max": self._first_send_delay_max_s,
            "lifetime_s_mean": self._lifetime_sum_s / retired if retired else 0.0,
        }

    def _on_close(self) -> None:
        self._wakeup.set()
        self._cancel_flush()

    async def aclose(self) -> None:
        """Stop gossiping and forget queued rumours (anti-entropy still has them). Safe twice."""
        await super().aclose()
        self._queue.clear()  # not drops: _retired() knows we are closed

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._task_group = group
            group.create_task(self._gossip_loop())
            await self._stopping.wait()  # aclose() then cancels us: the loop and in-flight sends end

    async def _gossip_loop(self) -> None:
        """Rounds on a fixed grid of ``interval_s`` (after a random stagger), plus idle flushes."""
        interval_s = self._config.interval_s
        next_round = self._now() + self._rng.uniform(0.0, interval_s)
        while not self._stopping.is_set():
            await self._sleep_until(next_round)
            now = self._now()
            if now >= next_round:
                # A late wake-up (a stalled loop) resumes the grid; it does not send a burst.
                next_round += interval_s * max(1, math.ceil((now - next_round) / interval_s))
            try:
                self._round()
            except Exception:  # one bad round must not stop dissemination for good
                log.exception("%s: gossip round failed", self._name)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` or an idle flush (``_wakeup``), whichever is first."""
        self._wakeup.clear()
        delay_s = deadline - self._now()
        if delay_s <= 0:
            return
        try:
            async with asyncio.timeout(delay_s):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _round(self) -> None:
        """Send one batch to each of ``fanout`` random live peers (each send spawned, not awaited)."""
        self._cancel_flush()
        if not self._queue or self._task_group is None or self._stopping.is_set():
            return
        peers = [member for member in self._membership.members() if member.is_live and member.name != self._name]
        self._cluster_size = len(peers) + 1
        self._limit = sends_per_rumour(self._cluster_size, self._config.miss_probability)
        if not peers:
            return  # keep the rumours (and their counts) for when someone is there
        now = self._now()
        for target in self._rng.sample(peers, min(self._config.fanout, len(peers))):
            self._taking = True
            try:
                rumours = self._queue.take(max_items=MAX_PAYLOADS_PER_MESSAGE, max_bytes=self._batch_budget_bytes)
            finally:
                self._taking = False
            if not rumours:
                return
            for rumour in rumours:
                if rumour.first_sent_at is None:
                    rumour.first_sent_at = now
                    self._note_first_send(now - rumour.queued_at)
            self._task_group.create_task(self._send(target, [rumour.item for rumour in rumours]))

    async def _send(self, target: MemberInfo, items: list[bytes]) -> None:
        message = Payloads(RECORDS_CHANNEL, tuple(items))
        self._counters["messages_out"] += 1
        self._counters["bytes_out"] += payloads_body_bytes(RECORDS_CHANNEL, [len(item) for item in items])
        self._counters["items_out"] += len(items)
        try:
            await self._transport.request(target.address, message, timeout_s=self._config.request_timeout_s)
        except GossipError as error:
            self._counters["send_failures"] += 1
            log.debug("%s: %d records to %s failed: %s", self._name, len(items), target.name, error)
        except Exception:  # a transport bug must not end the task group, hence the broadcaster
            self._counters["send_failures"] += 1
            log.exception("%s: sending %d records to %s failed", self._name, len(items), target.name)

    # ------------------------------------------------------------------ the queue

    def _enqueue(self, items: Sequence[bytes]) -> int:
        """Queue records not already queued; schedule an idle flush if the queue was empty."""
        was_empty = not self._queue
        now = self._now()
        queued = 0
        for item in items:
            key = record_key(item)
            if key in self._queued:
                continue
            rumour = _Rumour(key, item, now)
            self._queued[key] = rumour
            # on_done may run inside this very call (the queue full: it prunes), so register first.
            self._queue.enqueue(key, rumour, size_bytes=_bin_bytes(len(item)),
                                on_done=functools.partial(self._retired, rumour))  # fmt: skip
            queued += 1
        if queued and was_empty:
            self._schedule_flush()
        return queued

    def _retired(self, rumour: _Rumour) -> None:
        """A rumour left the queue: sent its full count (inside take), pruned, or cleared on close."""
        self._queued.pop(rumour.key, None)
        if self._taking:
            self._counters["retired"] += 1
            self._lifetime_sum_s += self._now() - rumour.queued_at
        elif not self._closed:
            self._counters["dropped"] += 1

    def _note_first_send(self, delay_s: float) -> None:
        self._first_sends += 1
        self._first_send_delay_sum_s += delay_s
        self._first_send_delay_max_s = max(self._first_send_delay_max_s, delay_s)

    def _schedule_flush(self) -> None:
        delay_s = self._config.idle_flush_delay_s
        if delay_s is None or self._flush is not None or self._runner is None or self._loop is None:
            return
        flush_at = self._loop.time() + delay_s
        if flush_at - self._last_flush_at < self._config.interval_s:
            return  # one flush per interval at most: the next round will do
        self._last_flush_at = flush_at
        self._flush = self._loop.call_at(flush_at, self._wakeup.set)

    def _cancel_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # a sync caller outside the loop: the loop we run on, if any
            return self._loop.time() if self._loop is not None else 0.0
