"""Tests for node.server: the node's one port closes idle connections and caps each peer's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from node.server import NodeServer

pytestmark = pytest.mark.slow  # real sockets on loopback


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@pytest.fixture
async def servers() -> AsyncIterator[list[NodeServer]]:
    """Servers the test starts, closed (twice: that is fine) at its end."""
    made: list[NodeServer] = []
    yield made
    for served in made:
        await served.aclose()
        await served.aclose()


async def _serving(made: list[NodeServer], **limits: float) -> NodeServer:
    served = NodeServer.bind("127.0.0.1", 0, **limits)  # type: ignore[arg-type]
    served.app.router.add_get("/", _hello)
    made.append(served)
    await served.start()
    return served


async def _open(server: NodeServer, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def test_a_connection_that_sends_no_complete_request_head_is_closed_after_the_idle_timeout(
    servers: list[NodeServer],
) -> None:
    """Found by fuzzing: a slow-loris head held its socket for aiohttp's default hour."""
    server = await _serving(servers, idle_timeout_s=0.5)
    reader, writer = await _open(server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(reader.read(), 3.0) == b""  # closed by the server
    assert 0.4 <= loop.time() - started < 1.5
    writer.close()


async def test_a_peer_over_its_connection_cap_is_refused_503_before_it_is_read_and_others_are_not(
    servers: list[NodeServer],
) -> None:
    """Found by fuzzing: each of 2,000 connections from one peer buffered its body (~+300 MiB).
    Over the cap a connection gets 503 at once; another address is unaffected; a closed
    connection frees its place."""
    server = await _serving(servers, max_connections_per_peer=3)
    held = [await _open(server) for _ in range(3)]
    reader, writer = await _open(server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 2.0)
    assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"too many connections from you now")
    writer.close()
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session, session.get(server.url) as response:
        assert response.status == 200  # another peer address has its own allowance
    _, held_writer = held.pop()
    held_writer.close()
    await held_writer.wait_closed()
    await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session, session.get(server.url) as response:
        assert await response.text() == "hello"
    assert "refused=1" in repr(server)
    for _, held_writer in held:
        held_writer.close()
