"""The network budget across a simulated cluster (node.simulation): the measured overshoot against its bound."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from gossip.testing import run_virtual
from node.budget import Budget, BudgetConfig
from node.codec import decode_record
from node.records import UsageRecord
from node.simulation import SimConfig, SimReport, Simulation
from node.store import DB_FILENAME
from tests import suite_report

_PROBE_INTERVAL_S = 0.05  # virtual seconds between looks at the nodes (an LLM call takes seconds)


@dataclass
class SpendProbe:
    """Samples the cluster while it produces: how far each node's view of the spend lags the truth."""

    max_unreplicated: int = 0  # most calls ended on some node whose records another node did not hold yet
    max_in_flight: int = 0  # most calls in flight in the cluster at once
    high_water: dict[str, int] = field(default_factory=dict)  # per node: most calls counted at an admission
    admitted: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def sample(self, sim: Simulation) -> None:
        nodes = sim.live_nodes()
        ended = sum(node.state.spend(node.name).calls for node in nodes)  # each node's own calls, recorded at once
        for node in nodes:
            assert node.budget is not None
            self.max_unreplicated = max(self.max_unreplicated, ended - node.state.spend().calls)
            self.high_water[node.name] = node.budget.stats.high_water_calls
            self.admitted[node.name] = node.budget.stats.admitted
        self.max_in_flight = max(self.max_in_flight, sum(node.budget.in_flight for node in nodes if node.budget))
        self.samples += 1
        if any(node.producer.stop_reason is None for node in nodes):
            sim.at(sim.now_s + _PROBE_INTERVAL_S, self.sample, label="spend probe")


def _usage_on_disk(data_dir: Path) -> set[UsageRecord]:
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT body FROM records").fetchall()
    finally:
        connection.close()
    return {record for (body,) in rows if isinstance(record := decode_record(bytes(body)), UsageRecord)}


def _run(config: SimConfig, probe: SpendProbe) -> SimReport:
    async def main() -> SimReport:
        sim = Simulation(config)
        sim.at(0.0, probe.sample, label="spend probe")
        return await sim.run()

    return run_virtual(main())


def test_five_nodes_stop_at_the_network_budget_within_the_stated_overshoot(tmp_path: Path) -> None:
    """Budget 120 calls, 5 nodes × 2 in flight: spend − budget ≤ Σ_{j≠i} concurrency_j + unreplicated calls."""
    budget, nodes, concurrency = 120, 5, 2  # the topic alone takes ~180 calls (seed 3): the budget binds
    config = SimConfig(nodes=nodes, universe="countries", rng_seed=3, concurrency=concurrency,
                       budget=BudgetConfig(calls=budget), time_limit_s=3000.0, sample_interval_s=30.0,
                       data_dir=tmp_path)  # fmt: skip
    probe = SpendProbe()
    report = _run(config, probe)

    assert report.end_reason == "converged"
    assert all(str(node["stop_reason"]).startswith(f"network budget of {budget} LLM calls reached") for node in report.nodes)
    held = [_usage_on_disk(tmp_path / name) for name in config.node_names()]
    assert all(records == held[0] for records in held)  # every node knows every call
    spend = len(held[0])
    assert spend == sum(probe.admitted.values())  # every call let through left exactly one record
    overshoot = spend - budget
    in_flight_bound = (nodes - 1) * concurrency  # Σ_{j≠i} concurrency_j
    assert all(high <= budget for high in probe.high_water.values())  # no node ever counted past the budget
    assert 0 <= overshoot <= in_flight_bound + probe.max_unreplicated
    suite_report.record(
        "network budget (simulated nodes, countries)", f"5 nodes, seed 3, budget {budget}",
        spent=spend, overshoot=overshoot, bound_in_flight=in_flight_bound,
        max_unreplicated=probe.max_unreplicated, max_in_flight=probe.max_in_flight,
        virtual_s=round(report.virtual_s, 1),
    )  # fmt: skip


def test_one_nodes_budget_stops_nodes_started_without_one(tmp_path: Path) -> None:
    """Only node1 announces a budget (60 calls); the other nodes learn it by gossip and stop at it too."""
    budget = 60
    config = SimConfig(nodes=3, universe="countries", rng_seed=5, time_limit_s=3000.0, sample_interval_s=30.0,
                       data_dir=tmp_path)  # fmt: skip

    async def announce_on_node1(sim: Simulation) -> None:
        node = sim.node("node1")
        assert node is not None
        # what node1 does at start when launched with --budget-calls 60
        await Budget(BudgetConfig(calls=budget), state=node.state, store=node.store, clock=node.exchange.clock,
                     on_committed=node.exchange.committed).announce()  # fmt: skip

    async def main() -> SimReport:
        sim = Simulation(config)
        sim.at(0.0, announce_on_node1, label="node1 announces its budget")
        return await sim.run()

    report = run_virtual(main())
    assert all(str(node["stop_reason"]).startswith(f"network budget of {budget} LLM calls reached")
               for node in report.nodes)  # fmt: skip
    spend = len(_usage_on_disk(tmp_path / "node3"))
    assert budget <= spend <= budget + 2 * config.concurrency + 4
    suite_report.record("network budget (simulated nodes, countries)", f"3 nodes, seed 5, node1's budget {budget}",
                        spent=spend, overshoot=spend - budget)  # fmt: skip
