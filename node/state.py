"""A node's in-memory view of the replicated set: the global list and what the calls observed.

Everything here is derived from the records alone (design.md: "everything shown is a pure
function of the set"), so a node rebuilds it at start by replaying its store, and records
from peers update it exactly as local ones do. It answers the producer's questions — which
known entries to put in a prompt, how often each entry has been generated — and feeds the
exhaustion estimate. ``apply`` must be given each record once (the store says which are new).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from node.global_list import GlobalList, ListEntry
from node.normalize import EntryId
from node.evidence import EntryStatus, Evidence, VerificationPolicy, status_of
from node.records import (
    BudgetRecord,
    CapacityRecord,
    EntryRecord,
    ItemDetail,
    MatchKind,
    ObservationDetail,
    ObservationRecord,
    ObservedItem,
    PlanRecord,
    Record,
    UsageRecord,
    VerdictRecord,
    detail_fits,
)
from node.spend import BudgetLimits, Spend, effective_limits, newer_budget

__all__ = ["MAX_OBSERVATIONS_KEPT", "CallStats", "NodeState"]

log = logging.getLogger(__name__)

MAX_OBSERVATIONS_KEPT = 32  # generated items remembered per entry for "why was this dropped"


@dataclass(frozen=True, slots=True)
class CallStats:
    """What one LLM call (an observation record) yielded."""

    node: str
    partition: str
    items: int
    new: int  # items that became new entries of the list
    exact: int
    fuzzy: int
    fresh: int = 0  # distinct entries this call brought into its partition (new ones included)


class NodeState:
    """Not thread-safe; lives on the event loop."""

    def __init__(self, entries: GlobalList | None = None, *, policy: VerificationPolicy | None = None) -> None:
        self.entries = entries if entries is not None else GlobalList()
        # how evidence becomes a status: every node must use the same (like the dedup parameters)
        self.policy = policy or VerificationPolicy()
        # entry -> (node, call, hlc) -> real. The hlc is part of the vote's identity: a node's call
        # numbers restart after a crash, and keeping only the first of two votes with one (node,
        # call) would make the status depend on which arrived first — nodes would disagree.
        self._verdicts: dict[EntryId, dict[tuple[str, int, int], bool]] = defaultdict(dict)
        self.verdict_count = 0
        self.version = 0  # grows with every record applied: a key for anything derived from the state
        self._rejected: tuple[tuple[int, int, int], frozenset[EntryId]] = ((0, 0, 0), frozenset())
        self._generated: Counter[EntryId] = Counter()  # times each entry was generated, all calls
        self._samples: dict[str, Counter[EntryId]] = defaultdict(Counter)  # partition -> counts
        self._by_partition: dict[str, list[EntryId]] = defaultdict(list)  # in arrival order
        # partition -> entries accepted or generated in it (ordered set: insertion order)
        self._seen_in: dict[str, dict[EntryId, None]] = defaultdict(dict)
        self._plan: list[PlanRecord] = []
        self._capacity: dict[str, CapacityRecord] = {}  # node -> its newest capacity record
        self._spend = Spend()  # every usage record: the network's LLM spend (``node.spend``)
        self._spend_by_node: dict[str, Spend] = {}
        self._last_usage_call: dict[str, int] = {}  # node -> its highest usage call number
        self._budgets: dict[str, BudgetRecord] = {}  # node -> its newest budget record
        self._limits = BudgetLimits()
        self._calls: list[CallStats] = []
        self._calls_by_partition: dict[str, list[CallStats]] = defaultdict(list)
        self._observations = 0
        # entry -> (observation, item index) of the first generated items that resolved to it;
        # bounded: the count of all of them is ``generated_count``.
        self._observed: dict[EntryId, list[tuple[ObservationRecord, int]]] = defaultdict(list)
        # (node, call, hlc) -> what the model wrote in that call: kept apart from the records
        # (which are stored here without it) so the retention policy can drop it
        self._details: dict[tuple[str, int, int], tuple[ItemDetail, ...]] = {}
        # (node, call, hlc) -> its observation (stripped): what a peer's detail must fit
        self._observation_by_call: dict[tuple[str, int, int], ObservationRecord] = {}
        self._entry_listeners: list[Callable[[EntryId], None]] = []

    def __repr__(self) -> str:
        return (
            f"<NodeState lines={len(self.entries)} entries={self.entries.entry_count} "
            f"calls={len(self._calls)} partitions={len(self._by_partition)}>"
        )

    def apply(self, record: Record) -> bool:
        """Fold one new record in; True if the list changed."""
        self.version += 1
        if isinstance(record, EntryRecord):
            known = self.entries.shown(record.id) is not None
            changed = self.entries.add(record)
            if changed and not known:
                self._by_partition[record.partition].append(record.id)
            if changed or known:  # a refused record (a forged id) places nothing
                self._seen_in[record.partition].setdefault(record.id)
            if changed:
                self._tell_entry_listeners(record.id)
            return changed
        if isinstance(record, PlanRecord):
            self._plan.append(record)
            return False
        if isinstance(record, VerdictRecord):
            votes = self._verdicts[record.entry]
            if (record.node, record.call, record.hlc) not in votes:
                votes[(record.node, record.call, record.hlc)] = record.real
                self.verdict_count += 1
            return self.entries.shown(record.entry) is not None  # a status may have changed
        if isinstance(record, UsageRecord):
            self._spend = self._spend.plus(record)
            self._spend_by_node[record.node] = self._spend_by_node.get(record.node, Spend()).plus(record)
            self._last_usage_call[record.node] = max(record.call, self._last_usage_call.get(record.node, 0))
            return False
        if isinstance(record, BudgetRecord):
            previous = self._budgets.get(record.node)
            if previous is None or newer_budget(record, previous):
                self._budgets[record.node] = record
                self._limits = effective_limits(self._budgets.values())
            return False
        if isinstance(record, CapacityRecord):
            current = self._capacity.get(record.node)
            if current is None or (record.hlc, record.concurrency) > (current.hlc, current.concurrency):
                self._capacity[record.node] = record
            return False
        self._apply_observation(record)
        return False

    def apply_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.apply(record)

    def _apply_observation(self, record: ObservationRecord) -> None:
        # A record arrives with its detail only from this node's producer or its own store,
        # which holds only detail that fitted: no need to check it again on this hot path.
        detail = record.detail
        record = record.without_detail()
        self._observation_by_call[record.call_id] = record
        if detail is not None:
            self._details[record.call_id] = detail
        samples = self._samples[record.partition]
        counts = Counter(item.match for item in record.items)
        seen = self._seen_in[record.partition]
        # New to the list counts whatever arrived first: the call's own entry records are
        # applied as its lines complete, before its observation, and a peer's may come either way.
        # (Two calls that made one entry new at once, before hearing of each other, both count it.)
        fresh = len({item.entry_id for item in record.items if item.match is MatchKind.NEW or item.entry_id not in seen})
        for index, item in enumerate(record.items):
            self._generated[item.entry_id] += 1
            samples[item.entry_id] += 1
            seen.setdefault(item.entry_id)
            kept = self._observed[item.entry_id]
            if len(kept) < MAX_OBSERVATIONS_KEPT:
                kept.append((record, index))
        call = CallStats(
            node=record.node,
            partition=record.partition,
            items=len(record.items),
            new=counts[MatchKind.NEW],
            exact=counts[MatchKind.EXACT],
            fuzzy=counts[MatchKind.FUZZY],
            fresh=fresh,
        )
        self._calls.append(call)
        self._calls_by_partition[record.partition].append(call)

    def wants_detail(self, detail: ObservationDetail) -> bool:
        """Whether to keep a peer's ``detail``: none is kept for its call yet, and it fits an
        observation this node holds (``node.records.detail_fits``).

        One for an unknown call could be anything — a forgery that would shut the genuine one
        out, or a far-future stamp no retention drops. The producer pushes a record and its
        detail together, records first, so a detail normally finds its record; one that
        arrives alone is lost on this node (best-effort).
        """
        if detail.call_id in self._details:
            return False
        record = self._observation_by_call.get(detail.call_id)
        return record is not None and detail_fits(record, detail.items)

    def keep_detail(self, detail: ObservationDetail) -> None:
        """Keep a peer's detail that ``wants_detail`` accepted (and the store committed)."""
        self._details[detail.call_id] = detail.items

    def forget_details(self, before_hlc: int) -> int:
        """Drop the detail of observations stamped before ``before_hlc`` (the retention policy);
        returns how many were dropped. The counts, and everything computed from them, stay."""
        old = [call_id for call_id in self._details if call_id[2] < before_hlc]
        for call_id in old:
            del self._details[call_id]
        return len(old)

    @property
    def detail_count(self) -> int:
        """Observations whose detail this node keeps."""
        return len(self._details)

    def add_entry_listener(self, listener: Callable[[EntryId], None]) -> Callable[[], None]:
        """Call ``listener(entry_id)`` whenever an entry record changes the list; returns the remover.

        The listener runs inside ``apply`` (on the event loop): it must be quick and must not
        block. An exception in it is logged, never raised into the producer or gossip.
        """
        self._entry_listeners.append(listener)

        def remove() -> None:
            if listener in self._entry_listeners:
                self._entry_listeners.remove(listener)

        return remove

    def _tell_entry_listeners(self, entry: EntryId) -> None:
        for listener in tuple(self._entry_listeners):
            try:
                listener(entry)
            except Exception:  # a broken page must not stop the node
                log.exception("entry listener %r failed", listener)

    # -- questions ------------------------------------------------------------------------

    def generated_count(self, entry: EntryId) -> int:
        return self._generated[entry]

    def known_for_prompt(self, partition: str, *, by_frequency: bool = True) -> list[str]:
        """Display texts of the partition's entries, most useful to show the model first.

        By frequency: the entries generated most often first (the model's favourites, which
        it would otherwise repeat), then the newest. design.md reports this beats recency by
        up to 40% fewer calls once the list outgrows the prompt. ``by_frequency=False`` gives
        newest first (for the benchmark's comparison).
        """
        ids = self._by_partition.get(partition, [])
        order = list(range(len(ids)))
        if by_frequency:
            order.sort(key=lambda position: (-self._generated[ids[position]], -position))
        else:
            order.reverse()
        texts = []
        for position in order:
            record = self.entries.shown(ids[position])
            if record is not None:
                texts.append(record.text)
        return texts

    def seen_in(self) -> Mapping[str, Mapping[EntryId, None]]:
        """Per partition, the entries accepted or generated in it, in arrival order (live view).

        An entry generated in a partition belongs in that partition's prompt context even if
        it was first accepted elsewhere (under the parent before a split, or by a neighbour).
        """
        return self._seen_in

    def display_text(self, entry: EntryId) -> str | None:
        """The shown text of an entry, or None if it is not in the list (an alias's id)."""
        record = self.entries.shown(entry)
        return record.text if record is not None else None

    def capacity(self, node: str) -> int | None:
        """The concurrency ``node`` last announced, or None if no record of it arrived yet."""
        record = self._capacity.get(node)
        return record.concurrency if record is not None else None

    def spend(self, node: str | None = None) -> Spend:
        """The LLM calls and tokens of the usage records held: the network's, or one node's."""
        return self._spend if node is None else self._spend_by_node.get(node, Spend())

    def last_usage_call(self, node: str) -> int:
        """The highest call number among ``node``'s usage records (0 if none): it numbers on from there."""
        return self._last_usage_call.get(node, 0)

    def budget_limits(self) -> BudgetLimits:
        """The network's budget: the strictest of the nodes' newest budget records (``node.spend``)."""
        return self._limits

    def budget_of(self, node: str) -> BudgetRecord | None:
        """The newest budget record of ``node``, or None if none arrived."""
        return self._budgets.get(node)

    def evidence(self, line: ListEntry) -> Evidence:
        """Generations and verdicts of a line: its canonical entry and its aliases together."""
        generations = real = not_real = 0
        for record in (line.record, *line.aliases):
            generations += self._generated[record.id]
            for verdict in self._verdicts.get(record.id, {}).values():
                real += verdict
                not_real += not verdict
        return Evidence(generations, real, not_real)

    def status(self, line: ListEntry) -> EntryStatus:
        """The line's status, a pure function of the records (``node.evidence``)."""
        return status_of(self.evidence(line), self.policy)

    def rejected_ids(self) -> frozenset[EntryId]:
        """Canonical ids of the rejected lines (only entries with verdicts can be rejected).

        Recomputed when a verdict, an observation or an entry arrived: O(entries with verdicts).
        """
        key = (self.verdict_count, len(self._calls), self.entries.entry_count)
        if key != self._rejected[0]:
            rejected = set()
            for entry in self._verdicts:
                if self.entries.shown(entry) is None:
                    continue
                line = self.entries.cluster_of(entry)
                if self.status(line) is EntryStatus.REJECTED:
                    rejected.add(line.id)
            self._rejected = (key, frozenset(rejected))
        return self._rejected[1]

    def plan_records(self) -> list[PlanRecord]:
        """Every partition plan event received, in arrival order."""
        return list(self._plan)

    @property
    def plan_count(self) -> int:
        """How many plan events are known: changes whenever the plan may have."""
        return len(self._plan)

    def sample_counts(self) -> Mapping[str, Mapping[EntryId, int]]:
        """Per partition, how often each entry was generated (live view: do not modify)."""
        return self._samples

    @property
    def distinct_sampled(self) -> int:
        """Distinct entries generated at least once, across partitions."""
        return len(self._generated)

    def sample_stream(self) -> Iterator[tuple[str, EntryId]]:
        """Every generated item as ``(partition, entry_id)``: the estimator's input."""
        for partition, counts in self._samples.items():
            for entry, count in counts.items():
                for _ in range(count):
                    yield partition, entry

    def observations_of(self, entry: EntryId) -> list[tuple[ObservationRecord, ObservedItem, ItemDetail | None]]:
        """The first generated items (up to ``MAX_OBSERVATIONS_KEPT``) that resolved to ``entry``.

        Each comes with its call's observation record, in arrival order: how the entry was
        found (``new``) and which later items were dropped as its duplicates (exact or fuzzy),
        and what the model wrote — None once the retention policy dropped it, or when the
        detail never reached this node (it is pushed best-effort, not reconciled).
        """
        found: list[tuple[ObservationRecord, ObservedItem, ItemDetail | None]] = []
        for record, index in self._observed.get(entry, ()):
            detail = self._details.get(record.call_id)  # kept only when it fits the record
            item_detail = detail[index] if detail is not None else None
            found.append((record, record.items[index], item_detail))
        return found

    def partition_sizes(self) -> dict[str, int]:
        """Entry ids per partition (the partition each entry was first accepted in)."""
        return {partition: len(ids) for partition, ids in self._by_partition.items()}

    def partitions(self) -> list[str]:
        return sorted(set(self._by_partition) | set(self._samples))

    def calls(self, node: str | None = None) -> list[CallStats]:
        """Stats of every observed call (of one node, or all), in arrival order."""
        return [call for call in self._calls if node is None or call.node == node]

    def calls_in(self, partition: str) -> Sequence[CallStats]:
        """Stats of the calls made for one partition (all nodes), in arrival order (live view)."""
        return self._calls_by_partition.get(partition, ())

    def calls_from(self, start: int) -> list[CallStats]:
        """Stats of the calls observed after the first ``start`` (all nodes), in arrival order."""
        return self._calls[start:]

    @property
    def observation_count(self) -> int:
        return len(self._calls)
