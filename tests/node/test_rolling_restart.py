"""A rolling restart of a 5-node cluster of real processes loses nothing.

Five ``gossip-node`` processes (cluster key, joined by ``--seed``) produce; each in turn gets
SIGTERM, is started again on the same data dir and port, and must be alive in every node's
view before the next one goes. Whatever any node had acknowledged (committed to its SQLite
file, read as an outside auditor would) before the restarts, or when it was stopped, ends up
on every node, and all five end with identical digests of their record sets.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from node.sim_report import committed_keys, set_digest
from tests import suite_report
from tests.node.processes import NodeProcess, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEY_ARGS = ("--cluster-key", "0123456789abcdef-rolling-restart")
TOPIC = "cities of Europe"
# Every start may make this many calls: production overlaps the restarts, then ends, so the
# five record sets can settle and be compared.
NODE_ARGS = ("--universe", "european-cities", "--sim-time-scale", "0.3", "--max-calls", "20", *KEY_ARGS)
NODES = 5
SECTION = "ops: rolling restart"


def _spawn(started: list[NodeProcess], data_dir: Path, *args: str) -> NodeProcess:
    node = NodeProcess(data_dir, *NODE_ARGS, *args, topic=TOPIC)
    started.append(node)
    return node


def _start(started: list[NodeProcess], data_dir: Path, *args: str) -> NodeProcess:
    node = _spawn(started, data_dir, *args)
    node.wait_started()
    return node


def _keys(node: NodeProcess) -> set[str]:
    return set(committed_keys(node.data_dir))


def _all_alive(cluster: list[NodeProcess], names: set[str]) -> bool:
    return all(node.members() == dict.fromkeys(names, "alive") for node in cluster)


def test_a_rolling_restart_of_five_nodes_loses_nothing(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    first = _start(nodes, tmp_path / "n0")
    # The other four start together (only the seed's address had to be known first): a start is
    # mostly CPU-bound imports, so on two cores four at once take about half as long as in turn.
    cluster = [first] + [_spawn(nodes, tmp_path / f"n{index}", "--seed", first.address) for index in range(1, NODES)]
    for node in cluster[1:]:
        node.wait_started()
    names = {node.name() for node in cluster}
    assert len(names) == NODES
    eventually(lambda: _all_alive(cluster, names), timeout_s=60, message="five nodes alive in every view")
    # rejoin_s below: from the new process's start until every node (itself too) shows all five alive.
    eventually(lambda: all(len(_keys(node)) >= 20 for node in cluster), timeout_s=60, message="every node producing")

    acknowledged = set.union(*(_keys(node) for node in cluster))
    entries_before = max(node.get("/api/entries?limit=1")["total"] for node in cluster)
    records_before = len(acknowledged)
    rejoin_s: list[float] = []
    for index in range(NODES):
        old = cluster[index]
        name, port = old.name(), old.address.rsplit(":", 1)[1]
        stop_started = time.monotonic()
        assert old.stop(signal.SIGTERM) == 0, old.output[-3000:]
        stop_s = time.monotonic() - stop_started
        acknowledged |= _keys(old)  # everything it committed, up to its last transaction
        seed = cluster[(index + 1) % NODES].address
        started = time.monotonic()
        new = _start(nodes, old.data_dir, "--port", port, "--seed", seed)
        serving_s = time.monotonic() - started
        assert new.name() == name and new.address == old.address  # same identity, same address
        cluster[index] = new
        eventually(lambda: _all_alive(cluster, names), timeout_s=60, message=f"{name} alive again in every view")
        rejoin_s.append(time.monotonic() - started)
        suite_report.record(SECTION, f"restart {index + 1}: {name}", stop_s=round(stop_s, 2),
                            serving_s=round(serving_s, 2), rejoin_s=round(rejoin_s[-1], 2))  # fmt: skip

    def settled() -> bool:
        sets = [_keys(node) for node in cluster]
        return all(acknowledged <= keys for keys in sets) and len({set_digest(sorted(keys)) for keys in sets}) == 1

    settle_started = time.monotonic()
    # Each start has its own call budget: once every producer has spent it, the sets can only converge.
    eventually(lambda: all("producer stopped:" in node.output for node in cluster), timeout_s=180,
               message="every producer done")  # fmt: skip
    eventually(settled, timeout_s=180, message="every acknowledged record on every node, identical digests")
    final = [_keys(node) for node in cluster]
    lost = len(acknowledged - set.intersection(*final))
    entries_after = {node.get("/api/entries?limit=1")["total"] for node in cluster}
    assert lost == 0
    assert len(entries_after) == 1 and entries_after.pop() >= entries_before
    assert _all_alive(cluster, names)
    suite_report.record(SECTION, "cluster of 5", records_before=records_before, entries_before=entries_before,
                        records_after=len(final[0]), entries_after=cluster[0].get("/api/entries?limit=1")["total"],
                        acknowledged=len(acknowledged), lost=lost, max_rejoin_s=round(max(rejoin_s), 2),
                        settle_s=round(time.monotonic() - settle_started, 1))  # fmt: skip
