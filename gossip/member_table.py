"""The member table: who this node knows of, and the precedence rules that merge news about them.

SWIM (Das, Gupta, Motivala, DSN 2002, §4.2) with memberlist's ``aliveNode``/``suspectNode``/
``deadNode`` (``state.go``) as the rules. For a member known at incarnation j: ALIVE(i) wins iff
i > j; SUSPECT(i) wins over ALIVE iff i ≥ j; DEAD or LEFT(i) win over ALIVE and SUSPECT iff
i ≥ j; nothing but a newer ALIVE revives a dead or left member. A suspicion or death verdict
about this node is refuted by raising our incarnation (and an older verdict is answered by
re-announcing our alive claim; see ``gossip.membership`` for why). Push-pull state is merged as
memberlist's ``mergeState`` does: a remote "dead" becomes a suspicion that can still be refuted.

Suspicions follow Lifeguard (Dadgar, Phillips, Currey, arXiv:1707.00788, §IV-B,
``gossip.suspicion``): the timeout shrinks as distinct accusers confirm, and is stretched while
our own health score says we may be the slow one.

``MemberTable`` holds the table state and applies updates; ``gossip.membership.Membership``
builds the protocol loops on top of it. For operators, each member also carries why it is
suspect, dead or left (the failed probe, the accuser, the unrefuted suspicion, the leave) and
when, and the smoothed round trip of our pings to it (``gossip.probing``). Every accepted change is queued as a rumour and reported
to the ``MembershipDelegate``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from gossip.awareness import Awareness
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from gossip.messages import (
    MAX_ADDRESS_CHARS,
    MAX_INCARNATION,
    MAX_MEMBERS_PER_PUSH_PULL,
    MAX_NAME_CHARS,
    MAX_UPDATES_PER_MESSAGE,
    MemberState,
    MemberUpdate,
)
from gossip.queue import TransmitLimitedQueue
from gossip.suspicion import Suspicion, expected_confirmations, suspicion_timeout_s
from gossip.transport import Transport

__all__ = ["MemberInfo", "MemberTable", "MembershipDelegate"]

log = logging.getLogger(__name__)

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_GONE = (MemberState.DEAD, MemberState.LEFT)
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


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member as this node sees it (itself included)."""

    name: str
    address: str  # host:port peers use to reach it
    state: MemberState
    incarnation: int
    last_heard: float  # Unix time (s) of the last message from it, or when we learned of it
    rtt_s: float | None = None  # smoothed round trip of our direct pings' acks (SRTT); None until one came
    reason: str | None = None  # why it is suspect, dead or left, as this node learned it; None while alive
    reason_at: float | None = None  # Unix time (s) the reason arose

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
    rtt_s: float | None = None  # smoothed round trip of our direct pings (gossip.probing.smoothed_rtt_s)
    reason: str | None = None  # why it is suspect, dead or left (for operators); None while alive
    reason_at: float = 0.0  # loop time the reason arose


class MemberTable:
    """The member table of one node and the rules that merge updates into it; see the module docstring.

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
        self._incarnation = min(incarnation, MAX_INCARNATION)  # a restart at the ceiling stays on it
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
        self._leaving = False
        self._closed = False

    @property
    def address(self) -> str:
        return self._transport.local_address

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
                reporter = "a seed at join" if accuser == self._name else accuser
                reason = f"reported {update.state.name.lower()} by {reporter} in a state exchange"
                self._apply(replace(update, state=MemberState.SUSPECT, source=accuser), reason=reason)
                continue
            self._apply(update)

    def _apply(self, update: MemberUpdate, *, reason: str | None = None) -> None:
        if update.state is MemberState.ALIVE:
            self._on_alive(update)
        elif update.state is MemberState.SUSPECT:
            self._on_suspect(update, reason=reason)
        else:
            self._on_gone(update, reason=reason)

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
            member.reason = None
        self._enqueue(replace(update, source=""))
        if previous in _GONE:
            log.info("%s: %s is back (incarnation %d)", self._name, member.name, member.incarnation)
            self._notify(_JOIN, member)
        elif previous is MemberState.SUSPECT or moved:
            self._notify(_UPDATE, member)

    def _on_suspect(self, update: MemberUpdate, *, reason: str | None = None) -> None:
        """A SUSPECT rumour (or our own failed probe); ``reason`` says why, for operators."""
        if update.name == self._name:
            self._answer_accusation(update)
            return
        member = self._members.get(update.name)
        if member is None or update.incarnation < member.incarnation:
            return
        if member.suspicion is not None and update.incarnation == member.incarnation:
            if member.suspicion.confirm(update.source):
                self._arm_suspicion(member, member.suspicion)
                member.reason = f"{member.reason}; confirmed by {update.source}"  # at most `expected` times
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
        self._explain(member, reason or f"suspected by {update.source or 'a peer'}")
        self._arm_suspicion(member, suspicion)
        self._enqueue(update)
        log.info("%s: %s is suspect (accused by %s; dead in %.1f s unless refuted)",
                 self._name, member.name, update.source or "?", suspicion.deadline_s - now)  # fmt: skip
        self._notify(_UPDATE, member)

    def _on_gone(self, update: MemberUpdate, *, reason: str | None = None) -> None:
        """A DEAD or LEFT rumour (or our own suspicion's end); ``reason`` says why, for operators."""
        if reason is None:
            reason = "left" if update.state is MemberState.LEFT else f"declared dead by {update.source or 'a peer'}"
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
                self._explain(member, reason)
                self._enqueue(update)
                self._notify(_UPDATE, member)
            return
        self._clear_suspicion(member)
        self._set_state(member, update.state, self._now())
        member.incarnation = update.incarnation
        self._explain(member, reason)
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
        if self._incarnation >= MAX_INCARNATION:
            # Only a forged rumour gets here (one step per refutation or restart): stay
            # sendable rather than out-rank it; the alive claim is re-announced all the same.
            log.warning("%s: cannot refute (%s): our incarnation is at the ceiling", self._name, reason)
        self._incarnation = min(max(self._incarnation + 1, accused_incarnation + 1), MAX_INCARNATION)
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
        waited_s = self._now() - suspicion.started_at_s
        confirmed = f", {suspicion.confirmations}/{suspicion.expected} confirmations" if suspicion.expected else ""
        reason = f"{member.reason}; not refuted within {waited_s:.1f} s{confirmed}"
        self._on_gone(MemberUpdate(member.name, member.address, member.incarnation, MemberState.DEAD, self._name),
                      reason=reason)  # fmt: skip

    def _local_state(self) -> tuple[MemberUpdate, ...]:
        """The whole table for a push-pull: us, the live, then the most recently gone."""
        me = MemberUpdate(self._name, self.address, self._incarnation, self._self_state)
        ordered = sorted(self._members.values(), key=lambda m: (m.state in _GONE, -m.state_changed_at, m.name))
        others = (MemberUpdate(m.name, m.address, m.incarnation, m.state) for m in ordered)
        return (me, *itertools.islice(others, MAX_MEMBERS_PER_PUSH_PULL - 1))

    def _enqueue(self, update: MemberUpdate) -> None:
        self._queue.enqueue(update.name, update, size_bytes=_update_size(update))

    def _live_count(self) -> int:
        """Live members, us included: the N of the formulas."""
        return 1 + self._live_others

    def _set_state(self, member: _Member, state: MemberState, now: float) -> None:
        """Every change of a member's state goes through here (it keeps the live count)."""
        self._live_others += (state in _LIVE) - (member.state in _LIVE)
        member.state = state
        member.state_changed_at = now

    def _explain(self, member: _Member, reason: str) -> None:
        member.reason = reason
        member.reason_at = self._now()

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
                          self._wall(member.last_heard_at), rtt_s=member.rtt_s, reason=member.reason,
                          reason_at=self._wall(member.reason_at) if member.reason is not None else None)  # fmt: skip

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
        and 0 <= update.incarnation <= MAX_INCARNATION
        and isinstance(update.state, MemberState)
        and isinstance(update.source, str)
        and len(update.source) <= MAX_NAME_CHARS
    )


def _update_size(update: MemberUpdate) -> int:
    """Rough encoded size of an update, for the queue's ordering and byte budgets."""
    return len(update.name) + len(update.address) + len(update.source) + 16
