"""Protocol versions: a node refuses a peer of another version, both sides say so clearly, nothing changes.

In memory, two ``Wire``s of different versions stand for two releases; between real processes
the test-only ``SWARMLIST_PROTOCOL_VERSION`` makes a ``gossip-node`` claim version 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from gossip import messages
from gossip.auth import Refusal, Wire
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from gossip.errors import JoinError, ProtocolError, VersionMismatch
from gossip.http_transport import AiohttpTransport
from gossip.membership import Membership
from gossip.messages import PROTOCOL_VERSION, PROTOCOL_VERSION_ENV, NONCE_BYTES, Ack, Message, Ping, decode_frame
from gossip.testing import InMemoryNetwork, virtual_time
from gossip.transport import Sender
from tests import suite_report
from tests.gossip.membership_harness import CLUSTER_ID, CLUSTER_KEY, Cluster, Node, Recorder
from tests.node.processes import NodeProcess, eventually

OTHER_VERSION = PROTOCOL_VERSION + 1


def _wire(name: str, version: int, *, address: str = "10.0.0.9:7946") -> Wire:
    return Wire(CLUSTER_ID, key=CLUSTER_KEY, name=name, address=address, version=version)


# ------------------------------------------------------------------ the version, and its override


@pytest.mark.slow
def test_the_override_is_read_at_import_and_a_bad_value_stops_the_process(tmp_path: Path) -> None:
    """SWARMLIST_PROTOCOL_VERSION=7 makes the process speak 7; a value that is no version is refused at once."""
    probe = [sys.executable, "-c", "import gossip.messages as m; print(m.PROTOCOL_VERSION)"]
    base = {key: value for key, value in os.environ.items() if key != PROTOCOL_VERSION_ENV}
    plain = subprocess.run(probe, capture_output=True, text=True, timeout=60, env=base, cwd=tmp_path)
    assert plain.stdout.strip() == str(messages._RELEASED_PROTOCOL_VERSION) == "3"
    seven = subprocess.run(probe, capture_output=True, text=True, timeout=60, env={**base, PROTOCOL_VERSION_ENV: "7"})
    assert seven.stdout.strip() == "7"
    bad = subprocess.run(probe, capture_output=True, text=True, timeout=60, env={**base, PROTOCOL_VERSION_ENV: "two"})
    assert bad.returncode != 0 and "SWARMLIST_PROTOCOL_VERSION='two'" in bad.stderr


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "²", "9" * 11, "4294967296"])
def test_an_override_that_is_not_a_positive_32_bit_version_is_refused(value: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(PROTOCOL_VERSION_ENV, value)
    with pytest.raises(ValueError, match="test-only override"):
        messages._protocol_version()


@pytest.mark.parametrize(("value", "version"), [("", 3), (" 2 ", 2), ("4294967295", 4294967295)])
def test_an_empty_override_means_the_released_version(value: str, version: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(PROTOCOL_VERSION_ENV, value)
    assert messages._protocol_version() == version


# ------------------------------------------------------------------ one message, both sides


def test_a_frame_of_another_version_is_refused_naming_both_versions_and_the_sender() -> None:
    """The receiver's error says which version came, which it speaks, and who sent it."""
    sealed = _wire("n9", OTHER_VERSION, address="10.0.0.9:7946").seal(Ping(1, "n0"))
    with pytest.raises(VersionMismatch) as refused:
        _wire("n0", PROTOCOL_VERSION).open(sealed)
    assert (refused.value.peer_version, refused.value.own_version) == (OTHER_VERSION, PROTOCOL_VERSION)
    assert str(refused.value) == (f"protocol version {OTHER_VERSION} is not supported (this node speaks version "
                                  f"{PROTOCOL_VERSION}); sent by 'n9' at '10.0.0.9:7946'")  # fmt: skip
    assert isinstance(refused.value, ProtocolError)  # refused as invalid, as every release did (HTTP 400)


def test_a_frame_laid_out_otherwise_is_refused_by_version_without_reading_the_rest() -> None:
    """Another version may lay the frame out differently: the version alone decides, nobody is named."""
    with pytest.raises(VersionMismatch, match=r"^protocol version 9 is not supported \(this node speaks version 1\)$"):
        decode_frame(msgpack.packb([9, {"a": "map"}, b"x" * NONCE_BYTES]), version=1)


def test_the_refusal_tells_the_caller_both_versions() -> None:
    """Refused side → Refusal (as it travels back) → the caller's error, in the caller's words."""
    sealed = _wire("n9", 2).seal(Ping(1, "n0"))
    with pytest.raises(VersionMismatch) as refused:
        _wire("n0", 1).open(sealed)
    refusal = Refusal.of(refused.value, cluster=CLUSTER_ID)
    assert (refusal.status, refusal.version, refusal.sender_version) == (400, 1, 2)
    error = refusal.error("10.0.0.1:7946", cluster=CLUSTER_ID)
    assert isinstance(error, VersionMismatch)
    assert str(error).startswith("peer 10.0.0.1:7946 speaks protocol version 1, this node speaks 2")
    assert (error.peer_version, error.own_version) == (1, 2)


def test_a_plain_400_from_a_peer_that_names_no_version_stays_a_protocol_error() -> None:
    """An older receiver's refusal carries no versions: the caller reports it as it always did."""
    error = Refusal(400, "protocol version 2 is not supported (this node speaks version 1)").error("p:1", cluster="c")
    assert type(error) is ProtocolError and "refused our message as invalid" in str(error)


# ------------------------------------------------------------------ joining, in memory


def _stranger(cluster: Cluster, version: int) -> Node:
    """Node 9 of ``cluster``'s network, speaking ``version`` (the harness's nodes speak PROTOCOL_VERSION)."""
    name, address = "n009", "10.0.0.10:7946"
    wire = Wire(CLUSTER_ID, key=CLUSTER_KEY, name=name, address=address, clock=LoopClock().wall, version=version)
    transport = cluster.network.transport(address, wire)
    membership = Membership(name, transport, cluster.config, incarnation=0, rng=random.Random(9),
                            delegate=Recorder(name, cluster.events))  # fmt: skip
    node = Node(name, address, transport, membership)
    cluster.nodes[name] = node
    return node


@pytest.mark.parametrize("stranger_version", [OTHER_VERSION, PROTOCOL_VERSION + 100])
@virtual_time
async def test_a_joiner_of_another_version_is_refused_at_once_and_the_cluster_is_unchanged(
    stranger_version: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Every seed refuses the join for its version: JoinError at once (no retrying), both
    versions named; the refusing side logs one line; nobody's view changes."""
    cluster = Cluster(InMemoryNetwork(seed=3), GossipConfig.local())
    first, second = await cluster.start(2)
    views = {node.name: node.view() for node in (first, second)}
    stranger = _stranger(cluster, stranger_version)
    await stranger.transport.start(stranger.membership.handle)
    await stranger.membership.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="gossip.testing"):
        with pytest.raises(JoinError) as refused:
            await stranger.membership.join([first.address, second.address])
        assert loop.time() - started < 1.0  # refused, not timed out (the local profile retries for 10 s)
        await asyncio.sleep(10 * cluster.config.probe_interval_s)
    message = str(refused.value)
    assert "every seed refused us, 1 attempt" in message
    for node in (first, second):
        expected = f"peer {node.address} speaks protocol version {PROTOCOL_VERSION}, this node speaks {stranger_version}"
        assert expected in message
        assert node.view() == views[node.name]
    assert set(stranger.view()) == {stranger.name}
    refusals = [record.getMessage() for record in caplog.records
                if f"protocol version {stranger_version} is not" in record.getMessage()]  # fmt: skip
    assert len(refusals) == 2, refusals  # one line on each refusing node
    await cluster.aclose()


@virtual_time
async def test_a_seed_of_another_version_refuses_a_joiner_of_this_one() -> None:
    """The other direction: an upgraded seed refuses an old joiner, which is told the seed's version."""
    cluster = Cluster(InMemoryNetwork(seed=4), GossipConfig.local())
    seed = _stranger(cluster, OTHER_VERSION)
    await seed.transport.start(seed.membership.handle)
    await seed.membership.start()
    joiner = cluster.add(0)
    expected = f"speaks protocol version {OTHER_VERSION}, this node speaks {PROTOCOL_VERSION}"
    with pytest.raises(JoinError, match=expected):
        await cluster.start_node(joiner, [seed.address])
    assert set(seed.view()) == {seed.name} and set(joiner.view()) == {joiner.name}
    await cluster.aclose()


# ------------------------------------------------------------------ over HTTP on loopback


class _Answering:
    """Answers every Ping with an Ack; counts what it was handed."""

    def __init__(self) -> None:
        self.handled = 0

    async def __call__(self, message: Message, sender: Sender) -> Message | None:
        self.handled += 1
        return Ack(message.seq) if isinstance(message, Ping) else None


@pytest.fixture
async def transports() -> AsyncIterator[list[AiohttpTransport]]:
    made: list[AiohttpTransport] = []
    yield made
    for transport in made:
        await transport.aclose()


@pytest.mark.slow
async def test_over_http_the_versions_travel_back_in_the_refusal(transports: list[AiohttpTransport],
                                                                 caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """A v1 server refuses a v2 client with 400 and both versions; the handler never runs; one log line."""
    handler = _Answering()
    server = AiohttpTransport(Wire("c1", key=CLUSTER_KEY, name="old", address="127.0.0.1:1", version=1),
                              host="127.0.0.1", port=0)  # fmt: skip
    client = AiohttpTransport(Wire("c1", key=CLUSTER_KEY, name="new", address="127.0.0.1:2", version=2))
    transports += [server, client]
    await server.start(handler)
    with caplog.at_level(logging.WARNING, logger="gossip.http_transport"):
        for seq in range(3):
            with pytest.raises(VersionMismatch, match=f"peer {server.local_address} speaks protocol version 1, "
                                                      "this node speaks 2"):  # fmt: skip
                await client.request(server.local_address, Ping(seq, "old"), timeout_s=5)
    assert handler.handled == 0
    lines = [r.getMessage() for r in caplog.records if "protocol version 2 is not supported" in r.getMessage()]
    assert lines == ["refused gossip from 127.0.0.1: 400 protocol version 2 is not supported (this node speaks "
                     "version 1); sent by 'new' at '127.0.0.1:2'"]  # fmt: skip


# ------------------------------------------------------------------ real processes

KEY_ARGS = ("--cluster-key", "0123456789abcdef-test-key")


def _start(nodes: list[NodeProcess], data_dir: Path, *args: str) -> NodeProcess:
    node = NodeProcess(data_dir, "--sim-time-scale", "0.5", *KEY_ARGS, *args)
    nodes.append(node)
    node.wait_started()
    return node


@pytest.mark.slow
def test_a_real_node_of_another_version_is_refused_and_the_cluster_is_unchanged(
    tmp_path: Path, nodes: list[NodeProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gossip-node with SWARMLIST_PROTOCOL_VERSION=2 cannot join a version-1 cluster: its log names both
    versions, the seed logs one line naming it, and the cluster's membership view is as before."""
    first = _start(nodes, tmp_path / "a")
    second = _start(nodes, tmp_path / "b", "--seed", first.address)
    cluster = {first.name(), second.name()}
    for node in (first, second):
        eventually(lambda node=node: node.members() == dict.fromkeys(cluster, "alive"), message="two alive")
    monkeypatch.setenv(PROTOCOL_VERSION_ENV, str(OTHER_VERSION))
    started = time.monotonic()
    newer = _start(nodes, tmp_path / "c", "--seed", first.address)
    monkeypatch.delenv(PROTOCOL_VERSION_ENV)
    eventually(lambda: "could not join the cluster" in newer.output, timeout_s=30, message="the join is refused")
    refused_after_s = time.monotonic() - started  # from the process's start: the local profile would retry for 10 s
    assert (f"peer {first.address} speaks protocol version {PROTOCOL_VERSION}, this node speaks {OTHER_VERSION}"
            in newer.output), newer.output  # fmt: skip
    assert "every seed refused us" in newer.output  # at once: no retrying for the join timeout
    assert set(newer.members()) == {newer.name()}
    refused = f"protocol version {OTHER_VERSION} is not supported"
    refusals = [line for line in first.output.splitlines() if refused in line]
    assert len(refusals) == 1 and f"sent by '{newer.name()}'" in refusals[0], first.output
    # Several protocol periods later, nobody has heard of the newer node.
    for _ in range(3):
        for node in (first, second):
            assert node.members() == dict.fromkeys(cluster, "alive")
        time.sleep(1.0)
    suite_report.record("ops: protocol versions", "v2 node joining a v1 cluster (real processes)",
                        refused_after_s=round(refused_after_s, 2), refusal_lines_on_seed=len(refusals),
                        cluster_view_changed=0)  # fmt: skip
