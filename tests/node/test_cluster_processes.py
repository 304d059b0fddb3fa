"""Real processes: gossip-node instances on loopback find each other, detect a death, refuse strangers."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from node.normalize import normal_form

from tests.node.processes import NodeProcess, eventually

pytestmark = pytest.mark.slow

KEY_ARGS = ("--cluster-key", "0123456789abcdef-test-key")


def _spawn(nodes: list[NodeProcess], data_dir: Path, *args: str, topic: str = "countries of the world") -> NodeProcess:
    node = NodeProcess(data_dir, "--sim-time-scale", "0.5", *args, topic=topic)
    nodes.append(node)
    return node


def _start(nodes: list[NodeProcess], data_dir: Path, *args: str, topic: str = "countries of the world") -> NodeProcess:
    node = _spawn(nodes, data_dir, *args, topic=topic)
    node.wait_started()
    return node


def _start_together(*spawned: NodeProcess) -> None:
    """Wait until each of nodes spawned at once serves: a start is mostly CPU-bound imports, so
    nodes that only need the seed's address start together, not in turn."""
    for node in spawned:
        node.wait_started()


def test_three_nodes_join_detect_a_death_and_readmit_the_restarted_node(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Joined via --seed, all see 3 alive; a SIGKILLed node is declared dead; restarted, it is alive again."""
    first = _start(nodes, tmp_path / "a", *KEY_ARGS)
    second = _spawn(nodes, tmp_path / "b", *KEY_ARGS, "--seed", first.address)
    third = _spawn(nodes, tmp_path / "c", *KEY_ARGS, "--seed", first.address)
    _start_together(second, third)
    names = {node.name() for node in (first, second, third)}
    for node in (first, second, third):
        eventually(lambda node=node: node.members() == dict.fromkeys(names, "alive"), message=f"{node.url} sees all alive")
    victim = second.name()
    second.stop(signal.SIGKILL)
    for node in (first, third):
        eventually(lambda node=node: node.members().get(victim) == "dead", message=f"{node.url} marks {victim} dead")
    restarted = _start(nodes, tmp_path / "b", *KEY_ARGS, "--seed", third.address)
    assert restarted.name() == victim  # the data dir keeps the identity
    for node in (first, third, restarted):
        eventually(lambda node=node: node.members() == dict.fromkeys(names, "alive"), message=f"{node.url} readmits")


def test_wrong_key_and_another_topic_are_refused_and_change_nothing(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """A node with the wrong cluster key or another topic cannot join; the cluster's view is unchanged."""
    first = _start(nodes, tmp_path / "a", *KEY_ARGS)
    before = first.members()
    wrong_key = _spawn(nodes, tmp_path / "b", "--cluster-key", "another-secret-of-16+", "--seed", first.address)
    other_topic = _spawn(nodes, tmp_path / "c", *KEY_ARGS, "--seed", first.address, topic="rivers of the world")
    _start_together(wrong_key, other_topic)
    for stranger, reason in ((wrong_key, "refused"), (other_topic, "belongs to cluster")):
        eventually(lambda s=stranger: "could not join the cluster" in s.output, message="join refused")
        assert reason in stranger.output
        assert set(stranger.members()) == {stranger.name()}
    assert first.members() == before


def test_entries_found_on_each_node_reach_every_node(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """Dissemination: every node's own entries appear on all three, and the lists converge."""
    first = _start(nodes, tmp_path / "a", *KEY_ARGS, "--rng-seed", "1")
    others = [_spawn(nodes, tmp_path / name, *KEY_ARGS, "--seed", first.address, "--rng-seed", str(seed))
              for name, seed in (("b", 2), ("c", 3))]  # fmt: skip
    _start_together(*others)
    everyone = [first, *others]
    names = {node.name() for node in everyone}

    def origins_everywhere() -> bool:
        for node in everyone:
            page = node.get("/api/entries?limit=1000")
            if {entry["origin"] for entry in page["entries"]} != names:
                return False
        return True

    eventually(origins_everywhere, timeout_s=60, message="each node's entries on every node")

    def listed(node: NodeProcess) -> set[str]:
        """Normal forms of every entry the node holds, canonical lines and aliases (two records of
        one entry may differ in display text until they meet; their normal form is the same)."""
        entries = node.get("/api/entries?limit=1000")["entries"]
        texts = [entry["text"] for entry in entries] + [alias for entry in entries for alias in entry["aliases"]]
        return {normal_form(text) for text in texts}

    # Entries found after everyone joined reach everyone within seconds. (Entries from before a
    # node joined reach it only through anti-entropy, which is not push dissemination's job.)
    before = set.union(*(listed(node) for node in everyone))
    eventually(lambda: len(set.union(*(listed(node) for node in everyone)) - before) >= 10, timeout_s=30,
               message="the nodes keep finding entries")  # fmt: skip
    fresh = set.union(*(listed(node) for node in everyone)) - before
    eventually(lambda: all(fresh <= listed(node) for node in everyone), timeout_s=20,
               message="entries found after the join reach every node")  # fmt: skip

    # What the model wrote rides beside each observation record (pushed, not in the set): a
    # peer's call is explained on this node with its texts, not only its counts.
    def a_peers_call_is_shown_with_its_texts() -> bool:
        peers_entries = [entry for entry in first.get("/api/entries?limit=1000")["entries"]
                         if entry["origin"] != first.name()][:50]  # fmt: skip
        for entry in peers_entries:
            found = first.get(f"/api/entries/{entry['id']}")
            if any(seen["node"] != first.name() and seen["text"] for seen in found["observations"]):
                return True
        return False

    eventually(a_peers_call_is_shown_with_its_texts, timeout_s=20, message="a peer's call shown with its texts")
