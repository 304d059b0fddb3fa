"""Hostile input on the web endpoints (issue #14, part 2), over a real TCP site on 127.0.0.1.

Every method on every route, odd paths, hostile query strings, traversal attempts, HEAD
against GET, protocol garbage and hundreds of event streams at once. Each test counts its
outcomes per kind of input (``tests/webui/fuzz_http.py``) and fails with the table of counts
when anything crashed (5xx, a traceback, no answer), was unsafe (no hardening headers, an
unclear error), got a status other than the one documented, or changed the view's state.
The longer run on demand is ``scripts/fuzz/web.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import suite_report
from tests.suite_report import HOSTILE_INPUT as SECTION
from tests.webui.fake_view import FakeView
from tests.webui.fuzz_http import (
    PROTOCOL_GARBAGE,
    READ_METHODS,
    ROUTE_SAMPLES,
    TIMELESS_ROUTES,
    TRAVERSALS,
    Reply,
    ServedApp,
    Tally,
    exchange,
    fake_view_digest,
    fake_view_with_hostile_entries,
    fire,
    forged_cursor_case,
    forged_cursors,
    hostile_paths,
    hostile_queries,
    judge,
    method_matrix,
    odd_paths,
    query_cases,
    request_bytes,
    route_paths,
    state_view,
    state_view_digest,
    static_traversals,
)
from webui.app import WebUIConfig, create_app
from webui.assets import SECURITY_HEADERS, Assets

FAST = WebUIConfig(tick_s=0.05, flush_s=0.02)
EXAMPLES = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)  # bounded: the suite's budget


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp[FakeView]]:
    with ServedApp(fake_view_with_hostile_entries(), fake_view_digest, FAST) as app:
        yield app


@pytest.fixture(scope="module")
def entry(served: ServedApp[FakeView]) -> str:
    """The id of an entry of the served view."""
    return served.call(lambda: served.view.entries(cursor=None, limit=1, query=None, partition=None).entries[0].id)


def _assert_clean(tally: Tally, *, minimum: int) -> None:
    totals = tally.totals()
    refused = totals["rejected"] + totals["parser_400"] + totals["busy"]  # aiohttp's own 400s and 503s refuse too
    suite_report.record(SECTION, "web routes", tried=totals["tried"], answered=totals["answered"], rejected=refused,
                        crashed=totals["crashed"], state_changed=totals["state_changed"])  # fmt: skip
    assert tally.clean() and totals["tried"] >= minimum, tally.summary()
    assert totals["crashed"] == 0 and totals["state_changed"] == 0, tally.summary()


def _keeps_serving(app: ServedApp[FakeView]) -> None:
    reply = exchange(app.port, request_bytes("GET", "/healthz"))
    assert reply.status == 200 and json.loads(reply.body)["status"] == "ok"


async def test_the_fuzzed_routes_are_every_route_of_the_app() -> None:
    """A route added to webui.app without a sample here would escape the fuzzing: fail then."""
    app = create_app(FakeView(), FAST)
    assert {resource.canonical for resource in app.router.resources()} == set(ROUTE_SAMPLES)


def test_every_method_on_every_route_gets_its_documented_status(served: ServedApp[FakeView], entry: str) -> None:
    """GET/HEAD 200; other methods 405 with Allow: GET,HEAD; unknown routes 404; garbage methods 400."""
    tally = Tally()
    fire(served, tally, "method x route", method_matrix(entry))
    _assert_clean(tally, minimum=len(ROUTE_SAMPLES) * 20)
    for path in route_paths(entry).values():
        refused = exchange(served.port, request_bytes("DELETE", path))
        assert refused.status == 405 and refused.headers["allow"] == "GET,HEAD", path
    _keeps_serving(served)


def test_odd_paths_are_a_404_or_the_route_never_an_error(served: ServedApp[FakeView]) -> None:
    """Empty, dot, encoded-dot, NUL, non-UTF-8, over-long and malformed paths get their documented status."""
    tally = Tally()
    fire(served, tally, "odd paths", ((request_bytes("GET", path), expected) for path, expected in odd_paths()))
    _assert_clean(tally, minimum=50)
    _keeps_serving(served)


def test_hostile_query_strings_get_a_400_naming_the_parameter_or_are_ignored(
    served: ServedApp[FakeView], entry: str
) -> None:
    """Huge, negative, NaN/inf and non-numeric limits, forged cursors, repeated and junk parameters, bad UTF-8."""
    tally = Tally()
    cases = query_cases(entry)
    fire(served, tally, "query strings", ((request_bytes("GET", target), expected) for target, expected in cases))
    _assert_clean(tally, minimum=150)
    bad_limit = exchange(served.port, request_bytes("GET", "/api/entries?limit=-5"))
    assert json.loads(bad_limit.body) == {"error": "limit must be within 1..1000"}
    _keeps_serving(served)


def test_traversal_attempts_never_serve_a_file_outside_the_static_directory(served: ServedApp[FakeView]) -> None:
    """Every spelling of ``..`` under /static/ is a 404 (or the parser's 400); a 200 is always an asset."""
    tally = Tally()
    fire(
        served,
        tally,
        "traversal",
        ((request_bytes(method, path), (400, 404)) for path in TRAVERSALS for method in READ_METHODS),
        assets=Assets.load(),
    )
    _assert_clean(tally, minimum=2 * len(TRAVERSALS))


def _check_generated(
    app: ServedApp[FakeView], tally: Tally, kind: str, wire: bytes, *, assets: Assets | None = None
) -> None:
    """Fire one generated case (counted in ``tally``) and fail it at once, so hypothesis shrinks it."""
    fire(app, tally, kind, [(wire, ())], assets=assets)
    assert not tally.failures, tally.summary()


def test_generated_paths_never_crash_or_change_the_view(served: ServedApp[FakeView]) -> None:
    """Hypothesis paths of route words, dot segments, escapes and arbitrary text: never a 5xx."""
    tally = Tally()

    @EXAMPLES
    @given(path=hostile_paths(), method=st.sampled_from(READ_METHODS))
    def run(path: str, method: str) -> None:
        _check_generated(served, tally, "generated paths", request_bytes(method, path.encode("utf-8")))

    run()
    _assert_clean(tally, minimum=50)


def test_generated_query_strings_never_crash_or_change_the_view(served: ServedApp[FakeView]) -> None:
    """Hypothesis queries on every route that reads parameters: a 200 or a JSON 400, never a 5xx."""
    tally = Tally()

    @EXAMPLES
    @given(target=hostile_queries())
    def run(target: str) -> None:
        _check_generated(served, tally, "generated queries", request_bytes("GET", target.encode("utf-8")))

    run()
    _assert_clean(tally, minimum=50)


def test_generated_traversals_never_leave_the_static_directory(served: ServedApp[FakeView]) -> None:
    """Hypothesis climbs out of /static/ in every spelling: nothing but an asset is ever served."""
    tally = Tally()
    assets = Assets.load()

    @EXAMPLES
    @given(target=static_traversals())
    def run(target: str) -> None:
        _check_generated(served, tally, "generated traversal", request_bytes("GET", target), assets=assets)

    run()
    _assert_clean(tally, minimum=50)
    assert set(tally.kind("generated traversal").statuses) <= {200, 400, 404}, tally.summary()


def test_head_answers_exactly_like_get_without_the_body(served: ServedApp[FakeView], entry: str) -> None:
    """Same status, type and hardening headers; no body; the same length where the body is timeless."""
    tally = Tally()
    paths = {**route_paths(entry), "404": "/nowhere", "static 404": "/static/missing.js",
             "400": "/api/entries?limit=0", "entry 404": "/api/entries/" + "0" * 32}  # fmt: skip
    for route, path in paths.items():
        get, head = (exchange(served.port, request_bytes(method, path)) for method in READ_METHODS)
        for reply in (get, head):
            tally.record("head vs get", path, reply, judge(reply))
        assert head.status == get.status and head.body == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert all(head.headers[name.lower()] == value for name, value in SECURITY_HEADERS.items()), path
        if route in TIMELESS_ROUTES or not route.startswith("/"):
            assert head.headers["content-length"] == str(len(get.body)), path
    _assert_clean(tally, minimum=2 * len(paths))


def test_protocol_garbage_is_a_plain_400_and_the_server_keeps_serving(served: ServedApp[FakeView]) -> None:
    """Requests aiohttp cannot parse get its 400 (text, no traceback, connection closed); nothing else changes."""
    tally = Tally()
    fire(served, tally, "protocol garbage", ((wire, (400,)) for wire in PROTOCOL_GARBAGE))
    _assert_clean(tally, minimum=len(PROTOCOL_GARBAGE))
    assert tally.kind("protocol garbage").outcomes["parser_400"] == len(PROTOCOL_GARBAGE), tally.summary()
    _keeps_serving(served)


def test_request_bodies_are_refused_unread(served: ServedApp[FakeView]) -> None:
    """A 1 MB body, a claimed 100 MB body or Expect: 100-continue on a read-only route is a 405, nothing read."""
    tally = Tally()
    cases = [
        (request_bytes("POST", "/api/entries", body=b"x" * 1_000_000), (405,)),
        (request_bytes("PUT", "/api/export", headers=[("Content-Length", "100000000")]) + b"x" * 1000, (405,)),
        (request_bytes("POST", "/healthz", headers=[("Expect", "100-continue"), ("Content-Length", "10")]), (405,)),
        (request_bytes("GET", "/healthz", headers=[("Content-Length", "5")]) + b"hello", (200,)),
        (request_bytes("POST", "/nowhere", body=b"{" * 100_000), (404,)),
    ]
    fire(served, tally, "bodies", cases)
    _assert_clean(tally, minimum=len(cases))
    _keeps_serving(served)


# -- the real node's view: forged cursors against StateView -------------------------------------


def test_forged_cursors_and_filters_on_the_real_node_view() -> None:
    """StateView refuses any cursor it could not have issued with a 400, accepts any sort key, never a 5xx."""
    view, _ = state_view()
    tally = Tally()
    with ServedApp(view, state_view_digest, FAST) as app:

        @EXAMPLES
        @given(cursor=forged_cursors, query=st.text(max_size=30), status=st.sampled_from(("", "confirmed", "x")))
        def run(cursor: str, query: str, status: str) -> None:
            fire(app, tally, "forged cursors", [forged_cursor_case(cursor, query, status)])
            assert not tally.failures, tally.summary()

        run()
        _assert_clean(tally, minimum=50)


# -- many event streams at once -----------------------------------------------------------------


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _prometheus_value(session: aiohttp.ClientSession, base: str, name: str) -> float:
    async with session.get(base + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _read_until(response: aiohttp.ClientResponse, marker: bytes, timeout_s: float = 5.0) -> None:
    async def read() -> None:
        seen = b""
        while marker not in seen:
            chunk = await response.content.readline()
            assert chunk, "the stream ended"
            seen += chunk

    await asyncio.wait_for(read(), timeout_s)


@pytest.fixture
async def site() -> AsyncIterator[tuple[web.AppRunner, str, FakeView]]:
    view = fake_view_with_hostile_entries()
    runner = web.AppRunner(create_app(view, FAST), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner, f"http://127.0.0.1:{runner.addresses[0][1]}", view
    await runner.cleanup()


async def test_two_hundred_event_streams_at_once_are_bounded_and_all_close(
    site: tuple[web.AppRunner, str, FakeView],
) -> None:
    """200 clients: 100 streams (the limit) get hello, 100 a 503 with Retry-After; all close; serving goes on."""
    runner, base, view = site
    before = fake_view_digest(view)
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        responses = await asyncio.gather(*(session.get(base + "/api/events") for _ in range(200)))
        streams = [response for response in responses if response.status == 200]
        for response in responses:
            body = b"" if response.status == 200 else await response.read()
            headers = {name.lower(): value for name, value in response.headers.items()}
            reply = Reply("HTTP/1.1", response.status, headers, body)
            tally.record("event streams", "GET /api/events", reply, judge(reply, events_route=True))
        await asyncio.gather(*(_read_until(stream, b"event: hello") for stream in streams))
        assert await _prometheus_value(session, base, "swarmlist_web_event_clients") == 100
        async with session.get(base + "/api/entries?limit=1") as page:  # the node still answers
            assert page.status == 200
        await asyncio.gather(*(_read_until(stream, b"event: metrics") for stream in streams[:10]))
        for response in responses:
            response.close()

        server = runner.server
        assert server is not None

        async def all_closed() -> bool:
            clients = await _prometheus_value(session, base, "swarmlist_web_event_clients")
            return clients == 0 and len(server.connections) <= 1  # the scrape's own connection

        await _eventually(all_closed)
        async with session.get(base + "/api/events") as again:
            await _read_until(again, b"event: hello")
    counts = tally.kind("event streams").outcomes
    assert (counts["answered"], counts["busy"], tally.totals()["crashed"]) == (100, 100, 0), tally.summary()
    assert tally.clean(), tally.summary()
    assert view.listener_count == 1 and fake_view_digest(view) == before


# -- clients that stop reading (regression: they held a connection, and shutdown, for ever) ------

STALLING = WebUIConfig(tick_s=0.05, flush_s=0.01, event_queue_size=4)
BIG_TEXT = "x" * 16_000  # 200 of these make an "entries" event of 3 MB: the socket buffers fill fast


async def _stalled_streams(base: str, count: int) -> list[socket.socket]:
    """Event streams whose clients never read (a sleeping laptop): tiny receive buffers, nothing read."""
    host, port = base.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        sockets.append(sock)
    return sockets


async def _flood(view: FakeView, until: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Add big entries (each flush sends them to every stream) until ``until()`` holds."""
    deadline = time.monotonic() + timeout_s
    round_ = 0
    while not await until():
        assert time.monotonic() < deadline, "condition not reached in time"
        for n in range(200):
            view.add(f"{round_}-{n} {BIG_TEXT}")
        round_ += 1
        await asyncio.sleep(STALLING.flush_s * 2)


async def test_event_clients_that_stop_reading_are_dropped_and_disconnected() -> None:
    """A dropped slow stream frees its connection at once (it used to wait on a write for ever)."""
    view = FakeView()
    runner = web.AppRunner(create_app(view, STALLING), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sockets = await _stalled_streams(base, 3)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

            async def all_dropped() -> bool:
                return await _prometheus_value(session, base, "swarmlist_web_event_clients_dropped_total") == 3

            await _flood(view, all_dropped)

            async def disconnected() -> bool:
                return runner.server is not None and not runner.server.connections

            await _eventually(disconnected)
            assert await _prometheus_value(session, base, "swarmlist_web_event_clients") == 0
    finally:
        for sock in sockets:
            sock.close()
        await asyncio.wait_for(runner.cleanup(), 10)


async def test_shutdown_does_not_wait_for_event_clients_that_stopped_reading() -> None:
    """Stopping the server with streams stuck on a write to a non-reading client takes well under a second."""
    view = FakeView()
    runner = web.AppRunner(create_app(view, WebUIConfig(tick_s=0.05, flush_s=0.01, event_queue_size=10_000)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sockets = await _stalled_streams(base, 3)
    sent = 0

    async def stuck() -> bool:  # far more than the socket buffers hold has been queued to each stream
        return sent > 6

    try:
        deadline = time.monotonic() + 10
        while not await stuck():
            assert time.monotonic() < deadline
            for n in range(200):
                view.add(f"{sent}-{n} {BIG_TEXT}")
            sent += 1
            await asyncio.sleep(0.02)
        started = time.monotonic()
        await asyncio.wait_for(runner.cleanup(), 10)  # it took 2 × aiohttp's 60 s shutdown timeout
        assert time.monotonic() - started < 2
    finally:
        for sock in sockets:
            sock.close()
