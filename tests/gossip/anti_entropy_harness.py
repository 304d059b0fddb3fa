"""Nodes running ``AntiEntropy`` over an ``InMemoryNetwork``, with a store that behaves like the node's.

Records are ``b"<partition>|<payload>"`` padded to about an entry record's size; the store
indexes every record it commits in the engine's key set, as ``RecordStore`` requires.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterable, Sequence

from gossip.anti_entropy import AntiEntropy, AntiEntropyConfig
from gossip.broadcast import record_key
from gossip.keyset import KeySet
from gossip.membership import MemberInfo
from gossip.messages import MemberState
from gossip.testing import InMemoryNetwork, InMemoryTransport, make_wire

RECORD_BYTES = 100


def make_record(partition: str, payload: str) -> bytes:
    return f"{partition}|{payload}".encode().ljust(RECORD_BYTES, b".")


def partition_of(record: bytes) -> str:
    return record.split(b"|", 1)[0].decode()


def random_records(rng: random.Random, count: int, partitions: Sequence[str] = ("p0", "p1", "p2")) -> list[bytes]:
    return [make_record(rng.choice(partitions), f"{rng.getrandbits(64):016x}") for _ in range(count)]


class MemoryStore:
    """A ``RecordStore``: records by key; ``merge`` and ``commit`` index new records in the engine's key set."""

    def __init__(self, keys: KeySet) -> None:
        self.records: dict[bytes, bytes] = {}
        self.keys = keys
        self.merge_calls = 0

    def commit(self, items: Iterable[bytes]) -> list[bytes]:
        new = []
        for item in items:
            key = record_key(item)
            if key not in self.records:
                self.records[key] = item
                self.keys.add(key, partition_of(item))
                new.append(item)
        return new

    async def fetch(self, keys: Sequence[bytes]) -> Sequence[bytes]:
        await asyncio.sleep(0)  # a real store awaits its database
        return [self.records[key] for key in keys if key in self.records]

    async def merge(self, items: Sequence[bytes]) -> Sequence[bytes]:
        self.merge_calls += 1
        await asyncio.sleep(0)
        return self.commit(items)

    @property
    def held(self) -> set[bytes]:
        return set(self.records.values())


class StaticView:
    """A membership view of fixed members; ``set_state`` marks one dead or alive again."""

    def __init__(self, names_addresses: Sequence[tuple[str, str]]) -> None:
        self.infos = {name: MemberInfo(name, address, MemberState.ALIVE, 0, 0.0) for name, address in names_addresses}

    def members(self) -> list[MemberInfo]:
        return list(self.infos.values())

    def set_state(self, name: str, state: MemberState, *, incarnation: int | None = None) -> None:
        info = self.infos[name]
        self.infos[name] = dataclasses.replace(info, state=state,
                                               incarnation=info.incarnation if incarnation is None else incarnation)


@dataclasses.dataclass
class AENode:
    name: str
    address: str
    transport: InMemoryTransport
    engine: AntiEntropy
    store: MemoryStore
    view: StaticView

    @property
    def info(self) -> MemberInfo:
        return MemberInfo(self.name, self.address, MemberState.ALIVE, 0, 0.0)


def address_of(index: int) -> str:
    return f"10.9.0.{index + 1}:7946"


async def make_nodes(network: InMemoryNetwork, count: int, *, config: AntiEntropyConfig | None = None,
                     seed: int = 1, start: bool = False) -> list[AENode]:
    """``count`` nodes n0…, each with its own view of everyone alive, serving anti-entropy."""
    config = config or AntiEntropyConfig.local()
    members = [(f"n{index}", address_of(index)) for index in range(count)]
    nodes = []
    for index, (name, address) in enumerate(members):
        transport = network.transport(address, make_wire(address, name=name))
        keys = KeySet(cached_symbols=config.cached_symbols)
        store = MemoryStore(keys)
        view = StaticView(members)
        engine = AntiEntropy(name, transport, view, store=store, config=config, rng=random.Random(f"{seed}/{index}"),
                             keys=keys)
        await transport.start(engine.handle)
        if start:
            await engine.start()
        nodes.append(AENode(name, address, transport, engine, store, view))
    return nodes


async def close_nodes(network: InMemoryNetwork, nodes: Iterable[AENode]) -> None:
    for node in nodes:
        await node.engine.aclose()
    await network.aclose()
