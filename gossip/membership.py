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
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Self

from gossip.config import GossipConfig
from gossip.errors import (
    AuthError,
    ClusterMismatch,
    GossipError,
    JoinError,
    ProtocolError,
    TransportError,
    VersionMismatch,
)
from gossip.member_table import (
    _LIVE,
    MemberInfo,
    MembershipDelegate,
    _Member,
    _update_size,
)
from gossip.messages import (
    MAX_INCARNATION,
    Ack,
    MemberState,
    MemberUpdate,
    Message,
    Ping,
    PingReq,
    PushPull,
)
from gossip.probing import Prober
from gossip.transport import Sender, Transport

__all__ = ["MemberInfo", "MembershipDelegate", "Membership", "Resolver", "push_pull_interval_s"]

log = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""A seed (host:port) → the addresses to try it at, looked up afresh on every join attempt."""
_OURSELVES = object()  # a join outcome: the seed is this node

_PUSH_PULL_SCALE_THRESHOLD = 32  # memberlist: push-pull slows down past this many members


def push_pull_interval_s(base_interval_s: float, cluster_size: int) -> float:
    """memberlist's ``pushPullScale``: the base interval up to 32 members, then × (⌈log2 N − 5⌉ + 1)."""
    if cluster_size <= _PUSH_PULL_SCALE_THRESHOLD:
        return base_interval_s
    multiplier = math.ceil(math.log2(cluster_size) - math.log2(_PUSH_PULL_SCALE_THRESHOLD)) + 1
    return base_interval_s * multiplier


class Membership(Prober):
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
        super().__init__(name, transport, config, incarnation=incarnation, rng=rng, delegate=delegate)
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._task_group: asyncio.TaskGroup | None = None

    # ------------------------------------------------------------------ public surface

    @property
    def name(self) -> str:
        return self._name

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

    async def join(self, seeds: Sequence[str], *, timeout_s: float | None = None,
                   resolve: Resolver | None = None) -> int:  # fmt: skip
        """Push-pull with every seed (host:port); returns how many answered (0 with no seeds).

        While none answers it retries with exponential backoff until ``timeout_s`` (default
        ``config.join_timeout_s``); then, or at once if every seed refused us (wrong cluster, key
        or protocol version), it raises ``JoinError`` naming each seed and why it failed. Call after ``start``.

        ``resolve`` (a DNS lookup, say) turns a seed into the addresses to try, and is called
        again on every attempt, so a seed whose name did not resolve yet, or moved, is found;
        it raises ``GossipError`` when it cannot. A seed resolving to our own address is us.
        Without it, seeds go to the transport as written (aiohttp caches a name for 10 s).
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
            outcomes = await asyncio.gather(*(self._join_through(seed, request_timeout_s, resolve)
                                              for seed in targets))  # fmt: skip
            if all(outcome is _OURSELVES for outcome in outcomes):
                return 0  # every seed is this node: a new cluster
            failures = {seed: error for seed, error in zip(targets, outcomes, strict=True)
                        if isinstance(error, GossipError)}  # fmt: skip
            joined = sum(outcome is None for outcome in outcomes)
            if joined:
                log.info("%s joined through %d of %d seeds", self._name, joined, len(targets))
                return joined
            refused = all(isinstance(error, AuthError | ClusterMismatch | VersionMismatch)
                          for error in failures.values())  # fmt: skip
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
        self._incarnation = min(self._incarnation + 1, MAX_INCARNATION)
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

    async def _join_through(self, seed: str, timeout_s: float, resolve: Resolver | None) -> GossipError | object | None:
        """Join through one seed at each address it resolves to: None if one answered,
        ``_OURSELVES`` if the seed is this node, else the error (a refusal first: it is final)."""
        if resolve is None:
            return await self._join_seed(seed, timeout_s)
        try:
            addresses = list(dict.fromkeys(await resolve(seed)))
        except GossipError as error:
            return error
        includes_us = self.address in addresses
        # A name may resolve to every member, this node among them (a headless service, round-robin
        # DNS): join through the others; only when none of them answers is this node the cluster.
        addresses = [address for address in addresses if address != self.address]
        if not addresses:
            return _OURSELVES if includes_us else TransportError(f"{seed} resolves to no address")
        outcomes = await asyncio.gather(*(self._join_seed(address, timeout_s) for address in addresses))
        errors = [error for error in outcomes if error is not None]
        if len(errors) < len(addresses):
            return None
        refusals = [error for error in errors if isinstance(error, AuthError | ClusterMismatch | VersionMismatch)]
        if refusals:
            return refusals[0]
        if includes_us:
            return _OURSELVES  # none of the others is up yet: start the cluster they will join
        if addresses == [seed]:
            return errors[0]
        pairs = zip(addresses, errors, strict=True)
        return TransportError("; ".join(f"at {address}: {error}" for address, error in pairs))

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
