"""Bad networks between real gossip-node processes on loopback, made bad from inside (``SWARMLIST_FAULTS``).

No netem or iptables here: each node wraps its own gossip traffic in ``FaultyTransport``
(``node.fault_injection``), switched at run time through ``DATA_DIR/faults.json`` + SIGUSR1.
The promises of issue #13 checked on real processes: under 30% loss with delay, duplication
and reordering, and under an asymmetric partition (A and B cut apart, both reaching C), no
healthy node is declared dead by anyone, records still reach everyone, and once the faults are
off the three stores hold one identical set with every acknowledged (committed) record in it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from node.fault_injection import FAULTS_ENV, FAULTS_FILE
from node.sim_report import committed_keys, set_digest

from tests import suite_report
from tests.node.processes import NodeProcess, eventually

pytestmark = pytest.mark.slow

KEY = "0123456789abcdef-bad-network-key"
SECTION = "reliability: network faults"
PROBE_INTERVAL_S = 0.2  # --gossip-profile local
WINDOW_PERIODS = 50  # probe periods the faults last at least: each node probes each other one ~25 times
# Delays stay under the local profile's 0.1 s probe timeout: slow, not absent.
BAD_NETWORK = {"drop": 0.3, "delay_s": 0.02, "jitter_s": 0.02, "duplicate": 0.2, "reorder": 0.3,
               "reorder_delay_s": 0.03}  # fmt: skip


class FaultyNode(NodeProcess):
    """A gossip-node with fault injection on, whose faults the test can switch while it runs."""

    def switch_faults(self, faults: Mapping[str, object]) -> None:
        """Replace its faults now: faults.json written atomically, then SIGUSR1 to re-read it."""
        temporary = self.data_dir / f".{FAULTS_FILE}.tmp"
        temporary.write_text(json.dumps(faults), encoding="utf-8")
        temporary.replace(self.data_dir / FAULTS_FILE)
        os.kill(self.process.pid, signal.SIGUSR1)

    def metrics(self) -> dict[str, dict[str, float]]:
        answer = self.get("/api/metrics")
        assert isinstance(answer, dict)
        return answer

    def keys(self) -> set[str]:
        """Record keys committed in its store, read from the database file."""
        return set(committed_keys(self.data_dir))


@pytest.fixture
def nodes() -> Iterator[list[FaultyNode]]:
    """The test's nodes, killed at the end even on failure (SIGKILL: a graceful leave checks nothing
    here and costs seconds, each node waiting to gossip its leave to peers that are leaving too)."""
    started: list[FaultyNode] = []
    try:
        yield started
    finally:
        for node in started:
            node.stop(signal.SIGKILL)


def _start_cluster(nodes: list[FaultyNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   faults: Mapping[str, object], *, max_calls: int) -> list[FaultyNode]:  # fmt: skip
    """Three nodes joined through the first, each injecting ``faults`` (seeded apart) from its start."""

    def start(index: int, *seeds: str) -> FaultyNode:
        monkeypatch.setenv(FAULTS_ENV, json.dumps({**faults, "seed": index}))  # read by the child at exec
        node = FaultyNode(tmp_path / f"node{index}", "--cluster-key", KEY, "--name", f"node{index}",
                          "--sim-time-scale", "1.0", "--max-calls", str(max_calls), "--rng-seed", str(index),
                          *seeds)  # fmt: skip
        nodes.append(node)
        return node

    first = start(1)
    first.wait_started()
    for index in (2, 3):  # both at once: only the seed's address had to be known first
        start(index, "--seed", first.address)
    for node in nodes:
        node.wait_started()
        assert "FAULT INJECTION ACTIVE" in node.output
    names = {node.name() for node in nodes}
    for node in nodes:
        eventually(lambda node=node: node.members() == dict.fromkeys(names, "alive"), timeout_s=60,
                   message=f"{node.url} sees all three alive")  # fmt: skip
    return nodes


class StateWatch:
    """How often each observer saw each member in each state, polled over a window (the API's history)."""

    def __init__(self, nodes: list[FaultyNode]) -> None:
        self._nodes = nodes
        self.seen: Counter[tuple[str, str, str]] = Counter()  # (observer, member, state) -> polls

    def poll_for(self, seconds: float, *, until: float = 0.0) -> None:
        """Poll every node's /api/members for ``seconds`` (and at least until monotonic ``until``)."""
        deadline = max(time.monotonic() + seconds, until)
        while time.monotonic() < deadline:
            for node in self._nodes:
                observer = node.name()
                for member, state in node.members().items():
                    self.seen[(observer, member, state)] += 1
            time.sleep(PROBE_INTERVAL_S / 2)

    def count(self, state: str) -> int:
        return sum(polls for (_, _, seen_state), polls in self.seen.items() if seen_state == state)


def _membership_totals(nodes: list[FaultyNode]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for node in nodes:
        metrics = node.metrics()
        totals.update({name: int(value) for name, value in metrics["membership"].items()
                       if name in ("declared_dead", "suspicions_raised", "refutations", "probes", "probes_failed")})
        totals.update({f"faults_{name}": int(value) for name, value in metrics["faults"].items()
                       if name in ("requests", "cut", "request_lost", "reply_lost", "duplicated", "delayed")})
    return totals


def _dead_lines(nodes: list[FaultyNode]) -> list[str]:
    return [line.strip() for node in nodes for line in node.lines if " is dead (" in line]


def test_thirty_percent_loss_with_delay_duplication_and_reordering_kills_no_one_and_loses_nothing(
    tmp_path: Path, nodes: list[FaultyNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 nodes produce through drop 0.3 + delay + duplicates + reordering: nobody is declared dead;
    with the faults off they reach one identical set holding every record any of them acknowledged."""
    _start_cluster(nodes, tmp_path, monkeypatch, BAD_NETWORK, max_calls=20)
    watch = StateWatch(nodes)
    window_s = WINDOW_PERIODS * PROBE_INTERVAL_S
    started = time.monotonic()
    watch.poll_for(window_s)
    eventually(lambda: all(node.metrics()["stopped"] is not None for node in nodes), timeout_s=90,
               message="every producer finishes under the faults")  # fmt: skip
    bad_s = time.monotonic() - started
    totals = _membership_totals(nodes)

    for node in nodes:
        node.switch_faults({})
    faults_off = time.monotonic()
    eventually(lambda: all(node.metrics()["faults"]["drop"] == 0 for node in nodes), timeout_s=15,
               message="every node has switched its faults off")  # fmt: skip
    acknowledged = set.union(*(node.keys() for node in nodes))
    eventually(lambda: len({set_digest(list(node.keys())) for node in nodes}) == 1, timeout_s=60,
               message="identical digests once the network is good again")  # fmt: skip
    reconverge_s = time.monotonic() - faults_off
    final = nodes[0].keys()
    lost = len(acknowledged - final)
    after = _membership_totals(nodes)

    suite_report.record(
        SECTION, "processes: drop .3 + delay/jitter + dup .2 + reorder .3",
        faults=f"{totals['faults_request_lost'] + totals['faults_reply_lost']} lost, "
               f"{totals['faults_duplicated']} dup, {totals['faults_delayed']} delayed",
        window_s=bad_s, probe_periods=round(bad_s / PROBE_INTERVAL_S), suspicions=totals["suspicions_raised"],
        refutations=totals["refutations"], reconverge_s=reconverge_s, records_acknowledged=len(acknowledged),
        records_lost=lost, false_deaths=after["declared_dead"],
    )  # fmt: skip
    assert totals["faults_request_lost"] > 0 and totals["faults_duplicated"] > 0 and totals["probes_failed"] > 0
    assert after["declared_dead"] == 0, _dead_lines(nodes)
    assert watch.count("dead") == 0 and _dead_lines(nodes) == []
    assert lost == 0


def test_an_asymmetric_partition_kills_no_one_and_records_go_around_it(
    tmp_path: Path, nodes: list[FaultyNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A and B cannot reach each other but both reach C, for 50 probe periods: neither is declared
    dead (or even seen dead) by anyone, and what A and B commit meanwhile reaches the other through C."""
    # 20 calls (~16 s of production at this pace from each start) outlast the first half of the
    # window, where A and B must commit while cut apart, by seconds even when starts are slow; more
    # calls only kept the test waiting for production to end once the cut was healed.
    a, b, _ = _start_cluster(nodes, tmp_path, monkeypatch, {}, max_calls=20)
    a.switch_faults({"cut": [b.address]})
    b.switch_faults({"cut": [a.address]})
    eventually(lambda: a.metrics()["faults"]["cut_peers"] == 1 and b.metrics()["faults"]["cut_peers"] == 1,
               timeout_s=15, message="A and B have cut each other")  # fmt: skip
    cut_at = time.monotonic()
    at_cut = {node.name(): node.keys() for node in (a, b)}
    watch = StateWatch(nodes)
    window_s = WINDOW_PERIODS * PROBE_INTERVAL_S
    watch.poll_for(window_s / 2)
    made_by_a, made_by_b = a.keys() - at_cut[a.name()], b.keys() - at_cut[b.name()]
    assert made_by_a and made_by_b, "A and B keep producing while cut apart"
    eventually(lambda: made_by_a <= b.keys() and made_by_b <= a.keys(), timeout_s=window_s / 2,
               message="what A and B commit reaches the other through C, the cut still in place")  # fmt: skip
    watch.poll_for(0, until=cut_at + window_s)
    totals = _membership_totals(nodes)
    for node in (a, b):
        node.switch_faults({})
    healed_at = time.monotonic()
    eventually(lambda: all(node.metrics()["stopped"] is not None for node in nodes), timeout_s=90,
               message="every producer finishes")  # fmt: skip
    acknowledged = set.union(*(node.keys() for node in nodes))
    eventually(lambda: len({set_digest(list(node.keys())) for node in nodes}) == 1, timeout_s=60,
               message="identical digests")  # fmt: skip
    lost = len(acknowledged - nodes[0].keys())

    suite_report.record(
        SECTION, "processes: A-/-B cut both ways, both reach C", faults=f"{totals['faults_cut']} cut requests",
        window_s=healed_at - cut_at, probe_periods=round((healed_at - cut_at) / PROBE_INTERVAL_S),
        suspicions=totals["suspicions_raised"], refutations=totals["refutations"],
        records_across_cut=len(made_by_a) + len(made_by_b), records_acknowledged=len(acknowledged),
        records_lost=lost, false_deaths=_membership_totals(nodes)["declared_dead"],
    )  # fmt: skip
    assert totals["faults_cut"] > 0
    assert _membership_totals(nodes)["declared_dead"] == 0, _dead_lines(nodes)
    assert watch.count("dead") == 0 and _dead_lines(nodes) == []
    assert lost == 0
