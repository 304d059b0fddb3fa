"""Failure detection: SWIM's randomised probing with Lifeguard's nacks and buddy system.

SWIM (Das, Gupta, Motivala, "SWIM: Scalable Weakly-consistent Infection-style Process Group
Membership Protocol", DSN 2002, §3.1, §4.3), as hashicorp/memberlist's ``probeNode`` does it:
every protocol period a member pings the next member of a shuffled list (round robin,
reshuffled each round, newcomers inserted at random). With no ack within the probe timeout it
asks ``indirect_checks`` random members to ping the target for it (PingReq) and, like
memberlist's TCP fallback, pings it once more directly; no ack by the end of the period makes
the target *suspect*, with us as the accuser.

Lifeguard (Dadgar, Phillips, Currey, arXiv:1707.00788, 2018): a relay that gets no answer
replies Nack (§IV-A), and missing nacks raise our health score (``gossip.awareness``), which
stretches our probe interval and timeouts; a ping to a suspect carries its suspicion so it can
refute at once (buddy system, §IV-C). The requester of an indirect probe waits at least twice
the probe timeout for the relays, since a relay nacks only after its own probe timeout.

For operators: each member's round-trip time is measured where a direct ping's ack arrives and
smoothed as TCP smooths its RTT (Jacobson 1988; RFC 6298 §2: SRTT ← 7/8 SRTT + 1/8 sample), and
a failed probe records why the member is suspected. ``check_reachable`` turns the indirect probe
around: members are asked to ping *us* at our advertised address, so peers tell a node whether
they can reach it where it says it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gossip.awareness import probe_failure_delta
from gossip.errors import GossipError
from gossip.member_table import _GONE, _LIVE, MemberTable, _Member, _valid_address
from gossip.messages import (
    MAX_UPDATES_PER_MESSAGE,
    Ack,
    MemberState,
    MemberUpdate,
    Message,
    Nack,
    Ping,
    PingReq,
)

__all__ = ["Prober", "Reachability", "confirmed_reachability", "smoothed_rtt_s", "RTT_GAIN", "REACHABILITY_CHECKS"]

log = logging.getLogger(__name__)

RTT_GAIN = 1 / 8  # RFC 6298's alpha: each new sample moves the smoothed RTT by an eighth of the gap
# An "unreachable" verdict is asked again before anyone is told: one lost ping (or its ack) on a
# lossy link makes the only relay nack; a wrong advertised address fails every time.
REACHABILITY_CHECKS = 3


def smoothed_rtt_s(previous_s: float | None, sample_s: float) -> float:
    """RFC 6298's SRTT: the first sample as is, then an exponentially weighted moving average."""
    if previous_s is None:
        return sample_s
    return previous_s + RTT_GAIN * (sample_s - previous_s)


@dataclass(frozen=True, slots=True)
class Reachability:
    """What members answered when asked to ping this node at its advertised ``address``."""

    address: str
    reached: tuple[str, ...]  # members whose ping this node answered
    unreached: tuple[str, ...]  # members that tried and got no answer from this node (they nacked)
    silent: tuple[str, ...]  # members that did not answer the request in time (no verdict)

    @property
    def unreachable(self) -> bool:
        """Members tried and none got through: peers cannot reach this node at ``address``."""
        return bool(self.unreached) and not self.reached


async def confirmed_reachability(
    check: Callable[[], Awaitable[Reachability]],
    *,
    pause: Callable[[], Awaitable[object]],
    checks: int = REACHABILITY_CHECKS,
) -> tuple[Reachability, int]:
    """Run ``check`` until it does not say "unreachable", at most ``checks`` times with a
    ``pause`` between; returns the last verdict and how many checks it took.

    A relay nacks when its ping to us or our ack to it is lost: 1 − (1 − p)² with loss p per
    message, ~10% at 5% loss. A node whose only peer is that relay would be told "unreachable"
    once in ten joins on one check; on three in a row, once in a thousand.
    """
    found = await check()
    made = 1
    while found.unreachable and made < checks:
        await pause()
        found = await check()
        made += 1
    return found, made


class Prober(MemberTable):
    """Probes members of the table and answers probes; ``Membership`` schedules the rounds."""

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
        if relays:
            reason = (f"no ack to direct probes nor to {len(relays)} indirect probe{'s' * (len(relays) > 1)} "
                      f"({nacks} nack{'s' * (nacks != 1)})")  # fmt: skip
        else:
            reason = "no ack to direct probes (no other member to probe through)"
        self._on_suspect(MemberUpdate(target.name, target.address, incarnation, MemberState.SUSPECT, self._name),
                         reason=reason)  # fmt: skip

    def _probe_succeeded(self, target: _Member) -> None:
        self._awareness.apply_delta(-1)
        target.last_heard_at = self._now()

    async def _ping(self, name: str, address: str, seq: int, timeout_s: float) -> bool:
        """Ping ``name`` at ``address``; True on its ack (whose updates are merged)."""
        target = self._members.get(name)
        sent_at = self._now()
        reply = await self._request(address, Ping(seq, name, self._piggyback(target)), timeout_s)
        if isinstance(reply, Ack) and reply.seq == seq:
            # Measured where the ack arrives; the member may have been replaced meanwhile.
            member = self._members.get(name)
            if member is not None and member.address == address:
                member.rtt_s = smoothed_rtt_s(member.rtt_s, self._now() - sent_at)
            self._merge_updates(reply.updates)
            return True
        return False

    async def check_reachable(self, *, relays: int = 3, timeout_s: float | None = None) -> Reachability:
        """Ask up to ``relays`` alive members to ping this node at its advertised address.

        A PingReq naming ourselves as the target: each relay pings us and answers Ack (it got
        through) or Nack (it could not). Default wait: four probe timeouts, so a relay's own
        probe timeout and the trip back fit. No members, no verdict (every tuple empty).
        """
        self._bind_loop()
        chosen = self._random_members(relays, lambda member: member.state is MemberState.ALIVE)
        wait_s = 4 * self._config.probe_timeout_s if timeout_s is None else timeout_s
        seq = next(self._seq)
        replies = await asyncio.gather(*(
            self._request(member.address, PingReq(seq, self._name, self.address, self._piggyback()), wait_s)
            for member in chosen
        ))  # fmt: skip
        verdicts: dict[str, list[str]] = {"reached": [], "unreached": [], "silent": []}
        for member, reply in zip(chosen, replies, strict=True):
            if isinstance(reply, Ack) and reply.seq == seq:
                self._merge_updates(reply.updates)
                verdicts["reached"].append(member.name)
            elif isinstance(reply, Nack) and reply.seq == seq:
                verdicts["unreached"].append(member.name)
            else:
                verdicts["silent"].append(member.name)
        return Reachability(self.address, reached=tuple(sorted(verdicts["reached"])),
                            unreached=tuple(sorted(verdicts["unreached"])), silent=tuple(sorted(verdicts["silent"])))

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

    # ------------------------------------------------------------------ requests

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

    def _random_members(self, count: int, eligible: Callable[[_Member], bool]) -> list[_Member]:
        pool = [member for member in self._members.values() if eligible(member)]
        return self._rng.sample(pool, min(count, len(pool)))


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
