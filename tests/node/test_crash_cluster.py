"""Real processes: three gossip-node processes, kill -9 of random nodes at random moments, nothing lost.

issue #13: after each restart on its data dir the cluster heals; in the end every node holds
every record any node had acknowledged before a kill, the digests are identical and so are
the ``list.jsonl`` files, byte for byte. What a victim had acknowledged is read from its own
store right after its death (every committed record), and what every node listed just before
a kill is captured from its API. Measured per kill: the restart (spawn to serving) and the
reconvergence (spawn until every node lists everything acknowledged before the kill).
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossip.digest import digest_of
from node.export import LIST_FILENAME

from tests import suite_report
from tests.node.crash_harness import listed_ids, read_list, stored
from tests.node.processes import NodeProcess, eventually

pytestmark = pytest.mark.slow

SECTION = "reliability: crashes"
TOPIC = "countries of the world"  # NodeProcess's default topic, on the countries universe
KEY_ARGS = ("--cluster-key", "0123456789abcdef-crash-key")
KILLS = 3
SEED = 1313
# A call takes ~0.5 s: a node produces for several seconds after each start (its --max-calls
# budget is per process), so kills land mid-production, and the run still ends within seconds.
NODE_ARGS = ("--sim-time-scale", "0.3", "--max-calls", "24", *KEY_ARGS)


@pytest.fixture
def started() -> Iterator[list[NodeProcess]]:
    """Every node process the test starts; all are killed at the end, even when the test fails."""
    processes: list[NodeProcess] = []
    yield processes
    for process in processes:
        process.stop(signal.SIGKILL)


def _start(started: list[NodeProcess], data_dir: Path, seed: int, *args: str) -> NodeProcess:
    node = NodeProcess(data_dir, *NODE_ARGS, "--rng-seed", str(seed), *args)
    started.append(node)
    return node


def _export(node: NodeProcess) -> str:
    with urllib.request.urlopen(node.url + "/api/export?format=jsonl", timeout=10) as response:
        return str(response.read().decode("utf-8"))


def _listed(node: NodeProcess) -> set[str]:
    return listed_ids([json.loads(line) for line in _export(node).splitlines()])


def _producing(node: NodeProcess) -> bool:
    return node.get("/api/metrics").get("stopped") is None


def _digests_equal_everywhere(everyone: list[NodeProcess]) -> bool:
    """Each node's anti-entropy finds its digest equal to each peer's latest summary, and all are done producing."""
    for node in everyone:
        if _producing(node):
            return False
        convergence = node.get("/api/convergence")
        if not convergence.get("available") or len(convergence["nodes"]) != len(everyone):
            return False
        if any(difference != 0 for difference in convergence["difference"][0]):
            return False
    return True


def test_kill_9_of_random_nodes_loses_nothing_and_the_cluster_reconverges(
    tmp_path: Path, started: list[NodeProcess]
) -> None:
    """Random SIGKILLs of random nodes while the cluster produces: after healing every node holds
    every record acknowledged before a kill, with identical digests and identical list.jsonl."""
    rng = random.Random(SEED)
    began = time.monotonic()
    dirs = {name: tmp_path / name for name in ("a", "b", "c")}
    seeds = {"a": 1, "b": 2, "c": 3}
    first = _start(started, dirs["a"], seeds["a"])
    first.wait_started()
    nodes = {"a": first}
    for name in ("b", "c"):
        nodes[name] = _start(started, dirs[name], seeds[name], "--seed", first.address)
    for node in nodes.values():
        node.wait_started()

    acknowledged_keys: set[str] = set()  # every record a victim had committed when it died
    listed_before: set[str] = set()  # every entry any node listed just before a kill
    reconverge_s: list[float] = []
    restart_s: list[float] = []
    producing_victims = 0
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.2, 1.5))
        producing = {name for name, node in nodes.items() if _producing(node)}
        victim = rng.choice(sorted(producing or nodes))  # a producing node when there is one
        listed_now = {name: _listed(node) for name, node in nodes.items()}
        listed_before.update(*listed_now.values())
        producing_victims += _producing(nodes[victim])
        nodes[victim].stop(signal.SIGKILL)
        held = stored(dirs[victim], topic=TOPIC)  # opens as the restart will, then shows all it committed
        acknowledged_keys |= held.keys
        assert listed_now[victim] <= held.entries, "the victim's API showed an entry it had not committed"
        assert listed_ids(read_list(dirs[victim] / LIST_FILENAME)) <= held.entries  # whole, and only committed entries

        restarted_at = time.monotonic()
        peer = next(node for name, node in nodes.items() if name != victim)
        nodes[victim] = _start(started, dirs[victim], seeds[victim], "--seed", peer.address)
        nodes[victim].wait_started()
        restart_s.append(time.monotonic() - restarted_at)
        wanted = listed_before | held.entries
        eventually(lambda: all(wanted <= _listed(node) for node in nodes.values()), timeout_s=60,
                   message=f"every node lists what was acknowledged before {victim} was killed")  # fmt: skip
        reconverge_s.append(time.monotonic() - restarted_at)

    everyone = list(nodes.values())
    healing = time.monotonic()
    eventually(lambda: _digests_equal_everywhere(everyone), timeout_s=90, message="identical digests, producing over")
    healed_s = time.monotonic() - healing
    eventually(lambda: len({_export(node) for node in everyone}) == 1, timeout_s=30, message="identical lists")
    eventually(lambda: len({(dir_ / LIST_FILENAME).read_bytes() for dir_ in dirs.values()}) == 1, timeout_s=30,
               message="byte-identical list.jsonl files once each node's debounced rewrite ran")  # fmt: skip
    for node in everyone:
        assert node.stop(signal.SIGTERM) == 0, node.output

    final = {name: stored(dir_, topic=TOPIC) for name, dir_ in dirs.items()}
    lost = {name: len(acknowledged_keys - held.keys) for name, held in final.items()}
    assert all(count == 0 for count in lost.values()), f"acknowledged records missing: {lost}"
    digests = {name: digest_of(bytes.fromhex(key) for key in held.keys) for name, held in final.items()}
    assert len(set(digests.values())) == 1, f"digests differ: {digests}"
    lists = {name: (dir_ / LIST_FILENAME).read_bytes() for name, dir_ in dirs.items()}
    assert len(set(lists.values())) == 1, "list.jsonl files differ after the final write"
    assert listed_before <= listed_ids(read_list(dirs["a"] / LIST_FILENAME)), "an entry listed before a kill is gone"
    suite_report.record(
        SECTION, "kill -9 in a 3-process cluster", kills=KILLS, **{"victims producing": producing_victims},
        acknowledged=len(acknowledged_keys), lost=0, records=digests["a"].count,
        **{"restart s p50": round(statistics.median(restart_s), 2), "restart s max": round(max(restart_s), 2),
           "reconverge s p50": round(statistics.median(reconverge_s), 2),
           "reconverge s max": round(max(reconverge_s), 2), "final heal s": round(healed_s, 2)},
        seconds=round(time.monotonic() - began, 1),
    )  # fmt: skip
