"""Tests for node.state: what the partitioning reads from the replicated records."""

from __future__ import annotations

from node.normalize import entry_id
from node.records import CapacityRecord, EntryRecord, MatchKind, ObservationRecord, ObservedItem, VerdictRecord
from node.state import NodeState


def _observe(state: NodeState, partition: str, call: int, *texts: str) -> None:
    items = tuple(ObservedItem(entry_id(text), MatchKind.EXACT) for text in texts)
    state.apply(ObservationRecord("n1", call, partition, call, items))


def test_the_newest_capacity_record_of_a_node_counts_whatever_the_arrival_order() -> None:
    """Capacity is a last-writer-wins value per node, ordered by hlc."""
    old, new = CapacityRecord("n1", 2, 10), CapacityRecord("n1", 8, 20)
    for order in ((old, new), (new, old)):
        state = NodeState()
        assert state.capacity("n1") is None
        state.apply_all(order)
        assert state.capacity("n1") == 8


def test_a_call_is_fresh_for_entries_new_to_its_partition_counted_once() -> None:
    """``fresh`` counts distinct entries a call brought into its partition, repeats within it once."""
    state = NodeState()
    state.apply(EntryRecord(entry_id("Oslo"), "Oslo", "", "n1", 1))
    _observe(state, "Norway", 1, "Oslo", "Oslo", "Bergen")
    _observe(state, "Norway", 2, "Oslo", "Bergen", "Tromsø")
    first, second = state.calls_in("Norway")
    assert (first.fresh, second.fresh) == (2, 1)
    assert list(state.seen_in()["Norway"]) == [entry_id("Oslo"), entry_id("Bergen"), entry_id("Tromsø")]


def test_a_calls_own_new_entries_are_fresh_whether_they_arrive_before_or_after_its_observation() -> None:
    """The producer commits each new entry as its line completes, before the call's observation:
    those entries are already seen in the partition when the observation lands, and still fresh.
    A peer may receive the two in either order; the call's yield must not depend on it."""
    bergen, tromso = (EntryRecord(entry_id(text), text, "Norway", "n1", 5) for text in ("Bergen", "Tromsø"))
    earlier = EntryRecord(entry_id("Oslo"), "Oslo", "Norway", "n2", 1)
    items = (
        ObservedItem(bergen.id, MatchKind.NEW),
        ObservedItem(earlier.id, MatchKind.EXACT),
        ObservedItem(tromso.id, MatchKind.NEW),
    )
    observation = ObservationRecord("n1", 1, "Norway", 6, items)
    fresh = set()
    for order in ((earlier, bergen, tromso, observation), (earlier, observation, bergen, tromso)):
        state = NodeState()
        _observe(state, "Norway", 9, "Oslo")  # another call had already found Oslo here
        state.apply_all(order)
        fresh.add(state.calls_in("Norway")[-1].fresh)
    assert fresh == {2}


def test_a_refused_entry_record_places_nothing_in_its_partition() -> None:
    """An entry whose id does not match its text is not listed, and not seen in any partition either."""
    state = NodeState()
    state.apply(EntryRecord(entry_id("Oslo"), "Bergen", "Norway", "n1", 1))
    assert "Norway" not in state.seen_in() or not state.seen_in()["Norway"]


def test_two_votes_with_one_call_number_from_two_process_lives_both_count_whatever_the_order() -> None:
    """A restarted verifier numbers its calls from 1 again; the status must not depend on arrival order."""
    oslo = EntryRecord(entry_id("Oslo"), "Oslo", "", "n1", 1)
    before_crash = VerdictRecord(entry=oslo.id, real=True, node="n1", call=1, partition="", hlc=10)
    after_restart = VerdictRecord(entry=oslo.id, real=False, node="n1", call=1, partition="", hlc=99)
    seen = set()
    for order in ((before_crash, after_restart), (after_restart, before_crash)):
        state = NodeState()
        state.apply_all((oslo, *order))
        line = state.entries.cluster_of(oslo.id)
        evidence = state.evidence(line)
        seen.add((evidence.real, evidence.not_real))
    assert seen == {(1, 1)}


def test_an_answers_new_share_counts_only_items_that_became_new_entries() -> None:
    """The verifier's suspicion reads it: an answer of mostly repeats came from a part run dry."""
    kinds = (MatchKind.NEW, MatchKind.EXACT, MatchKind.FUZZY, MatchKind.EXACT)
    items = tuple(ObservedItem(entry_id(f"item {n}"), kind) for n, kind in enumerate(kinds))
    assert ObservationRecord("n1", 1, "", 1, items).new_share == 0.25
    assert ObservationRecord("n1", 2, "", 2, ()).new_share == 0.0
