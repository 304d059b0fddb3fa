"""What one ``gossip-sim`` run is: ``SimConfig`` and the ``NodeEvent`` faults it schedules, validated.

A run's parameters are data (times in virtual seconds since the nodes started); every check
happens in ``SimConfig.__post_init__`` and raises ``ConfigError`` with the offending option, so
the CLI and tests reject an impossible run (a restart of a node that is not down, a heal with
no partition, a fault past the time limit) before anything starts. The harness that runs a
``SimConfig`` is ``node.simulation``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from node.budget import BudgetConfig
from node.config import check_plain_text
from node.errors import ConfigError
from node.estimate import StopRule
from node.evidence import VerificationPolicy
from node.llm.sim.universe import available_universes
from node.producer import ProducerConfig
from partitioning.config import PartitionConfig

__all__ = ["NodeEvent", "SimConfig"]


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A fault aimed at one node at a virtual time (``--kill node2@30``)."""

    node: str  # "node2"
    at_s: float  # virtual seconds since the nodes started

    @classmethod
    def parse(cls, text: str) -> NodeEvent:
        """``NODE@T`` where NODE is ``nodeI`` or ``I`` and T virtual seconds; ``ConfigError`` otherwise."""
        name, at, time_text = text.strip().partition("@")
        name = name.strip().lower()
        if name.isdigit():
            name = f"node{name}"
        try:
            at_s = float(time_text)
        except ValueError:
            at_s = math.nan
        if not at or not name.startswith("node") or not name[4:].isdigit() or not math.isfinite(at_s) or at_s < 0:
            raise ConfigError(f"expected NODE@SECONDS such as node2@30, got {text!r}")
        return cls(name, at_s)

    def __str__(self) -> str:
        return f"{self.node}@{self.at_s:g}"


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """One simulated run. Times are virtual seconds since the nodes started."""

    topic: str | None = None  # what the nodes enumerate; None = the universe's own topic
    universe: str = "countries"  # the simulated LLM's universe (and the ground truth)
    nodes: int = 5  # full nodes in the cluster
    rng_seed: int = 0  # seeds everything; one seed reproduces a run exactly
    max_calls: int = 0  # LLM calls per node process (0 = until exhausted); a restart gets a fresh budget
    concurrency: int = 2  # concurrent LLM calls per node
    items_per_call: int = 20  # entries asked for per call
    # Which known entries the prompts carry (the shared-state lever): the most often generated
    # first (the default), the newest first, or none at all (``ProducerConfig`` underneath).
    known_entries: Literal["frequency", "recency", "none"] = "frequency"
    fuzzy_dedup: bool = True  # exact → fuzzy dedup (False: exact ids only, no alias clusters)
    model_seed: int | None = None  # the simulated model's knowledge (None = rng_seed); runs sharing it ask one model
    partitioning: PartitionConfig = field(default_factory=PartitionConfig)  # the plan; off = whole topic
    stop: StopRule = field(default_factory=StopRule)  # when a node without partitioning judges the topic done
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)  # statuses and checks
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # network budget and start rate, every node's
    loss: float = 0.0  # probability each message leg is lost
    latency_ms: float = 1.0  # one-way network delay
    partition_at_s: float | None = None  # split the first ⌈N/2⌉ nodes from the rest...
    heal_at_s: float | None = None  # ...until then (None = never)
    kills: tuple[NodeEvent, ...] = ()  # node crashes (silent, in-flight work lost, store kept)
    restarts: tuple[NodeEvent, ...] = ()  # restarts of killed nodes on their data dirs
    time_limit_s: float = 600.0  # the run ends here at the latest
    join_timeout_s: float = 30.0  # production starts when all see all, or after this
    sample_interval_s: float = 5.0  # time series and live display resolution
    check_interval_s: float = 0.1  # convergence is checked this often (its timing's resolution)
    idle_stop_s: float = 60.0  # once production and faults are over, stop after this long without change
    llm_time_scale: float = 1.0  # simulated LLM latency: 1 = a real model's pace (virtual time is free)
    gossip_profile: Literal["lan", "local"] = "lan"  # gossip timings (as gossip-node --gossip-profile)
    data_dir: Path | None = None  # where the nodes' data dirs go (None = a temporary dir, removed)
    list_files: bool = False  # keep each node's list.jsonl current (real file writes: slower)

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 1000:
            raise ConfigError(f"--nodes must be within 1..1000, got {self.nodes}")
        if self.universe not in available_universes():
            raise ConfigError(f"unknown universe {self.universe!r}; available: {', '.join(available_universes())}")
        if self.topic is not None and not self.topic.strip():
            raise ConfigError("--topic must be non-empty")
        if self.topic is not None:
            check_plain_text("--topic", self.topic)
        for option, value in (("--latency-ms", self.latency_ms), ("--llm-time-scale", self.llm_time_scale),
                              ("--time-limit-s", self.time_limit_s), ("--sample-interval-s", self.sample_interval_s),
                              ("check_interval_s", self.check_interval_s), ("join_timeout_s", self.join_timeout_s),
                              ("idle_stop_s", self.idle_stop_s)):  # fmt: skip
            if not math.isfinite(value):  # nan passes every comparison below, and then never fires
                raise ConfigError(f"{option} must be a finite number, got {value}")
        if not 0.0 <= self.loss <= 1.0:
            raise ConfigError(f"--loss must be a probability in [0, 1], got {self.loss}")
        if self.latency_ms < 0 or self.llm_time_scale < 0:
            raise ConfigError("--latency-ms and the LLM time scale must be >= 0")
        if self.time_limit_s <= 0 or self.sample_interval_s <= 0 or self.check_interval_s <= 0:
            raise ConfigError("the time limit, sample and check intervals must be > 0")
        if self.join_timeout_s < 0 or self.idle_stop_s < 0:
            raise ConfigError("the join timeout and idle stop must be >= 0")
        if self.known_entries not in ("frequency", "recency", "none"):
            raise ConfigError(f"known_entries must be frequency, recency or none, got {self.known_entries!r}")
        self.producer_config()
        self._check_partition()
        self._check_node_events()

    def _check_partition(self) -> None:
        if self.heal_at_s is not None and self.partition_at_s is None:
            raise ConfigError("--heal-at needs --partition-at")
        if self.partition_at_s is None:
            return
        if self.nodes < 2:
            raise ConfigError("--partition-at needs at least 2 nodes")
        if not 0 <= self.partition_at_s < self.time_limit_s:
            raise ConfigError(f"--partition-at {self.partition_at_s:g} is outside the run (0..{self.time_limit_s:g} s)")
        if self.heal_at_s is not None and not self.partition_at_s < self.heal_at_s < self.time_limit_s:
            raise ConfigError(
                f"--heal-at must be after --partition-at and before the time limit, got {self.heal_at_s:g}"
            )

    def _check_node_events(self) -> None:
        names = set(self.node_names())
        timeline = sorted([(e.at_s, 0, e) for e in self.kills] + [(e.at_s, 1, e) for e in self.restarts],
                          key=lambda item: (item[0], item[1]))  # fmt: skip
        alive = dict.fromkeys(names, True)
        for at_s, is_restart, event in timeline:
            if event.node not in names:
                raise ConfigError(f"{event}: no such node (nodes are node1..node{self.nodes})")
            if at_s >= self.time_limit_s:
                raise ConfigError(f"{event}: at {at_s:g} s, past the time limit of {self.time_limit_s:g} s")
            if is_restart and alive[event.node]:
                raise ConfigError(f"--restart {event}: {event.node} is not down then (kill it earlier)")
            if not is_restart and not alive[event.node]:
                raise ConfigError(f"--kill {event}: {event.node} is already down then")
            alive[event.node] = bool(is_restart)

    def producer_config(self) -> ProducerConfig:
        """Every simulated node's ``ProducerConfig`` (raises ``ConfigError`` on a bad value)."""
        return ProducerConfig(
            concurrency=self.concurrency,
            items_per_call=self.items_per_call,
            max_calls=self.max_calls,
            known_by_frequency=self.known_entries != "recency",
            # no context: a zero token budget, so every prompt's known list is empty
            known_budget_tokens=0 if self.known_entries == "none" else ProducerConfig().known_budget_tokens,
            fuzzy_dedup=self.fuzzy_dedup,
        )

    def node_names(self) -> list[str]:
        return [f"node{index}" for index in range(1, self.nodes + 1)]

    def partition_sides(self) -> tuple[list[str], list[str]]:
        """The two sides of ``--partition-at``: the first ⌈N/2⌉ nodes, and the rest."""
        names = self.node_names()
        half = (len(names) + 1) // 2
        return names[:half], names[half:]

    def describe(self) -> dict[str, object]:
        """The run's parameters, JSON-ready."""
        values = asdict(self)
        values["kills"] = [str(event) for event in self.kills]
        values["restarts"] = [str(event) for event in self.restarts]
        values["data_dir"] = str(self.data_dir) if self.data_dir is not None else None
        return values
