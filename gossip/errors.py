"""The gossip package's error tree (flat, as memberlist's callers need it).

    GossipError
    ├── TransportError      — a peer could not be reached or did not answer in time
    │   └── RequestTimeout
    ├── ProtocolError       — bytes that are not a valid message of this protocol
    │   ├── DecodeError
    │   └── VersionMismatch — a peer speaks another protocol version
    ├── AuthError           — wrong cluster key, stale or replayed message
    ├── ClusterMismatch     — a message of another cluster (another topic)
    └── JoinError           — no seed could be joined

Third-party exceptions (aiohttp, msgpack) are translated at the boundary with ``raise … from``.
"""

from __future__ import annotations

__all__ = [
    "GossipError",
    "TransportError",
    "RequestTimeout",
    "ProtocolError",
    "DecodeError",
    "VersionMismatch",
    "AuthError",
    "ClusterMismatch",
    "JoinError",
]


class GossipError(Exception):
    """Base of every error raised by the gossip package."""


class TransportError(GossipError):
    """A peer could not be reached, refused the connection, or the exchange broke."""


class RequestTimeout(TransportError):
    """A peer did not answer within the timeout."""


class ProtocolError(GossipError):
    """A message that is not valid for this protocol (version, type, shape, size)."""


class DecodeError(ProtocolError):
    """Bytes that do not decode to a message."""


class VersionMismatch(ProtocolError):
    """A message of another protocol version than this node speaks; both versions are attributes."""

    def __init__(self, message: str, *, peer_version: int, own_version: int) -> None:
        super().__init__(message)
        self.peer_version = peer_version  # the version of the other side (the message's, or the refuser's)
        self.own_version = own_version  # the version of the side raising it


class AuthError(GossipError):
    """Authentication failed: wrong cluster key, bad MAC, stale timestamp or replayed nonce."""


class ClusterMismatch(GossipError):
    """A message from a node of another cluster (another topic or cluster id)."""


class JoinError(GossipError):
    """No seed could be joined."""
