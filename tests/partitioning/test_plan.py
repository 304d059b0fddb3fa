"""Tests for partitioning.plan: the partition plan as a pure function of the set of plan records."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.codec import MAX_LABEL_CHARS, MAX_PARTITION_CHARS, MAX_SPLIT_CHILDREN
from node.records import PlanAction, PlanRecord
from node.state import NodeState
from partitioning.plan import ROOT, PartitionPlan, PartitionStatus, child_path, labels_of, split_is_valid


def split(partition: str, *children: str, node: str = "n1", hlc: int = 1, reason: str = "test") -> PlanRecord:
    return PlanRecord(PlanAction.SPLIT, partition, children, node, hlc, reason)


def retire(partition: str, *, node: str = "n1", hlc: int = 1, reason: str = "test") -> PlanRecord:
    return PlanRecord(PlanAction.RETIRE, partition, (), node, hlc, reason)


def paths(plan: PartitionPlan) -> list[str]:
    return [partition.path for partition in plan.partitions()]


def snapshot(plan: PartitionPlan) -> tuple[object, ...]:
    """Everything the plan shows, for comparing two plans."""
    return (plan.partitions(), plan.superseded(), plan.unreachable_events, plan.live_leaves(), plan.retired())


# --- one plan from one set, whatever the arrival order -------------------------------------

_LABELS = ("North", "South", "East", "West")
_NODES = ("n1", "n2", "n3")


@st.composite
def plan_events(draw: st.DrawFn) -> PlanRecord:
    # Depth 0..2 equally likely, over the few labels that splits use: many events land on
    # reachable paths, and several on one path compete.
    partition = ROOT
    for label in draw(st.lists(st.sampled_from(_LABELS), max_size=2)):
        partition = child_path(partition, label)
    node = draw(st.sampled_from(_NODES))
    hlc = draw(st.integers(0, 6))  # a narrow range: ties between nodes are common
    if draw(st.integers(0, 4)) == 0:
        return retire(partition, node=node, hlc=hlc, reason=f"{node}@{hlc}")
    # mostly valid splits (2..4 distinct labels), sometimes an invalid one-child split
    children = draw(st.lists(st.sampled_from(_LABELS), min_size=1, max_size=3, unique=True))
    return split(partition, *children, node=node, hlc=hlc, reason=f"{node}@{hlc}")


@settings(max_examples=150, deadline=None)
@given(events=st.lists(plan_events(), max_size=24, unique=True), seed=st.integers(0, 2**32 - 1))
def test_every_arrival_order_of_one_set_gives_one_plan(events: list[PlanRecord], seed: int) -> None:
    """Two nodes holding the same set of plan records compute the identical plan, superseded events included."""
    expected = snapshot(PartitionPlan(events))
    arrival = random.Random(seed)
    for _ in range(4):
        shuffled = list(events)
        arrival.shuffle(shuffled)
        assert snapshot(PartitionPlan(shuffled)) == expected
    assert snapshot(PartitionPlan(reversed(events))) == expected


@settings(max_examples=100, deadline=None)
@given(events=st.lists(plan_events(), max_size=24, unique=True))
def test_each_plan_partition_is_decided_by_its_first_valid_event(events: list[PlanRecord]) -> None:
    """A partition's winner is the smallest (hlc, node, …) valid event on it; every other one is superseded."""
    plan = PartitionPlan(events)
    valid = [e for e in events if e.action is PlanAction.RETIRE or split_is_valid(e.partition, e.children)]
    for partition in plan.partitions():
        candidates = sorted((e for e in valid if e.partition == partition.path), key=lambda e: e.precedence)
        assert partition.decided_by == (candidates[0] if candidates else None)
        expected_status = (
            PartitionStatus.LIVE if not candidates
            else PartitionStatus.RETIRED if candidates[0].action is PlanAction.RETIRE
            else PartitionStatus.SPLIT
        )  # fmt: skip
        assert partition.status is expected_status
        if candidates and candidates[0].action is PlanAction.SPLIT:
            assert partition.children == tuple(child_path(partition.path, label) for label in candidates[0].children)
            assert all(child in plan for child in partition.children)
    in_plan = {p.path for p in plan.partitions()}
    losers = [e for e in valid if e.partition in in_plan and e not in {p.decided_by for p in plan.partitions()}]
    assert sorted(plan.superseded(), key=lambda e: (e.partition, e.precedence)) == plan.superseded()
    assert set(plan.superseded()) == set(losers)
    assert plan.unreachable_events == sum(1 for e in valid if e.partition not in in_plan)


def test_nodes_that_received_records_in_different_orders_compute_one_plan() -> None:
    """Two NodeStates fed one set in opposite orders give identical plans from their plan_records()."""
    events = [
        split(ROOT, "North", "South", node="n1", hlc=10),
        split(ROOT, "A–M", "N–Z", node="n2", hlc=10),  # concurrent, loses the node-name tie
        split("North", "Nordic", "Baltic", node="n3", hlc=12),
        retire("South", node="n2", hlc=13),
        split("A–M", "A–F", "G–M", node="n2", hlc=11),  # under the loser's child
    ]
    first, second = NodeState(), NodeState()
    first.apply_all(events)
    second.apply_all(reversed(events))
    assert first.plan_count == second.plan_count == len(events)
    assert snapshot(PartitionPlan(first.plan_records())) == snapshot(PartitionPlan(second.plan_records()))


# --- concurrent events on one partition -----------------------------------------------------


def test_concurrent_splits_keep_the_earliest_and_supersede_the_other() -> None:
    """Of two root splits the smaller hlc wins; the loser is superseded, events under its children unreachable."""
    winner = split(ROOT, "Northern Europe", "Southern Europe", node="n2", hlc=10)
    loser = split(ROOT, "A–M", "N–Z", node="n1", hlc=11)
    under_loser = [split("A–M", "A–F", "G–M", node="n1", hlc=12), retire("N–Z", node="n1", hlc=13)]
    for order in ([winner, loser, *under_loser], [*under_loser, loser, winner]):
        plan = PartitionPlan(order)
        assert paths(plan) == [ROOT, "Northern Europe", "Southern Europe"]
        root = plan.get(ROOT)
        assert root is not None and root.decided_by == winner
        assert plan.superseded() == [loser]
        assert plan.unreachable_events == 2
        assert "A–M" not in plan and "A–M > A–F" not in plan
        assert plan.live_leaves() == ["Northern Europe", "Southern Europe"]


def test_same_hlc_is_decided_by_node_name() -> None:
    """Two splits with one hlc: the smaller node name wins, in either arrival order."""
    by_n1 = split(ROOT, "North", "South", node="n1", hlc=7)
    by_n2 = split(ROOT, "East", "West", node="n2", hlc=7)
    for order in ([by_n1, by_n2], [by_n2, by_n1]):
        plan = PartitionPlan(order)
        assert plan.live_leaves() == ["North", "South"]
        assert plan.superseded() == [by_n2]


@pytest.mark.parametrize(
    ("retire_hlc", "split_hlc", "expected_status"),
    [(5, 6, PartitionStatus.RETIRED), (6, 5, PartitionStatus.SPLIT)],
    ids=["retire-first", "split-first"],
)
def test_concurrent_retire_and_split_first_event_wins(
    retire_hlc: int, split_hlc: int, expected_status: PartitionStatus
) -> None:
    """A retire and a split of one partition: whichever has the smaller hlc decides it."""
    retirement = retire(ROOT, node="n2", hlc=retire_hlc)
    division = split(ROOT, "North", "South", node="n1", hlc=split_hlc)
    for order in ([retirement, division], [division, retirement]):
        plan = PartitionPlan(order)
        root = plan.get(ROOT)
        assert root is not None and root.status is expected_status
        assert plan.superseded() == [division if expected_status is PartitionStatus.RETIRED else retirement]
        assert plan.exhausted is (expected_status is PartitionStatus.RETIRED)


def test_events_identical_but_for_the_reason_resolve_the_same_in_any_order() -> None:
    """Two events with one (hlc, node, action, children) but different reasons: one winner whatever the order.

    A node never makes two events at one hlc, but a buggy or hostile peer can; the set then
    holds two records and every node must still pick the same one.
    """
    first = split(ROOT, "North", "South", node="n1", hlc=3, reason="known entries pass the prompt budget")
    second = split(ROOT, "North", "South", node="n1", hlc=3, reason="low yield")
    assert PartitionPlan([first, second]).get(ROOT) == PartitionPlan([second, first]).get(ROOT)
    assert PartitionPlan([first, second]).superseded() == PartitionPlan([second, first]).superseded()


# --- invalid splits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "children", "valid"),
    [
        pytest.param(ROOT, ("North", "South"), True, id="two-labels"),
        pytest.param("Europe", ("North", "South", "East"), True, id="below-root"),
        pytest.param(ROOT, ("North",), False, id="one-child"),
        pytest.param(ROOT, (), False, id="no-children"),
        pytest.param(ROOT, ("The Alps", "Alps"), False, id="duplicate-normal-form"),
        pytest.param(ROOT, ("north", "NORTH"), False, id="duplicate-by-case"),
        pytest.param(ROOT, ("A > B", "C"), False, id="separator"),
        pytest.param(ROOT, ("A>B", "C"), False, id="bare-gt"),
        pytest.param(ROOT, ("", "South"), False, id="empty"),
        pytest.param(ROOT, ("   ", "South"), False, id="whitespace"),
        pytest.param(ROOT, ("!!!", "South"), False, id="no-letters-or-digits"),
        pytest.param(ROOT, (" North", "South"), False, id="leading-space"),
        pytest.param(ROOT, ("North ", "South"), False, id="trailing-space"),
        pytest.param(ROOT, ("x" * MAX_LABEL_CHARS, "South"), True, id="label-at-limit"),
        pytest.param(ROOT, ("x" * (MAX_LABEL_CHARS + 1), "South"), False, id="label-over-limit"),
        pytest.param("p" * 390, ("ab", "cd"), True, id="child-path-within-limit"),
        pytest.param("p" * 390, ("abcdefgh", "cd"), False, id="child-path-over-limit"),
        pytest.param(ROOT, tuple(f"Part {n}" for n in range(MAX_SPLIT_CHILDREN)), True, id="max-children"),
        pytest.param(ROOT, tuple(f"Part {n}" for n in range(MAX_SPLIT_CHILDREN + 1)), False, id="too-many"),
    ],
)
def test_split_is_valid(partition: str, children: tuple[str, ...], valid: bool) -> None:
    """Labels: 2..32, non-empty, trimmed, bounded, no separator, distinct normal forms, child paths bounded."""
    assert split_is_valid(partition, children) is valid


def test_child_path_cases_straddle_the_path_limit() -> None:
    """The child-path cases above sit on either side of MAX_PARTITION_CHARS."""
    assert len(child_path("p" * 390, "ab")) <= MAX_PARTITION_CHARS < len(child_path("p" * 390, "abcdefgh"))


@pytest.mark.parametrize(
    "invalid",
    [
        split(ROOT, "North", hlc=1),
        split(ROOT, "The Alps", "Alps", hlc=1),
        split(ROOT, "A > B", "C", hlc=1),
        split(ROOT, " ", "C", hlc=1),
        split(ROOT, "x" * (MAX_LABEL_CHARS + 1), "C", hlc=1),
        PlanRecord(PlanAction.RETIRE, ROOT, ("North", "South"), "n1", 1, "retire with children"),
    ],
    ids=["one-child", "duplicate", "separator", "blank", "too-long", "retire-with-children"],
)
def test_invalid_events_are_ignored_even_when_earliest(invalid: PlanRecord) -> None:
    """An invalid event neither decides its partition nor counts as superseded or unreachable."""
    alone = PartitionPlan([invalid])
    assert paths(alone) == [ROOT] and alone.live_leaves() == [ROOT]
    assert alone.superseded() == [] and alone.unreachable_events == 0
    later = split(ROOT, "East", "West", node="n9", hlc=99)
    plan = PartitionPlan([invalid, later])
    assert plan.live_leaves() == ["East", "West"]
    assert plan.superseded() == [] and plan.unreachable_events == 0


# --- queries -----------------------------------------------------------------------------------

EUROPE = [
    split(ROOT, "North", "South", "East", node="n1", hlc=1),
    split("North", "Nordic", "Baltic", node="n2", hlc=2),
    split("North > Nordic", "A–M", "N–Z", node="n3", hlc=3),
    retire("South", node="n1", hlc=4),
    retire("North > Baltic", node="n2", hlc=5),
]


def test_leaves_retired_and_depth_of_a_three_level_plan() -> None:
    """live_leaves, retired, leaves, depth and exhausted read the tree."""
    plan = PartitionPlan(EUROPE)
    assert plan.live_leaves() == ["East", "North > Nordic > A–M", "North > Nordic > N–Z"]
    assert plan.retired() == ["North > Baltic", "South"]
    assert plan.leaves() == sorted(plan.live_leaves() + plan.retired())
    assert plan.depth == 3
    assert not plan.exhausted
    nordic = plan.get("North > Nordic")
    assert nordic is not None and nordic.status is PartitionStatus.SPLIT and not nordic.is_leaf
    assert nordic.children == ("North > Nordic > A–M", "North > Nordic > N–Z")
    assert nordic.labels == ("North", "Nordic") and nordic.depth == 2
    assert repr(plan) == "<PartitionPlan partitions=8 live=3 retired=2 depth=3>"


def test_retiring_every_leaf_exhausts_the_plan() -> None:
    """Once the last live leaf is retired the topic is exhausted."""
    rest = [retire(leaf, node="n1", hlc=10 + n) for n, leaf in enumerate(PartitionPlan(EUROPE).live_leaves())]
    plan = PartitionPlan(EUROPE + rest)
    assert plan.live_leaves() == [] and plan.exhausted


def test_root_only_plan_is_live() -> None:
    """With no plan records the whole topic is one live leaf of depth 0."""
    plan = PartitionPlan([])
    root = plan.get(ROOT)
    assert root is not None and root.status is PartitionStatus.LIVE and root.decided_by is None and root.is_leaf
    assert plan.live_leaves() == [ROOT] and plan.leaves() == [ROOT] and plan.retired() == []
    assert plan.depth == 0 and not plan.exhausted
    assert PartitionPlan.from_records([]).partitions() == plan.partitions()


def test_retired_root_is_exhausted() -> None:
    """Retiring the root ends the topic."""
    plan = PartitionPlan([retire(ROOT)])
    assert plan.exhausted and plan.retired() == [ROOT] and plan.live_leaves() == []


@pytest.mark.parametrize(
    ("path", "home"),
    [
        (ROOT, ROOT),
        ("East", "East"),
        ("North > Nordic > A–M", "North > Nordic > A–M"),
        ("North > Nordic", "North > Nordic"),
        ("North > Nordic > A–F", "North > Nordic"),  # a loser's child: deepest plan partition above
        ("North > Baltic > Estonia", "North > Baltic"),  # below a retired leaf
        ("North > Somewhere > Else", "North"),
        ("Asia", ROOT),
        ("Asia > Japan", ROOT),
    ],
)
def test_home_of_is_the_deepest_plan_partition_above(path: str, home: str) -> None:
    """home_of maps any path to itself if in the plan, else to the deepest plan partition above it."""
    assert PartitionPlan(EUROPE).home_of(path) == home


def test_ancestors_and_siblings() -> None:
    """ancestors lists the paths above (root first); siblings are the parent's other children."""
    plan = PartitionPlan(EUROPE)
    assert plan.ancestors(ROOT) == []
    assert plan.ancestors("East") == [ROOT]
    assert plan.ancestors("North > Nordic > A–M") == [ROOT, "North", "North > Nordic"]
    assert plan.siblings(ROOT) == []
    assert plan.siblings("South") == ["North", "East"]
    assert plan.siblings("North > Nordic > A–M") == ["North > Nordic > N–Z"]
    assert plan.siblings("Asia > Japan") == []  # its parent is not in the plan


def test_labels_of_and_child_path_are_inverse() -> None:
    """child_path appends a label with the separator; labels_of splits it back (root has none)."""
    assert labels_of(ROOT) == ()
    assert child_path(ROOT, "North") == "North"
    assert labels_of(child_path(child_path("North", "Nordic"), "A–M")) == ("North", "Nordic", "A–M")
