"""Tests for webui.prometheus: the spend and budget families, from a real node's view of its records."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from node.records import BudgetRecord, UsageRecord
from node.state import NodeState
from node.view import StateView
from webui.app import WebUIConfig, create_app
from webui.view import MemberView

FAST = WebUIConfig(tick_s=0.05, flush_s=0.02)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _view(state: NodeState) -> StateView:
    return StateView(
        state, node_name="n1", topic="test topic",
        members=lambda: [MemberView("n1", "127.0.0.1:7001", "alive", 1, time.time())],
        metrics=lambda: {"node": "n1", "entries": 0, "calls": 3, "tokens": 999},
    )  # fmt: skip


@pytest.fixture
def state() -> NodeState:
    state = NodeState()
    state.apply_all([
        UsageRecord("n1", 1, 1000, 200, 1), UsageRecord("n1", 2, 800, 150, 2),  # this node's two calls
        UsageRecord("n2", 1, 500, 100, 3),  # a peer's
        BudgetRecord("n2", 10, 0, 4), BudgetRecord("n1", 0, 5000, 5),  # the strictest per kind holds
    ])  # fmt: skip
    return state


@pytest.fixture
async def http(state: NodeState) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(_view(state), FAST))) as client:
        yield client


async def _samples(http: TestClient) -> Samples:
    text = await (await http.get("/metrics")).text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_api_metrics_carries_the_network_spend_and_budget(http: TestClient) -> None:
    spend = (await (await http.get("/api/metrics")).json())["spend"]
    assert spend == {
        "calls": 3, "prompt_tokens": 2300, "completion_tokens": 450,
        "budget_calls": 10, "budget_tokens": 5000, "remaining_calls": 7, "remaining_tokens": 2250,
        "node_calls": 2, "node_prompt_tokens": 1800, "node_completion_tokens": 350,
    }  # fmt: skip


async def test_prometheus_counts_this_nodes_calls_and_tokens_and_the_networks_budget(http: TestClient) -> None:
    """Counters are this node's (they sum over nodes); the network's spend and budget are gauges."""
    samples = await _samples(http)
    assert samples[("swarmlist_llm_calls_total", ())] == 2  # every kind of call, from the records
    assert samples[("swarmlist_llm_tokens_total", (("kind", "prompt"),))] == 1800
    assert samples[("swarmlist_llm_tokens_total", (("kind", "completion"),))] == 350
    assert ("swarmlist_llm_tokens_total", ()) not in samples  # one family, labelled
    assert samples[("swarmlist_network_llm_calls", ())] == 3
    assert samples[("swarmlist_network_llm_tokens", (("kind", "prompt"),))] == 2300
    assert samples[("swarmlist_budget", (("kind", "calls"),))] == 10
    assert samples[("swarmlist_budget_remaining", (("kind", "calls"),))] == 7
    assert samples[("swarmlist_budget_remaining", (("kind", "tokens"),))] == 2250
    assert not any(name.startswith("swarmlist_spend") for name, _ in samples)  # no stray gauges of the group


async def test_without_a_budget_there_is_no_budget_series() -> None:
    state = NodeState()
    state.apply(UsageRecord("n1", 1, 10, 5, 1))
    async with TestClient(TestServer(create_app(_view(state), FAST))) as http:
        samples = await _samples(http)
        spend = (await (await http.get("/api/metrics")).json())["spend"]
    assert samples[("swarmlist_llm_calls_total", ())] == 1
    assert not any(name.startswith("swarmlist_budget") for name, _ in samples)
    assert spend["budget_calls"] is None and spend["remaining_tokens"] is None
