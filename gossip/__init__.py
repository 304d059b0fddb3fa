"""Gossip layer: transport, wire messages, membership, dissemination, anti-entropy.

Knows nothing of LLMs, topics or partitions: it moves opaque keyed records between members.
The node plugs in through narrow delegates (``RecordDelegate``, ``RecordStore``,
``MembershipDelegate``).
"""

from __future__ import annotations

from gossip.anti_entropy import AntiEntropy, AntiEntropyConfig, RecordStore
from gossip.auth import Wire
from gossip.broadcast import BroadcastConfig, Broadcaster, RecordDelegate
from gossip.config import ConfigError, GossipConfig
from gossip.errors import (
    AuthError,
    ClusterMismatch,
    DecodeError,
    GossipError,
    JoinError,
    ProtocolError,
    RequestTimeout,
    TransportError,
    VersionMismatch,
)
from gossip.http_transport import AiohttpTransport
from gossip.membership import MemberInfo, Membership, MembershipDelegate
from gossip.transport import Handler, Sender, Transport

__all__ = [
    "AiohttpTransport",
    "AntiEntropy",
    "AntiEntropyConfig",
    "AuthError",
    "BroadcastConfig",
    "Broadcaster",
    "ClusterMismatch",
    "ConfigError",
    "DecodeError",
    "GossipConfig",
    "GossipError",
    "Handler",
    "JoinError",
    "MemberInfo",
    "Membership",
    "MembershipDelegate",
    "ProtocolError",
    "RecordDelegate",
    "RecordStore",
    "RequestTimeout",
    "Sender",
    "Transport",
    "TransportError",
    "VersionMismatch",
    "Wire",
]
