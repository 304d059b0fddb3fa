"""Tests for node.spend and the records it reads: the spend and budget as pure functions of the set."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgpack
import pytest

from node.codec import (
    MAX_BUDGET,
    MAX_CALL_TOKENS,
    RecordDecodeError,
    decode_record,
    encode_record,
)
from node.hlc import HybridClock
from node.records import BudgetRecord, UsageRecord, index_label
from node.replication import RecordExchange
from node.spend import BudgetLimits, Spend, effective_limits, newer_budget
from node.state import NodeState
from node.store import Store


def test_usage_and_budget_records_round_trip_through_the_codec() -> None:
    for record in (UsageRecord("n1", 7, 1200, 340, 99), BudgetRecord("n2", 200, 0, 5),
                   UsageRecord("n1", 1, 0, 0, 0), BudgetRecord("n3", MAX_BUDGET, MAX_BUDGET, 1)):  # fmt: skip
        assert decode_record(encode_record(record)) == record
        assert index_label(record) == ""  # the node's, not a partition's


@pytest.mark.parametrize(
    "body",
    [
        [6, "n1", 1, -5, 3, 9],  # negative tokens
        [6, "n1", 1, MAX_CALL_TOKENS + 1, 0, 9],  # more tokens than any call
        [6, "n1", 1, 5, 3],  # a field missing
        [6, "", 1, 5, 3, 9],  # no node
        [6, "n1", 1, 5.0, 3, 9],  # tokens as a float
        [7, "n1", MAX_BUDGET + 1, 0, 9],  # a budget past the bound
        [7, "n1", True, 0, 9],  # a boolean is not a count
    ],
)
def test_malformed_usage_and_budget_records_are_refused(body: list[object]) -> None:
    """A peer's bytes are hostile: bad spend must not reach the sum."""
    with pytest.raises(RecordDecodeError):
        decode_record(msgpack.packb(body, use_bin_type=True))


def test_the_spend_is_the_sum_of_the_usage_records_per_node_and_overall() -> None:
    state = NodeState()
    state.apply_all([UsageRecord("n1", 1, 100, 20, 1), UsageRecord("n2", 1, 50, 5, 2), UsageRecord("n1", 2, 10, 1, 3)])
    assert state.spend() == Spend(3, 160, 26)
    assert state.spend().tokens == 186
    assert state.spend("n1") == Spend(2, 110, 21)
    assert state.spend("n3") == Spend()
    assert (state.last_usage_call("n1"), state.last_usage_call("n2"), state.last_usage_call("n3")) == (2, 1, 0)


async def test_a_call_gossiped_twice_is_counted_once(tmp_path: Path) -> None:
    """Merging is by key: the same usage record arriving by push and by anti-entropy adds once."""
    async with await Store.open(tmp_path, topic="t", inline=True) as store:
        state = NodeState()
        exchange = RecordExchange(store=store, state=state, clock=HybridClock(lambda: 1000.0))
        records = [encode_record(UsageRecord("peer", call, 100, 10, call)) for call in (1, 2, 3)]
        await exchange.merge(records)
        await exchange.merge(records[1:])  # again, in another order and batch
        await exchange.merge(list(reversed(records)))
        assert state.spend() == Spend(3, 300, 30)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ([], BudgetLimits()),
        ([(0, 0)], BudgetLimits()),
        ([(200, 0), (0, 0)], BudgetLimits(200, 0)),  # a node without a budget does not lift it
        ([(200, 0), (150, 0), (300, 0)], BudgetLimits(150, 0)),  # the strictest holds
        ([(200, 5000), (0, 1000)], BudgetLimits(200, 1000)),  # per kind
    ],
)
def test_the_cluster_budget_is_the_strictest_non_zero_setting_per_kind(
    settings: list[tuple[int, int]], expected: BudgetLimits
) -> None:
    records = [BudgetRecord(f"n{index}", calls, tokens, 1) for index, (calls, tokens) in enumerate(settings)]
    assert effective_limits(records) == expected


def test_a_nodes_newest_budget_counts_whatever_the_arrival_order() -> None:
    """A node restarted with a higher budget lifts its own word; others' records still hold."""
    old, new, other = BudgetRecord("n1", 100, 0, 10), BudgetRecord("n1", 500, 0, 20), BudgetRecord("n2", 300, 0, 15)
    for order in itertools.permutations((old, new, other)):
        state = NodeState()
        state.apply_all(order)
        assert state.budget_limits() == BudgetLimits(300, 0)
        assert state.budget_of("n1") == new


def test_two_budget_records_of_one_node_at_one_hlc_are_ordered_by_value() -> None:
    a, b = BudgetRecord("n1", 100, 0, 10), BudgetRecord("n1", 200, 0, 10)
    assert newer_budget(b, a) and not newer_budget(a, b)


@pytest.mark.parametrize(
    ("limits", "spend", "calls_left", "tokens_left"),
    [
        (BudgetLimits(), Spend(10, 5, 5), None, None),
        (BudgetLimits(200, 0), Spend(150, 5, 5), 50, None),
        (BudgetLimits(200, 100), Spend(210, 80, 40), 0, 0),  # overshoot: never negative
    ],
)
def test_what_is_left_of_a_budget(limits: BudgetLimits, spend: Spend, calls_left: int | None, tokens_left: int | None) -> None:
    assert (limits.calls_left(spend), limits.tokens_left(spend)) == (calls_left, tokens_left)


def test_budget_limits_describe_themselves_for_logs() -> None:
    assert BudgetLimits().describe() == "no limit"
    assert BudgetLimits(200, 1_000_000).describe() == "200 calls, 1,000,000 tokens"
