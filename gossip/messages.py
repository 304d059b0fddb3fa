"""The wire format: message types, one frozen dataclass per message, size limits, encoding.

``MessageType`` numbers are the protocol: append only, never renumber. msgpack appears only
in this module. Every message travels inside an ``Envelope`` that names the cluster, the
protocol version and the sender, and (with a cluster key) carries an HMAC-SHA256 over the
body, a timestamp and a nonce (see ``gossip.auth``).

SWIM runs over request/response (HTTP POST on real networks): a ``Ping`` is answered by an
``Ack``; a ``PingReq`` asks an intermediary to ping a target and answer ``Ack`` or ``Nack``;
``PushPull`` exchanges full membership state (join and periodic sync). Membership changes
(``MemberUpdate``) ride piggybacked on all of them, as in SWIM §4.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_UPDATES_PER_MESSAGE",
    "MAX_MEMBERS_PER_PUSH_PULL",
    "MAX_NAME_CHARS",
    "MAX_ADDRESS_CHARS",
    "MAX_PAYLOADS_PER_MESSAGE",
    "MAX_PAYLOAD_BYTES",
    "MessageType",
    "MemberState",
    "MemberUpdate",
    "Ping",
    "Ack",
    "Nack",
    "PingReq",
    "PushPull",
    "Payloads",
    "Message",
    "Envelope",
]

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1024 * 1024  # a whole envelope; larger bodies are refused unread (413)
MAX_UPDATES_PER_MESSAGE = 64  # piggybacked membership updates
MAX_MEMBERS_PER_PUSH_PULL = 4096
MAX_NAME_CHARS = 128
MAX_ADDRESS_CHARS = 300  # host:port, IPv6 in brackets included
MAX_PAYLOADS_PER_MESSAGE = 2048  # opaque records of the layers above (dissemination, anti-entropy)
MAX_PAYLOAD_BYTES = 64 * 1024


class MessageType(IntEnum):
    """Append only: these numbers are the protocol."""

    PING = 1
    ACK = 2
    NACK = 3
    PING_REQ = 4
    PUSH_PULL = 5
    PAYLOADS = 6  # opaque records pushed by the dissemination layer


class MemberState(IntEnum):
    """A member's state in the membership view (append only)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3  # left gracefully; like DEAD but not a failure


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """A rumour about one member; a higher incarnation overrides, SWIM's precedence rules apply."""

    name: str
    address: str  # host:port peers use to reach it
    incarnation: int
    state: MemberState
    source: str = ""  # who asserts it (a suspicion's accuser: Lifeguard counts independent ones)


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str  # the name the sender believes it is pinging (a restarted node may differ)
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    """An intermediary reached no answer from the target (Lifeguard: a sign it is the target, not us)."""

    seq: int


@dataclass(frozen=True, slots=True)
class PingReq:
    seq: int
    target: str
    target_address: str
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class PushPull:
    """Full membership state; ``join`` marks the first exchange of a joining node."""

    members: tuple[MemberUpdate, ...]
    join: bool = False


@dataclass(frozen=True, slots=True)
class Payloads:
    """Opaque records of the layers above, keyed by channel (e.g. "records")."""

    channel: str
    items: tuple[bytes, ...]


Message = Ping | Ack | Nack | PingReq | PushPull | Payloads


@dataclass(frozen=True, slots=True)
class Envelope:
    """What actually crosses the wire around one message."""

    version: int
    cluster: str  # cluster id (derived from the topic by the node)
    sender: str  # sender's member name
    sender_address: str  # where the sender can be reached
    timestamp_ms: int  # sender's wall clock, for replay protection
    nonce: bytes  # 16 random bytes, for replay protection
    message: Message
