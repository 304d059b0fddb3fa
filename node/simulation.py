"""N full nodes in one process, on the in-memory network and a virtual clock: ``gossip-sim``'s harness.

Each simulated node is assembled exactly as ``gossip-node`` assembles a real one
(``node.assembly.Node``: SQLite store, producer, dedup, record exchange, SWIM membership,
push dissemination) with three substitutions: gossip travels over
``gossip.testing.InMemoryNetwork`` (latency, loss, partitions, dead nodes), the LLM is the
in-process simulated model (one model shared by all nodes — they run "the same LLM" — with
a seed of its own per node), and time is a ``VirtualTimeLoop``'s, which jumps to the next
timer whenever nothing is ready. So an hour of cluster life costs seconds of CPU.

Determinism: every random choice draws from a ``random.Random`` seeded from the run's seed
(``derived_seed``), the stores run inline on the loop's thread (``Store.open(inline=True)``:
no thread can finish in a different order), and clocks are the loop's. One seed, one run:
the report is the same, digest for digest, whenever it is run.

A run: all nodes start (node1 founds the cluster, the others join through it) and production
begins once every node sees every other alive — push dissemination alone only reaches members
a node knows, so a node that joined late would miss what was pushed before (anti-entropy,
when wired in, repairs that). Then faults fire at their virtual times (kill = the node goes
silent and its process dies: in-flight calls dropped, committed records kept; restart = a new
process on the same data dir, a higher incarnation, joining through a live member; partition
= the first ⌈N/2⌉ nodes against the rest, until heal). The run ends at the time limit, or once
every producer is done, no fault is pending, and the nodes agree (equal digests) or nothing
has changed for ``idle_stop_s``.

What is measured, and how, is ``node.sim_report``; what a run is, ``node.sim_config``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossip.testing import InMemoryNetwork, run_virtual
from node.assembly import Node
from node.config import LLMSettings, NodeConfig
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe
from node.normalize import EntryId
from node.records import EntryRecord, Record
from node.sim_config import NodeEvent, SimConfig
from node.sim_report import (
    GroundTruth,
    ListQuality,
    NodeSample,
    SimReport,
    SimSample,
    cluster_summary,
    committed_keys,
    listed_entry_ids,
    plan_summary,
    rounded_s,
    set_digest,
)
from node.state import NodeState
from node.verifier import VerifierStats
from partitioning.planner import PlannerStats

__all__ = [
    "SIM_PORT",
    "GroundTruth",
    "ListQuality",
    "NodeEvent",
    "NodeSample",
    "SimConfig",
    "SimReport",
    "SimSample",
    "Simulation",
    "derived_seed",
    "run_simulation",
    "set_digest",
]

log = logging.getLogger(__name__)

SIM_PORT = 7000  # every simulated node is "nodeI:7000"
_CLUSTER_KEY = b"gossip-sim cluster key"  # messages are sealed and checked as on a real keyed cluster


def derived_seed(seed: int, *purpose: object) -> int:
    """A 64-bit seed for one purpose, a pure function of the run's seed (the same in every process)."""
    digest = hashlib.blake2b(repr((seed, *purpose)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")



# --- the harness ---------------------------------------------------------------------------


@dataclass
class _Totals:
    """A node's counters summed over its processes (a restart starts the live ones at zero)."""

    calls: int = 0  # every LLM call: enumerations and splits
    calls_failed: int = 0
    split_calls: int = 0
    verify_calls: int = 0
    items: int = 0
    new_entries: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    record_bytes_in: int = 0
    record_bytes_out: int = 0

    def plus(self, node: Node) -> _Totals:
        stats = node.producer.stats
        plan = node.planner.stats if node.planner is not None else PlannerStats()
        check = node.verifier.stats if node.verifier is not None else VerifierStats()
        gossip = node.cluster.broadcaster.metrics()
        return _Totals(
            calls=self.calls + stats.calls_started + plan.split_calls + check.calls,
            calls_failed=self.calls_failed + stats.calls_failed,
            split_calls=self.split_calls + plan.split_calls,
            verify_calls=self.verify_calls + check.calls,
            items=self.items + stats.items,
            new_entries=self.new_entries + stats.new_entries,
            tokens=self.tokens + stats.prompt_tokens + stats.completion_tokens + plan.split_prompt_tokens
            + plan.split_completion_tokens + check.prompt_tokens + check.completion_tokens,
            prompt_tokens=self.prompt_tokens + stats.prompt_tokens + plan.split_prompt_tokens + check.prompt_tokens,
            record_bytes_in=self.record_bytes_in + int(gossip["bytes_in"]),
            record_bytes_out=self.record_bytes_out + int(gossip["bytes_out"]),
        )


@dataclass
class _Slot:
    """One simulated node across its processes."""

    name: str
    index: int
    address: str
    data_dir: Path
    node: Node | None = None
    producer: asyncio.Task[str] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    starts: int = 0
    past: _Totals = field(default_factory=_Totals)
    stop_reason: str | None = None
    last_digest: str = "0:"  # as of the last time it was computed (a dead node's: at its crash)
    digest_cache: tuple[int, int, str] = (-1, -1, "")  # (incarnation, count, digest)

    def totals(self) -> _Totals:
        return self.past.plus(self.node) if self.node is not None else self.past

    @property
    def producing(self) -> bool:
        return self.producer is not None and not self.producer.done()


Action = Callable[["Simulation"], Awaitable[None] | None]


class Simulation:
    """Runs one ``SimConfig`` on the running (virtual-time) loop: ``await Simulation(config).run()``.

    Faults can be scheduled before ``run`` with ``at(t_s, action)`` (tests and benchmarks add
    their own), or applied from such an action: ``kill``, ``restart``, ``partition``, ``heal``.
    ``on_sample`` sees every point of the time series (the CLI's live table).
    """

    def __init__(self, config: SimConfig, *, on_sample: Callable[[SimSample], None] = lambda sample: None) -> None:
        self.config = config
        self._on_sample = on_sample
        self._universe = load_universe(config.universe)
        self.topic = config.topic or self._universe.topic
        params = SimParams().replace(time_scale=config.llm_time_scale)
        knowledge = config.rng_seed if config.model_seed is None else config.model_seed
        self.model = SimulatedModel(self._universe, params, knowledge_seed=knowledge)
        self.truth = GroundTruth(self._universe, self.model)
        self.network = InMemoryNetwork(
            derived_seed(config.rng_seed, "network"), latency_s=config.latency_ms / 1000.0, loss=config.loss
        )
        self._slots: dict[str, _Slot] = {}
        self._timeline: list[tuple[float, int, str, Action]] = []  # (at, order of scheduling, label, action)
        self._scheduled = itertools.count()
        self._series: list[SimSample] = []
        self._events: list[dict[str, object]] = []
        self._partitions: list[dict[str, object]] = []
        self._t0 = 0.0
        self._last_record_at: float | None = None
        self._last_entry_at: float | None = None
        self._equal_since: float | None = None
        self._ran = False
        self._base: Path | None = None  # where the nodes' data dirs are, once the run started
        # each node's replicated state as the run left it, for benchmarks that read more than the
        # report (held as long as this Simulation is: a run's whole list per node)
        self.final_states: dict[str, NodeState] = {}
        self._schedule_config_faults()

    def __repr__(self) -> str:
        alive = sum(slot.node is not None for slot in self._slots.values())
        return f"<Simulation nodes={self.config.nodes} alive={alive} seed={self.config.rng_seed} {self.network!r}>"

    # -- faults and hooks -------------------------------------------------------------------

    def at(self, at_s: float, action: Action, *, label: str = "action") -> None:
        """Run ``action(self)`` at virtual time ``at_s`` (seconds since the nodes started)."""
        self._timeline.append((at_s, next(self._scheduled), label, action))
        self._timeline.sort(key=lambda item: (item[0], item[1]))

    def _schedule_config_faults(self) -> None:
        config = self.config
        if config.partition_at_s is not None:
            side_a, side_b = config.partition_sides()
            self.at(config.partition_at_s, lambda sim: sim.partition(side_a, side_b), label="partition")
        if config.heal_at_s is not None:
            self.at(config.heal_at_s, lambda sim: sim.heal(), label="heal")
        for event in config.kills:
            self.at(event.at_s, functools.partial(Simulation.kill, name=event.node), label="kill")
        for event in config.restarts:
            self.at(event.at_s, functools.partial(Simulation.restart, name=event.node), label="restart")

    @property
    def now_s(self) -> float:
        """Virtual seconds since the nodes started."""
        return asyncio.get_running_loop().time() - self._t0

    def node(self, name: str) -> Node | None:
        """The running process of node ``name`` (None while it is down)."""
        return self._slots[name].node

    def names(self) -> list[str]:
        """Every node of the run, running or down, in the order they were first started."""
        return list(self._slots)

    def live_nodes(self) -> list[Node]:
        return [slot.node for slot in self._slots.values() if slot.node is not None]

    async def kill(self, name: str) -> None:
        """Crash ``name``: it goes silent, its in-flight calls are lost, its committed records stay."""
        slot = self._slots[name]
        node = slot.node
        if node is None:
            raise ValueError(f"{name} is already down")
        self.network.kill(slot.address)
        await self._stop_producer(slot)
        slot.last_digest = await self._digest(slot, node)
        slot.past = slot.past.plus(node)
        slot.node = None
        await node.aclose()  # no leave: peers find out by probing, as after a real crash
        self._event("kill", name, f"incarnation {node.store.identity.incarnation}, {slot.last_digest}")

    async def restart(self, name: str) -> None:
        """Start ``name`` again on its data dir (a higher incarnation), joining through a live node."""
        slot = self._slots[name]
        if slot.node is not None:
            raise ValueError(f"{name} is running")
        self.network.revive(slot.address)
        await self._start(slot)
        self._start_producer(slot)

    async def add_node(self) -> str:
        """Start a brand-new node (the next ``nodeI``, an empty data dir) joining through a live one; returns its name."""
        if self._base is None:
            raise RuntimeError("add_node runs during the run (from an ``at`` action)")
        index = len(self._slots) + 1
        name = f"node{index}"
        slot = self._slots[name] = _Slot(name, index, f"{name}:{SIM_PORT}", self._base / name)
        await self._start(slot)
        self._start_producer(slot)
        return name

    def partition(self, side_a: Sequence[str], side_b: Sequence[str]) -> None:
        """Nothing crosses between the two groups of nodes (by name) until ``heal``."""
        self.network.partition([self._slots[n].address for n in side_a], [self._slots[n].address for n in side_b])
        self._partitions.append({"at_s": rounded_s(self.now_s), "healed_at_s": None, "sides": [list(side_a), list(side_b)]})
        self._event("partition", None, f"{','.join(side_a)} | {','.join(side_b)}")

    def heal(self) -> None:
        """Remove every partition."""
        self.network.heal()
        for partition in self._partitions:
            if partition["healed_at_s"] is None:
                partition["healed_at_s"] = rounded_s(self.now_s)
        self._event("heal", None, "")

    async def digests(self) -> dict[str, str]:
        """The digest of every live node's replicated set, now."""
        return {slot.name: await self._digest(slot, slot.node) for slot in self._slots.values() if slot.node}

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> SimReport:
        """Start the nodes, let them produce and gossip through the faults, measure, stop."""
        if self._ran:
            raise RuntimeError("a Simulation runs once")
        self._ran = True
        real_start = time.perf_counter()
        self._t0 = asyncio.get_running_loop().time()
        with tempfile.TemporaryDirectory(prefix="gossip-sim-") as scratch:
            base = self._base = self.config.data_dir or Path(scratch)
            for index, name in enumerate(self.config.node_names(), start=1):
                self._slots[name] = _Slot(name, index, f"{name}:{SIM_PORT}", base / name)
            try:
                for slot in self._slots.values():
                    await self._start(slot)
                await self._join_phase()
                for slot in self._slots.values():
                    self._start_producer(slot)
                self._event("production", None, "every node's producer started")
                end_reason = await self._drive()
                final = await self._sample()
                return await self._report(end_reason, final, time.perf_counter() - real_start)
            finally:
                await self._shut_down()

    async def _start(self, slot: _Slot) -> None:
        seeds = self._seed_for(slot)
        config = NodeConfig(
            topic=self.topic,
            data_dir=slot.data_dir,
            node_name=slot.name,
            llm=LLMSettings(kind="sim", universe=self.config.universe, rng_seed=self.config.rng_seed,
                            time_scale=self.config.llm_time_scale),  # fmt: skip
            producer=self.config.producer_config(),
            partitioning=self.config.partitioning,
            stop=self.config.stop,
            verification=self.config.verification,
            budget=self.config.budget,
            advertise=slot.address,
            seeds=seeds,
            cluster_key=_CLUSTER_KEY,
            gossip_profile=self.config.gossip_profile,
        )
        llm_seed = derived_seed(self.config.rng_seed, "llm", slot.index, slot.starts)
        network = self.network
        slot.node = await Node.open(
            config,
            backend=lambda: SimulatedBackend(self.model, seed=llm_seed),
            transport=lambda wire: network.transport(slot.address, wire),
            address=slot.address,
            rng=random.Random(derived_seed(self.config.rng_seed, "node", slot.index, slot.starts)),
            inline_store=True,
            durable_store=False,
            list_file=self.config.list_files,
            on_committed=self._committed,
        )
        slot.starts += 1
        slot.stop = asyncio.Event()
        await slot.node.start()
        incarnation = slot.node.store.identity.incarnation
        self._event("start", slot.name, f"incarnation {incarnation}, seeds {', '.join(seeds) or '(none)'}")

    def _seed_for(self, slot: _Slot) -> tuple[str, ...]:
        """node1 founds the cluster; everyone else joins through the first live node before it (or after)."""
        live = [other for other in self._slots.values() if other.node is not None and other is not slot]
        if not live:
            return ()
        return (live[0].address,)

    def _start_producer(self, slot: _Slot) -> None:
        node = slot.node
        assert node is not None
        slot.stop_reason = None
        slot.producer = asyncio.create_task(node.produce(slot.stop), name=f"produce-{slot.name}")
        slot.producer.add_done_callback(functools.partial(self._producer_done, slot))

    def _producer_done(self, slot: _Slot, task: asyncio.Task[str]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        slot.stop_reason = f"failed: {error!r}" if error is not None else task.result()
        if error is not None:
            log.error("%s: producer failed", slot.name, exc_info=error)
        self._event("producer-done", slot.name, slot.stop_reason)

    async def _stop_producer(self, slot: _Slot) -> None:
        task, slot.producer = slot.producer, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            slot.stop_reason = "killed"

    def _committed(self, records: Sequence[Record]) -> None:
        if records:
            now = self.now_s
            self._last_record_at = now
            if len(self.live_nodes()) > 1:  # only its node has it yet: the sets differ, however briefly
                self._equal_since = None
            if any(isinstance(record, EntryRecord) for record in records):
                self._last_entry_at = now

    async def _join_phase(self) -> None:
        """Wait until every node sees all N alive (or the join timeout): push reaches only known members."""
        deadline = self.now_s + self.config.join_timeout_s
        want = self.config.nodes
        while True:
            views = [sum(m.is_live for m in node.cluster.membership.members()) for node in self.live_nodes()]
            if all(view == want for view in views):
                self._event("joined", None, f"all {want} nodes see each other")
                return
            if self.now_s >= deadline:
                log.warning("join phase: not every node sees all %d after %.0f s (views %s); producing anyway",
                            want, self.config.join_timeout_s, views)  # fmt: skip
                self._event("joined", None, f"timed out; live members seen {views}")
                return
            await asyncio.sleep(self.config.check_interval_s)

    async def _drive(self) -> str:
        """Fire faults, sample, and watch for convergence until the run is over; returns why it ended."""
        config = self.config
        next_sample = self.now_s
        last_change = self.now_s
        last_total = -1
        while True:
            now = self.now_s
            while self._timeline and self._timeline[0][0] <= now:
                _at, _order, label, action = self._timeline.pop(0)
                outcome = action(self)
                if outcome is not None:
                    await outcome
                log.debug("t=%.2f: %s", now, label)
            if now >= next_sample:
                sample = await self._sample()
                self._series.append(sample)
                self._on_sample(sample)
                next_sample += config.sample_interval_s
            total = await self._check_convergence()
            if total != last_total:
                last_total, last_change = total, now
            if now >= config.time_limit_s:
                return "time limit"
            if not self._timeline and not any(slot.producing for slot in self._slots.values()):
                if self._equal_since is not None:
                    return "converged"
                if now - last_change >= config.idle_stop_s:
                    return f"idle for {config.idle_stop_s:g} s without converging"
            wake = min(next_sample, config.time_limit_s, now + config.check_interval_s)
            if self._timeline:
                wake = min(wake, self._timeline[0][0])
            await asyncio.sleep(max(0.0, wake - now))

    async def _check_convergence(self) -> int:
        """Note when the live nodes' digests became (or stopped being) equal; returns the total record count."""
        counts = {slot.name: await slot.node.store.count() for slot in self._slots.values() if slot.node}
        equal = len(set(counts.values())) <= 1 and len(set((await self.digests()).values())) <= 1
        if not equal:
            self._equal_since = None
        elif self._equal_since is None:
            self._equal_since = self.now_s
        return sum(counts.values())

    async def _digest(self, slot: _Slot, node: Node | None) -> str:
        """``count:blake2b`` over the sorted record keys committed in the node's store (cached per count)."""
        if node is None:
            return slot.last_digest
        count = await node.store.count()
        incarnation = node.store.identity.incarnation
        if slot.digest_cache[:2] != (incarnation, count):  # a grow-only set: same count, same set
            slot.digest_cache = (incarnation, count, set_digest(committed_keys(node.store.data_dir)))
        slot.last_digest = slot.digest_cache[2]
        return slot.last_digest

    async def _sample(self) -> SimSample:
        nodes: list[NodeSample] = []
        union: set[EntryId] = set()
        for slot in self._slots.values():
            totals = slot.totals()
            node = slot.node
            if node is None:
                nodes.append(NodeSample(slot.name, False, 0, 0, totals.calls, totals.tokens, 0.0, 0.0, 0.0, False,
                                        totals.prompt_tokens))  # fmt: skip
                continue
            quality = self.truth.quality(node.state.entries, node.state.rejected_ids())
            union |= quality.covered
            nodes.append(NodeSample(
                slot.name, True, quality.lines, await node.store.count(), totals.calls, totals.tokens,
                quality.coverage, quality.precision, quality.alias_leakage, slot.producing, totals.prompt_tokens,
            ))  # fmt: skip
        live = [sample for sample in nodes if sample.alive]
        if not live:  # everyone is down: nothing is held
            live = [NodeSample("-", False, 0, 0, 0, 0, 0.0, 1.0, 0.0, False)]
        return SimSample(
            t_s=round(self.now_s, 6),
            coverage_union=len(union) / self.truth.size if self.truth.size else 1.0,
            coverage_min=min(sample.coverage for sample in live),
            coverage_mean=sum(sample.coverage for sample in live) / len(live),
            precision_min=min(sample.precision for sample in live),
            alias_leakage_max=max(sample.alias_leakage for sample in live),
            digests_equal=len(set((await self.digests()).values())) <= 1,
            nodes=tuple(nodes),
        )

    async def _report(self, end_reason: str, final: SimSample, real_s: float) -> SimReport:
        digests = await self.digests()
        traffic = self.network.node_traffic()
        nodes: list[dict[str, Any]] = []
        union_ids: set[EntryId] = set()
        union_covered: set[EntryId] = set()
        for slot, sample in zip(self._slots.values(), final.nodes, strict=True):
            totals = slot.totals()
            node = slot.node
            wire = traffic.get(slot.address)
            row: dict[str, Any] = {
                "name": slot.name, "address": slot.address, "alive": node is not None, "starts": slot.starts,
                "incarnation": node.cluster.membership.incarnation if node is not None else None,
                "digest": digests.get(slot.name, slot.last_digest), "records": sample.records,
                "entries": sample.entries, "calls": totals.calls, "calls_failed": totals.calls_failed,
                "items": totals.items, "new_entries": totals.new_entries, "tokens": totals.tokens,
                "prompt_tokens": totals.prompt_tokens, "split_calls": totals.split_calls,
                "verify_calls": totals.verify_calls,
                "coverage": sample.coverage, "precision": sample.precision, "alias_leakage": sample.alias_leakage,
                "record_bytes_in": totals.record_bytes_in, "record_bytes_out": totals.record_bytes_out,
                "wire_bytes_out": wire.bytes if wire else 0, "wire_messages_out": wire.messages if wire else 0,
                "stop_reason": slot.stop_reason or ("still producing" if slot.producing else None),
            }  # fmt: skip
            if node is not None:
                union_ids |= listed_entry_ids(node.state.entries)
                rejected = node.state.rejected_ids()
                shown = self.truth.quality(node.state.entries, rejected).covered
                union_covered |= shown
                row["rejected_lines"] = len(rejected)
                row["recall_lost_to_rejection"] = (
                    len(self.truth.quality(node.state.entries).covered - shown) / self.truth.size
                )
                row["entry_ids"] = node.state.entries.entry_count
                row["topic_partitions"] = len(node.state.partitions())
            nodes.append(row)
        converged_at = self._equal_since if final.digests_equal else None
        producible = self.truth.producible
        cluster = cluster_summary(
            nodes, final, union_ids=union_ids, union_covered=union_covered, producible=producible,
            wire_total=self.network.total(), distinct_digests=len(set(digests.values())),
            converged_at=converged_at, last_entry_at=self._last_entry_at, last_record_at=self._last_record_at,
        )  # fmt: skip
        seeds = {
            "rng_seed": self.config.rng_seed,
            "network": derived_seed(self.config.rng_seed, "network"),
            "model_knowledge": self.config.rng_seed if self.config.model_seed is None else self.config.model_seed,
            "llm": {slot.name: [derived_seed(self.config.rng_seed, "llm", slot.index, start)
                                for start in range(slot.starts)] for slot in self._slots.values()},  # fmt: skip
        }
        return SimReport(
            config={**self.config.describe(), "topic": self.topic},
            seeds=seeds,
            sim_params=self.model.params.describe(),
            popularity_alpha=self.model.popularity_alpha,
            universe={"name": self._universe.name, "truth_size": self.truth.size, "producible": len(producible)},
            end_reason=end_reason,
            virtual_s=round(self.now_s, 6),
            real_s=real_s,
            nodes=tuple(nodes),
            cluster=cluster,
            partitions=tuple(dict(partition) for partition in self._partitions),
            plan=self._plan_summary(),
            events=tuple(self._events),
            series=(*self._series, final),
        )

    def _plan_summary(self) -> dict[str, Any] | None:
        node = next((slot.node for slot in self._slots.values() if slot.node is not None), None)
        if node is None or node.planner is None:
            return None
        covered = self.truth.quality(node.state.entries, node.state.rejected_ids()).covered
        return plan_summary(node.planner.plan, node.state, self.truth, covered)

    def _event(self, kind: str, node: str | None, detail: str) -> None:
        self._events.append({"t_s": round(self.now_s, 6), "event": kind, "node": node, "detail": detail})
        log.info("t=%.2fs %s %s %s", self.now_s, kind, node or "", detail)

    async def _shut_down(self) -> None:
        for slot in self._slots.values():
            await self._stop_producer(slot)
        for name, slot in self._slots.items():
            node, slot.node = slot.node, None
            if node is not None:
                self.final_states[name] = node.state
                await node.aclose()
        await self.network.aclose()


def run_simulation(config: SimConfig, *, on_sample: Callable[[SimSample], None] = lambda sample: None) -> SimReport:
    """Run ``config`` on a fresh virtual-time loop (the way ``gossip-sim`` and tests call it)."""
    return run_virtual(Simulation(config, on_sample=on_sample).run())