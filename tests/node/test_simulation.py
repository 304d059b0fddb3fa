"""Tests for node.simulation: N full nodes on the in-memory network and a virtual clock.

Without anti-entropy (not wired into the node yet) push dissemination reaches only members a
node knows when it pushes: the harness starts production after every node sees every other,
so a fault-free run converges on push alone; records made while a node was down or cut off
are not repaired, and these tests do not assert either way about those.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from gossip.testing import DEFAULT_WALL_START, run_virtual
from node.codec import decode_record
from node.evidence import EntryStatus, VerificationPolicy
from node.errors import ConfigError
from node.hlc import hlc_physical_ms
from node.normalize import entry_id
from node.producer import ProducerConfig
from node.records import CapacityRecord, EntryRecord, MatchKind, ObservationRecord, PlanRecord, Record, VerdictRecord
from node.simulation import NodeEvent, SimConfig, Simulation, SimReport, run_simulation, set_digest
from node.state import NodeState
from node.store import DB_FILENAME, Store
from partitioning.config import PartitionConfig
from partitioning.plan import PartitionPlan


def _config(**changes: object) -> SimConfig:
    base: dict[str, object] = {"nodes": 4, "universe": "countries", "rng_seed": 11, "max_calls": 3,
                               "time_limit_s": 300.0}  # fmt: skip
    return SimConfig(**{**base, **changes})  # type: ignore[arg-type]


def _records_on_disk(data_dir: Path) -> dict[str, Record]:
    """A node's committed records, read from its database file: key -> record."""
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT key, body FROM records ORDER BY seq").fetchall()
    finally:
        connection.close()
    return {key: decode_record(bytes(body)) for key, body in rows}


def _virtual_time_of(record: Record) -> float:
    """Virtual seconds since the start of the run at which ``record`` was stamped."""
    return hlc_physical_ms(record.hlc) / 1000.0 - DEFAULT_WALL_START


def _without_timing(report: SimReport) -> dict[str, object]:
    values = report.as_dict()
    values.pop("real_s")
    return values


def test_without_faults_every_node_ends_with_the_same_digest(tmp_path: Path) -> None:
    """All nodes start before production, so push alone brings every node to one set."""
    report = run_simulation(_config(data_dir=tmp_path))
    assert report.end_reason == "converged"
    digests = report.digests()
    assert len(digests) == 4 and len(set(digests.values())) == 1
    on_disk = {name: set(_records_on_disk(tmp_path / name)) for name in digests}
    assert all(keys == on_disk["node1"] for keys in on_disk.values())
    assert set_digest(list(on_disk["node1"])) == digests["node1"]
    cluster = report.cluster
    assert cluster["converged"] and cluster["distinct_digests"] == 1
    assert cluster["calls"] == sum(node["calls"] for node in report.nodes) == 4 * 3 + cluster["split_calls"]
    assert 0 < cluster["coverage"] <= 1 and cluster["tokens"] > 0 and cluster["wire_bytes"] > 0
    assert cluster["converged_at_s"] >= cluster["last_record_at_s"] >= cluster["last_new_entry_at_s"] > 0
    coverage = [sample.coverage_union for sample in report.series]
    assert coverage == sorted(coverage) and coverage[-1] == cluster["coverage"]
    assert all(node["record_bytes_out"] > 0 and node["entries"] == report.nodes[0]["entries"] for node in report.nodes)
    assert report.popularity_alpha > 0 and report.sim_params["version"]
    json.dumps(report.as_dict())  # the report is JSON as it stands


def test_a_seed_reproduces_the_run_exactly_and_another_seed_differs() -> None:
    """Same seed: the same report, digest for digest and sample for sample; another seed: another run."""
    config = _config(loss=0.05)
    first, second = run_simulation(config), run_simulation(config)
    assert _without_timing(first) == _without_timing(second)
    other = run_simulation(_config(loss=0.05, rng_seed=12))
    assert other.digests() != first.digests()


def test_a_killed_node_keeps_its_records_and_rejoins_with_a_higher_incarnation(tmp_path: Path) -> None:
    """Kill node2 mid-production, restart it: its committed records survive, peers saw it dead,
    then alive at a higher incarnation, and what it makes after the restart reaches everyone."""
    config = _config(data_dir=tmp_path, max_calls=6, kills=(NodeEvent("node2", 3.0),),
                     restarts=(NodeEvent("node2", 15.0),))  # fmt: skip
    simulation = Simulation(config)
    at_crash: dict[str, Record] = {}
    views: dict[str, tuple[str, int] | None] = {}

    def after_kill(sim: Simulation) -> None:
        assert sim.node("node2") is None
        at_crash.update(_records_on_disk(tmp_path / "node2"))

    def view_of_node2(label: str) -> None:
        node1 = simulation.node("node1")
        assert node1 is not None
        member = node1.cluster.membership.member("node2")
        views[label] = (member.state_name, member.incarnation) if member else None

    simulation.at(3.0, after_kill)  # runs after the configured kill at the same time
    simulation.at(14.0, lambda sim: view_of_node2("down"))
    simulation.at(30.0, lambda sim: view_of_node2("back"))
    report = run_virtual(simulation.run())

    assert at_crash, "node2 had committed records before the crash"
    node2 = next(node for node in report.nodes if node["name"] == "node2")
    assert node2["alive"] and node2["starts"] == 2 and node2["incarnation"] >= 2
    assert views["down"] is not None and views["down"][0] == "dead"
    assert views["back"] is not None and views["back"][0] == "alive" and views["back"][1] >= 2
    after = _records_on_disk(tmp_path / "node2")
    assert set(at_crash) <= set(after)
    made_after_restart = {key for key, record in after.items()
                          if key not in at_crash and _origin(record) == "node2"}  # fmt: skip
    assert made_after_restart, "node2 produced after its restart"
    for name in ("node1", "node3", "node4"):
        assert made_after_restart <= set(_records_on_disk(tmp_path / name))
    assert [event["event"] for event in report.events if event["node"] == "node2"][-2:] == ["start", "producer-done"]


def _origin(record: Record) -> str:
    return getattr(record, "origin", None) or getattr(record, "node", "")


def test_a_partition_splits_the_cluster_and_after_heal_new_records_reach_both_sides(tmp_path: Path) -> None:
    """During the partition each side makes records the other lacks; after heal the members see
    each other alive again and every record made once they do reaches all four nodes."""
    config = _config(data_dir=tmp_path, max_calls=0, partition_at_s=2.0, heal_at_s=8.0, gossip_profile="local")
    simulation = Simulation(config)
    during: dict[str, set[str]] = {}
    alive_after_heal: list[int] = []

    def snapshot(sim: Simulation) -> None:
        during.update({name: set(_records_on_disk(tmp_path / name)) for name in ("node1", "node3")})

    def count_alive(sim: Simulation) -> None:
        alive_after_heal.extend(sum(m.state_name == "alive" for m in node.cluster.membership.members())
                                for node in sim.live_nodes())  # fmt: skip

    simulation.at(7.9, snapshot)
    simulation.at(14.0, count_alive)
    report = run_virtual(simulation.run())

    assert during["node1"] - during["node3"] and during["node3"] - during["node1"]
    assert alive_after_heal == [4, 4, 4, 4]
    assert report.partitions == ({"at_s": 2.0, "healed_at_s": 8.0, "sides": [["node1", "node2"], ["node3", "node4"]]},)
    on_disk = {name: _records_on_disk(tmp_path / name) for name in ("node1", "node2", "node3", "node4")}
    late = {key for records in on_disk.values() for key, record in records.items() if _virtual_time_of(record) > 14.0}
    assert late, "the producers were still at work after the heal"
    assert all(late <= set(records) for records in on_disk.values())


def test_scheduled_actions_run_at_their_virtual_time_in_order() -> None:
    """``at`` hooks fire at the virtual second asked for, in time order, and keep the run going until then."""
    simulation = Simulation(_config(nodes=2, max_calls=1))
    fired: list[tuple[str, float]] = []
    simulation.at(40.0, lambda sim: fired.append(("late", round(sim.now_s, 6))))
    simulation.at(1.5, lambda sim: fired.append(("early", round(sim.now_s, 6))))
    report = run_virtual(simulation.run())
    assert fired == [("early", 1.5), ("late", 40.0)]
    assert report.virtual_s >= 40.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node2@30", NodeEvent("node2", 30.0)),
        ("3@1.5", NodeEvent("node3", 1.5)),
        (" Node4@0 ", NodeEvent("node4", 0.0)),
    ],
)
def test_node_events_parse(text: str, expected: NodeEvent) -> None:
    """NODE@T takes nodeI or I and virtual seconds."""
    assert NodeEvent.parse(text) == expected


@pytest.mark.parametrize("text", ["node2", "node2@", "@5", "nodeX@5", "node2@-1", "node2@soon", "n2@5", "node2@nan"])
def test_bad_node_events_are_refused(text: str) -> None:
    """Anything but NODE@SECONDS is a ConfigError saying what was expected."""
    with pytest.raises(ConfigError, match="NODE@SECONDS"):
        NodeEvent.parse(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kills": (NodeEvent("node9", 5.0),)}, "no such node"),
        ({"restarts": (NodeEvent("node2", 5.0),)}, "not down"),
        ({"kills": (NodeEvent("node2", 5.0), NodeEvent("node2", 6.0))}, "already down"),
        ({"kills": (NodeEvent("node2", 5.0),), "restarts": (NodeEvent("node2", 4.0),)}, "not down"),
        ({"kills": (NodeEvent("node2", 500.0),)}, "past the time limit"),
        ({"heal_at_s": 5.0}, "needs --partition-at"),
        ({"partition_at_s": 5.0, "heal_at_s": 5.0}, "after --partition-at"),
        ({"nodes": 1, "partition_at_s": 1.0}, "at least 2 nodes"),
        ({"loss": 1.5}, "probability"),
        ({"universe": "planets"}, "unknown universe"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object], message: str) -> None:
    """Faults that cannot happen (restart a live node, kill a missing one) fail before the run."""
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


def test_a_kill_then_restart_at_the_same_second_is_valid() -> None:
    """Kills sort before restarts at one instant, so node2@5 killed and restarted is accepted."""
    config = _config(kills=(NodeEvent("node2", 5.0),), restarts=(NodeEvent("node2", 5.0),))
    assert config.restarts == (NodeEvent("node2", 5.0),)


def test_inline_store_commits_without_leaving_the_calling_thread(tmp_path: Path) -> None:
    """The simulation's stores run SQLite inline: ``add`` completes without ever yielding to the
    loop (so no thread's timing can reorder commits), and a reopen finds what was committed."""
    record = EntryRecord(id=entry_id("Chile"), text="Chile", partition="", origin="n", hlc=1)

    async def main() -> None:
        store = await Store.open(tmp_path, topic="t", inline=True, durable=False)
        adding = store.add([record])
        with pytest.raises(StopIteration) as finished:
            adding.send(None)  # one step, no suspension: the commit happened on this thread
        assert finished.value.value == [record]
        await store.aclose()
        async with await Store.open(tmp_path, topic="t", inline=True) as again:
            assert await again.load_records() == [record]
            assert again.identity.incarnation == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    "faults",
    [
        {"kills": (NodeEvent.parse("node2@5"),), "restarts": (NodeEvent.parse("node2@15"),)},
        {"partition_at_s": 3.0, "heal_at_s": 12.0},
        {"loss": 0.3},
    ],
    ids=["kill-restart", "partition-heal", "loss-30pct"],
)
def test_anti_entropy_brings_every_node_to_one_set_after_faults(faults: dict[str, object]) -> None:
    """What push missed (a dead node, a cut-off half, lost messages) anti-entropy repairs: one digest."""
    report = run_simulation(_config(**faults))
    assert report.end_reason == "converged", report.end_reason
    assert len(set(report.digests().values())) == 1
    assert report.cluster["converged"]


def test_every_node_builds_the_same_partition_plan_and_stops_when_it_is_exhausted(tmp_path: Path) -> None:
    """With partitioning (the default) 5 nodes split and retire parts concurrently, end on one plan, and all stop."""
    report = run_simulation(_config(nodes=5, max_calls=0, data_dir=tmp_path, time_limit_s=600.0))
    plans = {}
    for node in report.nodes:
        records = _records_on_disk(tmp_path / node["name"]).values()
        plans[node["name"]] = PartitionPlan([r for r in records if isinstance(r, PlanRecord)]).partitions()
        capacities = {(r.node, r.concurrency) for r in records if isinstance(r, CapacityRecord)}
        assert capacities == {(f"node{i}", 2) for i in range(1, 6)}  # every node's weight, on every node
    first = plans["node1"]
    assert all(plan == first for plan in plans.values())
    assert report.plan is not None and report.plan["leaves"] >= 5 and report.plan["depth"] >= 1
    assert report.plan["live_leaves"] == 0 and report.plan["retired_leaves"] == report.plan["leaves"]
    assert {node["stop_reason"] for node in report.nodes} == {
        f"topic exhausted: all {report.plan['retired_leaves']} partitions retired"
    }
    assert report.cluster["split_calls"] >= 1 and report.cluster["calls"] > report.cluster["split_calls"]
    covered = [leaf["coverage"] for leaf in report.plan["leaf_table"] if leaf["coverage"] is not None]
    assert covered and report.cluster["coverage_of_producible"] > 0.7


def test_with_verification_every_node_ends_with_the_same_status_for_every_entry(tmp_path: Path) -> None:
    """Verdicts are replicated records and a status is a pure function of the records: once the
    nodes converge, every entry has one status on every node — here rebuilt from each node's
    database, records in the order it stored them — and verification settled entries both ways."""
    policy = VerificationPolicy(call_share=0.3, batch=20)
    report = run_simulation(_config(nodes=4, max_calls=0, data_dir=tmp_path, verification=policy, time_limit_s=600.0))
    assert report.end_reason == "converged" and len(set(report.digests().values())) == 1
    statuses = {}
    for node in report.nodes:
        records = list(_records_on_disk(tmp_path / node["name"]).values())
        assert any(isinstance(record, VerdictRecord) for record in records)
        state = NodeState(policy=policy)
        state.apply_all(records)
        statuses[node["name"]] = {line.id: state.status(line) for line in state.entries}
    first = statuses["node1"]
    assert all(each == first for each in statuses.values())
    counts = Counter(first.values())
    assert counts[EntryStatus.REJECTED] > 0 and counts[EntryStatus.CONFIRMED] > 0, counts


def test_lever_knobs_reach_every_node_producer_config() -> None:
    """known_entries and fuzzy_dedup become the nodes' ProducerConfig; the defaults change nothing."""
    default = _config().producer_config()
    assert default == ProducerConfig(max_calls=3)
    recency = _config(known_entries="recency").producer_config()
    assert not recency.known_by_frequency and recency.known_budget_tokens == default.known_budget_tokens
    none = _config(known_entries="none").producer_config()
    assert none.known_budget_tokens == 0 and none.known_by_frequency
    assert not _config(fuzzy_dedup=False).producer_config().fuzzy_dedup
    with pytest.raises(ConfigError, match="known_entries"):
        _config(known_entries="alphabetical")


def test_runs_sharing_a_model_seed_ask_one_model_with_their_own_sampling() -> None:
    """model_seed fixes what the simulated model knows whatever rng_seed is (independent producers share a model)."""
    first = Simulation(_config(rng_seed=1, model_seed=5))
    second = Simulation(_config(rng_seed=2, model_seed=5))
    assert first.truth.producible == second.truth.producible == Simulation(_config(rng_seed=5)).truth.producible
    assert first.truth.producible != Simulation(_config(rng_seed=1)).truth.producible
    report = run_simulation(_config(nodes=1, rng_seed=1, model_seed=5))
    assert report.seeds["model_knowledge"] == 5 and report.seeds["rng_seed"] == 1


def _match_kinds(data_dir: Path) -> Counter[MatchKind]:
    records = _records_on_disk(data_dir).values()
    return Counter(item.match for r in records if isinstance(r, ObservationRecord) for item in r.items)


def test_without_known_entries_prompts_carry_none_and_cost_fewer_tokens() -> None:
    """known_entries="none": the same run, but every prompt's known list is empty, so prompt tokens stay flat.
    (About the whole topic, where the known list grows with every call: partitioning keeps it short.)"""
    with_context = run_simulation(_config(nodes=1, max_calls=20, partitioning=PartitionConfig.off()))
    without = run_simulation(_config(nodes=1, max_calls=20, known_entries="none", partitioning=PartitionConfig.off()))
    assert with_context.cluster["calls"] == without.cluster["calls"]
    assert without.cluster["prompt_tokens"] < 0.8 * with_context.cluster["prompt_tokens"]


def test_exact_only_dedup_makes_no_fuzzy_match_and_lists_variants_as_lines(tmp_path: Path) -> None:
    """fuzzy_dedup=False: no generated item resolves FUZZY, so variants the default would match become lines."""
    fuzzy = run_simulation(_config(nodes=1, max_calls=20, data_dir=tmp_path / "fuzzy"))
    exact = run_simulation(_config(nodes=1, max_calls=20, fuzzy_dedup=False, data_dir=tmp_path / "exact"))
    fuzzy_kinds, exact_kinds = _match_kinds(tmp_path / "fuzzy" / "node1"), _match_kinds(tmp_path / "exact" / "node1")
    assert fuzzy_kinds[MatchKind.FUZZY] > 0 and exact_kinds[MatchKind.FUZZY] == 0
    assert exact.nodes[0]["entries"] > fuzzy.nodes[0]["entries"]
    assert exact.nodes[0]["entries"] == exact.nodes[0]["entry_ids"]  # nothing clustered
