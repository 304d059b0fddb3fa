"""One node's parts, wired once: the real runtime and the simulation assemble a node the same way.

``Node.open(config, backend=..., transport=..., address=...)`` opens the store, replays it into
the in-memory state, and builds the rest around it — the list file writer, the exhaustion
rule, the hybrid clock, the record exchange, the producer and the node's place in the cluster.
What differs between a real node (``node.runtime``) and a simulated one (``node.simulation``)
is injected: the LLM backend, the gossip transport (HTTP on the node's port, or the in-memory
network), the random source, the wall clock and the store's mode.

Lifecycle: ``start`` (gossip, list file) → ``produce(stop)`` → ``leave`` (a graceful
departure: announced, incarnation saved) → ``aclose``. ``aclose`` without ``leave`` is what a
crash leaves behind: peers are not told, in-flight calls are dropped, committed records stay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gossip.anti_entropy import AntiEntropyConfig
from gossip.broadcast import BroadcastConfig
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from node.budget import Budget
from node.cluster import ClusterMember, TransportFactory
from node.config import NodeConfig
from node.estimate import SizeEstimate, StopRule, chao1, combine_open_groups
from node.export import ListFileWriter
from node.global_list import GlobalList
from node.hlc import HybridClock
from node.llm.base import LLMBackend
from node.producer import Producer, ProducerConfig
from node.records import CapacityRecord, Record, index_label
from node.replication import RecordExchange
from node.retention import DetailRetention
from node.state import NodeState
from node.store import Store, StoreWriteError
from node.verifier import Verifier
from partitioning.plan import PartitionPlan
from partitioning.planner import Planner

__all__ = ["Node", "Progress", "ExhaustionTracker", "exhaustion_estimate", "INCARNATION_CHECK_S"]

log = logging.getLogger(__name__)

INCARNATION_CHECK_S = 1.0  # how often a refutation's higher incarnation is persisted
DEFAULT_CONCURRENCY = ProducerConfig().concurrency  # a peer's weight until its capacity record arrives


def exhaustion_estimate(state: NodeState, plan: PartitionPlan | None = None) -> SizeEstimate:
    """The topic's size from every generated item so far: per-partition Chao1, summed.

    With a ``plan`` only its live leaves count unseen entries: a retired or split partition gets
    no more calls, so it adds what it observed and nothing remaining (``node.estimate``,
    "Plan-aware"). Without one (no partitioning) the whole topic is the one live group.
    Costs O(distinct entries), not O(samples); ``ExhaustionTracker`` memoises it.
    """
    by_partition = {partition: chao1(counts.values()) for partition, counts in state.sample_counts().items()}
    live = by_partition.keys() if plan is None else set(plan.live_leaves())
    return combine_open_groups(by_partition, open_groups=live, distinct_observed=state.distinct_sampled)


class ExhaustionTracker:
    """The estimate and the stop rule of one node's state, recomputed only after new observations
    or plan events (the producer asks before every call, the progress display every second).

    ``plan`` returns the current partition plan (the planner's, memoised there), or None
    without partitioning.
    """

    def __init__(
        self, state: NodeState, rule: StopRule, *, plan: Callable[[], PartitionPlan | None] = lambda: None
    ) -> None:
        self._state = state
        self._rule = rule
        self._plan = plan
        self._at: tuple[int, int] = (-1, -1)  # (observations, plan events) the estimate is of
        self._estimate: SizeEstimate | None = None

    def estimate(self) -> SizeEstimate:
        now = (self._state.observation_count, self._state.plan_count)
        if self._estimate is None or self._at != now:
            self._at = now
            self._estimate = exhaustion_estimate(self._state, self._plan())
        return self._estimate

    def reason_to_stop(self) -> str | None:
        """Why the topic counts as exhausted now, or None to go on."""
        # The rule reads only the last `window` calls: don't copy every call's stats on each ask.
        recent = self._state.calls_from(max(0, self._state.observation_count - self._rule.window))
        decision = self._rule.decide(self.estimate(), [call.new for call in recent])
        return f"topic exhausted: {decision.reason}" if decision.stop else None


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for the progress display."""

    node: str
    entries: int  # lines of the list
    calls: int  # this node's calls started
    calls_failed: int
    new_per_call: float  # over this node's calls that completed
    duplicate_share: float  # generated items that were exact or fuzzy duplicates
    estimate: SizeEstimate
    tokens: int
    done_reason: str | None
    paused: str | None = None  # why production is paused (the disk refuses commits), while it is


def _planner(
    config: NodeConfig,
    state: NodeState,
    store: Store,
    clock: HybridClock,
    backend: LLMBackend,
    cluster: ClusterMember,
    committed: Callable[[Sequence[Record]], None],
    changed: Callable[[], None],
) -> Planner | None:
    """The partition planner, or None when partitioning is off (every call is about the whole topic)."""
    if not config.partitioning.enabled:
        return None
    membership = cluster.membership

    def live_members() -> dict[str, float]:
        # Weighted by each node's replicated capacity record, so every node computes the same
        # owners; a node whose record has not arrived yet counts with the default concurrency.
        return {
            member.name: float(state.capacity(member.name) or DEFAULT_CONCURRENCY)
            for member in membership.members()
            if member.is_live
        }

    return Planner(
        config=config.partitioning,
        state=state,
        store=store,
        clock=clock,
        backend=backend,
        topic=config.topic,
        members=live_members,
        items_per_call=config.producer.items_per_call,
        by_frequency=config.producer.known_by_frequency,
        on_committed=committed,
        on_change=changed,
    )


class Node:
    """A node's wired parts; build with ``await Node.open(...)``. Runs on the event loop."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        store: Store,
        state: NodeState,
        backend: LLMBackend,
        writer: ListFileWriter | None,
        tracker: ExhaustionTracker,
        exchange: RecordExchange,
        producer: Producer,
        cluster: ClusterMember,
        address: str,
        planner: Planner | None = None,
        verifier: Verifier | None = None,
        budget: Budget | None = None,
        retention: DetailRetention | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.state = state
        self.backend = backend
        self.writer = writer
        self.tracker = tracker
        self.exchange = exchange
        self.producer = producer
        self.cluster = cluster
        self.address = address
        self.planner = planner  # None without partitioning
        self.verifier = verifier  # None without verification calls
        self.budget = budget  # the network budget's gate and this node's start rate
        self.retention = retention  # drops old observation detail (None: kept for ever)
        self._saved_incarnation = store.identity.incarnation
        self._keeper: asyncio.Task[None] | None = None
        self._retainer: asyncio.Task[None] | None = None
        self._left = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Node {self.name}@{self.address} {self.state!r} {self.producer!r}>"

    @property
    def name(self) -> str:
        return self.store.identity.name

    @classmethod
    async def open(
        cls,
        config: NodeConfig,
        *,
        backend: Callable[[], LLMBackend],
        transport: TransportFactory,
        address: str,
        rng: random.Random | None = None,
        wall: Callable[[], float] | None = None,
        inline_store: bool = False,
        durable_store: bool = True,
        list_file: bool = True,
        on_committed: Callable[[Sequence[Record]], None] = lambda records: None,
    ) -> Node:
        """Open the store in ``config.data_dir``, replay it, and build the node's parts (nothing runs yet).

        ``backend`` is called once the store is open; the node owns (and closes) what it
        returns. ``transport`` builds the gossip transport, reachable at ``address``. ``rng``
        seeds every random choice of the node (producer, membership, dissemination);
        ``wall`` stamps records and messages (default: the running loop's wall clock, which
        is virtual on a ``VirtualTimeLoop``). ``inline_store``/``durable_store``: see
        ``Store.open``. ``list_file``: keep ``DATA_DIR/list.jsonl`` current. ``on_committed``
        sees every record this node commits itself (entries it accepted, its observations).
        """
        rng = rng or random.Random()
        wall = wall or LoopClock().wall
        store = await Store.open(
            config.data_dir, topic=config.topic, node_name=config.node_name, inline=inline_store, durable=durable_store
        )
        built: LLMBackend | None = None
        try:
            state = NodeState(GlobalList(fuzzy=config.producer.fuzzy_dedup), policy=config.verification)
            keyed = await store.load_keyed()
            state.apply_all(record for _, record in keyed)
            node = store.identity.name
            log.info(
                "node %s (incarnation %d) on %s: %d entries from the data dir, topic %r",
                node, store.identity.incarnation, config.data_dir, len(state.entries), config.topic,
            )  # fmt: skip
            built = backend()
            writer = (
                ListFileWriter(state.entries, config.data_dir, debounce_s=config.list_debounce_s,
                               status=lambda line: state.status(line).value)  # fmt: skip
                if list_file
                else None
            )
            clock = HybridClock(wall)
            changed = writer.changed if writer is not None else lambda: None
            exchange = RecordExchange(store=store, state=state, clock=clock, on_change=changed)

            verifier: Verifier | None = None

            def committed(records: Sequence[Record]) -> None:
                exchange.committed(records)
                if verifier is not None:
                    verifier.committed(records)
                on_committed(records)

            budget = Budget(config.budget, state=state, store=store, clock=clock, on_committed=committed)
            metered = budget.wrap(built)  # every LLM call admitted, paced and recorded (node.budget)
            if config.verification.call_share > 0:
                verifier = Verifier(
                    state=state, store=store, clock=clock, backend=metered, topic=config.topic,
                    on_committed=committed, on_change=changed,
                )  # fmt: skip

            producer_rng = random.Random(rng.getrandbits(64))
            local = config.gossip_profile == "local"
            cluster = ClusterMember(
                transport=transport,
                address=address,
                name=node,
                topic=config.topic,
                incarnation=store.identity.incarnation,
                key=config.cluster_key,
                seeds=config.seeds,
                config=GossipConfig.local() if local else GossipConfig.lan(),
                broadcast=BroadcastConfig.local() if local else BroadcastConfig.lan(),
                anti_entropy=AntiEntropyConfig.local() if local else AntiEntropyConfig.lan(),
                records=exchange,
                rng=random.Random(rng.getrandbits(64)),
                wall=wall,
            )
            planner = _planner(config, state, store, clock, metered, cluster, committed, changed)
            tracker = ExhaustionTracker(
                state, config.stop, plan=(lambda: planner.plan) if planner is not None else (lambda: None)
            )
            producer = Producer(
                config=config.producer,
                backend=metered,
                store=store,
                state=state,
                clock=clock,
                topic=config.topic,
                partitions=planner,
                verifier=verifier,
                budget=budget,
                should_stop=planner.reason_to_stop if planner is not None else tracker.reason_to_stop,
                on_change=changed,
                on_committed=committed,
                rng=producer_rng,
            )
            cluster.anti_entropy.add_many((key, index_label(record)) for key, record in keyed)
            exchange.connect(cluster.publish, index=cluster.anti_entropy.add)
            retention = (
                DetailRetention(store=store, state=state, keep_days=config.observation_detail_days, wall=wall)
                if config.observation_detail_days > 0
                else None
            )
        except BaseException:
            if built is not None:
                await built.aclose()
            await store.aclose()
            raise
        return cls(
            config=config, store=store, state=state, backend=built, writer=writer, tracker=tracker,
            exchange=exchange, producer=producer, cluster=cluster, address=address, planner=planner,
            verifier=verifier, budget=budget, retention=retention,
        )  # fmt: skip

    async def start(self) -> None:
        """Serve gossip, start SWIM and dissemination, join through the seeds, keep the list file."""
        if self.writer is not None:
            self.writer.start()
            self.writer.changed()
        await self.cluster.start()
        await self._announce_capacity()
        if self.budget is not None:
            await self.budget.announce()
        self._keeper = asyncio.create_task(self._keep_incarnation(), name=f"incarnation-{self.name}")
        if self.retention is not None:
            self._retainer = asyncio.create_task(self.retention.run(), name=f"detail-retention-{self.name}")

    async def _announce_capacity(self) -> None:
        """Commit and gossip this node's concurrency if its newest record says otherwise."""
        concurrency = self.config.producer.concurrency
        if self.state.capacity(self.name) == concurrency:
            return
        record = CapacityRecord(node=self.name, concurrency=concurrency, hlc=self.exchange.clock.now())
        added = await self.store.add([record])
        for new in added:
            self.state.apply(new)
        self.exchange.committed(added)

    async def produce(self, stop: asyncio.Event) -> str:
        """Run the producer until ``stop``, the call budget, or exhaustion; returns why it ended."""
        return await self.producer.run(stop)

    def progress(self, reason: str | None = None) -> Progress:
        """A snapshot of this node's progress (``reason``: why it stopped, if it did)."""
        state = self.state
        calls = state.calls(self.name)
        items = sum(call.items for call in calls)
        new = sum(call.new for call in calls)
        stats = self.producer.stats
        return Progress(
            node=self.name,
            entries=len(state.entries),
            calls=stats.calls_started,
            calls_failed=stats.calls_failed,
            new_per_call=new / len(calls) if calls else 0.0,
            duplicate_share=(items - new) / items if items else 0.0,
            estimate=self.tracker.estimate(),
            tokens=stats.prompt_tokens + stats.completion_tokens,
            done_reason=reason if reason is not None else self.producer.stop_reason,
            paused=self.producer.paused,
        )

    async def leave(self, timeout_s: float) -> None:
        """Leave the cluster gracefully: announce it (up to ``timeout_s``), persist the incarnation,
        stop gossiping. Safe to call twice."""
        if self._left:
            return
        self._left = True
        await self._stop_keeper()
        try:
            await self.cluster.leave(timeout_s=timeout_s)
            await self._save_incarnation(self.cluster.membership.incarnation)
        finally:
            await self.cluster.aclose()

    async def flush_list(self) -> None:
        """Write the list file now if it changed."""
        if self.writer is not None:
            await self.writer.flush()

    async def aclose(self) -> None:
        """Stop everything and release the data dir; safe to call twice.

        Without ``leave`` first this is a crash as peers see it: no goodbye, and the
        incarnation persisted is the last one the keeper saved.
        """
        if self._closed:
            return
        self._closed = True
        await self._stop_keeper()
        try:
            await self.cluster.aclose()
        finally:
            try:
                if self.writer is not None:
                    await self.writer.aclose()
            finally:
                try:
                    await self.backend.aclose()
                finally:
                    await self.store.aclose()

    async def _stop_keeper(self) -> None:
        """Stop the background tasks: the incarnation keeper and the detail retention."""
        tasks = [task for task in (self._keeper, self._retainer) if task is not None]
        self._keeper = self._retainer = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_incarnation(self) -> None:
        """A refutation raises the incarnation: persist it, so a restart starts above it."""
        while True:
            await asyncio.sleep(INCARNATION_CHECK_S)
            incarnation = self.cluster.membership.incarnation
            if incarnation != self._saved_incarnation and await self._save_incarnation(incarnation):
                self._saved_incarnation = incarnation

    async def _save_incarnation(self, incarnation: int) -> bool:
        """Persist the incarnation; False if the disk refuses (full, read-only). Not fatal: a node
        restarted below its last incarnation is refuted by its peers' view and climbs above it."""
        try:
            await self.store.save_incarnation(incarnation)
        except StoreWriteError as exc:
            log.warning("could not save incarnation %d (the node refutes upward after a restart): %s", incarnation, exc)
            return False
        return True
