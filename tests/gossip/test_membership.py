"""SWIM + Lifeguard membership: the member table's rules, then the protocol on an in-memory network.

Everything runs on ``gossip.testing``'s virtual-time loop: minutes of protocol take
milliseconds of real time, and a seed gives the same run every time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Callable

import pytest

from gossip.config import GossipConfig
from gossip.errors import JoinError, ProtocolError, RequestTimeout, TransportError
from gossip.membership import MemberInfo, Membership, push_pull_interval_s
from gossip.messages import (MAX_INCARNATION, Ack, MemberState, MemberUpdate, Message, Nack, Payloads, Ping,
                             PingReq, PushPull, encode_message)  # fmt: skip
from gossip.testing import InMemoryNetwork, run_virtual, virtual_time
from gossip.transport import Sender, Transport
from tests.gossip.membership_harness import (Cluster, Recorder, address_of, eventually, everyone_sees,
                                             swim_detection_bound_s)  # fmt: skip

ME = "me"
MY_ADDRESS = "10.9.9.9:7946"
LAN = GossipConfig.lan()
ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT
PEER = Sender("peer", "10.1.1.1:7946")

Responder = Callable[[str, Message], Message | None]


class FakeTransport:
    """Records every request; answers with ``responder`` (None = no answer: the request times out).

    Without a responder every peer is unreachable.
    """

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.sent: list[tuple[str, Message]] = []

    @property
    def local_address(self) -> str:
        return MY_ADDRESS

    async def start(self, handler: object) -> None:
        pass

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        self.sent.append((address, message))
        if self.responder is None:
            raise TransportError(f"connection refused by {address}")
        reply = self.responder(address, message)
        if reply is None:
            await asyncio.sleep(timeout_s)
            raise RequestTimeout(f"no reply from {address}")
        return reply

    async def aclose(self) -> None:
        pass


def ack_everything(address: str, message: Message) -> Message | None:
    if isinstance(message, Ping | PingReq):
        return Ack(message.seq)
    if isinstance(message, PushPull):
        return PushPull(())
    return None


def make(transport: Transport | None = None, *, config: GossipConfig = LAN, incarnation: int = 0,
         events: list[str] | None = None) -> Membership:  # fmt: skip
    delegate = None if events is None else _ListDelegate(events)
    return Membership(ME, transport or FakeTransport(), config, incarnation=incarnation, rng=random.Random(1),
                      delegate=delegate)  # fmt: skip


class _ListDelegate:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def on_join(self, member: MemberInfo) -> None:
        self.events.append(f"join {member.name} {member.state_name} {member.incarnation}")

    def on_leave(self, member: MemberInfo) -> None:
        self.events.append(f"leave {member.name} {member.state_name} {member.incarnation}")

    def on_update(self, member: MemberInfo) -> None:
        self.events.append(f"update {member.name} {member.state_name} {member.incarnation}")


def update(name: str, state: MemberState, incarnation: int, source: str = "accuser") -> MemberUpdate:
    return MemberUpdate(name, f"addr-of-{name}:7946", incarnation, state, source if state is not ALIVE else "")


async def tell(membership: Membership, *updates: MemberUpdate, sender: Sender = PEER) -> Message | None:
    """Deliver rumours the way a peer does: piggybacked on a ping to us."""
    return await membership.handle(Ping(1, ME, updates), sender)


async def add_members(membership: Membership, *names: str) -> None:
    await tell(membership, *(update(name, ALIVE, 0) for name in names))


def state_of(membership: Membership, name: str) -> tuple[MemberState, int] | None:
    member = membership.member(name)
    return None if member is None else (member.state, member.incarnation)


async def wait(seconds: float) -> None:
    await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------- the member table

ESTABLISH = {  # the rumours that put member "x" in a state at incarnation 5
    ALIVE: [update("x", ALIVE, 5)],
    SUSPECT: [update("x", ALIVE, 5), update("x", SUSPECT, 5)],
    DEAD: [update("x", ALIVE, 5), update("x", DEAD, 5)],
    LEFT: [update("x", ALIVE, 5), update("x", LEFT, 5)],
}


@pytest.mark.parametrize(
    ("known", "rumour", "incarnation", "expected"),
    [
        (ALIVE, ALIVE, 6, (ALIVE, 6)),  # ALIVE(i) overrides iff i > j
        (ALIVE, ALIVE, 5, (ALIVE, 5)),
        (ALIVE, ALIVE, 4, (ALIVE, 5)),
        (ALIVE, SUSPECT, 5, (SUSPECT, 5)),  # SUSPECT(i) overrides ALIVE(j) iff i >= j
        (ALIVE, SUSPECT, 6, (SUSPECT, 6)),
        (ALIVE, SUSPECT, 4, (ALIVE, 5)),
        (SUSPECT, ALIVE, 5, (SUSPECT, 5)),  # a refutation needs a higher incarnation
        (SUSPECT, ALIVE, 6, (ALIVE, 6)),
        (SUSPECT, SUSPECT, 6, (SUSPECT, 6)),
        (ALIVE, DEAD, 5, (DEAD, 5)),  # DEAD/LEFT(i) override ALIVE and SUSPECT(j) iff i >= j
        (ALIVE, DEAD, 4, (ALIVE, 5)),
        (SUSPECT, DEAD, 5, (DEAD, 5)),
        (SUSPECT, DEAD, 4, (SUSPECT, 5)),
        (ALIVE, LEFT, 5, (LEFT, 5)),
        (SUSPECT, LEFT, 6, (LEFT, 6)),
        (DEAD, ALIVE, 5, (DEAD, 5)),  # only a newer ALIVE revives: a restart
        (DEAD, ALIVE, 6, (ALIVE, 6)),
        (DEAD, SUSPECT, 6, (DEAD, 5)),
        (DEAD, DEAD, 6, (DEAD, 5)),
        (DEAD, LEFT, 6, (LEFT, 6)),  # a leave announced after a (wrong) death verdict is kept
        (LEFT, ALIVE, 6, (ALIVE, 6)),
        (LEFT, SUSPECT, 7, (LEFT, 5)),
        (LEFT, DEAD, 7, (LEFT, 5)),
    ],
)
@virtual_time
async def test_precedence_rules(known: MemberState, rumour: MemberState, incarnation: int,
                                expected: tuple[MemberState, int]) -> None:  # fmt: skip
    """memberlist's precedence between alive, suspect, dead and left rumours."""
    membership = make()
    await tell(membership, *ESTABLISH[known])
    assert state_of(membership, "x") == (known, 5)
    await tell(membership, update("x", rumour, incarnation))
    assert state_of(membership, "x") == expected
    await membership.aclose()


@pytest.mark.parametrize("rumour", [SUSPECT, DEAD, LEFT])
@virtual_time
async def test_only_an_alive_rumour_introduces_a_member(rumour: MemberState) -> None:
    """Suspicion or death of a member we never heard of is ignored (it cannot be probed)."""
    membership = make()
    await tell(membership, update("ghost", rumour, 3))
    assert membership.member("ghost") is None
    await tell(membership, update("ghost", ALIVE, 0))
    assert state_of(membership, "ghost") == (ALIVE, 0)


@virtual_time
async def test_delegate_hears_joins_updates_and_leaves() -> None:
    """New and revived members are joins, suspicion and its clearing updates, deaths leaves."""
    events: list[str] = []
    membership = make(events=events)
    await tell(membership, update("x", ALIVE, 0))
    await tell(membership, update("x", SUSPECT, 0))
    await tell(membership, update("x", ALIVE, 1))
    await tell(membership, update("x", DEAD, 1))
    await tell(membership, update("x", ALIVE, 2))
    await tell(membership, update("x", LEFT, 2))
    assert events == [
        "join x alive 0",
        "update x suspect 0",
        "update x alive 1",
        "leave x dead 1",
        "join x alive 2",
        "leave x left 2",
    ]
    await membership.aclose()


@virtual_time
async def test_cluster_size_counts_alive_and_suspect_members_through_every_transition() -> None:
    """The N of the formulas follows joins, suspicions, deaths, leaves, revivals and repeats."""
    membership = make()
    script = [
        update("a", ALIVE, 0), update("b", ALIVE, 0), update("c", ALIVE, 0), update("a", ALIVE, 0),
        update("a", SUSPECT, 0), update("a", SUSPECT, 0, source="other"), update("b", DEAD, 0),
        update("b", DEAD, 0), update("c", LEFT, 0), update("b", ALIVE, 1), update("a", DEAD, 0),
        update("b", LEFT, 1), update("b", LEFT, 2), update("a", ALIVE, 3), update("a", SUSPECT, 3),
    ]
    for rumour in script:
        await tell(membership, rumour)
        metrics = membership.metrics()
        assert metrics["cluster_size"] == metrics["members_alive"] + metrics["members_suspect"]
    assert membership.metrics()["cluster_size"] == 2  # us and a (suspect)
    await membership.aclose()


@virtual_time
async def test_a_failing_delegate_does_not_break_membership(caplog: pytest.LogCaptureFixture) -> None:
    """A delegate's exception is logged and the change still happens."""

    class Exploding(Recorder):
        def on_join(self, member: MemberInfo) -> None:
            raise RuntimeError("delegate bug")

    membership = Membership(ME, FakeTransport(), LAN, incarnation=0, rng=random.Random(1),
                            delegate=Exploding(ME, []))  # fmt: skip
    reply = await tell(membership, update("x", ALIVE, 0))
    assert isinstance(reply, Ack)
    assert state_of(membership, "x") == (ALIVE, 0)
    assert "delegate on_join(x) failed" in caplog.text


@virtual_time
async def test_members_lists_itself_first_with_wall_clock_times() -> None:
    """members() includes this node (first), then the others by name; last_heard is wall time."""
    membership = make(incarnation=3)
    await add_members(membership, "b", "a")
    members = membership.members()
    assert [(m.name, m.state_name, m.incarnation) for m in members] == [
        (ME, "alive", 3), ("a", "alive", 0), ("b", "alive", 0)]  # fmt: skip
    assert members[0].address == MY_ADDRESS
    assert all(m.last_heard > 1_000_000_000 for m in members)  # seconds since the epoch
    assert all(m.is_live for m in members)
    assert repr(membership) == "<Membership me alive=3 suspect=0 queue=2>"


# ---------------------------------------------------------------------------- refutation

@virtual_time
async def test_suspicion_of_ourselves_is_refuted_with_a_higher_incarnation() -> None:
    """We bump our incarnation above the accusation and the refutation rides on the very ack."""
    membership = make(incarnation=2)
    reply = await tell(membership, MemberUpdate(ME, MY_ADDRESS, 4, SUSPECT, "accuser"))
    assert membership.incarnation == 5
    assert isinstance(reply, Ack)
    assert reply.updates[0] == MemberUpdate(ME, MY_ADDRESS, 5, ALIVE)
    assert membership.metrics()["refutations"] == 1
    assert membership.health_score == 1  # Lifeguard: being suspected hints we are the slow one
    assert state_of(membership, ME) == (ALIVE, 5)


@pytest.mark.parametrize("verdict", [DEAD, LEFT])
@virtual_time
async def test_death_or_leave_of_ourselves_is_refuted(verdict: MemberState) -> None:
    """Whoever declares us dead (or left) while we are not leaving hears us alive again."""
    membership = make(incarnation=7)
    await tell(membership, MemberUpdate(ME, MY_ADDRESS, 7, verdict, "accuser"))
    assert membership.incarnation == 8
    assert state_of(membership, ME) == (ALIVE, 8)


@virtual_time
async def test_an_alive_claim_above_our_incarnation_is_refuted() -> None:
    """A stale rumour from our previous life at a higher incarnation: we go above it."""
    membership = make(incarnation=1)
    await tell(membership, MemberUpdate(ME, "elsewhere:1", 9, ALIVE))
    assert membership.incarnation == 10


@virtual_time
async def test_an_accusation_at_the_incarnation_ceiling_never_takes_us_past_what_the_wire_carries() -> None:
    """A forged rumour at MAX_INCARNATION (found by fuzzing: we refuted with 2**64 and could
    seal no message after it): we stay at the ceiling, and our replies and leave still encode."""
    membership = make(incarnation=3)
    reply = await tell(membership, MemberUpdate(ME, MY_ADDRESS, MAX_INCARNATION, SUSPECT, "forger"))
    assert membership.incarnation == MAX_INCARNATION
    assert reply is not None and encode_message(reply)
    await tell(membership, MemberUpdate(ME, MY_ADDRESS, MAX_INCARNATION, DEAD, "forger"))
    await membership.leave(timeout_s=0.1)
    assert membership.incarnation == MAX_INCARNATION


@virtual_time
async def test_a_stale_accusation_is_answered_with_our_current_alive_claim() -> None:
    """A suspicion older than our incarnation needs no new refutation, but the accuser hears
    our current one in the reply (it missed it once)."""
    membership = make(incarnation=5)
    reply = await tell(membership, MemberUpdate(ME, MY_ADDRESS, 3, SUSPECT, "accuser"))
    assert membership.incarnation == 5
    assert membership.metrics()["refutations"] == 0
    assert isinstance(reply, Ack) and MemberUpdate(ME, MY_ADDRESS, 5, ALIVE) in reply.updates


# ---------------------------------------------------------------------------- suspicion timers

@virtual_time
async def test_suspect_is_declared_dead_after_the_suspicion_timeout() -> None:
    """Two members: no confirmations expected, so the suspect dies after the minimum, 4 × 1 s."""
    events: list[str] = []
    membership = make(events=events)
    await tell(membership, update("x", ALIVE, 0), update("x", SUSPECT, 0))
    await wait(3.9)
    assert state_of(membership, "x") == (SUSPECT, 0)
    await wait(0.2)
    assert state_of(membership, "x") == (DEAD, 0)
    assert events[-1] == "leave x dead 0"
    assert membership.metrics()["declared_dead"] == 1


@virtual_time
async def test_independent_confirmations_shorten_the_suspicion() -> None:
    """Six members: k = 2. Alone, a suspicion lasts 6 × 4 s; two other accusers bring it to 4 s."""
    membership = make()
    await add_members(membership, "x", "a", "b", "c", "d")
    await tell(membership, update("x", SUSPECT, 0, source="a"))
    await wait(1.0)
    await tell(membership, update("x", SUSPECT, 0, source="a"))  # the same accuser again: no effect
    await tell(membership, update("x", SUSPECT, 0, source="b"))
    await wait(1.0)
    await tell(membership, update("x", SUSPECT, 0, source="c"))
    await wait(1.9)  # t = 3.9
    assert state_of(membership, "x") == (SUSPECT, 0)
    await wait(0.2)
    assert state_of(membership, "x") == (DEAD, 0)


@virtual_time
async def test_without_confirmations_the_suspicion_lasts_the_maximum() -> None:
    """One accuser in a cluster of six: the suspect has the full 24 s to refute."""
    membership = make()
    await add_members(membership, "x", "a", "b", "c", "d")
    await tell(membership, update("x", SUSPECT, 0, source="a"))
    await wait(23.9)
    assert state_of(membership, "x") == (SUSPECT, 0)
    await wait(0.2)
    assert state_of(membership, "x") == (DEAD, 0)


@virtual_time
async def test_a_suspicion_at_a_newer_incarnation_starts_a_fresh_episode() -> None:
    """Suspected at 5, refuted to 6 (we missed it), suspected again at 6: the new suspicion gets
    its own full time, and the old timer does not fire a verdict at incarnation 6."""
    membership = make()
    await add_members(membership, "a", "b", "c", "d")
    await tell(membership, update("x", ALIVE, 5), update("x", SUSPECT, 5, source="a"))
    await wait(20.0)  # the first episode has 4 s left
    await tell(membership, update("x", SUSPECT, 6, source="b"))
    await wait(23.9)
    assert state_of(membership, "x") == (SUSPECT, 6)
    await wait(0.2)
    assert state_of(membership, "x") == (DEAD, 6)


@virtual_time
async def test_a_push_pull_echo_of_a_suspicion_does_not_confirm_it() -> None:
    """Full state from a peer repeating our suspicion is not a second opinion."""
    membership = make()
    await add_members(membership, "x", "a", "b", "c", "d")
    await tell(membership, update("x", SUSPECT, 0, source="a"))
    for peer in ("b", "c"):
        await membership.handle(PushPull((update("x", SUSPECT, 0, source=""),)), Sender(peer, f"{peer}:1"))
    await wait(20.0)
    assert state_of(membership, "x") == (SUSPECT, 0)


@virtual_time
async def test_a_refuted_suspicion_never_fires() -> None:
    """An ALIVE with a higher incarnation cancels the timer."""
    membership = make()
    await tell(membership, update("x", ALIVE, 0), update("x", SUSPECT, 0))
    await wait(1.0)
    await tell(membership, update("x", ALIVE, 1))
    await wait(60.0)
    assert state_of(membership, "x") == (ALIVE, 1)


@virtual_time
async def test_an_unhealthy_member_waits_longer_before_declaring_death() -> None:
    """With a health score of 3 our own verdict waits × 4: a slow member accuses late."""
    membership = make()
    for incarnation in range(3):  # three refutations: score 3
        await tell(membership, MemberUpdate(ME, MY_ADDRESS, incarnation, SUSPECT, "accuser"))
    assert membership.health_score == 3
    await tell(membership, update("x", ALIVE, 0), update("x", SUSPECT, 0))
    await wait(15.9)
    assert state_of(membership, "x") == (SUSPECT, 0)
    await wait(0.2)
    assert state_of(membership, "x") == (DEAD, 0)


# ---------------------------------------------------------------------------- handling requests

@virtual_time
async def test_push_pull_merges_remote_deaths_as_suspicions_and_answers_with_our_table() -> None:
    """A remote 'dead' only makes us suspect (refutable); a remote 'left' is final."""
    membership = make(incarnation=4)
    await add_members(membership, "x", "y")
    reply = await membership.handle(
        PushPull((update("x", DEAD, 0), update("y", LEFT, 0), update("z", ALIVE, 2)), join=True), PEER)
    assert state_of(membership, "x") == (SUSPECT, 0)
    assert state_of(membership, "y") == (LEFT, 0)
    assert state_of(membership, "z") == (ALIVE, 2)
    assert isinstance(reply, PushPull)
    assert reply.members[0] == MemberUpdate(ME, MY_ADDRESS, 4, ALIVE)
    assert {(m.name, m.state) for m in reply.members} == {(ME, ALIVE), ("x", SUSPECT), ("y", LEFT), ("z", ALIVE)}


@pytest.mark.parametrize("message", [Ack(1), Nack(1), Payloads("records", (b"x",))])
@virtual_time
async def test_handle_refuses_messages_membership_does_not_serve(message: Message) -> None:
    """Acks, nacks and payloads are not membership requests: ProtocolError."""
    with pytest.raises(ProtocolError, match="does not serve"):
        await make().handle(message, PEER)


@virtual_time
async def test_handle_skips_invalid_updates_and_applies_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    """Bad rumours (bypassing the decoder) are skipped with a log line; nothing raises."""
    membership = make()
    bad = [
        MemberUpdate("", "a:1", 0, ALIVE),
        MemberUpdate("neg", "a:1", -1, ALIVE),
        MemberUpdate("noaddr", "", 0, ALIVE),
        MemberUpdate("state", "a:1", 0, 7),  # type: ignore[arg-type]
        MemberUpdate("x" * 500, "a:1", 0, ALIVE),
    ]
    reply = await tell(membership, *bad, update("fine", ALIVE, 0))
    assert isinstance(reply, Ack)
    assert [m.name for m in membership.members()] == [ME, "fine"]
    assert caplog.text.count("invalid membership update") == len(bad)


@virtual_time
async def test_a_ping_meant_for_another_name_is_not_acked() -> None:
    """A node restarted under another name at the same address must not vouch for the old one."""
    reply = await make().handle(Ping(9, "someone-else"), PEER)
    assert reply is None


@virtual_time
async def test_ping_request_acks_when_the_target_answers_and_nacks_when_not() -> None:
    """An intermediary answers Ack for a reachable target, Nack otherwise (Lifeguard)."""
    reachable = make(FakeTransport(ack_everything))
    assert await reachable.handle(PingReq(5, "t", "t:1"), PEER) == Ack(5)
    unreachable = make(FakeTransport())
    assert await unreachable.handle(PingReq(6, "t", "t:1"), PEER) == Nack(6)
    silent = make(FakeTransport(lambda address, message: None))
    started = asyncio.get_running_loop().time()
    assert await silent.handle(PingReq(7, "t", "t:1"), PEER) == Nack(7)
    assert asyncio.get_running_loop().time() - started == pytest.approx(LAN.probe_timeout_s)
    assert await silent.handle(PingReq(8, ME, MY_ADDRESS), PEER) == Ack(8)  # asked to ping ourselves


@virtual_time
async def test_a_ping_to_a_suspect_carries_its_suspicion() -> None:
    """Buddy system: the suspect learns it is suspected from the probe itself and can refute."""
    transport = FakeTransport(ack_everything)
    membership = make(transport, config=dataclasses.replace(LAN, gossip_nodes=0))
    await tell(membership, update("x", ALIVE, 3), update("x", SUSPECT, 3, source="a"))
    await membership.start()
    await eventually(lambda: any(isinstance(m, Ping) and m.target == "x" for _, m in transport.sent), 5.0)
    ping = next(m for _, m in transport.sent if isinstance(m, Ping) and m.target == "x")
    assert ping.updates[0] == MemberUpdate("x", "addr-of-x:7946", 3, SUSPECT, ME)
    await membership.aclose()


# ---------------------------------------------------------------------------- lifecycle

@virtual_time
async def test_aclose_is_safe_twice_and_async_with_starts_and_stops() -> None:
    """Closing twice is harmless; a closed membership cannot restart; async with closes."""
    async with make(FakeTransport(ack_everything)) as membership:
        await add_members(membership, "x")
        await wait(5.0)
        assert membership.metrics()["probes"] >= 3
    probes = membership.metrics()["probes"]
    await membership.aclose()
    await wait(5.0)
    assert membership.metrics()["probes"] == probes  # nothing runs any more
    with pytest.raises(RuntimeError, match="closed"):
        await membership.start()


@virtual_time
async def test_metrics_expose_counters_and_gauges() -> None:
    """Counters for the metrics page: probes, failures, suspicions, refutations, messages."""
    metrics = make().metrics()
    for key in ("probes", "probes_failed", "suspicions_raised", "refutations", "messages_sent",
                "messages_received", "members_alive", "cluster_size", "queue_length", "health_score"):  # fmt: skip
        assert key in metrics


def test_push_pull_interval_scales_past_32_members() -> None:
    """memberlist's pushPullScale: ×1 up to 32, ×2 to 64, ×3 to 128 …"""
    assert [push_pull_interval_s(30.0, n) for n in (1, 32, 33, 64, 65, 128, 129)] == [
        30.0, 30.0, 60.0, 60.0, 90.0, 90.0, 120.0]  # fmt: skip


def test_constructor_validates_name_and_incarnation() -> None:
    """An empty name or a negative incarnation is a programming error."""
    with pytest.raises(ValueError):
        Membership("", FakeTransport(), LAN, incarnation=0, rng=random.Random(1))
    with pytest.raises(ValueError):
        Membership("a", FakeTransport(), LAN, incarnation=-1, rng=random.Random(1))


# ---------------------------------------------------------------------------- joining

@virtual_time
async def test_join_with_no_seeds_or_only_ourselves_starts_a_cluster() -> None:
    """No seed (or only our own address) means a new cluster: 0 joined, no request sent."""
    transport = FakeTransport()
    membership = make(transport)
    assert await membership.join([]) == 0
    assert await membership.join([MY_ADDRESS, " "]) == 0
    assert transport.sent == []


@virtual_time
async def test_join_retries_with_backoff_then_names_every_seed_it_tried() -> None:
    """Unreachable seeds: retries until the deadline, each try passing the address afresh."""
    transport = FakeTransport()
    membership = make(transport)
    started = asyncio.get_running_loop().time()
    with pytest.raises(JoinError) as raised:
        await membership.join(["seed-a.example:7946", "seed-b.example:7946"], timeout_s=10.0)
    elapsed = asyncio.get_running_loop().time() - started
    message = str(raised.value)
    assert "seed-a.example:7946" in message and "seed-b.example:7946" in message
    assert "connection refused" in message
    assert 9.0 <= elapsed <= 10.5
    tries = [address for address, _ in transport.sent if address == "seed-a.example:7946"]
    assert 4 <= len(tries) <= 10  # exponential backoff: 0.5, 1, 2, 4 … capped at 5 s
    assert all(isinstance(m, PushPull) and m.join for _, m in transport.sent)


@virtual_time
async def test_join_succeeds_once_a_seed_comes_up() -> None:
    """A seed that starts late is joined on a later try."""
    network = InMemoryNetwork(seed=1)
    cluster = Cluster(network, GossipConfig.local())
    late = cluster.add(0)
    joiner = cluster.add(1)
    await joiner.transport.start(joiner.membership.handle)
    await joiner.membership.start()

    async def start_late() -> None:
        await asyncio.sleep(2.0)
        await cluster.start_node(late)

    starter = asyncio.create_task(start_late())
    assert await joiner.membership.join([late.address]) == 1
    await starter
    await eventually(lambda: everyone_sees([late, joiner], {late.name, joiner.name}), 5.0)
    await cluster.aclose()


@virtual_time
async def test_join_fails_at_once_when_every_seed_refuses_us() -> None:
    """Another cluster key: the seed refuses (AuthError); retrying cannot help."""
    network = InMemoryNetwork(seed=1)
    cluster = Cluster(network, GossipConfig.local())
    seed = cluster.add(0)
    await cluster.start_node(seed)
    stranger = cluster.add(1, key=b"another key")
    await stranger.transport.start(stranger.membership.handle)
    started = asyncio.get_running_loop().time()
    with pytest.raises(JoinError, match="every seed refused us"):
        await stranger.membership.join([seed.address])
    assert asyncio.get_running_loop().time() - started < 1.0
    await cluster.aclose()


# ---------------------------------------------------------------------------- the protocol

def new_cluster(seed: int = 7, *, config: GossipConfig = LAN) -> Cluster:
    """A LAN-like network: 2 ms one way, up to 2 ms of jitter."""
    return Cluster(InMemoryNetwork(seed=seed, latency_s=0.002, jitter_s=0.002), config, seed=seed)


@pytest.mark.parametrize("size", [5, 20, 50])
def test_everyone_learns_everyone(size: int) -> None:
    """Each node joins through the one before it; gossip spreads every join to all."""

    async def main() -> float:
        cluster = new_cluster()
        nodes = await cluster.start(size, chain=True)
        names = {node.name for node in nodes}
        took = await eventually(lambda: everyone_sees(nodes, names), 30.0)
        assert cluster.false_deaths(names) == []
        await cluster.aclose()
        return took

    assert run_virtual(main) < 10.0


@pytest.mark.parametrize("size", [5, 20, 50])
def test_a_killed_node_is_declared_dead_by_all_within_the_swim_bound(size: int) -> None:
    """Every live member declares a crashed one dead within SWIM's bound (and nobody else dies)."""

    async def main() -> None:
        cluster = new_cluster()
        nodes = await cluster.start(size)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        victim = nodes[size // 2]
        survivors = [node for node in nodes if node is not victim]
        cluster.network.kill(victim.address)
        killed_at = asyncio.get_running_loop().time()
        bound_s = swim_detection_bound_s(size, LAN)
        await eventually(lambda: all(victim.name not in node.live_view() for node in survivors), bound_s)
        deaths = cluster.declared_dead(victim.name)
        assert {event.observer for event in deaths} == {node.name for node in survivors}
        first = min(event.time for event in deaths) - killed_at
        # Found and confirmed quickly: the first verdict comes one nominal suspicion timeout
        # after the first failed probe (expected within e/(e − 1) ≈ 1.6 periods, SWIM §3.1),
        # because the other members' own failed probes confirm it.
        nominal_s = LAN.suspicion_mult * max(1.0, math.log10(size)) * LAN.probe_interval_s
        assert first < nominal_s + 4 * LAN.probe_interval_s
        assert cluster.false_deaths({node.name for node in survivors}) == []
        # Lifeguard: the intermediaries' nacks show the probers it was the target, not them.
        assert all(node.membership.health_score == 0 for node in survivors)
        assert sum(node.membership.metrics()["nacks_received"] for node in survivors) > 0
        await cluster.aclose()

    run_virtual(main)


def test_no_live_node_is_declared_dead_at_ten_percent_loss() -> None:
    """20 members, every leg lost with probability 0.1, 200 protocol periods: no false death."""

    async def main() -> None:
        cluster = new_cluster()
        nodes = await cluster.start(20)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        cluster.network.set_defaults(loss=0.1)
        since = asyncio.get_running_loop().time()
        await asyncio.sleep(200 * LAN.probe_interval_s)
        assert cluster.false_deaths(names, since=since) == []
        metrics = [node.membership.metrics() for node in nodes]
        assert sum(m["probes_failed"] for m in metrics) > 0  # the loss did bite
        assert everyone_sees(nodes, names)
        await cluster.aclose()

    run_virtual(main)


def test_a_one_way_cut_with_a_path_around_it_kills_no_one() -> None:
    """A↛B but A→C→B: indirect probes go around the cut; neither A nor B is ever declared dead."""

    async def main() -> None:
        cluster = new_cluster()
        nodes = await cluster.start(5)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        a, b = nodes[0], nodes[1]
        cluster.network.block(a.address, b.address)
        since = asyncio.get_running_loop().time()
        await asyncio.sleep(200 * LAN.probe_interval_s)
        assert cluster.declared_dead(b.name, since=since) == []
        assert cluster.declared_dead(a.name, since=since) == []
        # Not even suspected: every failed direct probe was rescued by an intermediary.
        assert [e for e in cluster.events if e.state is SUSPECT and e.time >= since] == []
        assert a.membership.metrics()["indirect_probes"] > 0
        assert everyone_sees(nodes, names)
        await cluster.aclose()

    run_virtual(main)


def test_a_partitioned_half_rejoins_after_healing() -> None:
    """Two halves declare each other dead; once healed, reconnection merges them again."""

    async def main() -> None:
        cluster = new_cluster(seed=3)
        nodes = await cluster.start(10)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        left, right = nodes[:5], nodes[5:]
        cluster.network.partition([n.address for n in left], [n.address for n in right])
        await eventually(lambda: everyone_sees(left, {n.name for n in left})
                         and everyone_sees(right, {n.name for n in right}), 120.0)  # fmt: skip
        await asyncio.sleep(60.0)  # well past gossip-to-the-dead: only reconnection can help
        cluster.network.heal()
        took = await eventually(lambda: everyone_sees(nodes, names), 120.0, step_s=0.5)
        assert took < 2 * LAN.reconnect_interval_s + 30.0
        await cluster.aclose()

    run_virtual(main)


@pytest.mark.parametrize(("awareness", "stall_s"), [(LAN.awareness_max_multiplier, 30.0), (1, 30.0)])
def test_a_stalled_node_does_not_get_healthy_peers_declared_dead(awareness: int, stall_s: float) -> None:
    """A node that hears nothing for 30 s (longer than the 24 s maximum suspicion) suspects
    everyone; Lifeguard's local health keeps its verdicts from killing healthy peers. Without it
    (multiplier 1, the control) the same stall does kill them."""

    async def main() -> int:
        cluster = new_cluster(seed=5, config=dataclasses.replace(LAN, awareness_max_multiplier=awareness))
        nodes = await cluster.start(8)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        stalled = nodes[1]
        healthy = names - {stalled.name}
        since = asyncio.get_running_loop().time()
        for _ in range(2):
            cluster.network.stall(stalled.address, stall_s)
            await asyncio.sleep(stall_s + 30.0)
        await eventually(lambda: everyone_sees(nodes, names), 60.0)  # it came back, too
        victims = [e for e in cluster.events if e.kind == "leave" and e.member in healthy and e.time >= since]
        await cluster.aclose()
        return len(victims)

    healthy_deaths = run_virtual(main)
    if awareness > 1:
        assert healthy_deaths == 0
    else:
        assert healthy_deaths > 0


def test_a_graceful_leave_is_seen_as_left_not_dead() -> None:
    """leave() gossips LEFT at a higher incarnation; everyone records a leave, nobody a death."""

    async def main() -> None:
        cluster = new_cluster()
        nodes = await cluster.start(5)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        leaver, others = nodes[2], [n for n in nodes if n is not nodes[2]]
        incarnation = leaver.membership.incarnation
        started = asyncio.get_running_loop().time()
        await leaver.membership.leave(timeout_s=5.0)
        assert asyncio.get_running_loop().time() - started < 5.0  # gossiped in full, not timed out
        assert leaver.membership.incarnation == incarnation + 1
        await leaver.membership.leave(timeout_s=5.0)  # safe twice
        await cluster.close_node(leaver)
        await eventually(lambda: all(n.view().get(leaver.name) is LEFT for n in others), 5.0)
        await asyncio.sleep(60.0)
        assert cluster.declared_dead(leaver.name) == []
        leaves = [e for e in cluster.events if e.member == leaver.name and e.kind == "leave"]
        assert sorted(e.observer for e in leaves) == sorted(n.name for n in others)
        assert all(e.state is LEFT and e.incarnation == incarnation + 1 for e in leaves)
        await cluster.aclose()

    run_virtual(main)


@pytest.mark.parametrize("incarnation_step", [1, 0])
def test_a_node_declared_dead_comes_back_after_a_restart(incarnation_step: int) -> None:
    """Restarted with its persisted incarnation + 1 it is alive at once; restarted with a stale
    one, it learns of its death at join and refutes it above the verdict."""

    async def main() -> None:
        cluster = new_cluster()
        nodes = await cluster.start(5)
        names = {node.name for node in nodes}
        await eventually(lambda: everyone_sees(nodes, names), 30.0)
        victim = nodes[3]
        others = [n for n in nodes if n is not victim]
        old_incarnation = victim.membership.incarnation
        cluster.network.kill(victim.address)
        await eventually(lambda: all(n.view()[victim.name] is DEAD for n in others), 60.0)
        await cluster.close_node(victim)
        cluster.network.revive(victim.address)
        reborn = cluster.add(3, incarnation=old_incarnation + incarnation_step)
        assert await cluster.start_node(reborn, [nodes[0].address]) == 1
        everyone = [*others, reborn]
        await eventually(lambda: everyone_sees(everyone, names), 30.0)
        assert all(n.view_incarnation(victim.name) > old_incarnation for n in everyone)
        rejoins = [e for e in cluster.events
                   if e.kind == "join" and e.member == victim.name and e.incarnation > old_incarnation]  # fmt: skip
        assert {e.observer for e in rejoins} == {n.name for n in others}
        await cluster.aclose()

    run_virtual(main)


def test_dead_members_are_reaped_after_the_retention_time() -> None:
    """A dead member is forgotten once reap_after_s has passed (checked at each probe round's wrap)."""
    config = dataclasses.replace(LAN, reap_after_s=60.0, reconnect_interval_s=0.0)

    async def main() -> None:
        cluster = new_cluster(config=config)
        nodes = await cluster.start(4)
        await eventually(lambda: everyone_sees(nodes, {n.name for n in nodes}), 30.0)
        victim = nodes[3]
        cluster.network.kill(victim.address)
        await eventually(lambda: nodes[0].view().get(victim.name) is DEAD, 60.0)
        await asyncio.sleep(30.0)
        assert victim.name in nodes[0].view()
        await asyncio.sleep(40.0)
        assert victim.name not in nodes[0].view()
        await cluster.aclose()

    run_virtual(main)


def test_address_of_is_distinct_for_many_nodes() -> None:
    """The harness gives 200+ nodes distinct addresses (a guard for the benchmark)."""
    assert len({address_of(i) for i in range(450)}) == 450


# ---------------------------------------------------------------------------- real HTTP on loopback

@pytest.mark.slow
async def test_membership_over_real_http_on_loopback() -> None:
    """Four members over aiohttp on 127.0.0.1 (local profile): join, detect a crash, see a leave."""
    from gossip.auth import Wire
    from gossip.http_transport import AiohttpTransport

    config = GossipConfig.local()
    events: list[str] = []
    nodes: list[tuple[AiohttpTransport, Membership]] = []
    try:
        for index in range(4):
            name = f"h{index}"
            transport = AiohttpTransport(Wire("loopback", key=b"loopback key", name=name, address="127.0.0.1:0"))
            membership = Membership(name, transport, config, incarnation=0, rng=random.Random(index),
                                    delegate=_ListDelegate(events))  # fmt: skip
            await transport.start(membership.handle)  # first: the port (our address) is known once bound
            await membership.start()
            assert await membership.join([nodes[0][0].local_address] if nodes else []) == (1 if nodes else 0)
            nodes.append((transport, membership))
        names = {membership.name for _, membership in nodes}

        def live(membership: Membership) -> set[str]:
            return {m.name for m in membership.members() if m.is_live}

        await eventually(lambda: all(live(m) == names for _, m in nodes), 10.0)
        crashed_transport, crashed = nodes[3]
        await crashed.aclose()
        await crashed_transport.aclose()  # no leave: a crash
        survivors = [m for _, m in nodes[:3]]
        def state(membership: Membership, name: str) -> MemberState | None:
            member = membership.member(name)
            return None if member is None else member.state

        took = await eventually(lambda: all(state(m, "h3") is DEAD for m in survivors), 15.0)
        assert took < swim_detection_bound_s(4, config)
        await survivors[2].leave(timeout_s=3.0)
        await eventually(lambda: all(state(m, "h2") is LEFT for m in survivors[:2]), 5.0)
        assert "leave h2 left 1" in events and "leave h3 dead 0" in events
    finally:
        for transport, membership in nodes:
            await membership.aclose()
            await transport.aclose()
