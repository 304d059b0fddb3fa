"""The transport seam: request/response exchange of messages between members.

Implementations: ``gossip.http_transport.AiohttpTransport`` (msgpack envelopes over HTTP POST
``/gossip/<type>`` on the node's port) and ``gossip.testing.InMemoryNetwork`` (latency, loss,
partitions, dead nodes; deterministic under a seed and a virtual clock). Both seal and open
real envelope bytes, so encoding, size limits and authentication are exercised in every test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gossip.messages import Message

__all__ = ["Sender", "Handler", "Transport"]


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a request, as its authenticated envelope says."""

    name: str
    address: str


Handler = Callable[[Message, Sender], Awaitable[Message | None]]
"""Answers one request; None = no reply body (the request is acknowledged empty). Runs on the
event loop, must not block; raise ``ProtocolError`` for a request it cannot serve."""


class Transport(Protocol):
    """Moves messages between members. Runs on the event loop."""

    @property
    def local_address(self) -> str:
        """``host:port`` this member is reachable at (the advertised address)."""
        ...

    async def start(self, handler: Handler) -> None:
        """Begin serving requests with ``handler``."""
        ...

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        """Send ``message`` to ``address`` and return its reply.

        Raises ``RequestTimeout`` if no reply arrives in ``timeout_s``, ``TransportError`` if
        the peer cannot be reached, ``AuthError``/``ClusterMismatch`` if it refused us, and
        ``ProtocolError`` if the reply is malformed.
        """
        ...

    async def aclose(self) -> None:
        """Stop serving and release connections; safe to call twice."""
        ...
