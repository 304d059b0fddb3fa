"""Tests for partitioning.policy (split / keep / retire, expected yield) and partitioning.config."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from node.errors import ConfigError
from partitioning.config import PartitionConfig
from partitioning.policy import Decision, LeafStats, Verdict, expected_new_per_call, judge, share_calls, spread_calls

# The rules at round numbers, not the tuned defaults: a window of 3 calls, one yield share (0.4)
# for splitting and retiring; split_known_tokens=1500, 40 entries / 10 unseen, depth 8 are defaults
RULES = PartitionConfig(window_calls=3, low_yield_share=0.4, split_yield_share=0.4)
CONFIG = RULES
ITEMS = 20  # items asked per call: a window of 3 calls asks 60, so 24 fresh is exactly the 0.4 share


def leaf(**changes: object) -> LeafStats:
    """A healthy mid-size leaf: a full window, yield well above the threshold, far below the token share."""
    base = LeafStats(
        path="Europe", depth=1, calls=10, recent_calls=3, recent_new=40, known=30, known_tokens=300, remaining=0.0
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stats", "verdict"),
    [
        # the prompt share: a leaf whose known entries pass it splits at once, even untried
        pytest.param(leaf(known_tokens=1501, recent_calls=0, recent_new=0), Verdict.SPLIT, id="tokens-over-share"),
        pytest.param(leaf(known_tokens=1500), Verdict.KEEP, id="tokens-at-share"),
        pytest.param(leaf(known_tokens=5000, depth=8, recent_calls=0), Verdict.KEEP, id="tokens-over-at-max-depth"),
        pytest.param(leaf(known_tokens=5000, can_split=False, recent_calls=0), Verdict.KEEP, id="tokens-unsplittable"),
        # too few calls to judge the yield
        pytest.param(leaf(recent_calls=2, recent_new=0, known=5), Verdict.KEEP, id="too-few-calls"),
        pytest.param(leaf(recent_calls=0, recent_new=0, known=0), Verdict.KEEP, id="untried"),
        # yield at or above the low-yield share
        pytest.param(leaf(recent_new=24, known=5), Verdict.KEEP, id="yield-at-share"),
        pytest.param(leaf(recent_new=60, known=5), Verdict.KEEP, id="yield-full"),
        # low yield, big enough: split
        pytest.param(leaf(recent_new=23, known=40), Verdict.SPLIT, id="low-yield-known-at-min"),
        pytest.param(leaf(recent_new=0, known=39, remaining=10.0), Verdict.SPLIT, id="low-yield-remaining-at-min"),
        pytest.param(leaf(recent_new=5, known=200, remaining=50.0), Verdict.SPLIT, id="low-yield-big"),
        # low yield, small or unsplittable: retire
        pytest.param(leaf(recent_new=23, known=39, remaining=9.9), Verdict.RETIRE, id="low-yield-small"),
        pytest.param(leaf(recent_new=0, known=0), Verdict.RETIRE, id="dry-and-empty"),
        pytest.param(leaf(recent_new=5, known=200, can_split=False), Verdict.RETIRE, id="low-yield-unsplittable"),
        pytest.param(leaf(recent_new=5, known=200, depth=8), Verdict.RETIRE, id="low-yield-at-max-depth"),
        pytest.param(leaf(recent_new=5, known=200, depth=9), Verdict.RETIRE, id="low-yield-below-max-depth"),
        pytest.param(leaf(recent_new=5, known_tokens=5000, depth=8), Verdict.RETIRE, id="tokens-over-max-depth-dry"),
        # a longer window than configured is judged on what it holds
        pytest.param(leaf(recent_calls=6, recent_new=47, known=5), Verdict.RETIRE, id="long-window-low"),
        pytest.param(leaf(recent_calls=6, recent_new=48, known=5), Verdict.KEEP, id="long-window-at-share"),
    ],
)
def test_judge(stats: LeafStats, verdict: Verdict) -> None:
    """judge splits on the token share, keeps while untried or productive, splits big dry leaves, retires small ones."""
    decision = judge(stats, CONFIG, ITEMS)
    assert isinstance(decision, Decision)
    assert decision.verdict is verdict, decision.reason
    assert decision.reason


def test_judge_reasons_say_why() -> None:
    """Each verdict's reason names the numbers it was decided on."""
    assert "1501" in judge(leaf(known_tokens=1501), CONFIG, ITEMS).reason
    assert judge(leaf(recent_calls=1), CONFIG, ITEMS).reason == "too few calls to judge"
    assert "0.40" in judge(leaf(recent_new=24), CONFIG, ITEMS).reason
    assert "1.0 new per call over the last 3" in judge(leaf(recent_new=3, known=40), CONFIG, ITEMS).reason
    assert judge(leaf(recent_new=3, known=3), CONFIG, ITEMS).reason.startswith("dry: 1.0 new per call")


def test_max_depth_zero_never_splits_the_root() -> None:
    """With max_depth=0 the root is kept while it fills the prompt and retired, never split, when dry."""
    flat = dataclasses.replace(RULES, max_depth=0)
    root = leaf(path="", depth=0, known_tokens=9000, known=900)
    assert judge(dataclasses.replace(root, recent_calls=0), flat, ITEMS).verdict is Verdict.KEEP
    assert judge(dataclasses.replace(root, recent_new=1), flat, ITEMS).verdict is Verdict.RETIRE


def test_thresholds_come_from_the_config() -> None:
    """A stricter config moves the verdicts: lower token share splits, higher low_yield_share retires."""
    stats = leaf(known_tokens=600, recent_new=30, known=5)  # share 0.5
    assert judge(stats, CONFIG, ITEMS).verdict is Verdict.KEEP
    assert judge(stats, dataclasses.replace(RULES, split_known_tokens=500), ITEMS).verdict is Verdict.SPLIT
    assert judge(stats, dataclasses.replace(RULES, low_yield_share=0.6), ITEMS).verdict is Verdict.RETIRE
    assert judge(stats, dataclasses.replace(RULES, low_yield_share=0.6, min_split_entries=5), ITEMS).verdict is Verdict.SPLIT
    assert judge(leaf(recent_calls=3, recent_new=0), dataclasses.replace(RULES, window_calls=4), ITEMS).verdict is Verdict.KEEP


def test_a_big_leaf_splits_below_the_split_share_and_any_other_is_retired_only_below_the_low_share() -> None:
    """Two thresholds: dividing a leaf with many known entries pays before it is dry; a leaf that
    cannot divide runs on."""
    config = dataclasses.replace(RULES, split_yield_share=0.7)
    half = {"recent_new": 30}  # 30 fresh of 60 asked: 0.5
    assert judge(leaf(**half, known=40), config, ITEMS).verdict is Verdict.SPLIT
    assert judge(leaf(**half, known=39), config, ITEMS).verdict is Verdict.KEEP
    # many estimated unseen is no reason to divide a part that still yields: early on, a leaf's
    # Chao1 is all singletons; it is one once the leaf runs dry
    assert judge(leaf(**half, known=39, remaining=50.0), config, ITEMS).verdict is Verdict.KEEP
    assert judge(leaf(recent_new=23, known=39, remaining=50.0), config, ITEMS).verdict is Verdict.SPLIT
    assert judge(leaf(**half, known=40, can_split=False), config, ITEMS).verdict is Verdict.KEEP
    assert judge(leaf(recent_new=42, known=40), config, ITEMS).verdict is Verdict.KEEP  # 0.7: at the share
    assert judge(leaf(recent_new=23, known=39), config, ITEMS).verdict is Verdict.RETIRE
    # a split share under the low share: a big leaf below the low share is still split, never retired
    lenient = dataclasses.replace(RULES, split_yield_share=0.1)
    assert judge(leaf(recent_new=12, known=40), lenient, ITEMS).verdict is Verdict.SPLIT


@pytest.mark.parametrize(
    ("recent_calls", "recent_new", "explore_prior", "expected"),
    [
        pytest.param(0, 0, 1.0, 20.0, id="untried-is-the-prior"),
        pytest.param(0, 0, 0.5, 10.0, id="untried-smaller-prior"),
        pytest.param(1, 5, 1.0, (5 + 20 * 2) / 3, id="one-call-blends-two-prior-calls"),
        pytest.param(2, 0, 1.0, 20 / 3, id="two-dry-calls-blend-one-prior-call"),
        pytest.param(3, 6, 1.0, 2.0, id="full-window-is-the-yield"),
        pytest.param(6, 6, 1.0, 1.0, id="longer-window-is-the-yield"),
        pytest.param(3, 0, 0.0, 0.0, id="dry"),
        pytest.param(0, 0, 0.0, 0.0, id="no-optimism"),
    ],
)
def test_expected_new_per_call(recent_calls: int, recent_new: int, explore_prior: float, expected: float) -> None:
    """Recent yield per call, with each call missing from the window counted at the optimistic prior."""
    config = dataclasses.replace(RULES, explore_prior=explore_prior)
    stats = leaf(recent_calls=recent_calls, recent_new=recent_new)
    assert expected_new_per_call(stats, config, ITEMS) == pytest.approx(expected)


def test_untried_leaf_is_expected_to_beat_a_tried_one() -> None:
    """Optimism: a leaf with no calls ranks above one whose recent calls were only half fresh."""
    untried = leaf(recent_calls=0, recent_new=0)
    tried = leaf(recent_calls=3, recent_new=30)
    assert expected_new_per_call(untried, CONFIG, ITEMS) > expected_new_per_call(tried, CONFIG, ITEMS)


# --- PartitionConfig --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"max_split_parts": 1},
        {"max_split_parts": 33},
        {"split_known_tokens": 0},
        {"min_split_entries": 0},
        {"min_split_remaining": -0.1},
        {"max_depth": -1},
        {"max_depth": 21},
        {"window_calls": 0},
        {"low_yield_share": -0.1},
        {"low_yield_share": 1.1},
        {"split_yield_share": -0.1},
        {"split_yield_share": 1.1},
        {"explore_prior": -0.1},
        {"explore_prior": 1.5},
        {"schedule": "central"},
    ],
    ids=lambda changes: "{}={}".format(*next(iter(changes.items()))),
)
def test_invalid_config_raises_config_error(changes: dict[str, object]) -> None:
    """Each out-of-range field is refused with a ConfigError."""
    with pytest.raises(ConfigError):
        PartitionConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"max_split_parts": 2},
        {"max_split_parts": 32},
        {"split_known_tokens": 1, "min_split_entries": 1, "min_split_remaining": 0.0},
        {"max_depth": 0},
        {"max_depth": 20},
        {"window_calls": 1},
        {"low_yield_share": 0.0, "explore_prior": 0.0},
        {"low_yield_share": 1.0, "explore_prior": 1.0},
    ],
)
def test_config_boundaries_are_accepted(changes: dict[str, object]) -> None:
    """The edges of every range are valid."""
    config = PartitionConfig(**changes)  # type: ignore[arg-type]
    assert all(getattr(config, name) == value for name, value in changes.items())


def test_config_error_names_the_field() -> None:
    """The message says which field is wrong and its allowed range."""
    with pytest.raises(ConfigError, match=r"max_split_parts must be within 2\.\.32, got 40"):
        PartitionConfig(max_split_parts=40)
    with pytest.raises(ConfigError, match="window_calls"):
        PartitionConfig(window_calls=0)


def test_off_disables_partitioning_and_keeps_the_defaults() -> None:
    """PartitionConfig.off() is the defaults with enabled=False."""
    off = PartitionConfig.off()
    assert off.enabled is False and PartitionConfig().enabled is True
    assert dataclasses.replace(off, enabled=True) == PartitionConfig()


def test_config_is_frozen() -> None:
    """A config is a value: its fields cannot be reassigned."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIG.max_depth = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expected", "calls", "spread"),
    [
        ({"a": 10.0, "b": 8.0, "c": 1.0}, 1, {"a": 1}),
        # a 10 → a's next shares 10/2 = 5 < b's 8 → b; then a's 5 > b's 4 → a; then b's 4 > a's 3.3
        ({"a": 10.0, "b": 8.0, "c": 1.0}, 4, {"a": 2, "b": 2}),
        ({"a": 10.0, "b": 8.0, "c": 1.0}, 0, {}),
        ({}, 5, {}),
        ({"b": 3.0, "a": 3.0}, 1, {"a": 1}),  # a tie goes to the smaller path, whatever the order
        ({"only": 0.0}, 3, {"only": 3}),  # nothing expected anywhere: the calls still go somewhere
    ],
)
def test_spread_calls_puts_each_call_where_the_shared_expected_yield_is_highest(
    expected: dict[str, float], calls: int, spread: dict[str, int]
) -> None:
    assert dict(Counter(spread_calls(expected, calls))) == spread


def _shares(expected: dict[str, float], capacity: dict[str, int], owners: dict[str, str]) -> dict[str, dict[str, int]]:
    shares = share_calls(expected, capacity, owner=owners.get, ranked=lambda leaf: [owners.get(leaf, ""), *sorted(capacity)])
    return {member: dict(share) for member, share in shares.items()}


def test_share_calls_gives_each_owner_the_calls_on_its_own_leaves() -> None:
    assert _shares({"a": 10.0, "b": 8.0}, {"x": 1, "y": 1}, {"a": "x", "b": "y"}) == {"x": {"a": 1}, "y": {"b": 1}}


def test_share_calls_hands_an_owners_overflow_to_the_runners_up() -> None:
    """Both calls belong on a (20, then 10 > 8), which x owns; x has one slot, so y takes the second."""
    assert _shares({"a": 20.0, "b": 8.0}, {"x": 1, "y": 1}, {"a": "x", "b": "x"}) == {"x": {"a": 1}, "y": {"a": 1}}


def test_share_calls_deals_out_exactly_the_capacity_best_calls_first() -> None:
    """x owns everything but has 1 slot: it takes the best call; the others go to y and z in rank order."""
    shares = _shares({"a": 9.0, "b": 6.0, "c": 5.0, "d": 1.0}, {"x": 1, "y": 1, "z": 1},
                     {"a": "x", "b": "x", "c": "x", "d": "x"})  # fmt: skip
    assert shares == {"x": {"a": 1}, "y": {"b": 1}, "z": {"c": 1}}
    assert _shares({"a": 9.0}, {"x": 0, "y": 0}, {"a": "x"}) == {"x": {}, "y": {}}
    assert _shares({}, {"x": 2}, {}) == {"x": {}}
