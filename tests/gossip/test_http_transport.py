"""The HTTP transport over real loopback sockets: round trips, refusals, timeouts, limits."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gossip.auth import Wire
from gossip.errors import (
    AuthError,
    ClusterMismatch,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from gossip.http_transport import AiohttpTransport, format_address, parse_address
from gossip.messages import (
    MAX_UPDATES_PER_MESSAGE,
    Ack,
    MemberState,
    MemberUpdate,
    Message,
    Nack,
    Payloads,
    Ping,
)
from gossip.transport import Sender

pytestmark = pytest.mark.slow  # real sockets on loopback

KEY = b"test-key-0123456789"


def _wire(name: str, *, key: bytes | None = KEY, cluster: str = "c1") -> Wire:
    return Wire(cluster, key=key, name=name, address="127.0.0.1:0")


class Recorder:
    """Answers a Ping with an Ack, a Nack with nothing; refuses anything else as a protocol error."""

    def __init__(self) -> None:
        self.seen: list[tuple[Message, Sender]] = []

    async def __call__(self, message: Message, sender: Sender) -> Message | None:
        self.seen.append((message, sender))
        if isinstance(message, Ping):
            return Ack(message.seq)
        if isinstance(message, Nack):
            return None
        raise ProtocolError("only pings and nacks here")


@pytest.fixture
async def transports() -> AsyncIterator[list[AiohttpTransport]]:
    """Transports made by the test, closed at its end."""
    made: list[AiohttpTransport] = []
    yield made
    for transport in made:
        await transport.aclose()


async def _serving(made: list[AiohttpTransport], name: str, handler: object = None, **options: object) -> AiohttpTransport:
    wire_options = {key: options.pop(key) for key in ("key", "cluster") if key in options}
    transport = AiohttpTransport(_wire(name, **wire_options), host="127.0.0.1", port=0, **options)  # type: ignore[arg-type]
    made.append(transport)
    await transport.start(handler or Recorder())  # type: ignore[arg-type]
    return transport


async def test_a_ping_round_trips_and_the_handler_sees_the_real_address(transports: list[AiohttpTransport]) -> None:
    recorder = Recorder()
    a = await _serving(transports, "a")
    b = await _serving(transports, "b", recorder)
    assert b.local_address.startswith("127.0.0.1:") and not b.local_address.endswith(":0")
    assert await a.request(b.local_address, Ping(1, "b"), timeout_s=2) == Ack(1)
    assert await a.request(b.local_address, Nack(2), timeout_s=2) is None
    assert recorder.seen[0] == (Ping(1, "b"), Sender("a", a.local_address))
    for seq in range(3, 20):  # one keep-alive session carries them all
        assert await a.request(b.local_address, Ping(seq, "b"), timeout_s=2) == Ack(seq)


async def test_routes_mounted_on_the_nodes_own_app_serve_gossip_next_to_its_pages() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    served = AiohttpTransport(_wire("node"), host="127.0.0.1", port=port)
    assert served.local_address == f"127.0.0.1:{port}"
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    served.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    client = AiohttpTransport(_wire("client"))
    try:
        with pytest.raises(TransportError, match="status 503"):  # mounted, not started yet
            await client.request(served.local_address, Ping(1, "node"), timeout_s=2)
        await served.start(Recorder())
        assert await client.request(served.local_address, Ping(2, "node"), timeout_s=2) == Ack(2)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert await response.text() == "ok"
            async with session.get(f"http://127.0.0.1:{port}/gossip/ping") as response:
                assert response.status == 405
    finally:
        await client.aclose()
        await served.aclose()
        await runner.cleanup()


def test_mounting_needs_a_known_port() -> None:
    with pytest.raises(ValueError, match="cannot learn its port"):
        AiohttpTransport(_wire("n"), port=0).add_routes(web.Application())


async def test_refusals_come_back_as_the_right_errors(transports: list[AiohttpTransport]) -> None:
    a = await _serving(transports, "a")
    other_key = await _serving(transports, "k", key=b"another key")
    other_cluster = await _serving(transports, "o", cluster="berlin-museums")
    small = await _serving(transports, "s", max_message_bytes=300)
    with pytest.raises(AuthError, match="refused our message: bad MAC"):
        await a.request(other_key.local_address, Ping(1, "k"), timeout_s=2)
    with pytest.raises(ClusterMismatch, match=f"peer {other_cluster.local_address} belongs to cluster 'berlin-museums', this node to cluster 'c1'"):
        await a.request(other_cluster.local_address, Ping(1, "o"), timeout_s=2)
    with pytest.raises(ProtocolError, match="too large"):
        await a.request(small.local_address, Payloads("r", (b"x" * 400,)), timeout_s=2)
    with pytest.raises(ProtocolError, match="invalid: only pings and nacks here"):
        await a.request(small.local_address, Ack(1), timeout_s=2)


async def test_raw_bad_requests_get_400_401_413_and_change_nothing(
    transports: list[AiohttpTransport], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    b = await _serving(transports, "b", recorder, max_message_bytes=1000)
    sealed_ping = _wire("a").seal(Ping(1, "b"))
    url = f"http://{b.local_address}/gossip"
    with caplog.at_level(logging.WARNING, logger="gossip.http_transport"):
        async with aiohttp.ClientSession() as session:
            for path, body, status in [
                ("ping", b"\xc1 not msgpack", 400),
                ("ack", sealed_ping, 400),  # the path must name the body's type
                ("bogus", sealed_ping, 400),
                ("ping", _wire("a", key=b"wrong").seal(Ping(1, "b")), 401),
                ("ping", b"x" * 5000, 413),
            ]:
                async with session.post(f"{url}/{path}", data=body) as response:
                    assert response.status == status, path
            async with session.post(f"{url}/ping", data=_chunks(b"y" * 5000)) as response:  # no Content-Length
                assert response.status == 413
            async with session.post(f"{url}/ping", data=sealed_ping) as response:
                assert response.status == 200
    assert [message for message, _ in recorder.seen] == [Ping(1, "b")]
    refusals = [record for record in caplog.records if "refused gossip" in record.getMessage()]
    assert len(refusals) == 1  # one line per peer per minute, however many refusals


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_a_peer_over_its_bound_of_requests_in_progress_gets_429_unread(transports: list[AiohttpTransport]) -> None:
    """Found by fuzzing: a burst from one peer had every body buffered at once. Now a peer has at
    most ``max_requests_per_peer`` requests read or handled at a time; the next is refused 429
    without reading its body, and a slot frees as soon as one finishes."""
    release = asyncio.Event()
    recorder = Recorder()
    entered: list[Message] = []

    async def held(message: Message, sender: Sender) -> Message | None:
        entered.append(message)
        await release.wait()
        return await recorder(message, sender)

    b = await _serving(transports, "b", held, max_requests_per_peer=2)
    wire = _wire("a")
    url = f"http://{b.local_address}/gossip/ping"
    async with aiohttp.ClientSession() as session:
        held_requests = [asyncio.create_task(session.post(url, data=wire.seal(Ping(seq, "b")))) for seq in (1, 2)]
        while len(entered) < 2:
            await asyncio.sleep(0.01)
        async with session.post(url, data=wire.seal(Ping(3, "b"))) as response:
            assert response.status == 429
            assert "limit 2" in (await response.json())["reason"]
        release.set()
        for task in held_requests:
            async with await task as response:
                assert response.status == 200
        async with session.post(url, data=wire.seal(Ping(4, "b"))) as response:
            assert response.status == 200
    assert [message.seq for message, _ in recorder.seen] == [1, 2, 4]  # type: ignore[attr-defined]
    assert "requests_in_progress=0 " in repr(b)  # nothing kept per peer once its requests are done


async def test_a_body_that_does_not_arrive_within_the_body_timeout_is_refused_408(
    transports: list[AiohttpTransport],
) -> None:
    """Found by fuzzing: a slow-loris body held its request (and a per-peer slot) for ever."""
    recorder = Recorder()
    b = await _serving(transports, "b", recorder, body_timeout_s=0.3)
    host, port = parse_address(b.local_address)
    reader, writer = await asyncio.open_connection(host, port)
    sealed = _wire("a").seal(Ping(1, "b"))
    writer.write(f"POST /gossip/ping HTTP/1.1\r\nHost: b\r\nContent-Length: {len(sealed)}\r\n\r\n".encode())
    writer.write(sealed[:10])  # and the rest never comes
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await asyncio.wait_for(reader.read(100), 2.0)
    assert answer.startswith(b"HTTP/1.1 408") and 0.3 <= loop.time() - started < 1.0
    writer.close()
    assert recorder.seen == []


async def test_a_slow_peer_is_a_request_timeout(transports: list[AiohttpTransport]) -> None:
    release = asyncio.Event()

    async def slow(message: Message, sender: Sender) -> Message | None:
        await release.wait()
        return None

    a = await _serving(transports, "a")
    b = await _serving(transports, "b", slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeout):
        await a.request(b.local_address, Ping(1, "b"), timeout_s=0.2)
    assert 0.2 <= loop.time() - started < 1.0
    release.set()


async def test_nobody_listening_is_a_transport_error_not_a_timeout(transports: list[AiohttpTransport]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    a = await _serving(transports, "a")
    with pytest.raises(TransportError, match="cannot connect") as caught:
        await a.request(f"127.0.0.1:{port}", Ping(1, "x"), timeout_s=2)
    assert not isinstance(caught.value, RequestTimeout)


async def test_requests_in_flight_are_bounded(transports: list[AiohttpTransport]) -> None:
    active, peak = 0, 0

    async def handler(message: Message, sender: Sender) -> Message | None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return Ack(0)

    a = await _serving(transports, "a", max_in_flight=2)
    b = await _serving(transports, "b", handler)
    replies = await asyncio.gather(*(a.request(b.local_address, Ping(i, "b"), timeout_s=5) for i in range(6)))
    assert replies == [Ack(0)] * 6
    assert peak == 2


@pytest.mark.parametrize("address", ["no-port", "host:99999", "evil/path:80", "user@host:80", "host:80/x", ""])
async def test_invalid_peer_addresses_are_refused_before_any_io(address: str, transports: list[AiohttpTransport]) -> None:
    a = await _serving(transports, "a")
    with pytest.raises(TransportError, match="invalid peer address"):
        await a.request(address, Ping(1, "x"), timeout_s=1)


def test_addresses_parse_and_format_with_ipv6_in_brackets() -> None:
    assert parse_address("[::1]:7000") == ("::1", 7000)
    assert parse_address("node-3.example:80") == ("node-3.example", 80)
    assert format_address("::1", 7000) == "[::1]:7000"
    assert format_address("10.0.0.1", 7000) == "10.0.0.1:7000"


async def test_a_closed_transport_refuses_work_and_closes_twice(transports: list[AiohttpTransport]) -> None:
    a = await _serving(transports, "a")
    b = await _serving(transports, "b")
    address = b.local_address
    await b.aclose()
    await b.aclose()
    with pytest.raises(TransportError):
        await a.request(address, Ping(1, "b"), timeout_s=1)
    with pytest.raises(TransportError, match="closed"):
        await b.request(a.local_address, Ping(1, "a"), timeout_s=1)


async def test_advertise_is_the_address_peers_are_told(transports: list[AiohttpTransport]) -> None:
    recorder = Recorder()
    b = await _serving(transports, "b", recorder)
    wire = Wire("c1", key=KEY, name="a", address="gossip.example:7000")
    a = AiohttpTransport(wire, host="127.0.0.1", port=0, advertise="gossip.example:7000")
    transports.append(a)
    await a.start(Recorder())
    assert a.local_address == "gossip.example:7000"
    await a.request(b.local_address, Ping(1, "b"), timeout_s=2)
    assert recorder.seen[0][1] == Sender("a", "gossip.example:7000")


async def test_a_reply_too_big_to_seal_is_a_server_error(transports: list[AiohttpTransport]) -> None:
    async def oversized(message: Message, sender: Sender) -> Message | None:
        return Ack(1, (MemberUpdate("n", "a:1", 1, MemberState.ALIVE),) * (MAX_UPDATES_PER_MESSAGE + 1))

    a = await _serving(transports, "a")
    b = await _serving(transports, "b", oversized)
    with pytest.raises(TransportError, match="status 500.*could not be sealed"):
        await a.request(b.local_address, Ping(1, "b"), timeout_s=2)


async def test_a_handler_crash_is_a_server_error(transports: list[AiohttpTransport], caplog: pytest.LogCaptureFixture) -> None:
    async def crash(message: Message, sender: Sender) -> Message | None:
        raise RuntimeError("boom")

    a = await _serving(transports, "a")
    b = await _serving(transports, "b", crash)
    with pytest.raises(TransportError, match="RuntimeError: boom"):
        await a.request(b.local_address, Ping(1, "b"), timeout_s=2)
    assert "handler failed" in caplog.text
