"""Five gossip-node processes on five hosts: network namespaces with their own addresses, one bridge.

Issue #16's multi-host test. Each node binds its host's ``eth0`` address (10.77.0.x, not
loopback), authenticates with a cluster key read from a file, and joins through ``--seed`` at
the first host's address, so every packet of the cluster crosses the bridge as it would between
machines. While the nodes produce on the simulated LLM (rate-limited, so production spans the
test), the test checks the three things an operator would: all five converge; a host whose
cable is pulled (its bridge port down) is declared dead, rejoins once plugged back, and every
record acknowledged on either side reaches every node; and a rolling restart — each node in
turn SIGTERM'd and started again on its data dir inside its namespace — loses nothing.

"Acknowledged" = committed to a node's SQLite store, read from the file as an outside auditor
would (``node.sim_report.committed_keys``), and "identical digests" is checked on those sets.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from node.sim_report import committed_keys, set_digest
from tests import netns, suite_report
from tests.node.processes import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

GOSSIP_NODE = str(Path(sys.executable).parent / "gossip-node")
HOSTS = 5
PORT = 7070
TOPIC = "cities of Europe"
SECTION = "ops: multi-host (network namespaces)"
CALLS_PER_MINUTE = 30  # per node: a call every 2 s, so five nodes keep producing all through the test
# One call at a time: at this rate (a call takes ~50 ms) production is the same as with the
# default two, and a stop has one call fewer to settle.
CONCURRENCY = 1
RESTART_CALLS = 3  # each restarted node makes a few calls more, then production ends and the sets settle
MIN_PARTITION_S = 3.0  # long enough for the cut-off host to lose sight of the others too
WAIT_S = 60.0  # generous bounds: five nodes share two cores with other engineers' tests
_DEAD = re.compile(r"member (\S+) is dead")


class HostNode:
    """A gossip-node on one namespace host; restartable on the same data dir, reached from the test process."""

    def __init__(self, host: netns.Namespace, data_dir: Path, name: str, key_file: Path) -> None:
        self.host = host
        self.data_dir = data_dir
        self.name = name
        self.key_file = key_file
        self.address = f"{host.address}:{PORT}"
        self.processes: list[netns.NamespaceProcess] = []  # every start, the running one last

    def __repr__(self) -> str:
        return f"<HostNode {self.name} {self.address}>"

    @property
    def process(self) -> netns.NamespaceProcess:
        return self.processes[-1]

    def start(self, *, seed: str | None, max_calls: int = 0) -> None:
        argv = [GOSSIP_NODE, "--topic", TOPIC, "--universe", "european-cities",
                "--data-dir", str(self.data_dir), "--name", self.name, "--host", self.host.address,
                "--port", str(PORT), "--cluster-key-file", str(self.key_file), "--gossip-profile", "local",
                "--sim-time-scale", "0.05", "--max-calls-per-minute", str(CALLS_PER_MINUTE),
                "--concurrency", str(CONCURRENCY),
                "--max-calls", str(max_calls), "--rng-seed", self.name.removeprefix("node"),
                *(("--seed", seed) if seed else ())]  # fmt: skip
        self.processes.append(netns.NamespaceProcess(self.host, argv))

    def wait_serving(self) -> None:
        self.process.wait_for_output(r"node API: http://", timeout_s=WAIT_S)

    def get(self, path: str) -> dict[str, object]:
        answer = self.host.get_json(f"http://{self.address}{path}", timeout_s=5)
        assert isinstance(answer, dict)
        return answer

    def members(self) -> dict[str, str]:
        """name -> state, as this node sees the cluster."""
        members = self.get("/api/members")["members"]
        assert isinstance(members, list)
        return {member["name"]: member["state"] for member in members}

    def entries(self) -> int:
        total = self.get("/api/entries?limit=1")["total"]
        assert isinstance(total, int)
        return total

    def keys(self) -> set[str]:
        """Record keys committed in this node's store, now."""
        return set(committed_keys(self.data_dir))

    def producer_stopped(self) -> bool:
        return "producer stopped:" in self.process.output

    def death_verdicts(self) -> list[str]:
        """Members this node announced dead in its logs (every start, in order, repeats kept)."""
        return [match.group(1) for process in self.processes for match in _DEAD.finditer(process.output)]


@pytest.fixture
def network() -> Iterator[netns.NamespaceNetwork]:
    """Five namespace hosts on one bridge; fails (never skips) without root; removed even on failure."""
    with netns.network_for_test(HOSTS) as made:
        yield made


@pytest.fixture
def cluster(network: netns.NamespaceNetwork, tmp_path: Path) -> Iterator[list[HostNode]]:
    """One (not yet started) node per host, sharing a cluster key file; every process killed at the end
    (SIGKILL: the test has stopped each node gracefully once already; a last graceful leave checks
    nothing and costs seconds, each node gossiping its leave to peers that are leaving too)."""
    key_file = tmp_path / "cluster.key"
    key_file.write_text("0123456789abcdef-multi-host-key\n", encoding="utf-8")
    key_file.chmod(0o600)
    nodes = [HostNode(host, tmp_path / f"node{i}", f"node{i}", key_file) for i, host in enumerate(network, start=1)]
    try:
        yield nodes
    finally:
        for node in nodes:
            if node.processes:
                node.process.stop(signal.SIGKILL)


def _all_alive(nodes: Sequence[HostNode]) -> bool:
    names = {node.name for node in nodes}
    return all(node.members() == dict.fromkeys(names, "alive") for node in nodes)


def _converged(nodes: Sequence[HostNode], acknowledged: set[str]) -> bool:
    """Every acknowledged record on every node, and at this instant one set everywhere."""
    sets = [node.keys() for node in nodes]
    return all(acknowledged <= keys for keys in sets) and len({set_digest(list(keys)) for keys in sets}) == 1


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def test_five_hosts_converge_survive_a_pulled_cable_and_a_rolling_restart(
    network: netns.NamespaceNetwork, cluster: list[HostNode]
) -> None:
    """5 nodes on 5 addresses join across namespaces and converge; a host cut off is declared dead,
    rejoins and every record acknowledged on either side reaches all; a rolling restart loses nothing."""
    started = time.monotonic()
    first = cluster[0]
    first.start(seed=None)
    first.wait_serving()
    for node in cluster[1:]:
        node.start(seed=first.address)  # the seed is on another host: joining crosses the bridge
    for node in cluster[1:]:
        node.wait_serving()
    serving_s = _since(started)
    eventually(lambda: _all_alive(cluster), timeout_s=WAIT_S, message="five nodes alive in every view")
    alive_s = _since(started)
    eventually(lambda: all(node.keys() for node in cluster), timeout_s=WAIT_S, message="records on every node")
    at_alive = set.union(*(node.keys() for node in cluster))
    eventually(lambda: _converged(cluster, at_alive), timeout_s=WAIT_S, message="identical digests on all five")
    suite_report.record(SECTION, "5 hosts join via --seed across namespaces", serving_s=serving_s, all_alive_s=alive_s,
                        converged_s=_since(started), records=len(cluster[0].keys()))  # fmt: skip

    _cut_and_restore(network, cluster)
    _rolling_restart(cluster)
    suite_report.record(SECTION, "whole test", total_s=_since(started))


def _cut_and_restore(network: netns.NamespaceNetwork, cluster: list[HostNode]) -> None:
    """Pull the last host's cable, wait for the others to declare it dead while both sides produce,
    plug it back; it must rejoin and every record acknowledged on either side reach every node."""
    isolated = cluster[-1]
    others = cluster[:-1]
    at_cut = {node.name: node.keys() for node in cluster}
    network.partition(isolated.host)
    cut_at = time.monotonic()
    eventually(lambda: all(node.members()[isolated.name] == "dead" for node in others), timeout_s=WAIT_S,
               message=f"the four others declare the cut-off {isolated.name} dead")  # fmt: skip
    detect_s = _since(cut_at)

    def both_sides_produce() -> bool:
        others_new = set.union(*(node.keys() - at_cut[node.name] for node in others))
        isolated_new = isolated.keys() - at_cut[isolated.name]
        return bool(others_new - isolated.keys()) and bool(isolated_new - others[0].keys())

    eventually(both_sides_produce, timeout_s=WAIT_S, message="both sides commit new records while cut apart")
    time.sleep(max(0.0, cut_at + MIN_PARTITION_S - time.monotonic()))
    acknowledged = set.union(*(node.keys() for node in cluster))  # committed on either side
    deaths_before_heal = {node.name: set(node.death_verdicts()) for node in cluster}
    network.heal()
    healed_at = time.monotonic()
    window_s = round(healed_at - cut_at, 2)

    eventually(lambda: _all_alive(cluster), timeout_s=WAIT_S, message=f"{isolated.name} alive again in every view")
    rejoin_s = _since(healed_at)
    eventually(lambda: _converged(cluster, acknowledged), timeout_s=WAIT_S,
               message="every record acknowledged on either side on all five, identical digests")  # fmt: skip
    reconverge_s = _since(healed_at)
    lost = len(acknowledged - cluster[0].keys())
    # The connected side declared only the cut-off host dead (what the cut-off host concluded
    # about the others while cut off is about the partition, not a false verdict).
    false_deaths = sum(len(deaths_before_heal[node.name] - {isolated.name}) for node in others)
    suite_report.record(SECTION, "1 of 5 hosts' cable pulled and restored", window_s=window_s, detect_s=detect_s,
                        rejoin_s=rejoin_s, reconverge_s=reconverge_s, acknowledged=len(acknowledged), lost=lost,
                        false_deaths=false_deaths)  # fmt: skip
    assert lost == 0
    assert false_deaths == 0, deaths_before_heal


def _rolling_restart(cluster: list[HostNode]) -> None:
    """Each node in turn: SIGTERM, start again on its data dir in its namespace, alive in every view
    before the next; afterwards every record acknowledged before (or at its stop) is on every node."""
    acknowledged = set.union(*(node.keys() for node in cluster))
    records_before = len(acknowledged)
    verdicts_before = sum(len(node.death_verdicts()) for node in cluster)
    for index, node in enumerate(cluster):
        entries_before = node.entries()
        stopping = time.monotonic()
        old = node.process
        assert old.stop(signal.SIGTERM) == 0, old.output[-3000:]
        stop_s = _since(stopping)
        acknowledged |= node.keys()  # everything it committed, up to its last transaction
        seed = cluster[(index + 1) % len(cluster)].address  # the first node's seed is itself: use a neighbour
        restarted = time.monotonic()
        node.start(seed=seed, max_calls=RESTART_CALLS)
        node.wait_serving()
        serving_s = _since(restarted)
        entries_on_restart = node.entries()  # what it loaded from its data dir (and perhaps a first sync)
        eventually(lambda: _all_alive(cluster), timeout_s=WAIT_S, message=f"{node.name} alive again in every view")
        rejoin_s = _since(restarted)
        suite_report.record(SECTION, f"restart {index + 1}: {node.name}", entries_before=entries_before,
                            entries_on_restart=entries_on_restart, entries_after=node.entries(), stop_s=stop_s,
                            serving_s=serving_s, rejoin_s=rejoin_s)  # fmt: skip
        assert entries_on_restart >= entries_before, f"{node.name} came back with fewer entries"

    settling = time.monotonic()
    eventually(lambda: all(node.producer_stopped() for node in cluster), timeout_s=WAIT_S,
               message="every restarted producer spends its calls")  # fmt: skip
    eventually(lambda: _converged(cluster, acknowledged), timeout_s=WAIT_S,
               message="after the restarts: every acknowledged record on all five, identical digests")  # fmt: skip
    final = [node.keys() for node in cluster]
    lost = len(acknowledged - final[0].intersection(*final[1:]))
    entries_after = {node.entries() for node in cluster}
    # A SIGTERM'd node leaves gracefully: nobody should have declared anybody dead meanwhile.
    false_deaths = sum(len(node.death_verdicts()) for node in cluster) - verdicts_before
    suite_report.record(SECTION, "rolling restart: 5 hosts", records_before=records_before,
                        records_after=len(final[0]), acknowledged=len(acknowledged), lost=lost,
                        entries_after=max(entries_after),
                        false_deaths=false_deaths, settle_s=_since(settling))  # fmt: skip
    assert lost == 0
    assert len(entries_after) == 1, entries_after
    assert false_deaths == 0, {node.name: node.death_verdicts() for node in cluster}
    assert _all_alive(cluster)
