"""The JSON shape of the view's values, shared by the API and the live events."""

from __future__ import annotations

from webui.view import (
    ConvergenceView,
    DiscoveryPoint,
    EntryObservations,
    EntryView,
    MemberView,
    ObservationView,
    PartitionView,
)

__all__ = [
    "convergence_json",
    "discovery_json",
    "entry_json",
    "entry_observations_json",
    "member_json",
    "observation_json",
    "partition_json",
]


def entry_json(entry: EntryView) -> dict[str, object]:
    return {
        "id": entry.id,
        "text": entry.text,
        "partition": entry.partition,
        "origin": entry.origin,
        "hlc": entry.hlc,
        "aliases": list(entry.aliases),
        "status": entry.status,
    }


def member_json(member: MemberView) -> dict[str, object]:
    return {
        "name": member.name,
        "address": member.address,
        "state": member.state,
        "incarnation": member.incarnation,
        "last_heard": member.last_heard,
        "rtt_s": member.rtt_s,
        "reason": member.reason,
        "reason_at": member.reason_at,
    }


def observation_json(observation: ObservationView) -> dict[str, object]:
    return {
        "text": observation.text,
        "entry_id": observation.entry_id,
        "match": observation.match,
        "score": observation.score,
        "node": observation.node,
        "call": observation.call,
        "partition": observation.partition,
    }


def entry_observations_json(found: EntryObservations) -> dict[str, object]:
    return {
        "entry": entry_json(found.entry),
        "observations": [observation_json(o) for o in found.observations],
        "generated": found.generated,
        "verdicts": {"real": found.verdicts_real, "not_real": found.verdicts_not_real},
    }


def partition_json(partition: PartitionView) -> dict[str, object]:
    return {
        "path": partition.path,
        "entries": partition.entries,
        "calls": partition.calls,
        "items": partition.items,
        "new": partition.new,
        "yield": partition.new / partition.calls if partition.calls else None,
        "owner": partition.owner,
        "state": partition.state,
    }


def convergence_json(convergence: ConvergenceView) -> dict[str, object]:
    found: dict[str, object] = {"nodes": list(convergence.nodes),
                                "similarity": [list(row) for row in convergence.similarity]}  # fmt: skip
    if convergence.difference:
        found["difference"] = [list(row) for row in convergence.difference]
    if convergence.counts:
        found["counts"] = list(convergence.counts)
    return found


def discovery_json(point: DiscoveryPoint) -> list[int]:
    return [point.calls, point.items, point.new]
