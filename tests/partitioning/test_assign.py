"""Tests for partitioning/assign.py: weighted rendezvous ownership, balance and churn."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partitioning.assign import (
    _uniform,
    _uniform_from_digest,
    assign,
    churn,
    owned_by,
    owner_of,
    rank_members,
    rendezvous_score,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = [f"Region {i % 17} > Country {i}" for i in range(2_000)]

# Pinned so that any change of hash, encoding or score formula is caught: every node of a
# cluster must compute the same owners, including nodes running an older release.
EQUAL_FOUR = {"n1": 1.0, "n2": 1.0, "n3": 1.0, "n4": 1.0}
WEIGHTED_FOUR = {"n1": 1.0, "n2": 3.0, "n3": 1.0, "n4": 0.5}
PINNED_OWNERS = [
    # partition, owner with EQUAL_FOUR, owner with WEIGHTED_FOUR
    ("", "n4", "n3"),
    ("Europe > France", "n1", "n1"),
    ("Europe > Greece", "n2", "n2"),
    ("Europe > Poland", "n4", "n2"),
    ("Asia", "n3", "n2"),
    ("Africa", "n4", "n4"),
    ("Oceania", "n4", "n2"),
]

member_names = st.text(min_size=1, max_size=12)
partition_paths = st.lists(st.text(max_size=20), min_size=1, max_size=30, unique=True)
member_weights = st.dictionaries(
    member_names, st.floats(min_value=0.25, max_value=16.0), min_size=1, max_size=8
)


def _members(count: int) -> dict[str, float]:
    return {f"node-{index}": 1.0 for index in range(count)}


def _shares(owners: Mapping[str, str]) -> dict[str, float]:
    counts = Counter(owners.values())
    return {member: count / len(owners) for member, count in counts.items()}


def _moves(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str]]:
    """(old owner, new owner) of each partition present in both whose owner changed."""
    common = sorted(before.keys() & after.keys())
    return [(before[p], after[p]) for p in common if before[p] != after[p]]


# --- determinism -------------------------------------------------------------------------


@pytest.mark.parametrize(("partition", "equal_owner", "weighted_owner"), PINNED_OWNERS)
def test_owner_is_pinned_for_a_fixed_table(
    partition: str, equal_owner: str, weighted_owner: str
) -> None:
    """A fixed table of partitions keeps the owners it had when the hash was chosen."""
    assert owner_of(partition, EQUAL_FOUR) == equal_owner
    assert owner_of(partition, WEIGHTED_FOUR) == weighted_owner


def test_score_is_pinned() -> None:
    """The score of a fixed pair is a fixed number (a change of hash or formula shows here)."""
    assert rendezvous_score("n1", "") == pytest.approx(1.2343587503957283, rel=1e-12)
    assert rendezvous_score("node-a", "Western Europe > France", 4) == pytest.approx(
        1.3138441594729302, rel=1e-12
    )


def test_owners_do_not_depend_on_mapping_order() -> None:
    """The same members listed in another order give the same assignment and ranking."""
    members = _members(7)
    reversed_members = dict(reversed(list(members.items())))
    assert assign(PARTITIONS[:300], members) == assign(PARTITIONS[:300], reversed_members)
    assert rank_members("Asia", members) == rank_members("Asia", reversed_members)


_CHILD_SCRIPT = """
import json, sys
from partitioning.assign import assign
partitions, weights = json.load(sys.stdin)
json.dump(assign(partitions, weights), sys.stdout)
"""


@pytest.mark.slow
def test_other_processes_with_other_hash_seeds_agree() -> None:
    """Processes with different PYTHONHASHSEED compute the same assignment as this one."""
    weights = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0, "delta": 1.5}
    partitions = PARTITIONS[:500]
    expected = assign(partitions, weights)
    for hash_seed in ("1", "4242"):
        result = subprocess.run(
            [sys.executable, "-c", _CHILD_SCRIPT],
            input=json.dumps([partitions, weights]),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=60,
        )
        assert json.loads(result.stdout) == expected


def test_member_and_partition_boundary_is_unambiguous() -> None:
    """Moving characters between member name and partition path changes the hash input."""
    assert _uniform("ab", "c") != _uniform("a", "bc")
    assert _uniform("a", "") != _uniform("", "a")


@pytest.mark.parametrize(
    "digest", [bytes(8), b"\xff" * 8, b"\x00" * 7 + b"\x01", b"\x80" + bytes(7)]
)
def test_uniform_stays_strictly_inside_the_unit_interval(digest: bytes) -> None:
    """Even the extreme digests map strictly inside (0, 1), so ln(u) is finite and non-zero."""
    uniform = _uniform_from_digest(digest)
    assert 0.0 < uniform < 1.0
    assert math.isfinite(-1.0 / math.log(uniform))


@given(member=member_names, partition=st.text(max_size=40))
def test_score_is_finite_and_positive(member: str, partition: str) -> None:
    """Every score is a finite positive number, whatever the names."""
    score = rendezvous_score(member, partition)
    assert math.isfinite(score)
    assert score > 0


# --- balance -----------------------------------------------------------------------------


def test_equal_members_own_equal_shares() -> None:
    """With 5 equal members and 2,000 partitions each owns 20% ± 3%."""
    shares = _shares(assign(PARTITIONS, _members(5)))
    assert set(shares) == set(_members(5))
    for member, share in shares.items():
        assert share == pytest.approx(0.20, abs=0.03), member


def test_shares_follow_weights() -> None:
    """With weights 1, 1, 2 the heavy member owns ~50% ± 4% and the others ~25% each."""
    shares = _shares(assign(PARTITIONS, {"light-a": 1, "light-b": 1, "heavy": 2}))
    assert shares["heavy"] == pytest.approx(0.50, abs=0.04)
    assert shares["light-a"] == pytest.approx(0.25, abs=0.04)
    assert shares["light-b"] == pytest.approx(0.25, abs=0.04)


# --- churn on leave and join -------------------------------------------------------------


@pytest.mark.parametrize("member_count", [3, 5, 10])
def test_leave_moves_exactly_the_leavers_partitions(member_count: int) -> None:
    """When one of N members leaves, only its partitions move; survivors keep theirs."""
    members = _members(member_count)
    before = assign(PARTITIONS, members)
    for leaver in members:
        survivors = {name: weight for name, weight in members.items() if name != leaver}
        after = assign(PARTITIONS, survivors)
        leaver_share = sum(1 for owner in before.values() if owner == leaver) / len(PARTITIONS)
        assert churn(before, after) == leaver_share
        moves = _moves(before, after)
        assert all(old_owner == leaver for old_owner, _ in moves)
        assert leaver not in after.values()
        assert churn(before, after) == pytest.approx(1 / member_count, abs=0.03)


@pytest.mark.parametrize("member_count", [3, 5, 10])
def test_join_moves_about_one_in_n_plus_one_and_only_to_the_joiner(member_count: int) -> None:
    """When a member joins N others, ≈ 1/(N+1) of partitions move, all of them to it."""
    members = _members(member_count)
    before = assign(PARTITIONS, members)
    after = assign(PARTITIONS, {**members, "joiner": 1.0})
    assert churn(before, after) == pytest.approx(1 / (member_count + 1), abs=0.03)
    assert {new_owner for _, new_owner in _moves(before, after)} == {"joiner"}


@settings(max_examples=60)
@given(weights=member_weights, partitions=partition_paths, data=st.data())
def test_removing_any_member_moves_only_its_partitions(
    weights: dict[str, float], partitions: list[str], data: st.DataObject
) -> None:
    """For any weights, removing a member moves only the partitions it owned."""
    leaver = data.draw(st.sampled_from(sorted(weights)))
    before = assign(partitions, weights)
    survivors = {name: weight for name, weight in weights.items() if name != leaver}
    after = assign(partitions, survivors)
    assert all(old_owner == leaver for old_owner, _ in _moves(before, after))


@settings(max_examples=60)
@given(
    weights=member_weights,
    partitions=partition_paths,
    joiner=member_names,
    joiner_weight=st.floats(min_value=0.25, max_value=16.0),
)
def test_adding_a_member_moves_partitions_only_to_it(
    weights: dict[str, float], partitions: list[str], joiner: str, joiner_weight: float
) -> None:
    """For any weights, a new member takes partitions and no other partition moves."""
    before = assign(partitions, {name: w for name, w in weights.items() if name != joiner})
    after = assign(partitions, {**weights, joiner: joiner_weight})
    assert all(new_owner == joiner for _, new_owner in _moves(before, after))


@settings(max_examples=60)
@given(weights=member_weights, partitions=partition_paths, data=st.data())
def test_raising_a_weight_moves_partitions_only_to_that_member(
    weights: dict[str, float], partitions: list[str], data: st.DataObject
) -> None:
    """A member whose capacity grows only gains partitions; no one else's change hands."""
    grower = data.draw(st.sampled_from(sorted(weights)))
    factor = data.draw(st.floats(min_value=1.0, max_value=8.0))
    before = assign(partitions, weights)
    after = assign(partitions, {**weights, grower: weights[grower] * factor})
    assert all(new_owner == grower for _, new_owner in _moves(before, after))


@settings(max_examples=60)
@given(weights=member_weights, partitions=partition_paths, exponent=st.integers(-4, 4))
def test_scaling_every_weight_changes_nothing(
    weights: dict[str, float], partitions: list[str], exponent: int
) -> None:
    """Only relative capacity matters: multiplying all weights by a power of two is a no-op."""
    scaled = {name: weight * 2.0**exponent for name, weight in weights.items()}
    assert assign(partitions, scaled) == assign(partitions, weights)


# --- ranking, ownership lists and ties ---------------------------------------------------


@settings(max_examples=60)
@given(weights=member_weights, partition=st.text(max_size=20))
def test_ranking_is_a_permutation_led_by_the_owner(
    weights: dict[str, float], partition: str
) -> None:
    """rank_members lists every member once, best score first, and starts with owner_of."""
    ranking = rank_members(partition, weights)
    assert sorted(ranking) == sorted(weights)
    assert ranking[0] == owner_of(partition, weights)
    scores = [rendezvous_score(member, partition, weights[member]) for member in ranking]
    assert scores == sorted(scores, reverse=True)


def test_ties_are_broken_by_name() -> None:
    """Members with exactly equal scores rank by name, not by mapping order."""
    partition = "Europe > France"
    names = ["zeta", "alpha", "mu", "beta"]
    # weight = -ln(u) makes every score exactly 1.0: a deliberate four-way tie.
    tied = {name: -math.log(_uniform(name, partition)) for name in names}
    assert {rendezvous_score(name, partition, tied[name]) for name in names} == {1.0}
    assert rank_members(partition, tied) == sorted(names)
    assert owner_of(partition, tied) == "alpha"


def test_owned_by_splits_partitions_between_members() -> None:
    """Each partition appears in exactly one member's sorted list, matching assign."""
    members = {"a": 1.0, "b": 2.0, "c": 0.5}
    owners = assign(PARTITIONS[:400], members)
    lists = {member: owned_by(member, PARTITIONS[:400], members) for member in members}
    for member, partitions in lists.items():
        assert partitions == sorted(partitions)
        assert all(owners[partition] == member for partition in partitions)
    assert sum(len(partitions) for partitions in lists.values()) == 400


def test_a_member_without_weight_is_not_a_candidate() -> None:
    """A name absent from the weights owns nothing, even if it would score highest."""
    members = {"a": 1.0, "b": 1.0}
    assert owned_by("outsider", PARTITIONS[:200], members) == []
    assert set(assign(PARTITIONS[:200], members).values()) <= set(members)


def test_no_members_means_no_owner() -> None:
    """With no members there is no owner, no ranking and no assignment."""
    assert owner_of("Asia", {}) is None
    assert rank_members("Asia", {}) == []
    assert assign(PARTITIONS[:10], {}) == {}
    assert owned_by("a", PARTITIONS[:10], {}) == []


def test_no_partitions_means_empty_assignment() -> None:
    """Assigning nothing gives an empty mapping."""
    assert assign([], {"a": 1.0}) == {}


# --- errors ------------------------------------------------------------------------------

BAD_WEIGHTS = [0.0, -1.0, -0.0, math.nan, math.inf, -math.inf]
CALLS_WITH_WEIGHTS: list[Callable[[dict[str, float]], object]] = [
    lambda weights: rank_members("Asia", weights),
    lambda weights: owner_of("Asia", weights),
    lambda weights: assign(["Asia"], weights),
    lambda weights: assign([], weights),
    lambda weights: owned_by("good", ["Asia"], weights),
]


@pytest.mark.parametrize("bad_weight", BAD_WEIGHTS)
@pytest.mark.parametrize("call", CALLS_WITH_WEIGHTS)
def test_bad_weight_is_refused(
    call: Callable[[dict[str, float]], object], bad_weight: float
) -> None:
    """A weight that is not finite and positive raises ValueError naming the member."""
    with pytest.raises(ValueError, match="weight of member 'bad' must be a finite number > 0"):
        call({"good": 1.0, "bad": bad_weight})


@pytest.mark.parametrize("bad_weight", BAD_WEIGHTS)
def test_bad_weight_is_refused_by_the_score(bad_weight: float) -> None:
    """rendezvous_score refuses a weight that is not finite and positive."""
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        rendezvous_score("bad", "Asia", bad_weight)


# --- churn -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {}, 0.0),
        ({"p": "a"}, {"q": "b"}, 0.0),  # nothing in common: nothing measured as moved
        ({"p": "a", "q": "b"}, {"p": "a", "q": "b"}, 0.0),
        ({"p": "a", "q": "b"}, {"p": "a", "q": "a"}, 0.5),
        ({"p": "a", "q": "b"}, {"p": "b", "q": "a"}, 1.0),
        # partitions only on one side (created or retired) are left out of the share
        ({"p": "a", "q": "b", "r": "c"}, {"p": "b", "q": "b", "s": "d"}, 0.5),
    ],
)
def test_churn_is_the_share_of_common_partitions_that_changed_owner(
    before: dict[str, str], after: dict[str, str], expected: float
) -> None:
    """churn counts owner changes among partitions present before and after."""
    assert churn(before, after) == expected
