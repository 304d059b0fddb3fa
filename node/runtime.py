"""Run one node: open its store, replay it, produce until done, keep the list file current.

``run_node(config)`` is what ``gossip-node`` calls. It wires the parts — store, state,
backend, producer, list writer, exhaustion rule — and owns their lifecycle: SIGINT/SIGTERM
stop the producer at the next safe point, in-flight commits finish, the list file gets its
last write, and everything closes. A restart on the same data dir resumes where it was.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from node.config import NodeConfig
from gossip.broadcast import BroadcastConfig
from gossip.config import GossipConfig
from node.cluster import ClusterMember
from node.estimate import SizeEstimate, StopRule, chao1, combine_groups
from node.export import ListFileWriter
from node.hlc import HybridClock
from node.llm.base import LLMBackend
from node.llm.openai_backend import OpenAIBackend, OpenAIConfig
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe
from node.producer import Producer
from node.state import NodeState
from node.replication import RecordExchange
from node.server import CannotListen, NodeServer
from node.store import Store
from node.view import StateView
from webui.app import add_routes

__all__ = ["CannotListen", "run_node", "build_backend", "NodeRun", "Progress", "exhaustion_estimate", "ExhaustionTracker"]

log = logging.getLogger(__name__)


def build_backend(config: NodeConfig) -> LLMBackend:
    """The LLM backend the config names."""
    llm = config.llm
    if llm.kind == "sim":
        params = SimParams().replace(time_scale=llm.time_scale)
        model = SimulatedModel(load_universe(llm.universe), params, knowledge_seed=llm.rng_seed)
        return SimulatedBackend(model, seed=llm.rng_seed)
    return OpenAIBackend(
        OpenAIConfig(
            model=llm.model,
            base_url=llm.base_url,
            api_key=llm.api_key,
            request_timeout_s=llm.request_timeout_s,
            concurrency=config.producer.concurrency,
        )
    )


def exhaustion_estimate(state: NodeState) -> SizeEstimate:
    """The topic's size from every generated item so far: per-partition Chao1, summed.

    Costs O(distinct entries), not O(samples); ``ExhaustionTracker`` memoises it.
    """
    by_partition = {partition: chao1(counts.values()) for partition, counts in state.sample_counts().items()}
    return combine_groups(by_partition, distinct_observed=state.distinct_sampled)


class ExhaustionTracker:
    """The estimate and the stop rule of one node's state, recomputed only after new observations
    (the producer asks before every call, the progress display every second)."""

    def __init__(self, state: NodeState, rule: StopRule) -> None:
        self._state = state
        self._rule = rule
        self._at_observations = -1
        self._estimate: SizeEstimate | None = None

    def estimate(self) -> SizeEstimate:
        if self._estimate is None or self._at_observations != self._state.observation_count:
            self._at_observations = self._state.observation_count
            self._estimate = exhaustion_estimate(self._state)
        return self._estimate

    def reason_to_stop(self) -> str | None:
        """Why the topic counts as exhausted now, or None to go on."""
        decision = self._rule.decide(self.estimate(), [call.new for call in self._state.calls()])
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


@dataclass(frozen=True, slots=True)
class NodeRun:
    """How a run ended."""

    reason: str
    entries: int
    calls: int


def _progress(
    state: NodeState, producer: Producer, node: str, tracker: ExhaustionTracker, reason: str | None
) -> Progress:
    calls = state.calls(node)
    items = sum(call.items for call in calls)
    new = sum(call.new for call in calls)
    stats = producer.stats
    return Progress(
        node=node,
        entries=len(state.entries),
        calls=stats.calls_started,
        calls_failed=stats.calls_failed,
        new_per_call=new / len(calls) if calls else 0.0,
        duplicate_share=(items - new) / items if items else 0.0,
        estimate=tracker.estimate(),
        tokens=stats.prompt_tokens + stats.completion_tokens,
        done_reason=reason,
    )


async def run_node(
    config: NodeConfig,
    *,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    progress_interval_s: float = 1.0,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str], None] = lambda url: None,
) -> NodeRun:
    """Run until the topic is exhausted (with ``exit_when_done``) or a signal/``stop`` arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    store = await Store.open(config.data_dir, topic=config.topic, node_name=config.node_name)
    backend: LLMBackend | None = None
    writer: ListFileWriter | None = None
    try:
        state = NodeState()
        state.apply_all(await store.load_records())
        node = store.identity.name
        log.info(
            "node %s (incarnation %d) on %s: %d entries from the data dir, topic %r",
            node, store.identity.incarnation, config.data_dir, len(state.entries), config.topic,
        )  # fmt: skip
        backend = build_backend(config)
        writer = ListFileWriter(state.entries, config.data_dir, debounce_s=config.list_debounce_s)
        writer.start()
        writer.changed()

        tracker = ExhaustionTracker(state, config.stop)
        clock = HybridClock()
        exchange = RecordExchange(store=store, state=state, clock=clock, on_change=writer.changed)
        producer = Producer(
            config=config.producer,
            backend=backend,
            store=store,
            state=state,
            clock=clock,
            topic=config.topic,
            should_stop=tracker.reason_to_stop,
            on_change=writer.changed,
            on_committed=exchange.committed,
        )
        server = NodeServer.bind(config.host, config.port)
        cluster = ClusterMember(
            server=server,
            name=node,
            topic=config.topic,
            incarnation=store.identity.incarnation,
            key=config.cluster_key,
            advertise=config.advertise,
            seeds=config.seeds,
            config=GossipConfig.local() if config.gossip_profile == "local" else GossipConfig.lan(),
            broadcast=BroadcastConfig.local() if config.gossip_profile == "local" else BroadcastConfig.lan(),
            records=exchange,
        )
        exchange.connect(cluster.publish)
        if config.cluster_key is None:
            log.warning(
                "OPEN CLUSTER: no cluster key, so gossip is unauthenticated; bound to %s only. "
                "Pass --cluster-key-file to authenticate members.", config.host,
            )  # fmt: skip
        view = StateView(
            state,
            node_name=node,
            topic=config.topic,
            members=cluster.members,
            metrics=lambda: {**_metrics(_progress(state, producer, node, tracker, producer.stop_reason)),
                             "membership": cluster.membership.metrics(),
                             "gossip": cluster.broadcaster.metrics()},  # fmt: skip
        )
        add_routes(server.app, view)
        await server.start()
        await cluster.start()
        log.info(
            "node %s serving %s as %s in cluster %s%s", node, server.url, cluster.membership.address,
            cluster.cluster, f", joining via {', '.join(config.seeds)}" if config.seeds else " (new cluster)",
        )  # fmt: skip
        on_listening(server.url)
        reporter = asyncio.create_task(
            _report(state, producer, node, tracker, on_progress, progress_interval_s, store, cluster)
        )
        try:
            reason = await producer.run(stop)
            log.info("producer stopped: %s", reason)
            if not config.exit_when_done and not stop.is_set():
                log.info("idle: the list is complete as far as this node can tell; Ctrl-C stops")
                await stop.wait()
        finally:
            reporter.cancel()
            await cluster.leave(timeout_s=2.0)
            await store.save_incarnation(cluster.membership.incarnation)
            await cluster.aclose()
            await server.aclose()
        await writer.flush()
        on_progress(_progress(state, producer, node, tracker, reason))
        return NodeRun(reason=reason, entries=len(state.entries), calls=producer.stats.calls_started)
    finally:
        if writer is not None:
            await writer.aclose()
        if backend is not None:
            await backend.aclose()
        await store.aclose()


def _metrics(progress: Progress) -> dict[str, object]:
    estimate = progress.estimate
    return {
        "node": progress.node,
        "entries": progress.entries,
        "calls": progress.calls,
        "calls_failed": progress.calls_failed,
        "new_per_call": progress.new_per_call,
        "duplicate_share": progress.duplicate_share,
        "tokens": progress.tokens,
        "estimate": {"total": estimate.estimate, "low": estimate.low,
                     "high": estimate.high if estimate.high != float("inf") else None,
                     "remaining": estimate.remaining, "coverage": estimate.coverage},  # fmt: skip
        "stopped": progress.done_reason,
    }


async def _report(
    state: NodeState,
    producer: Producer,
    node: str,
    tracker: ExhaustionTracker,
    on_progress: Callable[[Progress], None],
    interval_s: float,
    store: Store,
    cluster: ClusterMember,
) -> None:
    saved_incarnation = cluster.membership.incarnation
    while True:
        on_progress(_progress(state, producer, node, tracker, producer.stop_reason))
        incarnation = cluster.membership.incarnation
        if incarnation != saved_incarnation:  # a refutation raised it: a restart must start above it
            await store.save_incarnation(incarnation)
            saved_incarnation = incarnation
        await asyncio.sleep(interval_s)
