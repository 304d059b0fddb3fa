"""Anti-entropy: any two nodes end holding the union of their record sets, at a cost proportional to the difference.

Demers et al. ("Epidemic Algorithms for Replicated Database Maintenance", PODC 1987, §1.3)
repair what rumour mongering misses by having each node periodically resolve its whole
database with a random peer; done naively (full-state push-pull) that costs the whole set
every round. Here a round costs about what differs, and ends exact:

1. **Identical check** (one round trip, under 1 KB at any size). The initiator sends its set's
   count, its 16-byte digest (``gossip.digest``: a sum of key hashes, exact and incremental)
   and a 256-byte b-bit MinHash sketch (``gossip.sketch``). Equal digests end the round.
2. **Difference.** Otherwise the responder answers with its own summary and the first m₀
   coded symbols of its set's rateless IBLT (``gossip.riblt``), m₀ = ⌈1.5·d̂⌉ + 16 with d̂ the
   largest of the count difference, the MinHash estimate (two mismatches discounted: an
   overestimate costs bytes, an underestimate one round trip) and, when fresh, the sum of the
   per-partition estimates. The initiator subtracts its own symbols and peels. MinHash cannot
   see 10 differences in 100,000 keys, so nothing depends on d̂ being right: if the prefix does
   not decode, the initiator estimates d from the prefix itself (``riblt.estimate_difference``;
   a small first batch comes with the 1-byte counts of the 256 symbols after it, which bring
   the estimate to about ±10 %) and asks at once for enough symbols for three standard errors
   more, capped by MinHash's upper confidence bound on d — one more round trip; any further
   request at least doubles, so even a wrong bound costs only a logarithmic number of them.
3. **Records, both ways** (one round trip when they fit a message each way). The initiator
   pushes the records the responder lacks and lists the keys it lacks; the responder merges
   and answers with those records and its digest after merging; the initiator merges and
   compares digests — equal means both hold exactly the union (``RoundReport.verified``).
   Batches respect ``max_message_bytes``; larger transfers take more round trips.

If either side is empty there is nothing to reconcile: the round becomes a bulk transfer that
pages through the other side's keys in insertion order (records only, no keys or symbols).
The responder keeps no state between requests: symbols are a function of its set, and a
request for more symbols names the digest it expects, so a set that changed in between
restarts the prefix from symbol 0 instead of mixing two versions.

**Alternatives weighed** (``scripts/bench/anti_entropy.py`` measures them side by side):
full-state push-pull costs the whole set every time; a Merkle tree (Riak, Cassandra) needs
one round trip per level and, past a few hundred differences, sends hashes for most of its
nodes; a classic IBLT (Eppstein et al. 2011) must be sized for d beforehand and so needs a
strata estimator, tens of KB whatever the difference; Scuttlebutt's per-origin version
vectors (van Renesse et al., "Efficient Reconciliation and Flow Control for Anti-Entropy
Protocols", 2008) are cheap when each origin's records arrive in order, but here records
reach nodes in any order through dissemination, so "everything from origin X up to version
v" does not describe what a node holds and the vectors would need exceptions per gap. The
rateless IBLT needs ≈ 1.35·d symbols of 28 bytes, no estimate of d, and peels in O(d log d).

**Scheduling.** Every ``interval_s`` (after a random stagger) a node starts a round with a
live peer drawn with probability proportional to 1 + its estimated difference from the last
summaries exchanged (peers never heard from first), or uniformly with
``explore_probability``. A member that comes (back) alive — a rejoin, a healed partition — or
restarts with a higher incarnation gets an immediate round (``trigger``); membership is
polled every ``membership_poll_s``.

**Measured** (``scripts/bench/anti_entropy.py``, ``docs/benchmarks.md``; 100-byte records, d split
between the two sides, envelopes included): an identical check is ~510 bytes at n = 1,000 to
1,000,000, one round trip; a reconciliation moves 1.3–1.7 × the information limit (16 B per
differing key plus the records) for d ≥ 100 and ~1.9 KB for d = 1, in 2–3 round trips — within
the issue's 2 × limit + 2 KB in every cell. Full-state push-pull moves the whole set (20 MB at
n = 100,000). A Merkle tree needs 4–7 round trips and 1.7–2.9 × our bytes for 100 ≤ d ≤ 1,000
at n ≥ 100,000; it moves fewer bytes than ours only where d ≥ n, and for d = 1 (by ≤ 600 B, in
4–6 round trips instead of 2).

The node feeds the key index: ``add(key, partition)`` for every record it commits, local or
received by any path, with ``key`` = BLAKE2b-128 of the record's bytes; and it serves
``RecordStore.fetch``/``merge``. Everything runs on the event loop; coding large symbol
ranges and decoding large differences run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gossip.anti_entropy_types import (
    _BODY_OVERHEAD_BYTES,
    AntiEntropyConfig,
    Convergence,
    RecordStore,
    RoundReport,
    responder_estimate,
)
from gossip.broadcast import (
    MemberView,
    record_key,
)
from gossip.digest import SetDigest
from gossip.errors import GossipError, ProtocolError
from gossip.keyset import KeySet
from gossip.membership import MemberInfo
from gossip.messages import (
    KEY_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_TRANSFER,
    MAX_WANTED_KEYS,
    SYMBOL_BYTES,
    AntiEntropyDigest,
    CodedSymbols,
    CodedSymbolsRequest,
    Message,
    PartitionSummary,
    RecordTransfer,
)
from gossip.riblt import (
    CodedBlock,
    Difference,
    count_differences,
    count_residues,
    decode,
    estimate_difference,
    initial_symbol_count,
    next_symbol_count,
)
from gossip.service import LoopService
from gossip.sketch import (
    SKETCH_BYTES,
    difference_upper_bound,
    estimate_jaccard,
    estimated_difference,
)
from gossip.transport import Sender, Transport

__all__ = [
    "ANTI_ENTROPY_REQUESTS",
    "AntiEntropy",
    "AntiEntropyConfig",
    "Convergence",
    "RecordStore",
    "RoundReport",
    "responder_estimate",
]

log = logging.getLogger(__name__)

ANTI_ENTROPY_REQUESTS = (AntiEntropyDigest, CodedSymbolsRequest, RecordTransfer)
"""The request types ``AntiEntropy.handle`` serves: route these to it."""

_FETCH_CHUNK = 2048  # keys per RecordStore.fetch call when streaming records out
_THREAD_DECODE_SYMBOLS = 4096  # decode larger prefixes in a worker thread
_MAX_TRIGGERED = 3  # immediate rounds queued at most (a healed partition brings back many members)
_ESTIMATED_BATCH_MAX = 1024  # a first batch this small gets estimator counts (larger ones estimate well alone)
_COUNTERS = (
    "rounds",  # rounds this node started
    "rounds_identical",  # ...that found equal digests
    "rounds_reconciled",  # ...that decoded a difference and exchanged records
    "rounds_bulk",  # ...where one side was empty
    "rounds_failed",  # ...that ended on an error or timeout (counted, never raised)
    "rounds_triggered",  # rounds started at once for a member that came (back)
    "round_trips",  # requests sent by rounds
    "symbols_received",
    "extra_symbol_requests",  # a prefix did not decode and more symbols were asked for
    "keys_decoded",  # differences found (both directions)
    "records_pushed",
    "records_pulled",
    "records_new",  # pulled or pushed-to-us records the store did not hold
    "verified",  # rounds that ended with equal digests on both sides
    "unverified",  # ...or not (records added meanwhile, or a peer that could not serve a key)
    "requests_served",
    "symbols_sent",
    "records_served",
    "payload_bytes_out",  # symbols, records, keys and sketches sent (requests and replies)
    "payload_bytes_in",
)


@dataclass(slots=True)
class _PeerSummary:
    digest: SetDigest
    sketch: bytes | None
    seen_at: float  # loop time
    partitions: dict[str, PartitionSummary] = field(default_factory=dict)
    partitions_at: float = -math.inf


def _bin_bytes(size: int) -> int:
    return size + (2 if size < 2**8 else 3 if size < 2**16 else 5)


_KEY_COST = _bin_bytes(KEY_BYTES)


class _Outbox:
    """Records to send for a list of keys, fetched from the store a chunk at a time as messages need them."""

    def __init__(self, store: RecordStore, keys: Sequence[bytes]) -> None:
        self._store = store
        self._keys = keys
        self._next = 0
        self._ready: deque[bytes] = deque()

    @property
    def empty(self) -> bool:
        return not self._ready and self._next >= len(self._keys)

    async def take(self, budget_bytes: int) -> list[bytes]:
        items: list[bytes] = []
        used = 0
        while len(items) < MAX_RECORDS_PER_TRANSFER:
            if not self._ready:
                if self._next >= len(self._keys):
                    break
                chunk = self._keys[self._next : self._next + _FETCH_CHUNK]
                self._next += len(chunk)
                self._ready.extend(item for item in await self._store.fetch(chunk) if len(item) <= MAX_PAYLOAD_BYTES)
                continue
            cost = _bin_bytes(len(self._ready[0]))
            if used + cost > budget_bytes and items:
                break
            items.append(self._ready.popleft())
            used += cost
        return items


class AntiEntropy(LoopService):
    """Periodic, difference-proportional reconciliation with peers; see the module docstring.

    ``name`` is this node's member name; ``rng`` drives every random choice. The caller routes
    requests of the ``ANTI_ENTROPY_REQUESTS`` types to ``handle`` and calls ``add`` for every
    record it commits. ``keys`` may hand in a prebuilt ``KeySet`` (benchmarks).
    """

    def __init__(
        self,
        name: str,
        transport: Transport,
        membership: MemberView,
        *,
        store: RecordStore,
        config: AntiEntropyConfig,
        rng: random.Random,
        keys: KeySet | None = None,
    ) -> None:
        super().__init__(f"anti-entropy-{name}")
        self._name = name
        self._transport = transport
        self._membership = membership
        self._store = store
        self._config = config
        self._rng = rng
        self._keys = keys if keys is not None else KeySet(cached_symbols=config.cached_symbols)
        self._peers: dict[str, _PeerSummary] = {}
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._last_report: RoundReport | None = None
        self._requested: list[str] = []  # peers owed an immediate round
        self._wakeup = asyncio.Event()

    # ------------------------------------------------------------------ the key index

    def add(self, key: bytes, partition: str) -> bool:
        """Index a committed record's key (BLAKE2b-128 of its bytes) under its partition label; False if known.

        O(1); call it for every record the node stores, its own and its peers', by any path.
        """
        return self._keys.add(key, partition)

    def add_many(self, entries: Iterable[tuple[bytes, str]]) -> int:
        """``add`` for many (key, partition) pairs, e.g. the whole store at start; returns how many were new."""
        return self._keys.add_many(entries)

    @property
    def keys(self) -> KeySet:
        return self._keys

    @property
    def digest(self) -> SetDigest:
        """This node's set digest: equal digests on two nodes mean equal record sets."""
        return self._keys.digest

    def partition_digests(self) -> Mapping[str, SetDigest]:
        return self._keys.partition_digests()

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> AntiEntropyConfig:
        return self._config

    @property
    def last_report(self) -> RoundReport | None:
        return self._last_report

    def __repr__(self) -> str:
        digest = self._keys.digest
        return (f"<AntiEntropy {self._name} keys={digest.count} digest={digest.digest.hex()[:8]} "
                f"peers={len(self._peers)} rounds={self._counters['rounds']}>")  # fmt: skip

    # ------------------------------------------------------------------ lifecycle

    def _on_close(self) -> None:
        self._wakeup.set()

    def trigger(self, peer: str | None = None) -> None:
        """Start a round now (with ``peer`` if given and live) instead of waiting for the interval."""
        if peer is not None and peer != self._name and peer not in self._requested:
            if len(self._requested) < _MAX_TRIGGERED:
                self._requested.append(peer)
        elif peer is None and "" not in self._requested:
            self._requested.append("")  # "" = whichever peer the usual choice picks
        self._wakeup.set()

    # ------------------------------------------------------------------ observing

    def metrics(self) -> dict[str, float]:
        """Counters since start (see ``_COUNTERS``) and gauges: ``keys``, ``partitions``,
        ``peers_known``, and the last round's ``last_round_trips``, ``last_difference``,
        ``last_round_s``."""
        last = self._last_report
        return {
            **self._counters,
            "keys": len(self._keys),
            "partitions": len(self._keys.partition_digests()),
            "peers_known": len(self._peers),
            "last_round_trips": last.round_trips if last else 0,
            "last_difference": last.difference if last else 0,
            "last_round_s": last.duration_s if last else 0.0,
        }

    def convergence(self) -> Convergence:
        """Estimated similarity between every pair of nodes whose summaries this node holds (fresh ones).

        Rows and columns: this node, then every other known member by name. Exact where two
        digests are equal; otherwise from the MinHash sketches (None where one is missing).
        """
        now = self._now()
        names = [self._name] + sorted({member.name for member in self._membership.members()} - {self._name})
        ours = _PeerSummary(self._keys.digest, self._keys.sketch(), now)
        summaries: list[_PeerSummary | None] = [ours]
        for name in names[1:]:
            summary = self._peers.get(name)
            summaries.append(summary if summary is not None and now - summary.seen_at <= self._config.summary_ttl_s else None)
        similarity: list[tuple[float | None, ...]] = []
        difference: list[tuple[float | None, ...]] = []
        for a in summaries:
            pairs = [_compare(a, b) for b in summaries]
            similarity.append(tuple(pair[0] for pair in pairs))
            difference.append(tuple(pair[1] for pair in pairs))
        return Convergence(
            names=tuple(names),
            similarity=tuple(similarity),
            difference=tuple(difference),
            counts=tuple(summary.digest.count if summary else None for summary in summaries),
            age_s=tuple(now - summary.seen_at if summary else None for summary in summaries),
        )

    def partition_differences(self, peer: str) -> dict[str, float]:
        """label → estimated difference with ``peer``'s partition, from its last partition summaries (exact 0 when equal)."""
        summary = self._peers.get(peer)
        if summary is None or not summary.partitions:
            return {}
        ours = {partition.label: partition for partition in self._keys.partition_summaries()}
        result: dict[str, float] = {}
        for label in ours.keys() | summary.partitions.keys():
            mine, theirs = ours.get(label), summary.partitions.get(label)
            if mine is None:
                result[label] = float(theirs.count) if theirs is not None else 0.0
            elif theirs is None:
                result[label] = float(mine.count)
            elif mine.count == theirs.count and mine.digest == theirs.digest:
                result[label] = 0.0
            elif len(mine.sketch) == SKETCH_BYTES and len(theirs.sketch) == SKETCH_BYTES:
                jaccard = estimate_jaccard(mine.sketch, theirs.sketch)
                result[label] = max(1.0, estimated_difference(mine.count, theirs.count, jaccard))
            else:
                result[label] = max(1.0, float(abs(mine.count - theirs.count)))
        return result

    # ------------------------------------------------------------------ serving

    async def handle(self, message: Message, sender: Sender) -> Message | None:
        """Answer an anti-entropy request; ``ProtocolError`` for any other message type."""
        self._counters["requests_served"] += 1
        if isinstance(message, AntiEntropyDigest):
            return await self._answer_digest(message, sender)
        if isinstance(message, CodedSymbolsRequest):
            return await self._answer_symbols(message)
        if isinstance(message, RecordTransfer):
            return await self._answer_records(message, sender)
        raise ProtocolError(f"anti-entropy does not serve {type(message).__name__} requests")

    async def _answer_digest(self, request: AntiEntropyDigest, sender: Sender) -> Message:
        self._counters["payload_bytes_in"] += len(request.sketch) + _partitions_bytes(request.partitions)
        theirs = SetDigest.from_wire(request.count, request.digest)
        ours = self._keys.digest
        equal = theirs == ours
        known = request.partitions or (self._keys.partition_summaries() if equal and request.want_partitions else ())
        self._remember(sender.name, theirs, request.sketch, known)
        if equal:
            return AntiEntropyDigest(ours.count, ours.digest)
        sketch = self._keys.sketch()
        partitions = self._keys.partition_summaries() if request.want_partitions else ()
        self._counters["payload_bytes_out"] += len(sketch) + _partitions_bytes(partitions)
        if theirs.count == 0 or ours.count == 0:
            return AntiEntropyDigest(ours.count, ours.digest, sketch, partitions)  # a bulk transfer follows
        partition_estimate = self._partition_estimate(sender.name) if request.partitions else None
        estimate = responder_estimate(theirs, request.sketch, ours, sketch, partition_estimate)
        # The symbols share the reply with the sketch, the summaries (up to ~800 KB of them) and
        # the estimator counts: they get the room those leave, or the reply could not be sent.
        room = (self._config.max_message_bytes - _BODY_OVERHEAD_BYTES - len(sketch) - _partitions_wire_bytes(partitions)
                - self._config.estimator_counts)  # fmt: skip
        count = initial_symbol_count(estimate, overhead=self._config.symbol_overhead, slack=self._config.symbol_slack,
                                     maximum=max(1, min(self._config.symbols_per_message, room // SYMBOL_BYTES)))  # fmt: skip
        block = await self._symbols(0, count)
        data = block.to_bytes()
        counts = b""
        extra_stop = min(count + self._config.estimator_counts, self._keys.cached_symbols)
        if count <= _ESTIMATED_BATCH_MAX and extra_stop > count:
            counts = count_residues(self._keys.symbols(count, extra_stop).counts)  # from the cache: cheap
        self._counters["symbols_sent"] += len(block)
        self._counters["payload_bytes_out"] += len(data) + len(counts)
        return CodedSymbols(ours.count, ours.digest, sketch, 0, data, partitions, counts)

    async def _answer_symbols(self, request: CodedSymbolsRequest) -> Message:
        ours = self._keys.digest
        start = request.start if SetDigest.from_wire(request.count, request.digest) == ours else 0
        stop = min(request.stop, start + self._config.symbols_per_message, self._config.max_symbols)
        block = await self._symbols(start, max(start, stop))
        data = block.to_bytes()
        self._counters["symbols_sent"] += len(block)
        self._counters["payload_bytes_out"] += len(data)
        return CodedSymbols(ours.count, ours.digest, b"", start, data)

    async def _answer_records(self, request: RecordTransfer, sender: Sender) -> Message:
        self._counters["payload_bytes_in"] += sum(map(len, request.items)) + KEY_BYTES * len(request.want)
        if request.items:
            await self._merge(request.items)
        budget = self._config.max_message_bytes - _BODY_OVERHEAD_BYTES
        served = 0
        cursor = 0
        if request.bulk:
            items, cursor = await self._page_from(request.cursor, budget)
        elif request.want:
            items, served = await self._serve(request.want, sender.name, budget)
        else:
            items = []
        self._counters["records_served"] += len(items)
        self._counters["payload_bytes_out"] += sum(map(len, items))
        ours = self._keys.digest
        return RecordTransfer(tuple(items), (), ours.count, ours.digest, served=served, bulk=request.bulk, cursor=cursor)

    async def _serve(self, want: Sequence[bytes], peer: str, budget: int) -> tuple[list[bytes], int]:
        """Records for ``want``, the partitions the peer lacks most first, within ``budget``; and how many keys are settled."""
        found = {record_key(item): item for item in await self._store.fetch(want) if len(item) <= MAX_PAYLOAD_BYTES}
        ordered = self._by_partition_priority([key for key in want if key in found], peer)
        items: list[bytes] = []
        used = 0
        for key in ordered:
            cost = _bin_bytes(len(found[key]))
            if (used + cost > budget and items) or len(items) >= MAX_RECORDS_PER_TRANSFER:
                return items, 0  # 0: not every key settled; the peer asks again for the rest
            items.append(found[key])
            used += cost
        return items, len(want)

    async def _page_from(self, cursor: int, budget: int) -> tuple[list[bytes], int]:
        """Records in insertion order from position ``cursor`` within ``budget``; and where to continue."""
        items: list[bytes] = []
        used = 0
        while cursor < len(self._keys) and len(items) < MAX_RECORDS_PER_TRANSFER:
            keys = self._keys.keys_from(cursor, min(_FETCH_CHUNK, MAX_RECORDS_PER_TRANSFER - len(items)))
            found = {record_key(item): item for item in await self._store.fetch(keys)}
            for key in keys:
                item = found.get(key)
                if item is not None and len(item) <= MAX_PAYLOAD_BYTES:
                    cost = _bin_bytes(len(item))
                    if used + cost > budget and items:
                        return items, cursor
                    items.append(item)
                    used += cost
                cursor += 1
        return items, cursor

    # ------------------------------------------------------------------ a round

    async def reconcile(self, peer: MemberInfo) -> RoundReport:
        """Run one round with ``peer`` now; never raises for network or peer errors (the report says)."""
        started = self._now()
        counter = _RoundTrips()
        self._counters["rounds"] += 1
        try:
            report = await self._reconcile(peer, counter, started)
        except (GossipError, ValueError) as error:  # ValueError: a peer's malformed symbols
            self._counters["rounds_failed"] += 1
            log.debug("%s: anti-entropy with %s failed: %s", self._name, peer.name, error)
            report = RoundReport(peer.name, "failed", counter.count, duration_s=self._now() - started, error=str(error))
        self._counters["round_trips"] += counter.count
        self._last_report = report
        return report

    async def _reconcile(self, peer: MemberInfo, counter: _RoundTrips, started: float) -> RoundReport:
        ours = self._keys.digest
        sketch = self._keys.sketch()
        refresh = self._partitions_stale(peer.name)
        partitions = self._keys.partition_summaries() if refresh else ()
        self._counters["payload_bytes_out"] += len(sketch) + _partitions_bytes(partitions)
        reply = await self._request(counter, peer, AntiEntropyDigest(ours.count, ours.digest, sketch, partitions, refresh))
        if not isinstance(reply, AntiEntropyDigest | CodedSymbols):
            raise ProtocolError(f"{peer.name} answered a digest with {type(reply).__name__}")
        theirs = SetDigest.from_wire(reply.count, reply.digest)
        self._counters["payload_bytes_in"] += len(reply.sketch) + _partitions_bytes(reply.partitions)
        equal = theirs == ours
        self._remember(peer.name, theirs, sketch if equal else reply.sketch, partitions if equal else reply.partitions)
        if isinstance(reply, AntiEntropyDigest):
            if equal or theirs == self._keys.digest:
                self._counters["rounds_identical"] += 1
                return RoundReport(peer.name, "identical", counter.count, verified=True,
                                   duration_s=self._now() - started)  # fmt: skip
            return await self._bulk(peer, counter, started, pull=ours.count == 0)
        estimate = responder_estimate(theirs, reply.sketch, ours, sketch)
        ceiling = (difference_upper_bound(theirs.count, ours.count, reply.sketch, sketch)
                   if len(reply.sketch) == SKETCH_BYTES else None)  # fmt: skip
        difference, symbols = await self._decode(peer, counter, reply, ceiling)
        self._counters["keys_decoded"] += difference.size
        pushed, pulled, last = await self._exchange(peer, counter, difference.local_only, difference.remote_only)
        verified = self._verify(peer.name, last)
        self._counters["rounds_reconciled"] += 1
        return RoundReport(peer.name, "reconciled", counter.count, symbols, pushed, pulled, difference.size, estimate,
                           verified, self._now() - started)  # fmt: skip

    async def _decode(self, peer: MemberInfo, counter: _RoundTrips, first: CodedSymbols,
                      ceiling: float | None) -> tuple[Difference, int]:  # fmt: skip
        """Decode the difference from the peer's symbols, asking for more until it peels completely.

        ``ceiling`` (MinHash's upper bound on d, if any) caps the first follow-up; later ones double.
        """
        remote = CodedBlock.from_bytes(0, first.symbols)
        expected = (first.count, first.digest)
        received = len(remote)
        residues = first.counts  # counts of the symbols right after the first batch, mod 256
        self._counters["symbols_received"] += received
        self._counters["payload_bytes_in"] += len(first.symbols) + len(residues)
        while True:
            local = await self._symbols(0, len(remote))
            difference_block = remote.minus(local)
            if len(difference_block) > _THREAD_DECODE_SYMBOLS:
                difference = await asyncio.to_thread(decode, difference_block)
            else:
                difference = decode(difference_block)
            if difference.complete:
                return difference, received
            if len(remote) >= self._config.max_symbols:
                raise ProtocolError(f"difference with {peer.name} did not decode within {len(remote)} symbols")
            extra = None
            if residues:
                local_after = await self._symbols(len(remote), len(remote) + len(residues))
                extra = count_differences(residues, local_after.counts, len(remote), int(difference_block.counts[0]))
                residues = b""  # they follow the first batch only
            total = next_symbol_count(len(remote), estimate_difference(difference_block, extra),
                                      overhead=self._config.symbol_overhead, slack=self._config.symbol_slack,
                                      maximum=self._config.max_symbols, ceiling=ceiling)  # fmt: skip
            ceiling = None  # it held for the first follow-up only: if that failed, it was wrong
            stop = min(total, len(remote) + self._config.symbols_per_message)
            self._counters["extra_symbol_requests"] += 1
            reply = await self._request(counter, peer, CodedSymbolsRequest(len(remote), stop, expected[0], expected[1]))
            if not isinstance(reply, CodedSymbols) or reply.start not in (0, len(remote)) or not reply.symbols:
                raise ProtocolError(f"{peer.name} answered a symbols request with {reply!r:.80}")
            block = CodedBlock.from_bytes(reply.start, reply.symbols)
            self._counters["symbols_received"] += len(block)
            self._counters["payload_bytes_in"] += len(reply.symbols)
            received += len(block)
            if reply.start == 0:  # the peer's set changed meanwhile: start over from its new prefix
                remote, expected = block, (reply.count, reply.digest)
            else:
                remote = remote.concat(block)

    async def _exchange(self, peer: MemberInfo, counter: _RoundTrips, push: Sequence[bytes],
                        pull: Sequence[bytes]) -> tuple[int, int, RecordTransfer | None]:  # fmt: skip
        """Push the records the peer lacks and pull the ones we lack, a message's worth at a time."""
        outbox = _Outbox(self._store, self._by_partition_priority(push, peer.name))
        wanted = list(pull)
        budget = self._config.max_message_bytes - _BODY_OVERHEAD_BYTES
        pushed = pulled = 0
        last: RecordTransfer | None = None
        while not outbox.empty or wanted:
            asking = wanted[: min(MAX_WANTED_KEYS, budget // (2 * _KEY_COST))]
            items = await outbox.take(budget - _KEY_COST * len(asking))
            ours = self._keys.digest
            reply = await self._request(counter, peer, RecordTransfer(tuple(items), tuple(asking), ours.count, ours.digest))
            if not isinstance(reply, RecordTransfer):
                raise ProtocolError(f"{peer.name} answered records with {type(reply).__name__}")
            last = reply
            pushed += len(items)
            self._counters["records_pushed"] += len(items)
            self._counters["payload_bytes_out"] += sum(map(len, items)) + KEY_BYTES * len(asking)
            asked = set(asking)
            received = {key: item for item in reply.items if (key := record_key(item)) in asked}
            self._counters["payload_bytes_in"] += sum(map(len, reply.items))
            if received:
                await self._merge(list(received.values()))
            pulled += len(received)
            self._counters["records_pulled"] += len(received)
            if asking and not received and reply.served < len(asking):
                raise ProtocolError(f"{peer.name} served none of {len(asking)} wanted records")
            settled = asked if reply.served >= len(asking) else received.keys()
            wanted = [key for key in wanted if key not in settled]
        if last is None:  # nothing to move (the sets converged meanwhile): one exchange to compare digests
            ours = self._keys.digest
            reply = await self._request(counter, peer, RecordTransfer((), (), ours.count, ours.digest))
            last = reply if isinstance(reply, RecordTransfer) else None
        return pushed, pulled, last

    async def _bulk(self, peer: MemberInfo, counter: _RoundTrips, started: float, *, pull: bool) -> RoundReport:
        """One side is empty: page through the other's records (no keys, no symbols)."""
        self._counters["rounds_bulk"] += 1
        moved = 0
        last: RecordTransfer | None = None
        budget = self._config.max_message_bytes - _BODY_OVERHEAD_BYTES
        if pull:
            cursor = 0
            while True:
                ours = self._keys.digest
                reply = await self._request(counter, peer, RecordTransfer((), (), ours.count, ours.digest, bulk=True,
                                                                         cursor=cursor))  # fmt: skip
                if not isinstance(reply, RecordTransfer) or not reply.bulk or reply.cursor < cursor:
                    raise ProtocolError(f"{peer.name} answered a bulk request with {reply!r:.80}")
                self._counters["payload_bytes_in"] += sum(map(len, reply.items))
                if reply.items:
                    await self._merge(reply.items)
                moved += len(reply.items)
                self._counters["records_pulled"] += len(reply.items)
                progressed = reply.cursor > cursor
                last, cursor = reply, reply.cursor
                if cursor >= reply.count or not progressed:
                    break
        else:
            outbox = _Outbox(self._store, self._keys.keys_from(0, len(self._keys)))
            while not outbox.empty:
                items = await outbox.take(budget)
                ours = self._keys.digest
                reply = await self._request(counter, peer, RecordTransfer(tuple(items), (), ours.count, ours.digest))
                last = reply if isinstance(reply, RecordTransfer) else None
                moved += len(items)
                self._counters["records_pushed"] += len(items)
                self._counters["payload_bytes_out"] += sum(map(len, items))
        verified = self._verify(peer.name, last)
        return RoundReport(peer.name, "bulk_pull" if pull else "bulk_push", counter.count, pushed=0 if pull else moved,
                           pulled=moved if pull else 0, difference=moved, verified=verified,
                           duration_s=self._now() - started)  # fmt: skip

    def _verify(self, peer: str, last: RecordTransfer | None) -> bool:
        """Whether the peer's digest after the exchange equals ours; if so, its summary is now ours."""
        ours = self._keys.digest
        verified = last is not None and SetDigest.from_wire(last.count, last.digest) == ours
        self._counters["verified" if verified else "unverified"] += 1
        if verified:
            self._remember(peer, ours, self._keys.sketch(), ())
        elif last is not None:
            summary = self._peers.get(peer)
            if summary is not None:  # its sketch no longer describes that digest
                summary.digest, summary.sketch = SetDigest.from_wire(last.count, last.digest), None
        return verified

    # ------------------------------------------------------------------ helpers

    async def _request(self, counter: _RoundTrips, peer: MemberInfo, message: Message) -> Message | None:
        counter.count += 1
        return await self._transport.request(peer.address, message, timeout_s=self._config.request_timeout_s)

    async def _merge(self, items: Sequence[bytes]) -> None:
        try:
            new = await self._store.merge(items)
        except Exception:  # a store bug must not end the round loop: log it, the next round retries
            log.exception("%s: record store failed to merge %d records", self._name, len(items))
            return
        self._counters["records_new"] += len(new)

    async def _symbols(self, start: int, stop: int) -> CodedBlock:
        job = self._keys.symbol_job(start, stop)
        return await asyncio.to_thread(job) if job.heavy else job()

    def _remember(self, peer: str, digest: SetDigest, sketch: bytes, partitions: Sequence[PartitionSummary]) -> None:
        """Keep a peer's latest summary (its partitions only when it sent them)."""
        now = self._now()
        valid_sketch = sketch if len(sketch) == SKETCH_BYTES else None
        summary = self._peers.get(peer)
        if summary is None:
            summary = self._peers[peer] = _PeerSummary(digest, valid_sketch, now)
        else:
            summary.digest, summary.sketch, summary.seen_at = digest, valid_sketch, now
        if partitions:
            summary.partitions = {partition.label: partition for partition in partitions}
            summary.partitions_at = now

    def _partitions_stale(self, peer: str) -> bool:
        refresh_s = self._config.partition_refresh_s
        summary = self._peers.get(peer)
        return refresh_s > 0 and (summary is None or self._now() - summary.partitions_at >= refresh_s)

    def _partition_estimate(self, peer: str) -> float | None:
        differences = self.partition_differences(peer)
        return sum(differences.values()) if differences else None

    def _by_partition_priority(self, keys: Sequence[bytes], peer: str) -> list[bytes]:
        """Keys grouped by partition, the partitions that differ most from ``peer``'s first."""
        if len(keys) <= 1:
            return list(keys)
        labels = [self._keys.partition_of(key) or "" for key in keys]
        estimates = self.partition_differences(peer)
        sizes = Counter(labels)
        weight = {label: estimates.get(label, float(size)) for label, size in sizes.items()}
        order = sorted(range(len(keys)), key=lambda index: (-weight[labels[index]], labels[index]))
        return [keys[index] for index in order]

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return self._loop.time() if self._loop is not None else time.monotonic()

    # ------------------------------------------------------------------ the loops

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._round_loop())
            group.create_task(self._watch_membership())
            await self._stopping.wait()

    async def _round_loop(self) -> None:
        delay_s = self._rng.uniform(0.0, self._config.interval_s)
        while not self._stopping.is_set():
            await self._wait(delay_s)
            if self._stopping.is_set():
                return
            peer, triggered = self._next_peer()
            if peer is not None:
                self._counters["rounds_triggered"] += triggered
                try:
                    await self.reconcile(peer)
                except Exception:  # a bug in one round must not stop anti-entropy for good
                    log.exception("%s: anti-entropy round with %s failed", self._name, peer.name)
            delay_s = self._config.interval_s

    async def _wait(self, delay_s: float) -> None:
        if self._requested:
            return
        self._wakeup.clear()
        try:
            async with asyncio.timeout(delay_s):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _live_peers(self) -> dict[str, MemberInfo]:
        return {member.name: member for member in self._membership.members()
                if member.is_live and member.name != self._name}  # fmt: skip

    def _next_peer(self) -> tuple[MemberInfo | None, bool]:
        """The peer owed an immediate round, if any is live; else one chosen by estimated difference."""
        live = self._live_peers()
        while self._requested:
            name = self._requested.pop(0)
            if name in live:
                return live[name], True
            if name == "" and live:
                return self._choose(list(live.values())), True
        return (self._choose(list(live.values())) if live else None), False

    def _choose(self, peers: list[MemberInfo]) -> MemberInfo:
        if self._rng.random() < self._config.explore_probability:
            return self._rng.choice(peers)
        estimates = [self._estimated_difference(peer.name) for peer in peers]
        known = [estimate for estimate in estimates if estimate is not None]
        unknown_weight = 1.0 + max(known, default=0.0) + len(self._keys) + 1.0  # never heard from: first
        weights = [1.0 + estimate if estimate is not None else unknown_weight for estimate in estimates]
        return self._rng.choices(peers, weights)[0]

    def _estimated_difference(self, peer: str) -> float | None:
        summary = self._peers.get(peer)
        if summary is None:
            return None
        ours = self._keys.digest
        if summary.digest == ours:
            return 0.0
        if summary.sketch is None:
            return float(abs(summary.digest.count - ours.count)) or 1.0
        jaccard = estimate_jaccard(summary.sketch, self._keys.sketch())
        return max(1.0, estimated_difference(summary.digest.count, ours.count, jaccard))

    async def _watch_membership(self) -> None:
        """Trigger a round with each member that becomes live or restarts (higher incarnation)."""
        seen: dict[str, tuple[bool, int]] = {}
        while not self._stopping.is_set():
            for member in self._membership.members():
                if member.name == self._name:
                    continue
                before = seen.get(member.name)
                if member.is_live and (before is None or not before[0] or member.incarnation > before[1]):
                    self.trigger(member.name)
                seen[member.name] = (member.is_live, member.incarnation)
            await asyncio.sleep(self._config.membership_poll_s)


class _RoundTrips:
    """Counts one round's requests."""

    def __init__(self) -> None:
        self.count = 0


def _compare(a: _PeerSummary | None, b: _PeerSummary | None) -> tuple[float | None, float | None]:
    if a is None or b is None:
        return None, None
    if a.digest == b.digest:
        return 1.0, 0.0
    if a.sketch is None or b.sketch is None:
        return None, float(abs(a.digest.count - b.digest.count)) or None
    jaccard = estimate_jaccard(a.sketch, b.sketch)
    return jaccard, max(1.0, estimated_difference(a.digest.count, b.digest.count, jaccard))


def _partitions_bytes(partitions: Sequence[PartitionSummary]) -> int:
    return sum(len(partition.label) + 24 + len(partition.sketch) for partition in partitions)


def _partitions_wire_bytes(partitions: Sequence[PartitionSummary]) -> int:
    """An upper bound on the summaries' packed size: UTF-8 labels, and msgpack's headers (≤ 20 B each)."""
    return sum(len(partition.label.encode("utf-8")) + len(partition.digest) + len(partition.sketch) + 20
               for partition in partitions)  # fmt: skip
