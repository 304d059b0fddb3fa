"""Churn for simulated clusters: a failure-detection bound, a schedule of joins and crashes, and
an auditor of partition ownership (``tests/node/test_churn.py``).

Ownership is weighted rendezvous hashing over each node's *own* membership view
(``partitioning.assign``), where a member counts while it is alive or suspect. A crashed owner
therefore keeps its leaves, in every view that still counts it, until that view declares it
dead: a leaf is *orphaned* while some live node's view assigns it to a node that is not
running. SWIM + Lifeguard bound how long that lasts; ``failure_detection_bound_s`` is that
bound, computed from the gossip config alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gossip.config import GossipConfig
from gossip.suspicion import suspicion_timeout_s
from node.simulation import Simulation

__all__ = ["failure_detection_bound_s", "OrphanAudit", "ChurnPlan", "ChurnLog"]


def failure_detection_bound_s(config: GossipConfig, members: int) -> float:
    """The longest a crashed member can stay counted alive or suspect in a live member's view.

    bound = (2·(N − 1) + 1) · probe_interval             (1) until someone's probe of it fails
          + suspicion_max_timeout_mult · suspicion_mult · max(1, log10 N) · probe_interval
                                                          (2) Lifeguard's longest suspicion
          + retransmit_mult · ⌈log10(N + 1)⌉ · gossip_interval
                                                          (3) the "dead" rumour reaching everyone

    (1) every survivor probes the members of a shuffled list in turn, reshuffled at each wrap:
    one survivor reaches a given member after at most 2(N − 1) − 1 periods (first in one round,
    last in the next), and that probe ends — the member becomes suspect — within one more period
    (a probe plus its indirect probes fit in one period). (2) with no confirmation a suspicion
    lasts ``suspicion_max_timeout_mult`` × the nominal timeout; confirmations only shorten it.
    (3) a rumour rides ``retransmit_mult · ⌈log10(N + 1)⌉`` gossip rounds. Lifeguard's
    health multiplier, which stretches a *slow* member's probe period, is not in the bound:
    the simulated network is fault-free, so a survivor misses nacks only from a relay that is
    itself freshly crashed, and the test measures whether that ever pushes an orphan past it.
    """
    nominal = suspicion_timeout_s(config.suspicion_mult, members, config.probe_interval_s)
    until_suspected = (2 * (members - 1) + 1) * config.probe_interval_s
    suspicion = config.suspicion_max_timeout_mult * nominal
    spreading = config.retransmit_mult * math.ceil(math.log10(members + 1)) * config.gossip_interval_s
    return until_suspected + suspicion + spreading


@dataclass
class OrphanAudit:
    """Samples who owns every live leaf in every live node's view; times how long leaves stay orphaned.

    A leaf's orphan episode starts at the first sample where some live view assigns it to a node
    that is not running and ends at the first sample where no view does; its measured length is
    therefore within one sample interval of the truth (an upper bound: end − start + interval).
    """

    interval_s: float
    samples: int = 0
    episodes: int = 0  # orphan episodes seen (a leaf orphaned, then owned again)
    longest_s: float = 0.0  # the longest episode, ended or still open at the last sample
    longest_leaf: str = ""
    per_sample_longest_s: list[float] = field(default_factory=list)  # the longest open episode at each sample
    views_checked: int = 0
    owners_moved: int = 0  # leaf owner changes seen in one view from one sample to the next
    _open: dict[str, float] = field(default_factory=dict)  # leaf -> episode start
    _last_owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (viewer, leaf) -> owner

    def schedule(self, simulation: Simulation, *, start_s: float, until_s: float) -> None:
        """Sample every ``interval_s`` of virtual time from ``start_s`` to ``until_s``."""

        def action(sim: Simulation) -> None:
            self.sample(sim)
            if sim.now_s + self.interval_s <= until_s:
                sim.at(sim.now_s + self.interval_s, action, label="orphan audit")

        simulation.at(start_s, action, label="orphan audit")

    def sample(self, simulation: Simulation) -> None:
        """Look at every live node's ownership now."""
        now = simulation.now_s
        nodes = simulation.live_nodes()
        running = {node.name for node in nodes}
        orphaned: set[str] = set()
        for node in nodes:
            planner = node.planner
            assert planner is not None, "the churn test runs with partitioning on"
            self.views_checked += 1
            for leaf, owner in planner.owners().items():
                previous = self._last_owners.get((node.name, leaf))
                if previous is not None and previous != owner:
                    self.owners_moved += 1
                self._last_owners[(node.name, leaf)] = owner
                if owner not in running:
                    orphaned.add(leaf)
        for leaf in orphaned:
            self._open.setdefault(leaf, now)
        for leaf in [leaf for leaf in self._open if leaf not in orphaned]:
            self.episodes += 1
            self._close(leaf, now)
        longest_open = max((now - start + self.interval_s for start in self._open.values()), default=0.0)
        self.per_sample_longest_s.append(longest_open)
        for leaf, start in self._open.items():
            self._note(leaf, now - start + self.interval_s)
        self.samples += 1

    def _close(self, leaf: str, now: float) -> None:
        start = self._open.pop(leaf)
        self._note(leaf, now - start)

    def _note(self, leaf: str, length_s: float) -> None:
        if length_s > self.longest_s:
            self.longest_s, self.longest_leaf = length_s, leaf

    @property
    def open_episodes(self) -> int:
        return len(self._open)


@dataclass
class ChurnLog:
    """What the churn did."""

    kills: int = 0
    restarts: int = 0
    joins: int = 0
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ChurnPlan:
    """Every ``every_s`` from ``start_s`` to ``end_s`` one change: crash a running node, restart a
    crashed one, or add a brand-new node (up to ``max_nodes``); at ``end_s`` every crashed node
    is restarted, so the whole cluster is up when churn stops."""

    start_s: float
    end_s: float
    every_s: float
    min_running: int  # never crash below this many running nodes
    max_nodes: int  # brand-new nodes join until the cluster has this many
    seed: int
    after_crash: Callable[[str], None] = lambda name: None  # sees each crashed node's name, right after the crash

    def schedule(self, simulation: Simulation, log: ChurnLog) -> None:
        rng = random.Random(self.seed)
        steps = int((self.end_s - self.start_s) / self.every_s) + 1
        for step in range(steps):
            simulation.at(self.start_s + step * self.every_s, _ChurnStep(self, rng, log), label="churn")
        simulation.at(self.end_s + self.every_s, _RestartEveryone(log), label="churn over")


@dataclass
class _ChurnStep:
    plan: ChurnPlan
    rng: random.Random
    log: ChurnLog

    async def __call__(self, simulation: Simulation) -> None:
        running = sorted(node.name for node in simulation.live_nodes())
        down = sorted(name for name in _all_names(simulation) if name not in running)
        choices = []
        if len(running) > self.plan.min_running:
            choices += ["kill", "kill"]  # crashes are the churn that orphans leaves: weigh them up
        if down:
            choices.append("restart")
        if len(running) + len(down) < self.plan.max_nodes:
            choices.append("join")
        action = self.rng.choice(choices)
        if action == "kill":
            victim = self.rng.choice(running)
            await simulation.kill(victim)
            self.plan.after_crash(victim)
            self.log.kills += 1
        elif action == "restart":
            victim = self.rng.choice(down)
            await simulation.restart(victim)
            self.log.restarts += 1
        else:
            victim = await simulation.add_node()
            self.log.joins += 1
        self.log.events.append(f"{simulation.now_s:.1f}s {action} {victim}")


@dataclass
class _RestartEveryone:
    log: ChurnLog

    async def __call__(self, simulation: Simulation) -> None:
        running = {node.name for node in simulation.live_nodes()}
        for name in _all_names(simulation):
            if name not in running:
                await simulation.restart(name)
                self.log.restarts += 1
                self.log.events.append(f"{simulation.now_s:.1f}s restart {name} (churn over)")


def _all_names(simulation: Simulation) -> list[str]:
    return simulation.names()
