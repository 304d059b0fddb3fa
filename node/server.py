"""The node's one port: bind first (so ``--port 0`` resolves before anything needs the port),
then mount the gossip routes and the read-only web routes on one aiohttp application."""

from __future__ import annotations

import logging
import socket

from aiohttp import web

from node.errors import NodeError

__all__ = ["CannotListen", "NodeServer"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # gossip envelopes are bounded lower by their own limit


class CannotListen(NodeError):
    """The node's port could not be bound."""


class NodeServer:
    """``bind()`` → add routes to ``app`` → ``start()`` → ``aclose()``."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self._sock = sock
        self._host = host
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<NodeServer {self.url} {'serving' if self._runner else 'bound'}>"

    @classmethod
    def bind(cls, host: str, port: int) -> NodeServer:
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
        return cls(sock, host)

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
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._sock).start()
        self._runner = runner
        log.info("serving on %s", self.url)

    async def aclose(self) -> None:
        """Stop serving; safe to call twice (also when never started)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        else:
            self._sock.close()
