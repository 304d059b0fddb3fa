"""Who is in the cluster: SWIM failure detection and dissemination, with Lifeguard's refinements.

SWIM (Das, Gupta, Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group
Membership Protocol", DSN 2002), as hashicorp/memberlist implements it (``state.go``):

- **Probing** (§3.1, §4.3). Every protocol period a member pings the next member of a shuffled
  list (round robin, reshuffled each round, newcomers inserted at random), so each member is
  probed by each other within 2N − 1 periods. With no ack within the probe timeout it asks
  ``indirect_checks`` random members to ping the target for it (PingReq) and, like memberlist's
  TCP fallback, pings it once more directly; no ack by the end of the period makes the target
  *suspect*, with us as the accuser.
- **Suspicion** (§4.2). A suspect has until its suspicion timer ends to refute; then it is
  *dead*. A member that hears it is suspected (or dead) refutes by raising its incarnation and
  announcing itself alive.
- **Dissemination** (§4.1). Every change is a rumour in a transmit-limited queue, piggybacked
  on pings, acks and ping requests, and pushed to a few random members every gossip interval
  (including members declared dead recently, so a member that was only cut off hears it).
- **Precedence** (memberlist's ``aliveNode``/``suspectNode``/``deadNode``), for a member known
  at incarnation j: ALIVE(i) wins iff i > j; SUSPECT(i) wins over ALIVE iff i ≥ j; DEAD or
  LEFT(i) win over ALIVE and SUSPECT iff i ≥ j; nothing but a newer ALIVE revives a dead or
  left member — which is how a restarted member (the node persists its incarnation) returns.
- **Anti-entropy**. A periodic push-pull exchanges the whole table with a random member; a
  remote "dead" is merged as a suspicion, so it can still be refuted. Join is a push-pull with
  a seed. As Serf does on top of memberlist, members declared dead are retried now and then
  (``reconnect_interval_s``), so the halves of a healed partition find each other again.

Lifeguard (Dadgar, Phillips, Currey, arXiv:1707.00788, 2018):

- **Nacks** (§IV-A): a member asked to probe indirectly answers Nack when the target did not
  answer it, proving the requester's path to it works.
- **Local health** (§IV-A, ``gossip.awareness``): missing nacks and refutations raise our
  health score, which stretches our probe interval and timeouts, so a slow member does not
  accuse healthy ones.
- **Dogpile** (§IV-B, ``gossip.suspicion``): a suspicion's timeout starts long and shrinks as
  distinct accusers confirm it.
- **Buddy system** (§IV-C): a ping to a suspect carries the suspicion, so it refutes at once.

Where this differs from memberlist, and why:

- Request/response instead of UDP: an ack, nack or push-pull answer is the reply to its
  request. The requester of an indirect probe waits at least twice the probe timeout for the
  relays (a relay nacks only after its own probe timeout), so nacks are not lost to the end of
  the period and healthy probers do not lose health for nothing.
- A suspicion or death verdict about us *older* than our incarnation is answered by queueing
  our current alive claim again (memberlist ignores it): a member that missed every copy of
  our refutation would otherwise declare us dead when its timer ran out.
- Push-pull state may start a suspicion but never confirms one: it is mostly our own
  suspicion echoed back, and counting it would cut the suspect's time to refute.
- While our own health score is above 0, our suspicion timers are stretched × (score + 1)
  before we declare anyone dead: a member that could hear nothing (stalled, overloaded) does
  not kill healthy peers the moment it wakes. Lifeguard scales only probes.
- Dead members are kept (and retried) for ``reap_after_s``, Serf-style, not dropped after
  ``gossip_to_the_dead_s``; a LEFT rumour at a higher incarnation replaces a DEAD one.
- An alive rumour at a higher incarnation may change a member's address (a restart on a new
  port); memberlist refuses address changes of live members.

Membership does not own the transport: the caller starts the transport with a handler that
routes Ping, PingReq and PushPull to ``handle`` (and closes it). Time is the running loop's
(``loop.time()``, ``asyncio.sleep``), so a virtual-time loop drives it in tests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, Self

from gossip.awareness import Awareness, probe_failure_delta
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from gossip.errors import AuthError, ClusterMismatch, GossipError, JoinError, ProtocolError
from gossip.messages import (
    MAX_ADDRESS_CHARS,
    MAX_MEMBERS_PER_PUSH_PULL,
    MAX_NAME_CHARS,
    MAX_UPDATES_PER_MESSAGE,
    Ack,
    MemberState,
    MemberUpdate,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
)
from gossip.queue import TransmitLimitedQueue
from gossip.suspicion import Suspicion, expected_confirmations, suspicion_timeout_s
from gossip.transport import Sender, Transport

__all__ = ["MemberInfo", "MembershipDelegate", "Membership", "push_pull_interval_s"]

log = logging.getLogger(__name__)

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_GONE = (MemberState.DEAD, MemberState.LEFT)
_PUSH_PULL_SCALE_THRESHOLD = 32  # memberlist: push-pull slows down past this many members
_COUNTERS = (
    "probes",  # probe rounds started
    "probes_failed",  # rounds that ended with no ack, direct or indirect
    "indirect_probes",  # PingReqs sent
    "nacks_received",
    "suspicions_raised",  # suspicions we started or confirmed from our own failed probes
    "declared_dead",  # suspicions whose timer ran out here
    "refutations",  # times we refuted a suspicion or death of ourselves
    "messages_sent",
    "messages_received",
    "gossip_sent",
    "push_pulls",  # completed push-pull exchanges we started (periodic, reconnect, join)
    "push_pull_failures",
)


def push_pull_interval_s(base_interval_s: float, cluster_size: int) -> float:
    """memberlist's ``pushPullScale``: the base interval up to 32 members, then × (⌈log2 N − 5⌉ + 1)."""
    if cluster_size <= _PUSH_PULL_SCALE_THRESHOLD:
        return base_interval_s
    multiplier = math.ceil(math.log2(cluster_size) - math.log2(_PUSH_PULL_SCALE_THRESHOLD)) + 1
    return base_interval_s * multiplier


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member as this node sees it (itself included)."""

    name: str
    address: str  # host:port peers use to reach it
    state: MemberState
    incarnation: int
    last_heard: float  # Unix time (s) of the last message from it, or when we learned of it

    @property
    def state_name(self) -> str:
        """'alive', 'suspect', 'dead' or 'left' (the API's spelling)."""
        return self.state.name.lower()

    @property
    def is_live(self) -> bool:
        """Alive or suspect: still counted as a member (a suspect may refute)."""
        return self.state in _LIVE


class MembershipDelegate(Protocol):
    """What the node layer hears about membership changes (never about this node itself).

    Runs on the event loop inside membership's own processing: must not block, must not raise
    (an exception is logged and ignored), and must copy what it keeps.
    """

    def on_join(self, member: MemberInfo) -> None:
        """A member is new, or came back alive after being dead or left."""

    def on_leave(self, member: MemberInfo) -> None:
        """A member was declared dead or left gracefully (``member.state`` says which)."""

    def on_update(self, member: MemberInfo) -> None:
        """A live member changed: became suspect, was cleared, or moved to a new address."""


@dataclass(slots=True, eq=False)
class _Member:
    name: str
    address: str
    incarnation: int
    state: MemberState
    state_changed_at: float  # loop time
    last_heard_at: float  # loop time
    suspicion: Suspicion | None = None
    timer: asyncio.TimerHandle | None = None


class Membership:
    """SWIM + Lifeguard membership of one node; see the module docstring.

    ``incarnation`` is where this node starts (the node layer persists it and should pass one
    above the last it used); ``rng`` drives every random choice, so a seeded run repeats.
    """

    def __init__(
        self,
        name: str,
        transport: Transport,
        config: GossipConfig,
        *,
        incarnation: int,
        rng: random.Random,
        delegate: MembershipDelegate | None = None,
    ) -> None:
        if not name or len(name) > MAX_NAME_CHARS:
            raise ValueError(f"member name must be 1..{MAX_NAME_CHARS} characters, got {name!r}")
        if incarnation < 0:
            raise ValueError(f"incarnation must be >= 0, got {incarnation}")
        self._name = name
        self._transport = transport
        self._config = config
        self._rng = rng
        self._delegate = delegate
        self._incarnation = incarnation
        self._self_state = MemberState.ALIVE
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._queue: TransmitLimitedQueue[MemberUpdate] = TransmitLimitedQueue(
            retransmit_mult=config.retransmit_mult,
            cluster_size=self._live_count,
            max_queued=config.max_queued_updates,
        )
        self._members: dict[str, _Member] = {}  # everyone but us
        self._live_others = 0  # members alive or suspect, kept up to date by _set_state
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._seq = itertools.count(1)
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wall_offset_s = 0.0
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._task_group: asyncio.TaskGroup | None = None
        self._leaving = False
        self._closed = False

    # ------------------------------------------------------------------ public surface

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        return self._transport.local_address

    @property
    def incarnation(self) -> int:
        """Our current incarnation; the node layer persists it (it grows on every refutation)."""
        return self._incarnation

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score: 0 = healthy; probes are stretched × (score + 1)."""
        return self._awareness.score

    def members(self) -> list[MemberInfo]:
        """Every known member, this node first, then by name."""
        now = self._now()
        me = MemberInfo(self._name, self.address, self._self_state, self._incarnation, self._wall(now))
        others = sorted(self._members.values(), key=lambda member: member.name)
        return [me, *(self._info(member) for member in others)]

    def member(self, name: str) -> MemberInfo | None:
        """One member by name (this node included), or None if unknown."""
        if name == self._name:
            return self.members()[0]
        member = self._members.get(name)
        return self._info(member) if member is not None else None

    def metrics(self) -> dict[str, int]:
        """Counters since start, and gauges of the current view, for metrics pages."""
        states = [self._self_state, *(member.state for member in self._members.values())]
        return {
            **self._counters,
            "members_alive": states.count(MemberState.ALIVE),
            "members_suspect": states.count(MemberState.SUSPECT),
            "members_dead": states.count(MemberState.DEAD),
            "members_left": states.count(MemberState.LEFT),
            "cluster_size": self._live_count(),  # N of the formulas: alive + suspect, us included
            "queue_length": len(self._queue),
            "health_score": self._awareness.score,
            "incarnation": self._incarnation,
        }

    def __repr__(self) -> str:
        states = [self._self_state, *(member.state for member in self._members.values())]
        return (
            f"<Membership {self._name} alive={states.count(MemberState.ALIVE)} "
            f"suspect={states.count(MemberState.SUSPECT)} queue={len(self._queue)}>"
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start probing, gossiping, push-pull and reconnecting (each loop randomly staggered)."""
        if self._closed:
            raise RuntimeError("membership is closed")
        if self._runner is not None:
            return
        self._bind_loop()
        # Announce ourselves: our first pings and acks tell whoever we meet that we are alive.
        self._enqueue(MemberUpdate(self._name, self.address, self._incarnation, MemberState.ALIVE))
        self._runner = asyncio.create_task(self._run(), name=f"membership-{self._name}")

    async def join(self, seeds: Sequence[str], *, timeout_s: float | None = None) -> int:
        """Push-pull with every seed (host:port); returns how many answered (0 with no seeds).

        While none answers it retries with exponential backoff (addresses are passed to the
        transport again each time, so DNS names are re-resolved) until ``timeout_s`` (default
        ``config.join_timeout_s``); then, or at once if every seed refused us (wrong cluster or
        key), it raises ``JoinError`` naming each seed and why it failed. Call after ``start``.
        """
        self._bind_loop()
        own = self.address
        targets = [seed for seed in dict.fromkeys(seed.strip() for seed in seeds) if seed and seed != own]
        if not targets:
            return 0
        budget_s = self._config.join_timeout_s if timeout_s is None else timeout_s
        deadline = self._now() + budget_s
        pause_s = self._config.join_retry_initial_s
        attempts = 0
        while True:
            attempts += 1
            request_timeout_s = max(1e-3, min(self._config.push_pull_timeout_s, deadline - self._now()))
            outcomes = await asyncio.gather(*(self._join_seed(seed, request_timeout_s) for seed in targets))
            failures = {seed: error for seed, error in zip(targets, outcomes, strict=True) if error is not None}
            joined = len(targets) - len(failures)
            if joined:
                log.info("%s joined through %d of %d seeds", self._name, joined, len(targets))
                return joined
            refused = all(isinstance(error, AuthError | ClusterMismatch) for error in failures.values())
            remaining_s = deadline - self._now()
            if refused or remaining_s <= 0:
                reasons = "; ".join(f"{seed}: {error}" for seed, error in failures.items())
                verdict = "every seed refused us" if refused else f"none answered within {budget_s:g} s"
                raise JoinError(
                    f"could not join the cluster through {', '.join(targets)} "
                    f"({verdict}, {attempts} attempt{'s' if attempts > 1 else ''}): {reasons}"
                )
            sleep_s = min(remaining_s, pause_s * self._rng.uniform(0.5, 1.0))
            log.debug("%s: no seed answered; retrying in %.2f s", self._name, sleep_s)
            await asyncio.sleep(sleep_s)
            pause_s = min(pause_s * 2, self._config.join_retry_max_s)

    async def leave(self, timeout_s: float) -> None:
        """Announce a graceful leave (LEFT at a higher incarnation); wait until it has been
        gossiped its full retransmit count, or ``timeout_s``. Safe to call twice."""
        if self._leaving:
            return
        self._bind_loop()
        self._leaving = True
        self._incarnation += 1
        self._self_state = MemberState.LEFT
        sent = asyncio.Event()
        update = MemberUpdate(self._name, self.address, self._incarnation, MemberState.LEFT, source=self._name)
        self._queue.enqueue(self._name, update, size_bytes=_update_size(update), on_done=sent.set)
        log.info("%s leaving the cluster (incarnation %d)", self._name, self._incarnation)
        if self._runner is None or self._runner.done() or self._live_count() <= 1:
            return  # nobody to tell, or nothing running to tell them
        try:
            await asyncio.wait_for(sent.wait(), timeout_s)
        except TimeoutError:
            log.warning("%s: leave not fully gossiped within %.1f s", self._name, timeout_s)

    async def aclose(self) -> None:
        """Stop every loop and timer. Does not leave (call ``leave`` first) nor close the transport."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for member in self._members.values():
            self._clear_suspicion(member)

    async def handle(self, message: Message, sender: Sender) -> Message | None:
        """Answer a membership request: Ping → Ack, PingReq → Ack/Nack, PushPull → PushPull.

        Bad content is skipped and logged, never raised; a message type membership does not
        serve raises ``ProtocolError``.
        """
        self._bind_loop()
        self._counters["messages_received"] += 1
        if not isinstance(message, Ping | PingReq | PushPull):
            raise ProtocolError(f"membership does not serve {type(message).__name__} requests")
        try:
            self._heard_from(sender.name)
            if isinstance(message, Ping):
                return self._answer_ping(message)
            if isinstance(message, PingReq):
                return await self._answer_ping_req(message)
            self._merge_remote_state(message.members, accuser=sender.name)
            return PushPull(self._local_state())
        except Exception:
            log.exception("%s: failed to handle %s from %s", self._name, type(message).__name__, sender.name)
            return None

    # ------------------------------------------------------------------ loops

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._task_group = group
            group.create_task(self._periodic(self._probe_round, self._probe_period_s,
                                             self._config.probe_interval_s))  # fmt: skip
            if self._config.gossip_nodes > 0:
                group.create_task(self._periodic(self._gossip_round, lambda: self._config.gossip_interval_s,
                                                 self._config.gossip_interval_s))  # fmt: skip
            if self._config.push_pull_interval_s > 0:
                group.create_task(self._periodic(self._push_pull_round, self._push_pull_period_s,
                                                 self._config.push_pull_interval_s))  # fmt: skip
            if self._config.reconnect_interval_s > 0:
                group.create_task(self._periodic(self._reconnect_round, lambda: self._config.reconnect_interval_s,
                                                 self._config.reconnect_interval_s))  # fmt: skip
            await self._stopping.wait()

    async def _periodic(self, action: Callable[[], Awaitable[None]], period_s: Callable[[], float],
                        stagger_s: float) -> None:  # fmt: skip
        """Run ``action`` every ``period_s()`` (measured start to start) after a random stagger."""
        await asyncio.sleep(self._rng.uniform(0, stagger_s))
        while not self._stopping.is_set():
            started = self._now()
            try:
                await action()
            except Exception:  # one bad round must not stop failure detection for good
                log.exception("%s: %s failed", self._name, getattr(action, "__name__", action))
            await asyncio.sleep(max(0.0, started + period_s() - self._now()))

    def _probe_period_s(self) -> float:
        return self._awareness.scale(self._config.probe_interval_s)

    def _push_pull_period_s(self) -> float:
        return push_pull_interval_s(self._config.push_pull_interval_s, self._live_count())

    # ------------------------------------------------------------------ probing

    async def _probe_round(self) -> None:
        if self._leaving:
            return
        target = self._next_probe_target()
        if target is not None:
            await self._probe(target)

    def _next_probe_target(self) -> _Member | None:
        """Round robin over a shuffled list; at each wrap reap the long dead and reshuffle."""
        checked = 0
        while checked <= len(self._probe_order):
            if self._probe_index >= len(self._probe_order):
                self._reset_probe_order()
                checked += 1
                if not self._probe_order:
                    return None
                continue
            name = self._probe_order[self._probe_index]
            self._probe_index += 1
            member = self._members.get(name)
            if member is not None and member.state in _LIVE:
                return member
            checked += 1
        return None

    def _reset_probe_order(self) -> None:
        now = self._now()
        for member in list(self._members.values()):
            if member.state in _GONE and now - member.state_changed_at > self._config.reap_after_s:
                log.debug("%s: forgetting %s (%s since %.0f s)", self._name, member.name, member.state.name,
                          now - member.state_changed_at)  # fmt: skip
                del self._members[member.name]
        self._probe_order = list(self._members)
        self._rng.shuffle(self._probe_order)
        self._probe_index = 0

    async def _probe(self, target: _Member) -> None:
        self._counters["probes"] += 1
        config = self._config
        started = self._now()
        deadline = started + self._awareness.scale(config.probe_interval_s)
        timeout_s = self._awareness.scale(config.probe_timeout_s)
        incarnation = target.incarnation  # a refutation during the probe outdates our suspicion
        seq = next(self._seq)
        if await self._ping(target.name, target.address, seq, timeout_s):
            self._probe_succeeded(target)
            return
        relays = self._random_members(config.indirect_checks, lambda m: m.state is MemberState.ALIVE
                                      and m is not target)  # fmt: skip
        # Relays wait probe_timeout_s for the target before they nack, and the nack needs a trip
        # back: wait for that even if the period is nearly over, or nacks would always be late.
        wait_s = max(deadline - self._now(), 2 * timeout_s)
        attempts: list[Awaitable[Message | bool | None]] = [
            self._request(relay.address, PingReq(seq, target.name, target.address, self._piggyback()), wait_s)
            for relay in relays
        ]
        self._counters["indirect_probes"] += len(relays)
        # memberlist's TCP fallback: one more direct try alongside, in case the first was lost.
        attempts.append(self._ping(target.name, target.address, seq, wait_s))
        acked, nacks = await _first_ack(attempts, seq)
        self._counters["nacks_received"] += nacks
        if acked:
            self._probe_succeeded(target)
            return
        self._counters["probes_failed"] += 1
        self._awareness.apply_delta(probe_failure_delta(len(relays), nacks))
        if self._members.get(target.name) is not target or self._leaving:
            return
        log.info("%s: no ack from %s (direct or through %d relays, %d nacks); suspecting it",
                 self._name, target.name, len(relays), nacks)  # fmt: skip
        self._counters["suspicions_raised"] += 1
        self._on_suspect(MemberUpdate(target.name, target.address, incarnation, MemberState.SUSPECT, self._name))

    def _probe_succeeded(self, target: _Member) -> None:
        self._awareness.apply_delta(-1)
        target.last_heard_at = self._now()

    async def _ping(self, name: str, address: str, seq: int, timeout_s: float) -> bool:
        """Ping ``name`` at ``address``; True on its ack (whose updates are merged)."""
        target = self._members.get(name)
        reply = await self._request(address, Ping(seq, name, self._piggyback(target)), timeout_s)
        if isinstance(reply, Ack) and reply.seq == seq:
            self._merge_updates(reply.updates)
            return True
        return False

    def _answer_ping(self, ping: Ping) -> Message | None:
        self._merge_updates(ping.updates)
        if ping.target and ping.target != self._name:
            log.debug("%s: ignoring a ping meant for %s", self._name, ping.target)
            return None  # not an ack: whoever it was meant for did not answer
        return Ack(ping.seq, self._piggyback())

    async def _answer_ping_req(self, request: PingReq) -> Message:
        self._merge_updates(request.updates)
        if request.target == self._name:
            return Ack(request.seq, self._piggyback())
        if not _valid_address(request.target_address):
            return Nack(request.seq)
        seq = next(self._seq)
        if await self._ping(request.target, request.target_address, seq, self._config.probe_timeout_s):
            target = self._members.get(request.target)
            if target is not None:
                target.last_heard_at = self._now()
            return Ack(request.seq, self._piggyback())
        return Nack(request.seq)

    # ------------------------------------------------------------------ gossip, push-pull, join

    async def _gossip_round(self) -> None:
        if not self._queue:
            return  # nothing to say (the common case): skip picking targets
        now = self._now()
        window_s = self._config.gossip_to_the_dead_s

        def eligible(member: _Member) -> bool:
            if member.state in _LIVE:
                return True
            return member.state is MemberState.DEAD and now - member.state_changed_at <= window_s

        for target in self._random_members(self._config.gossip_nodes, eligible):
            if not self._queue:
                return
            updates = self._piggyback(target)
            self._counters["gossip_sent"] += 1
            if self._task_group is not None and not self._stopping.is_set():
                ping = Ping(next(self._seq), target.name, updates)
                self._task_group.create_task(self._gossip_to(target.address, ping))

    async def _gossip_to(self, address: str, ping: Ping) -> None:
        reply = await self._request(address, ping, self._config.probe_timeout_s)
        if isinstance(reply, Ack) and reply.seq == ping.seq:
            self._merge_updates(reply.updates)
            self._heard_from(ping.target)

    async def _push_pull_round(self) -> None:
        if self._leaving:
            return
        peers = self._random_members(1, lambda member: member.state is MemberState.ALIVE)
        if peers:
            await self._push_pull(peers[0])

    async def _reconnect_round(self) -> None:
        """Serf's reconnect: push-pull with a random dead member, with probability dead/live."""
        if self._leaving:
            return
        failed = [member for member in self._members.values() if member.state is MemberState.DEAD]
        if failed and self._rng.random() <= len(failed) / self._live_count():
            await self._push_pull(self._rng.choice(failed))

    async def _push_pull(self, peer: _Member) -> None:
        reply = await self._request(peer.address, PushPull(self._local_state()), self._config.push_pull_timeout_s)
        if isinstance(reply, PushPull):
            self._counters["push_pulls"] += 1
            peer.last_heard_at = self._now()
            self._merge_remote_state(reply.members, accuser=peer.name)
        else:
            self._counters["push_pull_failures"] += 1

    async def _join_seed(self, seed: str, timeout_s: float) -> GossipError | None:
        """One push-pull with a seed; the error if it failed."""
        self._counters["messages_sent"] += 1
        try:
            reply = await self._transport.request(seed, PushPull(self._local_state(), join=True), timeout_s=timeout_s)
        except GossipError as error:
            log.debug("%s: join through %s failed: %s", self._name, seed, error)
            return error
        if not isinstance(reply, PushPull):
            return ProtocolError(f"answered {type(reply).__name__} to a join instead of PushPull")
        self._counters["push_pulls"] += 1
        # We cannot tell which member answered at that address: its "dead" verdicts count as
        # our own suspicions (memberlist does this for every push-pull).
        self._merge_remote_state(reply.members, accuser=self._name)
        return None

    # ------------------------------------------------------------------ the member table

    def _merge_updates(self, updates: Sequence[MemberUpdate]) -> None:
        for update in updates[:MAX_UPDATES_PER_MESSAGE]:
            if _valid_update(update):
                self._apply(update)
            else:
                log.warning("%s: skipping an invalid membership update %r", self._name, update)

    def _merge_remote_state(self, members: Sequence[MemberUpdate], *, accuser: str) -> None:
        """memberlist's ``mergeState``: a remote 'dead' becomes a suspicion we can still refute.

        A remote suspicion may start one here (in ``accuser``'s name) but never confirms one we
        hold: it is most likely our own suspicion echoed back, and counting it would cut the
        suspect's time to refute as if a second member had lost contact with it.
        """
        for update in members[:MAX_MEMBERS_PER_PUSH_PULL]:
            if not _valid_update(update):
                log.warning("%s: skipping an invalid member %r in a push-pull", self._name, update)
                continue
            if update.state in (MemberState.DEAD, MemberState.SUSPECT):
                local = self._members.get(update.name)
                if local is not None and local.state is MemberState.SUSPECT and update.incarnation <= local.incarnation:
                    continue
                update = replace(update, state=MemberState.SUSPECT, source=accuser)
            self._apply(update)

    def _apply(self, update: MemberUpdate) -> None:
        if update.state is MemberState.ALIVE:
            self._on_alive(update)
        elif update.state is MemberState.SUSPECT:
            self._on_suspect(update)
        else:
            self._on_gone(update)

    def _on_alive(self, update: MemberUpdate) -> None:
        now = self._now()
        if update.name == self._name:
            if self._leaving:
                return
            if update.incarnation > self._incarnation:
                self._refute(update.incarnation, "an alive claim at a higher incarnation")
            elif update.incarnation == self._incarnation and update.address != self.address:
                log.warning("%s: another member claims our name at %s (incarnation %d)",
                            self._name, update.address, update.incarnation)  # fmt: skip
            return
        member = self._members.get(update.name)
        if member is None:
            if len(self._members) >= MAX_MEMBERS_PER_PUSH_PULL:
                log.warning("%s: member table full; ignoring %s", self._name, update.name)
                return
            member = _Member(update.name, update.address, update.incarnation, MemberState.ALIVE, now, now)
            self._members[update.name] = member
            self._live_others += 1
            self._probe_order.insert(self._rng.randint(0, len(self._probe_order)), update.name)
            self._enqueue(replace(update, source=""))
            log.info("%s: %s joined at %s", self._name, update.name, update.address)
            self._notify(_JOIN, member)
            return
        if update.incarnation <= member.incarnation:
            return
        previous = member.state
        moved = update.address != member.address
        if moved:
            log.info("%s: %s moved from %s to %s", self._name, member.name, member.address, update.address)
        self._clear_suspicion(member)
        member.incarnation = update.incarnation
        member.address = update.address
        if previous is not MemberState.ALIVE:
            self._set_state(member, MemberState.ALIVE, now)
        self._enqueue(replace(update, source=""))
        if previous in _GONE:
            log.info("%s: %s is back (incarnation %d)", self._name, member.name, member.incarnation)
            self._notify(_JOIN, member)
        elif previous is MemberState.SUSPECT or moved:
            self._notify(_UPDATE, member)

    def _on_suspect(self, update: MemberUpdate) -> None:
        if update.name == self._name:
            self._answer_accusation(update)
            return
        member = self._members.get(update.name)
        if member is None or update.incarnation < member.incarnation:
            return
        if member.suspicion is not None and update.incarnation == member.incarnation:
            if member.suspicion.confirm(update.source):
                self._arm_suspicion(member, member.suspicion)
                self._enqueue(update)  # an independent confirmation is news to everyone else
            return
        if member.state not in _LIVE:
            return
        # Alive, or suspect at an older incarnation: the member refuted that suspicion (we missed
        # the refutation) and is suspected again. A new episode with a fresh timer — carrying
        # the old one over would fire at once with a verdict at the *new* incarnation, which
        # would override every member's knowledge of the refutation.
        self._clear_suspicion(member)
        now = self._now()
        live = self._live_count()
        min_s = suspicion_timeout_s(self._config.suspicion_mult, live, self._config.probe_interval_s)
        suspicion = Suspicion(
            accuser=update.source,
            expected=expected_confirmations(self._config.suspicion_mult, live),
            min_s=min_s,
            max_s=min_s * self._config.suspicion_max_timeout_mult,
            started_at_s=now,
        )
        self._set_state(member, MemberState.SUSPECT, now)
        member.incarnation = update.incarnation
        member.suspicion = suspicion
        self._arm_suspicion(member, suspicion)
        self._enqueue(update)
        log.info("%s: %s is suspect (accused by %s; dead in %.1f s unless refuted)",
                 self._name, member.name, update.source or "?", suspicion.deadline_s - now)  # fmt: skip
        self._notify(_UPDATE, member)

    def _on_gone(self, update: MemberUpdate) -> None:
        """A DEAD or LEFT rumour."""
        if update.name == self._name:
            self._answer_accusation(update)
            return
        member = self._members.get(update.name)
        if member is None or update.incarnation < member.incarnation:
            return
        if member.state in _GONE:
            # A graceful leave announced after a (wrong) death verdict still deserves to be known:
            # a left member is not worth reconnecting to.
            if member.state is MemberState.DEAD and update.state is MemberState.LEFT \
                    and update.incarnation > member.incarnation:  # fmt: skip
                member.state, member.incarnation = MemberState.LEFT, update.incarnation  # gone either way
                self._enqueue(update)
                self._notify(_UPDATE, member)
            return
        self._clear_suspicion(member)
        self._set_state(member, update.state, self._now())
        member.incarnation = update.incarnation
        self._enqueue(update)
        log.info("%s: %s is %s (per %s)", self._name, member.name, update.state.name.lower(), update.source or "?")
        self._notify(_LEAVE, member)

    def _answer_accusation(self, update: MemberUpdate) -> None:
        """A suspicion or death verdict about us: refute it, or re-announce if it is stale."""
        if self._leaving:
            return
        verdict = update.state.name.lower()
        if update.incarnation >= self._incarnation:
            self._refute(update.incarnation, f"{verdict} per {update.source or 'someone'}")
        elif self._queue.get(self._name) is None:
            # An older verdict: we refuted it once, but whoever sent it missed every copy (they
            # are all sent within a second or so). Say it again: queued afresh, our alive claim
            # rides on the very reply to this message. memberlist stays silent here, and a
            # member that missed the refutation then declares us dead when its timer runs out.
            self._enqueue(MemberUpdate(self._name, self.address, self._incarnation, MemberState.ALIVE))

    def _refute(self, accused_incarnation: int, reason: str) -> None:
        self._incarnation = max(self._incarnation + 1, accused_incarnation + 1)
        self._counters["refutations"] += 1
        self._awareness.apply_delta(1)  # Lifeguard: others could not hear us; maybe we are slow
        self._enqueue(MemberUpdate(self._name, self.address, self._incarnation, MemberState.ALIVE))
        log.info("%s: refuting (%s) with incarnation %d", self._name, reason, self._incarnation)

    def _arm_suspicion(self, member: _Member, suspicion: Suspicion) -> None:
        if member.timer is not None:
            member.timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        member.timer = loop.call_at(suspicion.deadline_s, self._suspicion_expired, member, suspicion)

    def _clear_suspicion(self, member: _Member) -> None:
        if member.timer is not None:
            member.timer.cancel()
        member.timer = None
        member.suspicion = None

    def _suspicion_expired(self, member: _Member, suspicion: Suspicion) -> None:
        if self._closed or member.suspicion is not suspicion or self._members.get(member.name) is not member:
            return
        # While we are unhealthy ourselves, our verdict is the least trustworthy one: stretch
        # the suspicion × (score + 1), re-judged at each expiry, so that a member that could not
        # hear refutations (stalled, overloaded) does not declare healthy peers dead the moment
        # it wakes. Bounded by the maximum multiplier; healthy members are unaffected.
        stretched = suspicion.started_at_s + self._awareness.scale(suspicion.deadline_s - suspicion.started_at_s)
        if stretched > self._now():
            loop = self._loop or asyncio.get_running_loop()
            member.timer = loop.call_at(stretched, self._suspicion_expired, member, suspicion)
            return
        log.info("%s: %s declared dead: suspicion timed out with %d/%d confirmations",
                 self._name, member.name, suspicion.confirmations, suspicion.expected)  # fmt: skip
        self._counters["declared_dead"] += 1
        self._on_gone(MemberUpdate(member.name, member.address, member.incarnation, MemberState.DEAD, self._name))

    def _local_state(self) -> tuple[MemberUpdate, ...]:
        """The whole table for a push-pull: us, the live, then the most recently gone."""
        me = MemberUpdate(self._name, self.address, self._incarnation, self._self_state)
        ordered = sorted(self._members.values(), key=lambda m: (m.state in _GONE, -m.state_changed_at, m.name))
        others = (MemberUpdate(m.name, m.address, m.incarnation, m.state) for m in ordered)
        return (me, *itertools.islice(others, MAX_MEMBERS_PER_PUSH_PULL - 1))

    # ------------------------------------------------------------------ helpers

    async def _request(self, address: str, message: Message, timeout_s: float) -> Message | None:
        """One request; None when the peer could not be reached, refused, or answered garbage."""
        self._counters["messages_sent"] += 1
        try:
            return await self._transport.request(address, message, timeout_s=timeout_s)
        except GossipError as error:
            log.debug("%s: %s to %s failed: %s", self._name, type(message).__name__, address, error)
            return None

    def _piggyback(self, target: _Member | None = None) -> tuple[MemberUpdate, ...]:
        """Queued rumours to ride on a message; to a suspect or dead target, its own verdict first
        (Lifeguard's buddy system: it can refute at once)."""
        verdict: list[MemberUpdate] = []
        if target is not None and target.state in (MemberState.SUSPECT, MemberState.DEAD):
            verdict.append(MemberUpdate(target.name, target.address, target.incarnation, target.state, self._name))
        return (*verdict, *self._queue.take(max_items=MAX_UPDATES_PER_MESSAGE - len(verdict)))

    def _enqueue(self, update: MemberUpdate) -> None:
        self._queue.enqueue(update.name, update, size_bytes=_update_size(update))

    def _random_members(self, count: int, eligible: Callable[[_Member], bool]) -> list[_Member]:
        pool = [member for member in self._members.values() if eligible(member)]
        return self._rng.sample(pool, min(count, len(pool)))

    def _live_count(self) -> int:
        """Live members, us included: the N of the formulas."""
        return 1 + self._live_others

    def _set_state(self, member: _Member, state: MemberState, now: float) -> None:
        """Every change of a member's state goes through here (it keeps the live count)."""
        self._live_others += (state in _LIVE) - (member.state in _LIVE)
        member.state = state
        member.state_changed_at = now

    def _heard_from(self, name: str) -> None:
        member = self._members.get(name)
        if member is not None:
            member.last_heard_at = self._now()

    def _notify(self, event: str, member: _Member) -> None:
        if self._delegate is None:
            return
        info = self._info(member)
        callback: Callable[[MemberInfo], None] = getattr(self._delegate, event)
        try:
            callback(info)
        except Exception:
            log.exception("%s: membership delegate %s(%s) failed", self._name, event, member.name)

    def _info(self, member: _Member) -> MemberInfo:
        return MemberInfo(member.name, member.address, member.state, member.incarnation,
                          self._wall(member.last_heard_at))  # fmt: skip

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wall_offset_s = LoopClock().wall() - self._loop.time()  # virtual on a virtual loop

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # called outside the loop (a sync caller): use the loop we run on
            return self._loop.time() if self._loop is not None else 0.0

    def _wall(self, loop_time: float) -> float:
        return loop_time + self._wall_offset_s


_JOIN = "on_join"
_LEAVE = "on_leave"
_UPDATE = "on_update"


async def _first_ack(attempts: Sequence[Awaitable[Message | bool | None]], seq: int) -> tuple[bool, int]:
    """Run the attempts together until one acks; (acked, nacks seen). Cancels the rest."""
    tasks = [asyncio.ensure_future(attempt) for attempt in attempts]
    nacks = 0
    try:
        pending: set[asyncio.Future[Message | bool | None]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                outcome = task.result()
                if outcome is True or (isinstance(outcome, Ack) and outcome.seq == seq):
                    return True, nacks
                if isinstance(outcome, Nack) and outcome.seq == seq:
                    nacks += 1
        return False, nacks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _valid_address(address: object) -> bool:
    return isinstance(address, str) and 0 < len(address) <= MAX_ADDRESS_CHARS


def _valid_update(update: object) -> bool:
    return (
        isinstance(update, MemberUpdate)
        and isinstance(update.name, str)
        and 0 < len(update.name) <= MAX_NAME_CHARS
        and _valid_address(update.address)
        and isinstance(update.incarnation, int)
        and not isinstance(update.incarnation, bool)
        and update.incarnation >= 0
        and isinstance(update.state, MemberState)
        and isinstance(update.source, str)
        and len(update.source) <= MAX_NAME_CHARS
    )


def _update_size(update: MemberUpdate) -> int:
    """Rough encoded size of an update, for the queue's ordering and byte budgets."""
    return len(update.name) + len(update.address) + len(update.source) + 16
