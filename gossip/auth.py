"""Sealing and opening envelopes: cluster membership, authentication, freshness, replay.

A ``Wire`` is one node's view of the cluster's wire rules. ``seal`` wraps a message in an
envelope naming the cluster, the protocol version and the sender, stamped with the wall clock
and a random 16-byte nonce, and — when the cluster has a key — an HMAC-SHA256 (RFC 2104) over
the canonical bytes of everything but the MAC (``Frame.signed_bytes``). ``open`` refuses, in
this order: bytes that are not a valid frame (``ProtocolError``; ``VersionMismatch`` for another
protocol version, before anything else is read), another cluster's message
(``ClusterMismatch``, naming both ids), a missing or wrong MAC, a timestamp outside the allowed
clock skew, or a nonce already seen within the replay window (``AuthError``); then it decodes
the body. The MAC is checked before the body is parsed, so unauthenticated bodies are never
decoded.

Keyed and keyless nodes never mix: a keyless (open) node refuses MAC'd messages and a keyed
node refuses unMAC'd ones. Without a key there is no authentication at all — no MAC, no
freshness, no replay check; anyone who can reach the port is believed.

Replay cache: a nonce is remembered for ``replay_window_s`` (≥ 2 × ``max_skew_s``, the longest a
sealed message stays acceptable). Memory is bounded: when the cache is full the oldest nonce is
forgotten and every message no newer than it is refused from then on, so a flood can cost
availability for lagging clocks but never lets a replay through.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from gossip.errors import (
    AuthError,
    ClusterMismatch,
    GossipError,
    ProtocolError,
    TransportError,
    VersionMismatch,
)
from gossip.messages import (
    MAX_ADDRESS_CHARS,
    MAX_NAME_CHARS,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    Envelope,
    Frame,
    Message,
    MessageType,
    decode_frame,
    decode_message,
    encode_frame,
    encode_message,
    envelope_of,
    message_type,
)

__all__ = ["Wire", "Refusal", "RejectionLog", "DEFAULT_MAX_REMEMBERED_NONCES"]

DEFAULT_MAX_REMEMBERED_NONCES = 200_000  # ≈ 25 MB; 120 s of ~1,600 messages/s before it overflows


class Wire:
    """Seals outgoing and opens incoming envelopes for one node. Not thread-safe (event loop)."""

    def __init__(
        self,
        cluster: str,
        *,
        key: bytes | None,
        name: str,
        address: str,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = 60.0,
        replay_window_s: float = 120.0,
        max_remembered_nonces: int = DEFAULT_MAX_REMEMBERED_NONCES,
        version: int = PROTOCOL_VERSION,
    ) -> None:
        """``version``: the protocol version this node speaks (tests build nodes of another one)."""
        _check_text("cluster", cluster, MAX_NAME_CHARS)
        _check_text("name", name, MAX_NAME_CHARS)
        _check_text("address", address, MAX_ADDRESS_CHARS)
        if key is not None and (not isinstance(key, bytes) or not key):
            raise ValueError("key must be non-empty bytes, or None for an open cluster")
        if max_skew_s <= 0 or replay_window_s < 2 * max_skew_s:
            # A message is acceptable from ts - skew to ts + skew of the receiver's clock, so its
            # nonce must be remembered that long or a replay could slip through.
            raise ValueError(f"need max_skew_s > 0 and replay_window_s >= 2 * max_skew_s, got {max_skew_s}, {replay_window_s}")
        if max_remembered_nonces < 1:
            raise ValueError("max_remembered_nonces must be at least 1")
        self._cluster = cluster
        self._key = key
        self._name = name
        self._address = address
        self._clock = clock
        self._max_skew_ms = max_skew_s * 1000.0
        self._replay_window_s = replay_window_s
        self._max_remembered = max_remembered_nonces
        self._seen: OrderedDict[bytes, tuple[float, int]] = OrderedDict()  # nonce -> (forget at, timestamp_ms)
        self._horizon_ms = -1  # messages stamped at or before this are refused (cache overflowed)
        self._version = version

    def __repr__(self) -> str:
        keyed = "keyed" if self._key is not None else "open"
        return f"<Wire {self._name}@{self._address} cluster={self._cluster} {keyed} nonces={len(self._seen)}>"

    @property
    def cluster(self) -> str:
        return self._cluster

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        """The sender address sealed into envelopes (where peers reach this node)."""
        return self._address

    @address.setter
    def address(self, address: str) -> None:
        # A transport bound to port 0 learns its real port only when it starts.
        _check_text("address", address, MAX_ADDRESS_CHARS)
        self._address = address

    @property
    def version(self) -> int:
        """The protocol version this node speaks (stamped on every envelope, required of every one)."""
        return self._version

    @property
    def keyed(self) -> bool:
        """Whether this cluster authenticates its messages."""
        return self._key is not None

    def seal(self, message: Message) -> bytes:
        """The wire bytes of ``message``; ``ProtocolError`` if it breaks a limit of the protocol."""
        frame = Frame(
            version=self._version,
            cluster=self._cluster,
            sender=self._name,
            sender_address=self._address,
            timestamp_ms=int(self._clock() * 1000),
            nonce=os.urandom(NONCE_BYTES),
            type=message_type(message),
            body=encode_message(message),
        )
        if self._key is not None:
            frame = replace(frame, mac=self._mac(frame))
        return encode_frame(frame)

    def open(self, data: bytes, *, expect: MessageType | None = None) -> Envelope:
        """The authenticated envelope in ``data`` (holding an ``expect`` message, if given).

        Raises ``ProtocolError`` (malformed, other version, over a limit, not the expected
        type), ``ClusterMismatch`` or ``AuthError``. Changes no state but the replay cache, and
        that only on success.
        """
        frame = decode_frame(data, version=self._version)
        if expect is not None and frame.type is not expect:
            raise ProtocolError(f"expected a {expect.name} message, got {frame.type.name}")
        if frame.cluster != self._cluster:
            raise ClusterMismatch(
                f"message from {frame.sender!r} at {frame.sender_address} belongs to cluster "
                f"{frame.cluster!r}, this node belongs to cluster {self._cluster!r}"
            )
        now_s = self._clock()
        if self._key is None:
            if frame.mac:
                raise AuthError(f"message from {frame.sender!r} carries a MAC but this node has no cluster key "
                                "(a keyed and an open node cannot form one cluster)")  # fmt: skip
        else:
            self._authenticate(frame, now_s)
        message = decode_message(frame.type, frame.body)
        if self._key is not None:
            self._remember(frame.nonce, frame.timestamp_ms, now_s)
        return envelope_of(frame, message)

    def _mac(self, frame: Frame) -> bytes:
        assert self._key is not None
        return hmac.new(self._key, frame.signed_bytes(), hashlib.sha256).digest()

    def _authenticate(self, frame: Frame, now_s: float) -> None:
        if not frame.mac:
            raise AuthError(f"message from {frame.sender!r} carries no MAC but this cluster requires a key")
        if not hmac.compare_digest(frame.mac, self._mac(frame)):
            raise AuthError(f"bad MAC on message from {frame.sender!r}: wrong cluster key or altered message")
        skew_ms = now_s * 1000.0 - frame.timestamp_ms
        if abs(skew_ms) > self._max_skew_ms:
            raise AuthError(
                f"message from {frame.sender!r} is stamped {skew_ms / 1000:+.1f} s from this node's clock "
                f"(limit ±{self._max_skew_ms / 1000:g} s): stale, replayed, or clocks out of sync"
            )
        self._forget_expired(now_s)
        if frame.nonce in self._seen:
            raise AuthError(f"replayed message from {frame.sender!r} (nonce already seen)")
        if frame.timestamp_ms <= self._horizon_ms:
            raise AuthError(f"message from {frame.sender!r} is older than this node's replay cache reaches "
                            "(cache overflowed under load)")  # fmt: skip

    def _forget_expired(self, now_s: float) -> None:
        while self._seen:
            nonce, (forget_at, _) = next(iter(self._seen.items()))
            if forget_at > now_s:
                break
            del self._seen[nonce]

    def _remember(self, nonce: bytes, timestamp_ms: int, now_s: float) -> None:
        self._seen[nonce] = (now_s + self._replay_window_s, timestamp_ms)
        while len(self._seen) > self._max_remembered:
            _, (_, forgotten_ms) = self._seen.popitem(last=False)
            self._horizon_ms = max(self._horizon_ms, forgotten_ms)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A receiver's refusal of a request, as it travels back to the caller (an HTTP status).

    Both transports use it, so a caller sees the same exception over HTTP and in memory.
    """

    status: int  # 400 invalid, 401 unauthenticated, 403 other cluster, 408 body too slow, 413 too large,
    # 429 too many requests from one peer at once, 500 failed, 503 not serving
    reason: str
    cluster: str = ""  # the receiver's cluster id (403 only): the caller's error names both
    # A 400 for another protocol version: the receiver's version and the one it was sent (0 otherwise).
    # The caller's error names both. (A receiver older than these fields sends a plain 400.)
    version: int = 0
    sender_version: int = 0

    @classmethod
    def of(cls, exc: GossipError, *, cluster: str) -> Refusal:
        """The refusal for an error raised while opening or handling a request."""
        if isinstance(exc, ClusterMismatch):
            return cls(403, str(exc), cluster)
        if isinstance(exc, VersionMismatch):
            return cls(400, str(exc), version=exc.own_version, sender_version=exc.peer_version)
        if isinstance(exc, AuthError):
            return cls(401, str(exc))
        if isinstance(exc, ProtocolError):
            return cls(400, str(exc))
        return cls(500, str(exc))

    def error(self, peer: str, *, cluster: str) -> GossipError:
        """The exception a caller of cluster ``cluster`` raises for this refusal by ``peer``."""
        if self.status == 403:
            return ClusterMismatch(f"peer {peer} belongs to cluster {self.cluster!r}, this node to cluster {cluster!r}")
        if self.status == 401:
            return AuthError(f"peer {peer} refused our message: {self.reason}")
        if self.status == 400 and self.version:
            return VersionMismatch(f"peer {peer} speaks protocol version {self.version}, this node speaks "
                                   f"{self.sender_version}: they cannot gossip (upgrade one of them)",
                                   peer_version=self.version, own_version=self.sender_version)  # fmt: skip
        if self.status == 400:
            return ProtocolError(f"peer {peer} refused our message as invalid: {self.reason}")
        if self.status == 413:
            return ProtocolError(f"peer {peer} refused our message as too large: {self.reason}")
        return TransportError(f"peer {peer} could not handle our message (status {self.status}): {self.reason}")


class RejectionLog:
    """Logs refused messages at most once per peer per interval, counting the ones it held back.

    A misconfigured or hostile peer can send thousands of bad messages a second; one line a
    minute per peer says what is wrong without flooding the log.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = 1024,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._max_peers = max_peers
        self._peers: OrderedDict[str, tuple[float, int]] = OrderedDict()  # peer -> (last logged, held back)

    def __repr__(self) -> str:
        return f"<RejectionLog peers={len(self._peers)} interval={self._interval_s:g}s>"

    def refused(self, peer: str, reason: str) -> None:
        """Record that a message from ``peer`` was refused for ``reason``; log if due."""
        now = self._clock()
        last = self._peers.get(peer)
        if last is not None and now - last[0] < self._interval_s:
            self._peers[peer] = (last[0], last[1] + 1)
            return
        held_back = last[1] if last is not None else 0
        self._peers[peer] = (now, 0)
        self._peers.move_to_end(peer)
        while len(self._peers) > self._max_peers:
            self._peers.popitem(last=False)
        if held_back:
            self._logger.warning("refused gossip from %s: %s (and %d more in the last %g s)",
                                 peer, reason, held_back, self._interval_s)  # fmt: skip
        else:
            self._logger.warning("refused gossip from %s: %s", peer, reason)


def _check_text(what: str, value: str, max_chars: int) -> None:
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise ValueError(f"{what} must be a non-empty string of at most {max_chars} characters, got {value!r}")
