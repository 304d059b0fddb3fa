"""A cluster of ``Membership`` nodes on an ``InMemoryNetwork``, for protocol-level tests and the benchmark.

Run it inside ``gossip.testing.run_virtual`` so that minutes of protocol take milliseconds.
Each node records what its delegate heard, with the virtual time, so a test can ask "was a
live node ever declared dead by anyone" after the fact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gossip.auth import Wire
from gossip.clock import LoopClock
from gossip.config import GossipConfig
from gossip.membership import MemberInfo, Membership
from gossip.messages import MemberState
from gossip.suspicion import suspicion_timeout_s
from gossip.testing import InMemoryNetwork, InMemoryTransport

CLUSTER_ID = "membership-tests"
CLUSTER_KEY = b"membership test key"


@dataclass(frozen=True, slots=True)
class Event:
    """One delegate notification at one node."""

    time: float
    observer: str
    kind: str  # join | leave | update
    member: str
    state: MemberState
    incarnation: int


class Recorder:
    """A ``MembershipDelegate`` that appends every notification to a shared list."""

    def __init__(self, observer: str, events: list[Event]) -> None:
        self._observer = observer
        self._events = events

    def _add(self, kind: str, member: MemberInfo) -> None:
        now = asyncio.get_running_loop().time()
        self._events.append(Event(now, self._observer, kind, member.name, member.state, member.incarnation))

    def on_join(self, member: MemberInfo) -> None:
        self._add("join", member)

    def on_leave(self, member: MemberInfo) -> None:
        self._add("leave", member)

    def on_update(self, member: MemberInfo) -> None:
        self._add("update", member)


@dataclass(slots=True)
class Node:
    name: str
    address: str
    transport: InMemoryTransport
    membership: Membership
    closed: bool = False

    def view(self) -> dict[str, MemberState]:
        """name → state, as this node sees the cluster (itself included)."""
        return {member.name: member.state for member in self.membership.members()}

    def view_incarnation(self, name: str) -> int:
        """The incarnation this node knows ``name`` at (-1 if it does not know it)."""
        member = self.membership.member(name)
        return -1 if member is None else member.incarnation

    def live_view(self) -> set[str]:
        return {name for name, state in self.view().items() if state in (MemberState.ALIVE, MemberState.SUSPECT)}


def address_of(index: int) -> str:
    return f"10.0.{index // 200}.{index % 200 + 1}:7946"


def name_of(index: int) -> str:
    return f"n{index:03d}"


@dataclass(slots=True)
class Cluster:
    """Nodes sharing one network; names n000, n001, … at 10.0.x.y:7946."""

    network: InMemoryNetwork
    config: GossipConfig
    seed: int = 1
    key: bytes | None = CLUSTER_KEY
    nodes: dict[str, Node] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def add(self, index: int, *, incarnation: int = 0, config: GossipConfig | None = None,
            key: bytes | None | str = "default", cluster_id: str = CLUSTER_ID) -> Node:  # fmt: skip
        """Create (not start) node ``index``; a node at the same address must be closed first."""
        name, address = name_of(index), address_of(index)
        wire = Wire(cluster_id, key=self.key if key == "default" else key,  # type: ignore[arg-type]
                    name=name, address=address, clock=LoopClock().wall)  # fmt: skip
        transport = self.network.transport(address, wire)
        membership = Membership(name, transport, config or self.config, incarnation=incarnation,
                                rng=random.Random(f"{self.seed}/{name}/{incarnation}"),
                                delegate=Recorder(name, self.events))  # fmt: skip
        node = Node(name, address, transport, membership)
        self.nodes[name] = node
        return node

    async def start_node(self, node: Node, seeds: Iterable[str] = ()) -> int:
        await node.transport.start(node.membership.handle)
        await node.membership.start()
        return await node.membership.join(list(seeds))

    async def start(self, count: int, *, first_index: int = 0, chain: bool = False) -> list[Node]:
        """Start ``count`` nodes one by one, each joining through the first — or, with ``chain``,
        through the one started just before it (so the view must spread by gossip)."""
        started = []
        for index in range(first_index, first_index + count):
            node = self.add(index)
            seed_index = index - 1 if chain else first_index
            await self.start_node(node, [address_of(seed_index)] if index != first_index else [])
            started.append(node)
        return started

    def running(self) -> list[Node]:
        return [node for node in self.nodes.values() if not node.closed]

    async def close_node(self, node: Node) -> None:
        if not node.closed:
            node.closed = True
            await node.membership.aclose()
            await node.transport.aclose()

    async def aclose(self) -> None:
        for node in list(self.nodes.values()):
            await self.close_node(node)
        await self.network.aclose()

    def declared_dead(self, member: str, *, by: Iterable[str] | None = None, since: float = 0.0) -> list[Event]:
        """Every time ``member`` was declared dead (not left) by a node in ``by`` (default: anyone)."""
        observers = None if by is None else set(by)
        return [event for event in self.events
                if event.kind == "leave" and event.member == member and event.state is MemberState.DEAD
                and event.time >= since and (observers is None or event.observer in observers)]  # fmt: skip

    def false_deaths(self, live: Iterable[str], since: float = 0.0) -> list[Event]:
        """Deaths declared, by live nodes, of nodes that were alive all along."""
        live_names = set(live)
        return [event for event in self.events
                if event.kind == "leave" and event.state is MemberState.DEAD and event.time >= since
                and event.member in live_names and event.observer in live_names]  # fmt: skip


async def eventually(condition: Callable[[], bool], timeout_s: float, *, step_s: float = 0.05) -> float:
    """Wait (in loop time) until ``condition()`` holds; the time it took. AssertionError on timeout."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        if loop.time() - started > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(step_s)
    return loop.time() - started


def everyone_sees(nodes: Iterable[Node], expected: set[str]) -> bool:
    """Every node's live view is exactly ``expected``."""
    return all(node.live_view() == expected for node in nodes)


def swim_detection_bound_s(cluster_size: int, config: GossipConfig) -> float:
    """When every live member must have declared a crashed one dead, at the latest.

    SWIM's time-bounded completeness (§4.3): with round-robin probing each member probes every
    other within 2N − 1 protocol periods, a failed round lasting up to the interval plus the
    indirect wait (2 × probe timeout); then the suspicion lasts at most Lifeguard's maximum.
    Rumours normally make it far sooner; this is the bound when they all miss a member.
    """
    period_s = config.probe_interval_s + 2 * config.probe_timeout_s
    nominal_s = suspicion_timeout_s(config.suspicion_mult, cluster_size, config.probe_interval_s)
    return (2 * cluster_size - 1) * period_s + nominal_s * config.suspicion_max_timeout_mult
