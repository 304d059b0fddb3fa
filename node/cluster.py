"""The node's place in the gossip cluster: cluster id, authenticated transport, membership,
dissemination of its records, and anti-entropy.

The cluster id is derived from the topic's normal form, so nodes enumerating one topic form
one cluster and a node of another topic is refused at join with a message naming both ids.
With a cluster key every message is HMAC-authenticated (gossip.auth); without one the cluster
is open, which the node says loudly (and ``NodeConfig`` refuses to bind beyond loopback).

The transport is injected as a factory of the member's ``Wire``: a real node gossips over its
HTTP port (``http_transport``), a simulated one over ``gossip.testing.InMemoryNetwork``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from gossip.auth import Wire
from gossip.anti_entropy import ANTI_ENTROPY_REQUESTS, AntiEntropy, AntiEntropyConfig, RecordStore
from gossip.broadcast import BroadcastConfig, Broadcaster
from gossip.config import GossipConfig
from gossip.errors import JoinError
from gossip.http_transport import AiohttpTransport
from gossip.membership import MemberInfo, Membership, MembershipDelegate, Resolver
from gossip.messages import Message, Payloads
from gossip.probing import Reachability, confirmed_reachability
from gossip.transport import Sender, Transport
from node.normalize import normal_form
from node.server import NodeServer
from webui.view import MemberView

__all__ = ["cluster_id", "ClusterMember", "TransportFactory", "http_transport"]

log = logging.getLogger(__name__)


def cluster_id(topic: str) -> str:
    """``swarmlist-<16 hex>`` from the topic's normal form ("Museums in Paris" = "museums in paris")."""
    digest = hashlib.blake2b(normal_form(topic).encode("utf-8"), digest_size=8).hexdigest()
    return f"swarmlist-{digest}"


TransportFactory = Callable[[Wire], Transport]
"""Builds a member's transport around the ``Wire`` that seals and opens its messages."""


def http_transport(server: NodeServer, address: str) -> TransportFactory:
    """Gossip on the node's one HTTP port: the transport's routes are mounted on ``server.app``."""

    def build(wire: Wire) -> Transport:
        transport = AiohttpTransport(wire, host="", port=server.port, advertise=address)
        transport.add_routes(server.app)
        return transport

    return build


class _LoggingDelegate:
    """Membership changes as log lines (the operator's view until the page shows them)."""

    def on_join(self, member: MemberInfo) -> None:
        log.info("member %s joined (%s, incarnation %d)", member.name, member.address, member.incarnation)

    def on_leave(self, member: MemberInfo) -> None:
        log.warning("member %s is %s (%s): %s", member.name, member.state_name, member.address, member.reason)

    def on_update(self, member: MemberInfo) -> None:
        log.info("member %s is %s (incarnation %d)", member.name, member.state_name, member.incarnation)


class ClusterMember:
    """Wires a node into the cluster over the transport ``transport`` builds; ``start`` → ``leave`` → ``aclose``.

    ``address`` is where peers reach this node (sealed into every message). ``rng`` seeds
    membership's and dissemination's random choices (a seeded simulation repeats);
    ``wall`` is the clock messages are stamped with (the loop's virtual one in a simulation);
    ``resolve`` looks seeds up on every join attempt (DNS for a real node; none in a simulation).
    """

    def __init__(
        self,
        *,
        transport: TransportFactory,
        address: str,
        name: str,
        topic: str,
        incarnation: int,
        key: bytes | None,
        seeds: Sequence[str],
        config: GossipConfig,
        broadcast: BroadcastConfig,
        anti_entropy: AntiEntropyConfig,
        records: RecordStore,
        delegate: MembershipDelegate | None = None,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        resolve: Resolver | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.cluster = cluster_id(topic)
        self._wire = Wire(self.cluster, key=key, name=name, address=address, clock=wall)
        self._transport = transport(self._wire)
        self.membership = Membership(
            name, self._transport, config, incarnation=incarnation, rng=random.Random(rng.getrandbits(64)),
            delegate=delegate or _LoggingDelegate(),
        )  # fmt: skip
        self.broadcaster = Broadcaster(
            name, self._transport, self.membership, delegate=records, config=broadcast,
            rng=random.Random(rng.getrandbits(64)),
        )  # fmt: skip
        self.anti_entropy = AntiEntropy(
            name, self._transport, self.membership, store=records, config=anti_entropy,
            rng=random.Random(rng.getrandbits(64)),
        )  # fmt: skip
        self._seeds = list(seeds)
        self.resolve = resolve  # may be set until ``start`` (the runtime sets DNS after Node.open)
        self._join_task: asyncio.Task[None] | None = None
        self.join_error: JoinError | None = None
        self.reachability: Reachability | None = None  # what peers said after the join
        self._probe_interval_s = config.probe_interval_s  # the pause between reachability checks

    def __repr__(self) -> str:
        return f"<ClusterMember {self.cluster} {self.membership!r}>"

    async def _handle(self, message: Message, sender: Sender) -> Message | None:
        if isinstance(message, Payloads):
            return await self.broadcaster.handle(message, sender)
        if isinstance(message, ANTI_ENTROPY_REQUESTS):
            return await self.anti_entropy.handle(message, sender)
        return await self.membership.handle(message, sender)

    def publish(self, items: Sequence[bytes]) -> None:
        """Push encoded records to the cluster."""
        self.broadcaster.publish(items)

    async def start(self) -> None:
        """Serve gossip, start SWIM, and join through the seeds in the background."""
        await self._transport.start(self._handle)
        await self.membership.start()
        await self.broadcaster.start()
        await self.anti_entropy.start()
        if self._seeds:
            self._join_task = asyncio.create_task(self._join(), name="cluster-join")

    async def _join(self) -> None:
        try:
            joined = await self.membership.join(self._seeds, resolve=self.resolve)
            log.info("joined cluster %s through %d seed(s)", self.cluster, joined)
        except JoinError as exc:
            self.join_error = exc
            log.error("%s", exc)
            return
        if joined:
            await self._check_reachable()

    async def _check_reachable(self) -> None:
        """Peers tell us whether they reach us where we advertise: say it loudly if not, since
        they will otherwise suspect and declare this node dead over and over, for no visible reason."""
        found, checks = await confirmed_reachability(
            self.membership.check_reachable, pause=lambda: asyncio.sleep(self._probe_interval_s)
        )
        self.reachability = found
        if found.unreachable:
            log.error(
                "peers cannot reach this node at %s: %s tried and got no answer (%d checks). They will declare it "
                "dead; set --advertise to an address they can reach (and check --host and firewalls)",
                found.address, ", ".join(found.unreached), checks,
            )  # fmt: skip
        elif found.unreached:
            log.warning("some peers cannot reach this node at %s: %s could not, %s could", found.address,
                        ", ".join(found.unreached), ", ".join(found.reached))  # fmt: skip
        elif found.reached:
            log.info("peers reach this node at %s (checked by %s)", found.address, ", ".join(found.reached))

    def members(self) -> list[MemberView]:
        return [
            MemberView(m.name, m.address, m.state_name, m.incarnation, m.last_heard,
                       rtt_s=m.rtt_s, reason=m.reason, reason_at=m.reason_at)
            for m in self.membership.members()
        ]

    async def leave(self, timeout_s: float) -> None:
        if self._join_task is not None:
            self._join_task.cancel()
        await self.membership.leave(timeout_s)

    async def aclose(self) -> None:
        if self._join_task is not None:
            self._join_task.cancel()
            await asyncio.gather(self._join_task, return_exceptions=True)
        await self.anti_entropy.aclose()
        await self.broadcaster.aclose()
        await self.membership.aclose()
        await self._transport.aclose()
