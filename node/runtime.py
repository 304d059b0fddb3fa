"""Run one node: open its store, replay it, produce until done, keep the list file current.

``run_node(config)`` is what ``gossip-node`` calls. It binds the node's port, assembles the
node on it (``node.assembly``: store, state, backend, producer, list writer, exhaustion rule,
gossip over HTTP), mounts the web page (on that port, or on its own ``--web-port`` listener),
and owns the lifecycle: SIGINT/SIGTERM stop the producer at the next safe point, in-flight
commits finish, the list file gets its last write, and everything closes. A restart on the
same data dir resumes where it was. Peers get the advertised address (``node.addresses``), and
seeds are looked up again on every join attempt.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from node.addresses import advertised_address, resolve_seed, startup_line
from node.assembly import ExhaustionTracker, Node, Progress, exhaustion_estimate
from node.cluster import ClusterMember, http_transport
from node import log_filters
from node.config import NodeConfig
from node.fault_injection import FaultInjector
from node.llm.base import LLMBackend
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe
from node.server import CannotListen, NodeServer
from node.view import StateView
from webui.app import add_routes
from webui.view import ConvergenceView

__all__ = ["CannotListen", "run_node", "build_backend", "NodeRun", "Progress", "exhaustion_estimate", "ExhaustionTracker"]

log = logging.getLogger(__name__)


def build_backend(config: NodeConfig) -> LLMBackend:
    """The LLM backend the config names."""
    llm = config.llm
    if llm.kind == "sim":
        params = SimParams().replace(time_scale=llm.time_scale)
        model = SimulatedModel(load_universe(llm.universe), params, knowledge_seed=llm.rng_seed)
        return SimulatedBackend(model, seed=llm.rng_seed)
    # Imported here: the openai package takes ~0.6 s of CPU to import, a third of a node's start,
    # and a node on the simulated LLM never needs it.
    from node.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(llm.openai_config(concurrency=config.producer.concurrency))


@dataclass(frozen=True, slots=True)
class NodeRun:
    """How a run ended."""

    reason: str
    entries: int
    calls: int


async def run_node(
    config: NodeConfig,
    *,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    progress_interval_s: float = 1.0,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str], None] = lambda url: None,
    faults: FaultInjector | None = None,
) -> NodeRun:
    """Run until the topic is exhausted (with ``exit_when_done``) or a signal/``stop`` arrives.

    ``faults`` (tests only, from ``SWARMLIST_FAULTS``) wraps the gossip transport in injected faults.
    """
    log_filters.install()  # a malformed request from the network is one log line, not a traceback
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    server = NodeServer.bind(config.host, config.port)
    web_server: NodeServer | None = None  # the page and API's own listener (--web-port), if any
    try:
        if config.web_port is not None:
            web_server = NodeServer.bind(config.web_host, config.web_port)
        address = advertised_address(config.host, server.port, config.advertise, config.seeds)
        transport = http_transport(server, address)
        node = await Node.open(
            config, backend=lambda: build_backend(config), address=address,
            transport=faults.wrap(transport) if faults is not None else transport,
        )  # fmt: skip
    except BaseException:
        await server.aclose()
        if web_server is not None:
            await web_server.aclose()
        raise
    web = web_server or server
    try:
        node.cluster.resolve = resolve_seed  # seeds are looked up again on every join attempt
        if config.cluster_key is None:
            log.warning(
                "OPEN CLUSTER: no cluster key, so gossip is unauthenticated; bound to %s only. "
                "Pass --cluster-key-file to authenticate members.", config.host,
            )  # fmt: skip
        cluster = node.cluster
        planner = node.planner
        view = StateView(
            node.state,
            node_name=node.name,
            topic=config.topic,
            members=cluster.members,
            # Charted groups first: the page's time series keep only the first 64 numbers.
            metrics=lambda: {**_metrics(node.progress()),
                             "gossip": cluster.broadcaster.metrics(),
                             "membership": cluster.membership.metrics(),
                             "anti_entropy": cluster.anti_entropy.metrics(),
                             **({"plan": planner.metrics()} if planner is not None else {}),
                             **({"llm_gate": node.budget.metrics()} if node.budget is not None else {}),
                             **({"faults": faults.metrics()} if faults is not None else {})},  # fmt: skip
            convergence=lambda: _convergence(cluster),
            plan=planner.snapshot if planner is not None else None,
        )
        add_routes(web.app, view)
        await server.start()
        if web_server is not None:
            await web_server.start()
        if faults is not None:
            faults.start()
        await node.start()
        log.info("%s", startup_line(name=node.name, cluster=cluster.cluster, bind=server.address,
                                    advertise=cluster.membership.address, web_url=web.url,
                                    web_separate=web_server is not None, seeds=config.seeds))  # fmt: skip
        on_listening(web.url)
        reporter = asyncio.create_task(_report(node, on_progress, progress_interval_s))
        try:
            reason = await node.produce(stop)
            log.info("producer stopped: %s", reason)
            if not config.exit_when_done and not stop.is_set():
                log.info("idle: the list is complete as far as this node can tell; Ctrl-C stops")
                await stop.wait()
        finally:
            reporter.cancel()
            await node.leave(timeout_s=2.0)
            await server.aclose()
            await web.aclose()
        await node.flush_list()
        on_progress(node.progress(reason))
        return NodeRun(reason=reason, entries=len(node.state.entries), calls=node.producer.stats.calls_started)
    finally:
        if faults is not None:
            await faults.aclose()
        await node.aclose()
        await server.aclose()
        await web.aclose()


def _convergence(cluster: ClusterMember) -> ConvergenceView | None:
    """The anti-entropy's node × node similarity matrix, once it knows any peer."""
    matrix = cluster.anti_entropy.convergence()
    if len(matrix.names) < 2:
        return None
    return ConvergenceView(nodes=matrix.names, similarity=matrix.similarity, difference=matrix.difference,
                           counts=matrix.counts)  # fmt: skip


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
        "paused": progress.paused,
    }


async def _report(node: Node, on_progress: Callable[[Progress], None], interval_s: float) -> None:
    while True:
        on_progress(node.progress())
        await asyncio.sleep(interval_s)
