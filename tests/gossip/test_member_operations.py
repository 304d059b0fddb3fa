"""What membership tells an operator: each peer's smoothed RTT, why it is suspect, dead or left,
whether peers can reach this node where it advertises itself, and seeds looked up on every join
attempt. On the in-memory network, in virtual time."""

from __future__ import annotations

import random

import pytest

from gossip.auth import Wire
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from gossip.errors import JoinError, TransportError
from gossip.membership import Membership
from gossip.messages import MemberState, Message
from gossip.probing import RTT_GAIN, smoothed_rtt_s
from gossip.testing import InMemoryNetwork, InMemoryTransport, virtual_time
from gossip.transport import Handler
from tests.gossip.membership_harness import CLUSTER_ID, CLUSTER_KEY, Cluster, address_of, eventually, everyone_sees

LOCAL = GossipConfig.local()


@pytest.mark.parametrize(
    ("previous", "sample", "expected"),
    [
        (None, 0.040, 0.040),  # the first sample is taken as is
        (0.040, 0.040, 0.040),  # a steady link stays put
        (0.040, 0.120, 0.040 + RTT_GAIN * 0.080),  # one slow ack moves it an eighth of the way
        (0.100, 0.020, 0.090),
    ],
)
def test_smoothed_rtt_follows_rfc_6298(previous: float | None, sample: float, expected: float) -> None:
    assert smoothed_rtt_s(previous, sample) == pytest.approx(expected)


@virtual_time
async def test_probes_measure_each_peers_round_trip() -> None:
    """With 10 ms each way, every member's smoothed RTT to every other settles near 20 ms."""
    cluster = Cluster(InMemoryNetwork(seed=3, latency_s=0.010), LOCAL)
    try:
        nodes = await cluster.start(3)
        await eventually(lambda: all(m.rtt_s is not None for node in nodes for m in node.membership.members()[1:]),
                         timeout_s=30)  # fmt: skip
        for node in nodes:
            me, *peers = node.membership.members()
            assert me.rtt_s is None  # a node does not probe itself
            for peer in peers:
                assert peer.rtt_s == pytest.approx(0.020, abs=0.002)
                assert peer.reason is None and peer.reason_at is None  # alive: nothing to explain
    finally:
        await cluster.aclose()


@virtual_time
async def test_a_crashed_member_is_explained_as_suspect_then_dead_then_cleared_when_back() -> None:
    """A crash: the detector says 'no ack …', others 'suspected by …'; death says it was not refuted."""
    cluster = Cluster(InMemoryNetwork(seed=5, latency_s=0.002), LOCAL)
    try:
        nodes = await cluster.start(4)
        victim, live = nodes[3], nodes[:3]
        await eventually(lambda: everyone_sees(nodes, {node.name for node in nodes}), timeout_s=30)
        cluster.network.kill(victim.address)

        def seen_as(state: MemberState) -> bool:
            return all(node.membership.member(victim.name).state is state for node in live)

        await eventually(lambda: any(node.membership.member(victim.name).state is MemberState.SUSPECT for node in live),
                         timeout_s=30)  # fmt: skip
        suspicions = [node.membership.member(victim.name) for node in live]
        reasons = [info.reason for info in suspicions if info is not None and info.state is MemberState.SUSPECT]
        assert any(reason is not None and reason.startswith("no ack to direct probes nor to 2 indirect probes")
                   for reason in reasons), reasons  # fmt: skip
        await eventually(lambda: seen_as(MemberState.DEAD), timeout_s=120)
        for node in live:
            info = node.membership.member(victim.name)
            assert info is not None and info.reason is not None and info.reason_at is not None
            assert "; not refuted within" in info.reason or info.reason.startswith("declared dead by"), info.reason
        detectors = [node.membership.member(victim.name).reason for node in live]
        assert any(r is not None and r.startswith("no ack to direct probes") and "; not refuted within " in r
                   for r in detectors), detectors  # fmt: skip

        cluster.network.revive(victim.address)  # back at a higher incarnation: refutes, is alive again
        await eventually(lambda: seen_as(MemberState.ALIVE), timeout_s=120)
        assert all(node.membership.member(victim.name).reason is None for node in live)
    finally:
        await cluster.aclose()


@virtual_time
async def test_a_graceful_leave_is_explained_as_left() -> None:
    cluster = Cluster(InMemoryNetwork(seed=9, latency_s=0.002), LOCAL)
    try:
        nodes = await cluster.start(3)
        await eventually(lambda: everyone_sees(nodes, {node.name for node in nodes}), timeout_s=30)
        await nodes[2].membership.leave(timeout_s=5)
        await cluster.close_node(nodes[2])
        for node in nodes[:2]:
            await eventually(lambda node=node: node.membership.member(nodes[2].name).state is MemberState.LEFT,
                             timeout_s=30)  # fmt: skip
            assert node.membership.member(nodes[2].name).reason == "left"
    finally:
        await cluster.aclose()


class _Misadvertised:
    """A transport that serves at one address while the member claims another (a wrong --advertise)."""

    def __init__(self, inner: InMemoryTransport, claimed: str) -> None:
        self._inner = inner
        self._claimed = claimed

    @property
    def local_address(self) -> str:
        return self._claimed

    async def start(self, handler: Handler) -> None:
        await self._inner.start(handler)

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        return await self._inner.request(address, message, timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self._inner.aclose()


@virtual_time
async def test_peers_tell_a_node_whether_they_reach_it_where_it_advertises() -> None:
    """A well-advertised node is reached by every relay; one advertising a dead address is not."""
    cluster = Cluster(InMemoryNetwork(seed=11, latency_s=0.002), LOCAL)
    stray: Membership | None = None
    try:
        nodes = await cluster.start(3)
        await eventually(lambda: everyone_sees(nodes, {node.name for node in nodes}), timeout_s=30)
        healthy = await nodes[1].membership.check_reachable()
        assert healthy.reached == tuple(sorted([nodes[0].name, nodes[2].name]))
        assert not healthy.unreached and not healthy.unreachable

        address, claimed = address_of(50), "10.9.9.9:1"  # serves at the first, claims the second
        wire = Wire(CLUSTER_ID, key=CLUSTER_KEY, name="stray", address=address, clock=LoopClock().wall)
        transport = _Misadvertised(cluster.network.transport(address, wire), claimed)
        stray = Membership("stray", transport, LOCAL, incarnation=0, rng=random.Random(1))
        await transport.start(stray.handle)
        await stray.start()
        assert await stray.join([nodes[0].address]) == 1  # its requests work: replies need no address
        found = await stray.check_reachable()
        assert found.address == claimed
        assert found.unreachable and not found.reached
        assert set(found.unreached) <= {node.name for node in nodes} and found.unreached
    finally:
        if stray is not None:
            await stray.aclose()
        await cluster.aclose()


@virtual_time
async def test_a_node_with_no_peers_gets_no_verdict() -> None:
    cluster = Cluster(InMemoryNetwork(seed=12), LOCAL)
    try:
        (alone,) = await cluster.start(1)
        found = await alone.membership.check_reachable()
        assert (found.reached, found.unreached, found.silent, found.unreachable) == ((), (), (), False)
    finally:
        await cluster.aclose()


@virtual_time
async def test_join_looks_seeds_up_again_on_every_attempt() -> None:
    """A seed name that does not resolve at first is found once it does, without restarting."""
    cluster = Cluster(InMemoryNetwork(seed=13, latency_s=0.002), LOCAL)
    try:
        (first,) = await cluster.start(1)
        joiner = cluster.add(1)
        await joiner.transport.start(joiner.membership.handle)
        await joiner.membership.start()
        lookups: list[str] = []

        async def resolve(seed: str) -> list[str]:
            lookups.append(seed)
            if len(lookups) < 3:  # the name is not in DNS yet
                raise TransportError(f"cannot resolve {seed.partition(':')[0]}: Name or service not known")
            return [first.address]

        assert await joiner.membership.join(["seed.example:7946"], resolve=resolve) == 1
        assert lookups == ["seed.example:7946"] * 3
        await eventually(lambda: everyone_sees([first, joiner], {first.name, joiner.name}), timeout_s=30)
    finally:
        await cluster.aclose()


@virtual_time
async def test_a_seed_resolving_to_ourselves_starts_a_cluster_and_a_dead_name_fails_clearly() -> None:
    cluster = Cluster(InMemoryNetwork(seed=14), LOCAL)
    try:
        (node,) = await cluster.start(1)

        async def to_ourselves(seed: str) -> list[str]:
            return ["10.77.0.1:7946", node.address]

        assert await node.membership.join(["me.example:7946"], resolve=to_ourselves) == 0

        async def nowhere(seed: str) -> list[str]:
            raise TransportError("cannot resolve gone.example: Name or service not known")

        with pytest.raises(JoinError, match="gone.example:7946: cannot resolve gone.example"):
            await node.membership.join(["gone.example:7946"], timeout_s=3, resolve=nowhere)
    finally:
        await cluster.aclose()


@virtual_time
async def test_a_seed_resolving_to_every_member_ourselves_included_joins_through_the_others() -> None:
    """A headless service name lists every pod, this one too: it joins the others, not a cluster of one."""
    cluster = Cluster(InMemoryNetwork(seed=15, latency_s=0.002), LOCAL)
    try:
        (first,) = await cluster.start(1)
        joiner = cluster.add(1)
        await joiner.transport.start(joiner.membership.handle)
        await joiner.membership.start()

        async def every_pod(seed: str) -> list[str]:
            return [joiner.address, first.address]

        assert await joiner.membership.join(["swarm-headless:7946"], resolve=every_pod) == 1
        await eventually(lambda: everyone_sees([first, joiner], {first.name, joiner.name}), timeout_s=30)
    finally:
        await cluster.aclose()
