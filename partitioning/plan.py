"""The partition plan: a pure function of the plan records in the replicated set.

The topic starts as one partition, the root (path ``""``). A ``split`` event divides a
partition into children (path = parent path + " > " + label); a ``retire`` event ends a
partition. Events are immutable records gossiped like entries, so two nodes may act on one
partition concurrently (their membership views differed for a moment). The rule that makes
every node compute the same plan from the same set — whatever order the records arrived in —
is *first event wins*: among the valid events on a partition, the one with the smallest
``(hlc, node, …)`` decides it, the others are kept as superseded. This is the last-writer-wins
register of CRDT literature turned around (Shapiro et al., "Conflict-free Replicated Data
Types", 2011): a partition's fate is written once, and the hybrid logical clock (Kulkarni et
al., 2014) orders the candidates consistently with causality.

Only partitions reachable from the root through winning splits are in the plan; an event on
any other path (the child of a superseded split) waits, harmless, until it becomes reachable
— which may never happen. Entries generated under such a path still count: ``home_of`` maps
any path to the deepest plan partition above it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from node.codec import MAX_LABEL_CHARS, MAX_PARTITION_CHARS, MAX_SPLIT_CHILDREN
from node.normalize import normal_form
from node.prompts import PARTITION_SEPARATOR
from node.records import PlanAction, PlanRecord

__all__ = ["ROOT", "PartitionStatus", "Partition", "PartitionPlan", "child_path", "labels_of", "split_is_valid"]

ROOT = ""
"""The whole topic's path."""


class PartitionStatus(StrEnum):
    LIVE = "live"  # a leaf that producers work on
    SPLIT = "split"  # divided into children
    RETIRED = "retired"  # a leaf judged done


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of the plan."""

    path: str
    status: PartitionStatus
    children: tuple[str, ...]  # child paths (a split partition only)
    decided_by: PlanRecord | None  # the winning event (None while live)

    @property
    def labels(self) -> tuple[str, ...]:
        return labels_of(self.path)

    @property
    def depth(self) -> int:
        return len(self.labels)

    @property
    def is_leaf(self) -> bool:
        return self.status is not PartitionStatus.SPLIT


def labels_of(path: str) -> tuple[str, ...]:
    """The labels of a path, outermost first; the root has none."""
    return tuple(path.split(PARTITION_SEPARATOR)) if path else ()


def child_path(parent: str, label: str) -> str:
    return f"{parent}{PARTITION_SEPARATOR}{label}" if parent else label


def split_is_valid(partition: str, children: Sequence[str]) -> bool:
    """Whether a split with these child labels can be in the plan.

    2..MAX_SPLIT_CHILDREN labels, each non-empty, bounded, without the path separator, with
    distinct normal forms, and child paths within the path bound. Checked the same way on
    every node, so an invalid split (from a buggy or hostile peer) is ignored everywhere.
    """
    if not 2 <= len(children) <= MAX_SPLIT_CHILDREN:
        return False
    forms = set()
    for label in children:
        form = normal_form(label)
        if (
            not form
            or form in forms
            or label != label.strip()
            or len(label) > MAX_LABEL_CHARS
            or PARTITION_SEPARATOR.strip() in label
            or len(child_path(partition, label)) > MAX_PARTITION_CHARS
        ):
            return False
        forms.add(form)
    return True


def _valid(event: PlanRecord) -> bool:
    if event.action is PlanAction.SPLIT:
        return split_is_valid(event.partition, event.children)
    return not event.children


class PartitionPlan:
    """The plan computed from a set of plan records; immutable once built."""

    def __init__(self, events: Iterable[PlanRecord]) -> None:
        by_partition: dict[str, list[PlanRecord]] = defaultdict(list)
        for event in set(events):  # a record given twice is one event
            if _valid(event):
                by_partition[event.partition].append(event)
        for candidates in by_partition.values():
            candidates.sort(key=lambda event: event.precedence)
        self._partitions: dict[str, Partition] = {}
        self._superseded: list[PlanRecord] = []
        pending = [ROOT]
        while pending:  # from the root down through winning splits
            path = pending.pop()
            candidates = by_partition.get(path, [])
            winner = candidates[0] if candidates else None
            self._superseded.extend(candidates[1:])
            if winner is None:
                self._partitions[path] = Partition(path, PartitionStatus.LIVE, (), None)
            elif winner.action is PlanAction.RETIRE:
                self._partitions[path] = Partition(path, PartitionStatus.RETIRED, (), winner)
            else:
                children = tuple(child_path(path, label) for label in winner.children)
                self._partitions[path] = Partition(path, PartitionStatus.SPLIT, children, winner)
                pending.extend(reversed(children))
        self._unreachable = sum(len(v) for k, v in by_partition.items() if k not in self._partitions)

    @classmethod
    def from_records(cls, events: Iterable[PlanRecord]) -> PartitionPlan:
        return cls(events)

    def __repr__(self) -> str:
        return (
            f"<PartitionPlan partitions={len(self._partitions)} live={len(self.live_leaves())} "
            f"retired={len(self.retired())} depth={self.depth}>"
        )

    def __contains__(self, path: object) -> bool:
        return path in self._partitions

    def get(self, path: str) -> Partition | None:
        return self._partitions.get(path)

    def partitions(self) -> list[Partition]:
        """Every partition of the plan, by path."""
        return [self._partitions[path] for path in sorted(self._partitions)]

    def leaves(self) -> list[str]:
        return sorted(path for path, node in self._partitions.items() if node.is_leaf)

    def live_leaves(self) -> list[str]:
        return sorted(path for path, node in self._partitions.items() if node.status is PartitionStatus.LIVE)

    def retired(self) -> list[str]:
        return sorted(path for path, node in self._partitions.items() if node.status is PartitionStatus.RETIRED)

    @property
    def exhausted(self) -> bool:
        """Every leaf is retired: the topic is done."""
        return not self.live_leaves()

    @property
    def depth(self) -> int:
        return max(node.depth for node in self._partitions.values())

    def superseded(self) -> list[PlanRecord]:
        """Events that lost to an earlier one on their partition."""
        return sorted(self._superseded, key=lambda event: (event.partition, event.precedence))

    @property
    def unreachable_events(self) -> int:
        """Valid events on paths outside the plan (children of superseded splits)."""
        return self._unreachable

    def home_of(self, path: str) -> str:
        """The deepest partition of the plan that is ``path`` or lies above it."""
        labels = labels_of(path)
        for depth in range(len(labels), 0, -1):
            candidate = PARTITION_SEPARATOR.join(labels[:depth])
            if candidate in self._partitions:
                return candidate
        return ROOT

    def ancestors(self, path: str) -> list[str]:
        """The partitions above ``path``, the root first (``path`` itself excluded)."""
        labels = labels_of(path)
        return [PARTITION_SEPARATOR.join(labels[:depth]) for depth in range(len(labels))]

    def siblings(self, path: str) -> list[str]:
        """The other children of ``path``'s parent (none for the root)."""
        if not path:
            return []
        parent = self._partitions.get(self.ancestors(path)[-1])
        return [child for child in parent.children if child != path] if parent else []
