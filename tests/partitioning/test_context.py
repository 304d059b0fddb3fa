"""Tests for partitioning.context: which known entries reach a leaf's prompt, routed through the plan."""

from __future__ import annotations

import itertools

import pytest

from node.normalize import EntryId, entry_id
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem, PlanAction, PlanRecord
from node.state import NodeState
from partitioning.context import PartitionContext, path_letters
from partitioning.labels import letter_set
from partitioning.plan import ROOT, PartitionPlan

_calls = itertools.count(1)
_clock = itertools.count(100)


def split(partition: str, *children: str, node: str = "n1", hlc: int = 1) -> PlanRecord:
    return PlanRecord(PlanAction.SPLIT, partition, children, node, hlc, "test")


def accept(state: NodeState, text: str, partition: str, *, origin: str = "n1") -> EntryId:
    """Apply the entry record of ``text`` accepted in ``partition``; its id."""
    record = EntryRecord(entry_id(text), text, partition, origin, next(_clock))
    state.apply(record)
    assert state.display_text(record.id) == text
    return record.id


def observe(state: NodeState, partition: str, *items: tuple[str, MatchKind], node: str = "n1") -> None:
    """Apply the observation of one call in ``partition`` that generated ``items``."""
    generated = tuple(ObservedItem(entry_id(text), match) for text, match in items)
    state.apply(ObservationRecord(node, next(_calls), partition, next(_clock), generated))


def context(state: NodeState, *events: PlanRecord) -> PartitionContext:
    for event in events:
        state.apply(event)
    return PartitionContext(state, PartitionPlan(state.plan_records()))


def texts(ctx: PartitionContext, leaf: str) -> set[str]:
    return set(ctx.known_texts(leaf))


SEMANTIC = split(ROOT, "Northern Europe", "Southern Europe")
ALPHABETICAL = split(ROOT, "A–M", "N–Z")


def test_entries_accepted_in_a_leaf_are_in_its_context_only() -> None:
    """An entry accepted in a leaf is in that leaf's context and not in its sibling's."""
    state = NodeState()
    bergen = accept(state, "Bergen", "Northern Europe")
    accept(state, "Rome", "Southern Europe")
    ctx = context(state, SEMANTIC)
    assert ctx.known_ids("Northern Europe") == [bergen]
    assert ctx.known_texts("Northern Europe") == ["Bergen"]
    assert ctx.known_texts("Southern Europe") == ["Rome"]
    assert ctx.known_ids(ROOT) == []  # a split partition is nobody's leaf


def test_root_entries_route_to_the_letter_range_of_their_initial() -> None:
    """Below an alphabetical split, entries found at the root go to the child holding their normal form's initial."""
    state = NodeState()
    names = ["Berlin", "Zürich", "Oslo", "Madrid", "Amsterdam", "Östersund", "The Hague", "42nd Street", "Αθήνα"]
    for text in names:
        accept(state, text, ROOT)
    ctx = context(state, ALPHABETICAL)
    # "The Hague" files under h (the article is not part of the normal form), "Östersund" under o;
    # a digit or non-Latin initial ("#") goes to the range that holds "a".
    assert texts(ctx, "A–M") == {"Berlin", "Madrid", "Amsterdam", "The Hague", "42nd Street", "Αθήνα"}
    assert texts(ctx, "N–Z") == {"Zürich", "Oslo", "Östersund"}


def test_routing_descends_nested_alphabetical_splits() -> None:
    """Root and intermediate entries settle in the deepest letter range that holds them."""
    state = NodeState()
    berlin = accept(state, "Berlin", ROOT)
    accept(state, "Madrid", ROOT)
    accept(state, "42nd Street", ROOT)
    accept(state, "Helsinki", "A–M")  # found after the first split, before the second
    accept(state, "Oslo", ROOT)
    ctx = context(state, ALPHABETICAL, split("A–M", "A–F", "G–M", hlc=2))
    assert texts(ctx, "A–M > A–F") == {"Berlin", "42nd Street"}
    assert texts(ctx, "A–M > G–M") == {"Madrid", "Helsinki"}
    assert texts(ctx, "N–Z") == {"Oslo"}
    assert ctx.settle(ROOT, berlin) == "A–M > A–F"
    assert ctx.settle("A–M", berlin) == "A–M > A–F"


def test_root_entries_wait_at_a_semantic_split_until_a_child_generates_them() -> None:
    """Below a semantic split, root entries stay out of the children until a call there generates them."""
    state = NodeState()
    accept(state, "Bergen", ROOT)
    accept(state, "Rome", ROOT)
    ctx = context(state, SEMANTIC)
    assert ctx.known_ids("Northern Europe") == [] and ctx.known_ids("Southern Europe") == []

    observe(state, "Northern Europe", ("Bergen", MatchKind.EXACT), ("Tromsø", MatchKind.NEW))
    accept(state, "Tromsø", "Northern Europe")
    ctx = PartitionContext(state, PartitionPlan(state.plan_records()))
    assert ctx.known_texts("Northern Europe", by_frequency=False) == ["Tromsø", "Bergen"]
    assert ctx.known_ids("Southern Europe") == []


def test_alphabetical_split_below_a_semantic_one_routes_only_the_semantic_childs_entries() -> None:
    """Entries of "Northern Europe" route down its letter ranges; the root's stay above the semantic split."""
    state = NodeState()
    accept(state, "Oslo", ROOT)
    accept(state, "Bergen", "Northern Europe")
    accept(state, "Tromsø", "Northern Europe")
    ctx = context(state, SEMANTIC, split("Northern Europe", "A–M", "N–Z", hlc=2))
    assert texts(ctx, "Northern Europe > A–M") == {"Bergen"}
    assert texts(ctx, "Northern Europe > N–Z") == {"Tromsø"}


def test_entries_under_a_superseded_splits_child_count_for_the_plan_partition_above() -> None:
    """Entries under a loser's child belong to home_of(path) and route down the winning split from there."""
    state = NodeState()
    # n1's alphabetical split of the root wins; n2 split concurrently, later, by region.
    winner = split(ROOT, "A–M", "N–Z", node="n1", hlc=10)
    loser = split(ROOT, "Northern Europe", "Southern Europe", node="n2", hlc=11)
    accept(state, "Bergen", "Northern Europe", origin="n2")
    accept(state, "Oslo", "Northern Europe", origin="n2")
    accept(state, "Athens", "Southern Europe", origin="n2")
    observe(state, "Southern Europe", ("Zagreb", MatchKind.NEW), node="n2")
    accept(state, "Zagreb", "Southern Europe", origin="n2")
    ctx = context(state, loser, winner)
    assert ctx.known_ids("Northern Europe") == []  # not a plan partition
    assert texts(ctx, "A–M") == {"Bergen", "Athens"}
    assert texts(ctx, "N–Z") == {"Oslo", "Zagreb"}


def test_entries_under_a_superseded_alphabetical_child_wait_above_a_semantic_winner() -> None:
    """When the semantic split wins, the loser's letter-range entries wait at the root like any root entry."""
    state = NodeState()
    accept(state, "Bergen", "A–M", origin="n2")
    ctx = context(state, split(ROOT, "A–M", "N–Z", node="n2", hlc=11), SEMANTIC)
    assert ctx.known_ids("Northern Europe") == [] and ctx.known_ids("Southern Europe") == []


def test_paths_below_a_plan_leaf_count_for_that_leaf() -> None:
    """Entries under an unknown deeper path ("Asia > Japan") are in the deepest plan leaf above it ("Asia")."""
    state = NodeState()
    accept(state, "Kyoto", "Asia > Japan")
    accept(state, "Berlin", "Europe > West")
    ctx = context(
        state,
        split(ROOT, "Europe", "Asia", hlc=1),
        split("Europe", "A–M", "N–Z", node="n1", hlc=2),
        split("Europe", "West", "East", node="n2", hlc=3),
    )
    assert texts(ctx, "Asia") == {"Kyoto"}
    assert texts(ctx, "Europe > A–M") == {"Berlin"}


def test_known_texts_order_by_generation_count_then_newest() -> None:
    """By frequency: most generated first, ties newest first; by_frequency=False: newest first."""
    state = NodeState()
    leaf = "Northern Europe"
    for text in ["Bergen", "Oslo", "Tromsø", "Turku"]:
        accept(state, text, leaf)
    observe(state, leaf, ("Oslo", MatchKind.NEW), ("Turku", MatchKind.NEW), ("Bergen", MatchKind.NEW))
    observe(state, leaf, ("Oslo", MatchKind.EXACT), ("Turku", MatchKind.EXACT), ("Tromsø", MatchKind.NEW))
    observe(state, leaf, ("Oslo", MatchKind.EXACT))
    assert [state.generated_count(entry_id(t)) for t in ["Bergen", "Oslo", "Tromsø", "Turku"]] == [1, 3, 1, 2]
    ctx = context(state, SEMANTIC)
    assert ctx.known_texts(leaf) == ["Oslo", "Turku", "Tromsø", "Bergen"]
    assert ctx.known_texts(leaf, by_frequency=False) == ["Turku", "Tromsø", "Oslo", "Bergen"]
    assert ctx.known_ids(leaf) == [entry_id(t) for t in ["Bergen", "Oslo", "Tromsø", "Turku"]]


def test_generated_items_without_an_entry_record_have_no_text_yet() -> None:
    """An observed id whose entry record has not arrived is in known_ids but not in known_texts."""
    state = NodeState()
    observe(state, "Northern Europe", ("Bergen", MatchKind.NEW))
    ctx = context(state, SEMANTIC)
    assert ctx.known_ids("Northern Europe") == [entry_id("Bergen")]
    assert ctx.known_texts("Northern Europe") == []


def test_an_entry_routes_once_its_record_arrives_after_its_observation() -> None:
    """A root entry observed before its entry record arrived still reaches its letter range once the text is known.

    Gossip may deliver a call's observation before the entry record it created; the planner
    keeps one context until the next plan event, so a route decided without the text must
    not stick.
    """
    state = NodeState()
    ctx = context(state, ALPHABETICAL)
    observe(state, ROOT, ("Berlin", MatchKind.NEW), node="n2")  # a peer with an older plan view
    assert ctx.known_texts("A–M") == []
    accept(state, "Berlin", ROOT, origin="n2")
    assert ctx.known_texts("A–M") == ["Berlin"]


def test_initials_cache_is_filled_and_reused() -> None:
    """A shared initials cache is filled by one context and read by the next."""
    state = NodeState()
    berlin = accept(state, "Berlin", ROOT)
    initials: dict[EntryId, str] = {}
    plan = PartitionPlan([ALPHABETICAL])
    PartitionContext(state, plan, initials).known_ids("A–M")
    assert initials == {berlin: "b"}
    initials[berlin] = "z"  # a planted value proves the next context reads the cache
    assert PartitionContext(state, plan, initials).known_ids("N–Z") == [berlin]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ((), None),
        (("Northern Europe",), None),
        (("A–M",), letter_set("A–M")),
        (("A–M", "A–F"), frozenset("abcdef#")),
        (("A–M", "G–M"), frozenset("ghijklm")),
        (("Northern Europe", "N–Z"), frozenset("nopqrstuvwxyz")),
        (("N–Z", "Nordic", "Starting with S"), frozenset("s")),
        (("A–M", "N–Z"), frozenset()),
    ],
)
def test_path_letters_intersects_nested_letter_labels(labels: tuple[str, ...], expected: frozenset[str] | None) -> None:
    """path_letters is the intersection of the path's letter-range labels; None when it has none."""
    assert path_letters(labels) == expected


def _with_mode(state: NodeState, mode: str, *events: PlanRecord) -> PartitionContext:
    for event in events:
        state.apply(event)
    return PartitionContext(state, PartitionPlan(state.plan_records()), parent_entries=mode)


def test_inherit_puts_unroutable_parent_entries_in_every_child_and_routable_ones_in_theirs() -> None:
    """parent_entries="inherit": below a semantic split every child sees the root's entries."""
    state = NodeState()
    accept(state, "Oslo", ROOT)
    accept(state, "Rome", ROOT)
    ctx = _with_mode(state, "inherit", SEMANTIC, split("Northern Europe", "A–M", "N–Z", hlc=2))
    assert texts(ctx, "Southern Europe") == {"Oslo", "Rome"}
    # below the alphabetical split the letter still decides: Oslo is an "O" name
    assert texts(ctx, "Northern Europe > N–Z") == {"Oslo", "Rome"}  # both stuck at the root: inherited
    accept(state, "Bergen", "Northern Europe")
    assert "Bergen" in texts(ctx, "Northern Europe > A–M") and "Bergen" not in texts(ctx, "Northern Europe > N–Z")


def test_none_leaves_children_empty_until_their_own_calls_find_entries() -> None:
    """parent_entries="none": not even an alphabetical split passes the parent's entries down."""
    state = NodeState()
    accept(state, "Berlin", ROOT)
    ctx = _with_mode(state, "none", ALPHABETICAL)
    assert texts(ctx, "A–M") == set()
    observe(state, "A–M", ("Berlin", MatchKind.EXACT))
    assert texts(ctx, "A–M") == {"Berlin"}


def test_inherited_entries_can_be_left_out_to_size_a_leaf_by_its_own_entries() -> None:
    """With "inherit", known_texts(inherited=False) is what belongs to the leaf itself (what decides its split)."""
    state = NodeState()
    accept(state, "Rome", ROOT)
    ctx = _with_mode(state, "inherit", SEMANTIC)
    accept(state, "Oslo", "Northern Europe")
    assert texts(ctx, "Northern Europe") == {"Rome", "Oslo"}
    assert set(ctx.known_texts("Northern Europe", inherited=False)) == {"Oslo"}
