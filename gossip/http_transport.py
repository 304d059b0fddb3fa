"""The gossip transport over HTTP: sealed msgpack envelopes in ``POST /gossip/<type>``.

Server: the routes can be mounted on the node's one web application (``add_routes(app)``,
next to its pages) or served by the transport itself (``start`` binds ``host:port``; port 0
picks a free one). Every request is size-checked before it is read (413), admitted only while
its peer address has fewer than ``max_requests_per_peer`` requests in progress (429, unread:
a burst from one peer costs a header parse per extra request, not a body buffered each), read
within ``body_timeout_s`` (408: a slow-loris body cannot hold a slot for ever), opened by the
``Wire`` (400 malformed, 401 unauthenticated, 403 other cluster — the body names this node's
cluster), then handed to the handler; a reply is a sealed envelope (200) or nothing (204).
Refused messages change nothing and are logged at most once per peer per minute. A server of
its own also closes a connection that sends no complete request head within
``idle_timeout_s`` (slow-loris headers, idle keep-alives); mounted on the node's application,
that is the node server's job.

Client: one keep-alive ``aiohttp.ClientSession``, a bound on requests in flight, one deadline
per request covering the queue, the connection and the exchange. Refusals come back as the
same exceptions the in-memory network raises (``gossip.auth.Refusal``); aiohttp errors are
translated here and go no further.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
from aiohttp import web
from yarl import URL

from gossip.auth import Refusal, RejectionLog, Wire
from gossip.errors import GossipError, ProtocolError, RequestTimeout, TransportError
from gossip.messages import MAX_MESSAGE_BYTES, Message, MessageType, message_type
from gossip.transport import Handler, Sender

__all__ = ["AiohttpTransport", "format_address", "parse_address", "GOSSIP_PATH", "CONTENT_TYPE"]

logger = logging.getLogger(__name__)

GOSSIP_PATH = "/gossip/{type}"  # {type} is the lowercase MessageType name, e.g. /gossip/ping
CONTENT_TYPE = "application/msgpack"
_MAX_REFUSAL_BYTES = 4096
# A peer's sending transport keeps at most this many requests in flight (``max_in_flight``), so
# one well-behaved node never meets the bound; nodes sharing one address (one host) share it.
DEFAULT_MAX_REQUESTS_PER_PEER = 64
DEFAULT_BODY_TIMEOUT_S = 10.0  # a whole envelope (≤ 1 MiB) at 100 KB/s; loopback and LANs take milliseconds
# Above aiohttp clients' 15 s keep-alive, so a client drops an idle connection before we do.
DEFAULT_IDLE_TIMEOUT_S = 30.0
_PATH_TYPES = {kind.name.lower(): kind for kind in MessageType}
# Hostnames, IPv4, or bracketed IPv6: an address is gossiped by peers, so nothing that could
# bend the URL (paths, userinfo, queries) gets through.
_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>[0-9]{1,5})$")


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) → (host without brackets, port); ``TransportError`` if invalid."""
    match = _ADDRESS.match(address)
    port = int(match.group("port")) if match else 0
    if match is None or not 0 < port < 65536:
        raise TransportError(f"invalid peer address {address!r}: expected host:port")
    return match.group("host").strip("[]"), port


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AiohttpTransport:
    """A ``gossip.transport.Transport`` over HTTP/1.1 with aiohttp."""

    def __init__(
        self,
        wire: Wire,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise: str | None = None,
        max_in_flight: int = 64,
        connect_timeout_s: float = 2.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_requests_per_peer: int = DEFAULT_MAX_REQUESTS_PER_PEER,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_requests_per_peer < 1:
            raise ValueError("max_requests_per_peer must be at least 1")
        if body_timeout_s <= 0 or idle_timeout_s <= 0:
            raise ValueError(f"timeouts must be > 0, got body {body_timeout_s}, idle {idle_timeout_s}")
        if advertise is not None:
            parse_address(advertise)
        self._wire = wire
        self._host = host
        self._port = port
        self._advertise = advertise
        self._max_in_flight = max_in_flight
        self._connect_timeout_s = connect_timeout_s
        self._max_message_bytes = max_message_bytes
        self._max_requests_per_peer = max_requests_per_peer
        self._body_timeout_s = body_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._serving: dict[str, int] = {}  # peer address -> its requests in progress (no entry at 0)
        self._handler: Handler | None = None
        self._mounted = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._rejections = RejectionLog(logger)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving" if self._handler else "idle"
        in_progress = sum(self._serving.values())
        return (f"<AiohttpTransport {self._wire.name}@{self.local_address} {state} "
                f"requests_in_progress={in_progress} from_peers={len(self._serving)}>")  # fmt: skip

    @property
    def local_address(self) -> str:
        return self._advertise or format_address(self._host, self._port)

    def routes(self) -> list[web.RouteDef]:
        """The gossip routes, to serve on an application the caller runs (see ``add_routes``)."""
        return [web.post(GOSSIP_PATH, self._serve)]

    def add_routes(self, app: web.Application) -> None:
        """Serve gossip on ``app`` (the node's one port); ``start`` then binds nothing itself."""
        if self._port == 0 and self._advertise is None:
            raise ValueError("mounted on another application the transport cannot learn its port: pass port or advertise")
        app.add_routes(self.routes())
        self._mounted = True

    async def start(self, handler: Handler) -> None:
        if self._closed:
            raise TransportError("transport is closed")
        self._handler = handler
        if self._mounted or self._runner is not None:
            return
        app = web.Application()
        app.add_routes(self.routes())
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self._idle_timeout_s)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            raise TransportError(f"cannot listen on {format_address(self._host, self._port)}: {exc}") from exc
        self._runner = runner
        picked_port = self._port == 0
        self._port = int(runner.addresses[0][1])
        if picked_port and self._advertise is None:
            self._wire.address = self.local_address  # the wire could not know the port: peers must learn it

    async def request(self, address: str, message: Message, *, timeout_s: float) -> Message | None:
        if self._closed:
            raise TransportError("transport is closed")
        host, port = parse_address(address)
        kind = message_type(message)
        data = self._wire.seal(message)
        url = URL.build(scheme="http", host=host, port=port, path=f"/gossip/{kind.name.lower()}")
        session = self._client()
        try:
            async with (
                asyncio.timeout(timeout_s),  # one deadline: the queue, the connection, the exchange
                self._in_flight,
                session.post(url, data=data, headers={"Content-Type": CONTENT_TYPE}) as response,
            ):
                status = response.status
                body = await _read_limited(response.content, self._max_message_bytes, response.content_length)
        except aiohttp.ServerTimeoutError as exc:  # aiohttp's own connect timeout (before ours)
            raise RequestTimeout(f"{address} did not answer: {exc}") from exc
        except TimeoutError:
            raise RequestTimeout(f"no reply from {address} within {timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"cannot connect to {address}: {exc.os_error or exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"exchange with {address} failed: {type(exc).__name__}: {exc}") from exc
        if status == 204:
            return None
        if status != 200:
            raise _refusal_of(status, body).error(address, cluster=self._wire.cluster)
        if body is None:
            raise ProtocolError(f"reply from {address} is over {self._max_message_bytes} bytes")
        return self._wire.open(body).message

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._handler = None
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created on first use: a session belongs to the running loop, constructors do no I/O.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_in_flight),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            )
        return self._session

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or "unknown"
        handler = self._handler
        if handler is None or self._closed:
            return _refusal_response(Refusal(503, "not serving gossip"))
        kind = _PATH_TYPES.get(request.match_info["type"])
        if kind is None:
            return self._refuse(peer, Refusal(400, f"unknown message type {request.match_info['type']!r}"))
        declared = request.content_length
        if declared is not None and declared > self._max_message_bytes:
            # Refused unread: a peer cannot make us buffer more than the limit.
            return self._refuse(peer, Refusal(413, f"{declared} bytes, limit {self._max_message_bytes}"))
        in_progress = self._serving.get(peer, 0)
        if in_progress >= self._max_requests_per_peer:
            return self._refuse(peer, Refusal(429, f"{in_progress} requests from {peer} in progress, "
                                                   f"limit {self._max_requests_per_peer}"))  # fmt: skip
        self._serving[peer] = in_progress + 1
        try:
            return await self._serve_admitted(request, peer, kind, handler)
        finally:
            left = self._serving[peer] - 1
            if left:
                self._serving[peer] = left
            else:
                del self._serving[peer]  # bounded by the requests in progress, not by every peer ever seen

    async def _serve_admitted(self, request: web.Request, peer: str, kind: MessageType,
                              handler: Handler) -> web.StreamResponse:  # fmt: skip
        try:
            async with asyncio.timeout(self._body_timeout_s):
                data = await _read_limited(request.content, self._max_message_bytes, request.content_length)
        except TimeoutError:
            return self._refuse(peer, Refusal(408, f"body not received within {self._body_timeout_s:g} s"))
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return self._refuse(peer, Refusal(400, f"body could not be read: {exc}"))
        if data is None:
            return self._refuse(peer, Refusal(413, f"over {self._max_message_bytes} bytes"))
        try:
            envelope = self._wire.open(data, expect=kind)  # the path must name the body's type
        except GossipError as exc:
            return self._refuse(peer, Refusal.of(exc, cluster=self._wire.cluster))
        try:
            answer = await handler(envelope.message, Sender(envelope.sender, envelope.sender_address))
        except ProtocolError as exc:  # the handler cannot serve this request
            return _refusal_response(Refusal.of(exc, cluster=self._wire.cluster))
        except Exception as exc:
            logger.exception("gossip handler failed on %s from %s (%s)", kind.name, envelope.sender, peer)
            return _refusal_response(Refusal(500, f"{type(exc).__name__}: {exc}"))
        if answer is None:
            return web.Response(status=204)
        try:
            reply = self._wire.seal(answer)
        except ProtocolError as exc:  # our handler built a reply the protocol cannot carry: our bug
            logger.exception("cannot seal the %s reply to %s", type(answer).__name__, envelope.sender)
            return _refusal_response(Refusal(500, f"reply could not be sealed: {exc}"))
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    def _refuse(self, peer: str, refusal: Refusal) -> web.Response:
        self._rejections.refused(peer, f"{refusal.status} {refusal.reason}")
        return _refusal_response(refusal)


async def _read_limited(stream: aiohttp.StreamReader, limit: int, declared: int | None) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed ``limit`` bytes."""
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal_response(refusal: Refusal) -> web.Response:
    fields: dict[str, str | int] = {"reason": refusal.reason, "cluster": refusal.cluster}
    if refusal.version:  # another protocol version: the caller's error names both
        fields |= {"version": refusal.version, "sender_version": refusal.sender_version}
    return web.json_response(fields, status=refusal.status)


def _refusal_of(status: int, body: bytes | None) -> Refusal:
    """Read a refusal back; a peer that is not one of ours (or a proxy) still yields a clear error."""
    text = (body or b"")[:_MAX_REFUSAL_BYTES].decode("utf-8", "replace")
    try:
        fields = json.loads(text)
        reason, cluster = str(fields["reason"]), str(fields.get("cluster", ""))
        version, sender_version = _version_of(fields.get("version")), _version_of(fields.get("sender_version"))
    except (ValueError, TypeError, KeyError, AttributeError):
        reason, cluster, version, sender_version = text.strip() or f"HTTP {status}", "", 0, 0
    return Refusal(status, reason, cluster, version, sender_version)


def _version_of(value: object) -> int:
    """A protocol version from a refusal's JSON; 0 (none) for anything that is not a positive integer."""
    return value if type(value) is int and 0 < value < 2**64 else 0
