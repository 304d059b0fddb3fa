"""The node's one port: bind first (so ``--port 0`` resolves before anything needs the port),
then mount the gossip routes and the read-only web routes on one aiohttp application.

Hostile clients are bounded at the connection, before any route sees a request:

- a connection must deliver a complete request head within ``idle_timeout_s`` of opening (or
  of its previous response) or it is closed: a slow-loris client that trickles its headers,
  or holds a connection open sending nothing, is cut off instead of holding a socket for ever;
- one peer address holds at most ``max_connections_per_peer`` connections open; a connection
  over the cap is answered 503 and closed before a byte of it is read. Each open connection
  may hold a read buffer (up to ~256 KiB: one socket read plus aiohttp's flow-control window)
  before its request is even routed, so without the cap a burst of connections from one peer
  grows memory with the burst — 2,000 connections sending 256 KiB bodies cost ~500 MB.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from aiohttp import web

from node.errors import NodeError

__all__ = ["CannotListen", "NodeServer", "IDLE_TIMEOUT_S", "MAX_CONNECTIONS_PER_PEER"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # gossip envelopes are bounded lower by their own limit
# Above aiohttp clients' 15 s keep-alive (peers' gossip sessions), so a client drops an idle
# connection before we do and never sends on one we are closing; browsers reconnect.
IDLE_TIMEOUT_S = 30.0
# A peer's gossip client keeps at most 64 connections (its ``max_in_flight``), a browser a few
# plus its event stream: the cap leaves room for several nodes behind one address, and bounds
# what one address can make the node buffer to ~64 MiB.
MAX_CONNECTIONS_PER_PEER = 256
_WARN_INTERVAL_S = 60.0  # refusals are logged at most this often
_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\n"
             b"Connection: close\r\n\r\ntoo many connections from you now")  # fmt: skip


class CannotListen(NodeError):
    """The node's port could not be bound."""


class NodeServer:
    """``bind()`` → add routes to ``app`` → ``start()`` → ``aclose()``."""

    def __init__(
        self,
        sock: socket.socket,
        host: str,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections_per_peer: int = MAX_CONNECTIONS_PER_PEER,
    ) -> None:
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        if max_connections_per_peer < 1:
            raise ValueError(f"max_connections_per_peer must be at least 1, got {max_connections_per_peer}")
        self._sock = sock
        self._host = host
        self._idle_timeout_s = idle_timeout_s
        self._max_connections_per_peer = max_connections_per_peer
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._connections: PeerConnections | None = None

    def __repr__(self) -> str:
        return f"<NodeServer {self.url} {'serving' if self._runner else 'bound'} {self._connections!r}>"

    @classmethod
    def bind(
        cls,
        host: str,
        port: int,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections_per_peer: int = MAX_CONNECTIONS_PER_PEER,
    ) -> NodeServer:
        """Bind ``host:port`` now; ``CannotListen`` says why it failed."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        return cls(sock, host, idle_timeout_s=idle_timeout_s, max_connections_per_peer=max_connections_per_peer)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def address(self) -> str:
        """``host:port`` as bound (IPv6 in brackets)."""
        return f"[{self._host}]:{self.port}" if ":" in self._host else f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    async def start(self) -> None:
        # aiohttp's keep-alive timer runs from the connection's start too, and closes it while
        # it still waits for a request head: that is the header deadline.
        runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=self._idle_timeout_s)
        await runner.setup()
        server = runner.server
        assert server is not None  # set up above
        # Served without an aiohttp site, so every connection passes the per-peer cap first
        # (with the backlog an aiohttp site would use).
        self._connections = PeerConnections(server, self._max_connections_per_peer)
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(self._connections, sock=self._sock, backlog=128)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("serving on %s", self.url)

    async def aclose(self) -> None:
        """Stop serving; safe to call twice (also when never started)."""
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # accept nothing more; the runner then shuts the open connections down
        if runner is not None:
            await runner.cleanup()
        else:
            self._sock.close()


class PeerConnections:
    """A protocol factory that caps the connections one peer address holds open.

    Wraps aiohttp's (``factory``): a connection within the cap is handed to it untouched; one
    over the cap gets a 503 and is closed before it is read. Refusals are logged at most once
    a minute, with how many there were.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], max_per_peer: int) -> None:
        self._factory = factory
        self._max_per_peer = max_per_peer
        self._open: dict[str, int] = {}  # peer address -> open connections (no entry at 0)
        self.refused = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    def __repr__(self) -> str:
        return f"<PeerConnections peers={len(self._open)} open={sum(self._open.values())} refused={self.refused}>"

    def __call__(self) -> asyncio.Protocol:
        return _CountedConnection(self)

    def open_connections(self, peer: str) -> int:
        return self._open.get(peer, 0)

    def _admit(self, peer: str) -> asyncio.Protocol | None:
        count = self._open.get(peer, 0)
        if count >= self._max_per_peer:
            self.refused += 1
            self._unlogged += 1
            now = time.monotonic()
            if now - self._logged_at >= _WARN_INTERVAL_S:
                log.warning("refused %d connection(s) in the last %g s: %s holds %d open, the limit",
                            self._unlogged, _WARN_INTERVAL_S, peer, count)  # fmt: skip
                self._logged_at, self._unlogged = now, 0
            return None
        self._open[peer] = count + 1
        return self._factory()

    def _release(self, peer: str) -> None:
        left = self._open[peer] - 1
        if left:
            self._open[peer] = left
        else:
            del self._open[peer]


class _CountedConnection(asyncio.Protocol):
    """One connection: counted against its peer and passed to aiohttp's protocol, or refused."""

    def __init__(self, connections: PeerConnections) -> None:
        self._connections = connections
        self._inner: asyncio.Protocol | None = None
        self._peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        self._peer = str(peername[0]) if peername else "unknown"
        self._inner = self._connections._admit(self._peer)
        if self._inner is None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._connections._release(self._peer)
            self._inner.connection_lost(exc)
