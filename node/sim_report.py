"""Measuring a ``gossip-sim`` run: lists against the ground truth, samples, digests, the report.

Measured against the universe's ground truth, which the nodes never read: coverage (share of
the truth a list holds, canonical or alias), precision (lines naming a real item), alias
leakage (lines whose item another line already holds), the duplicate share of generated
items; per node the digest of its replicated set (count + BLAKE2b over its sorted record
keys), calls, tokens, gossip bytes; over time, and convergence (when the digests became equal,
after the last new record). The harness that takes these measurements is ``node.simulation``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossip.testing import TrafficCount
from node.global_list import GlobalList
from node.llm.sim.model import SimulatedModel
from node.llm.sim.universe import Universe
from node.normalize import EntryId, entry_id
from node.state import NodeState
from node.store import DB_FILENAME
from partitioning.plan import PartitionPlan

__all__ = [
    "GroundTruth",
    "ListQuality",
    "NodeSample",
    "SimReport",
    "SimSample",
    "cluster_summary",
    "committed_keys",
    "listed_entry_ids",
    "plan_summary",
    "rounded_s",
    "set_digest",
]


# --- measuring against the ground truth ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListQuality:
    """How one list measures up against the ground truth."""

    lines: int
    coverage: float  # share of the truth the list names (canonical or alias)
    precision: float  # share of lines naming a real item
    alias_leakage: float  # share of lines whose real item an earlier line already holds
    covered: frozenset[EntryId]  # the truth ids covered


class GroundTruth:
    """The universe's items as entry ids (the system itself never reads these)."""

    def __init__(self, universe: Universe, model: SimulatedModel) -> None:
        self._model = model
        self._item_of = universe.id_of_any_name()  # any name's id -> item index
        self._truth_id = tuple(entry_id(item.name) for item in universe.items)  # item index -> truth id
        self.size = universe.truth_size
        self.producible = frozenset(self._truth_id[index] for index in model.known_items())

    def item_of(self, entry: EntryId) -> int | None:
        """The universe item ``entry`` names (by any of its names), or None: not a real item."""
        return self._item_of.get(entry)

    def truth_in(self, partition_labels: Sequence[str]) -> frozenset[EntryId]:
        """The truth ids inside a partition, as the model understands its labels."""
        scope = self._model.scope_for(partition_labels)
        return frozenset(self._truth_id[index] for index in self._model.admitted(scope))

    def quality(self, entries: GlobalList, excluded: frozenset[EntryId] = frozenset()) -> ListQuality:
        """The list as users see it: lines in ``excluded`` (the rejected ones) are left out."""
        covered: set[int] = set()
        real_lines = leaked = lines = 0
        for line in entries:
            if line.id in excluded:
                continue
            lines += 1
            items = {self._item_of[r.id] for r in (line.record, *line.aliases) if r.id in self._item_of}
            item = self._item_of.get(line.record.id)
            if item is not None:
                real_lines += 1
                leaked += item in covered
            covered |= items
        truth = frozenset(self._truth_id[index] for index in covered)
        return ListQuality(
            lines=lines,
            coverage=len(truth) / self.size if self.size else 1.0,
            precision=real_lines / lines if lines else 1.0,
            alias_leakage=leaked / lines if lines else 0.0,
            covered=truth,
        )


def plan_summary(plan: PartitionPlan, state: NodeState, truth: GroundTruth, covered: frozenset[EntryId]) -> dict[str, Any]:
    """The partition plan a run built — depth, leaves, largest leaf — and each leaf's coverage.

    A leaf's coverage is the share of the truth inside it (as the model reads its labels)
    that the list holds; its entries are those first accepted in it.
    """
    accepted = state.partition_sizes()
    leaves: list[dict[str, Any]] = []
    for partition in plan.partitions():
        if not partition.is_leaf:
            continue
        inside = truth.truth_in(partition.labels)
        leaves.append({
            "partition": partition.path, "status": partition.status.value, "depth": partition.depth,
            "calls": len(state.calls_in(partition.path)), "entries": accepted.get(partition.path, 0),
            "truth": len(inside), "coverage": len(inside & covered) / len(inside) if inside else None,
            "reason": partition.decided_by.reason if partition.decided_by is not None else "",
        })  # fmt: skip
    top: list[dict[str, Any]] = []  # the first two levels, measured whole (their leaves may overlap)
    for partition in plan.partitions():
        if 1 <= partition.depth <= 2:
            inside = truth.truth_in(partition.labels)
            top.append({
                "partition": partition.path, "status": partition.status.value, "depth": partition.depth,
                "truth": len(inside), "coverage": len(inside & covered) / len(inside) if inside else None,
                "leaves": sum(1 for leaf in leaves if leaf["partition"].startswith(partition.path + " > "))
                or int(partition.is_leaf),
            })  # fmt: skip
    largest = max(leaves, key=lambda leaf: (leaf["entries"], leaf["partition"]), default=None)
    return {
        "partitions": len(plan.partitions()),
        "depth": plan.depth,
        "leaves": len(leaves),
        "live_leaves": len(plan.live_leaves()),
        "retired_leaves": len(plan.retired()),
        "superseded_events": len(plan.superseded()),
        "largest_leaf": {"partition": largest["partition"], "entries": largest["entries"]} if largest else None,
        "calls_on_inner_partitions": sum(
            len(state.calls_in(p.path)) for p in plan.partitions() if not p.is_leaf
        ),
        "top_partitions": top,
        "leaf_table": leaves,
    }


def listed_entry_ids(entries: GlobalList) -> set[EntryId]:
    """Every id a list holds, canonical or alias."""
    return {record.id for line in entries for record in (line.record, *line.aliases)}


# --- samples and the report ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSample:
    """One node at one moment."""

    name: str
    alive: bool
    entries: int  # lines of its list
    records: int  # records in its replicated set
    calls: int  # LLM calls started, all its processes
    tokens: int
    coverage: float
    precision: float
    alias_leakage: float
    producing: bool  # its producer is still running
    prompt_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SimSample:
    """The cluster at one virtual moment (a point of the time series, a frame of the live table)."""

    t_s: float
    coverage_union: float  # share of the truth held by some live node
    coverage_min: float  # the worst live node's coverage
    coverage_mean: float
    precision_min: float
    alias_leakage_max: float
    digests_equal: bool  # every live node holds the same set
    nodes: tuple[NodeSample, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "t_s": self.t_s, "coverage_union": self.coverage_union, "coverage_min": self.coverage_min,
            "coverage_mean": self.coverage_mean, "precision_min": self.precision_min,
            "alias_leakage_max": self.alias_leakage_max, "digests_equal": self.digests_equal,
            "entries": {n.name: n.entries for n in self.nodes if n.alive},
            "records": {n.name: n.records for n in self.nodes if n.alive},
            "calls": sum(n.calls for n in self.nodes),
            "tokens": sum(n.tokens for n in self.nodes), "prompt_tokens": sum(n.prompt_tokens for n in self.nodes),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimReport:
    """What a run produced; ``as_dict()`` is the JSON report."""

    config: dict[str, object]
    seeds: dict[str, object]
    sim_params: dict[str, object]
    popularity_alpha: float
    universe: dict[str, object]
    end_reason: str
    virtual_s: float
    real_s: float  # the only field that differs between two runs of one seed
    nodes: tuple[dict[str, Any], ...]
    cluster: dict[str, Any]
    partitions: tuple[dict[str, object], ...]
    plan: dict[str, Any] | None  # the partition plan of the first live node (None: partitioning off)
    events: tuple[dict[str, object], ...]
    series: tuple[SimSample, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "config": self.config, "seeds": self.seeds, "sim_params": self.sim_params,
            "popularity_alpha": self.popularity_alpha, "universe": self.universe, "end_reason": self.end_reason,
            "virtual_s": self.virtual_s, "real_s": self.real_s, "nodes": list(self.nodes), "cluster": self.cluster,
            "partitions": list(self.partitions), "plan": self.plan, "events": list(self.events),
            "series": [sample.as_dict() for sample in self.series],
        }  # fmt: skip

    def digests(self) -> dict[str, str]:
        """Each node's final digest (a dead node's: as of its crash)."""
        return {str(node["name"]): str(node["digest"]) for node in self.nodes}

# --- digests and convergence ----------------------------------------------------------------


def set_digest(keys: Sequence[str]) -> str:
    """``<count>:<BLAKE2b-128 of the sorted keys>``: equal exactly when the two sets of record keys are."""
    ordered = sorted(keys)
    digest = hashlib.blake2b(b"".join(bytes.fromhex(key) for key in ordered), digest_size=16).hexdigest()
    return f"{len(ordered)}:{digest}"


def committed_keys(data_dir: Path) -> list[str]:
    """The record keys committed in a node's database, read as an outside auditor would (WAL
    lets a second, read-only connection see every committed transaction, and only those)."""
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        return [key for (key,) in connection.execute("SELECT key FROM records")]
    finally:
        connection.close()


def cluster_summary(
    nodes: Sequence[dict[str, Any]],
    final: SimSample,
    *,
    union_ids: set[EntryId],
    union_covered: set[EntryId],
    producible: frozenset[EntryId],
    wire_total: TrafficCount,
    distinct_digests: int,
    converged_at: float | None,
    last_entry_at: float | None,
    last_record_at: float | None,
) -> dict[str, Any]:
    """The report's ``cluster`` section: the per-node rows summed, and when the digests agreed."""
    items = sum(int(row["items"]) for row in nodes)
    new_entries = sum(int(row["new_entries"]) for row in nodes)
    return {
        "live_nodes": sum(1 for row in nodes if row["alive"]),
        "coverage": final.coverage_union,
        "coverage_of_producible": len(union_covered & producible) / len(producible) if producible else 1.0,
        "coverage_min": final.coverage_min,
        "precision_min": final.precision_min,
        "alias_leakage_max": final.alias_leakage_max,
        # generated items that did not add an entry to the global list
        "duplicate_share": 1.0 - len(union_ids) / items if items else 0.0,
        # one entry accepted on two nodes before either heard of the other's
        "concurrent_duplicates": max(0, new_entries - len(union_ids)),
        "calls": sum(int(row["calls"]) for row in nodes),
        "calls_failed": sum(int(row["calls_failed"]) for row in nodes),
        "tokens": sum(int(row["tokens"]) for row in nodes),
        "prompt_tokens": sum(int(row["prompt_tokens"]) for row in nodes),
        "split_calls": sum(int(row["split_calls"]) for row in nodes),
        "verify_calls": sum(int(row["verify_calls"]) for row in nodes),
        "rejected_lines_max": max((int(row.get("rejected_lines", 0)) for row in nodes), default=0),
        # real items the list lost because their only lines were (wrongly) rejected, worst node
        "recall_lost_to_rejection": max((float(row.get("recall_lost_to_rejection", 0.0)) for row in nodes),
                                        default=0.0),
        "record_bytes_out": sum(int(row["record_bytes_out"]) for row in nodes),
        "wire_bytes": wire_total.bytes,
        "wire_messages": wire_total.messages,
        "distinct_digests": distinct_digests,
        "converged": final.digests_equal,
        "converged_at_s": rounded_s(converged_at),
        "last_new_entry_at_s": rounded_s(last_entry_at),
        "last_record_at_s": rounded_s(last_record_at),
        "convergence_after_last_entry_s": rounded_s(_after(converged_at, last_entry_at)),
        "convergence_after_last_record_s": rounded_s(_after(converged_at, last_record_at)),
    }


def rounded_s(seconds: float | None) -> float | None:
    """Virtual times to the microsecond: the report shows no float noise."""
    return None if seconds is None else round(seconds, 6)


def _after(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return max(0.0, end - start)
