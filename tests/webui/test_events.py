"""Tests for webui.events and /api/events: fan-out, slow clients, client limit, live entries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from tests.webui.fake_view import FakeView
from webui.app import WebUIConfig, create_app
from webui.events import EventHub, encode_event
from webui.view import MemberView

FAST = WebUIConfig(tick_s=0.05, flush_s=0.02)


async def next_event(response: ClientResponse, name: str, timeout_s: float = 5.0) -> dict[str, object]:
    """Read the stream until an event called ``name``; its data."""

    async def read() -> dict[str, object]:
        current = None
        while True:
            line = (await response.content.readline()).decode()
            assert line, "the stream ended"
            if line.startswith("event: "):
                current = line[len("event: ") :].strip()
            elif line.startswith("data: ") and current == name:
                data: dict[str, object] = json.loads(line[len("data: ") :])
                return data

    return await asyncio.wait_for(read(), timeout_s)


def test_an_event_is_one_block_even_when_the_text_has_newlines() -> None:
    """Hostile text cannot break the stream format: JSON escapes the newline."""
    chunk = encode_event("entries", {"text": "a\n\nevent: fake\ndata: x"})
    assert chunk.count(b"\n\n") == 1 and chunk.endswith(b"\n\n")
    assert chunk.startswith(b"event: entries\ndata: {")


async def test_a_slow_client_is_dropped_and_the_others_keep_receiving() -> None:
    """A client whose queue is full is ended, not waited for."""
    hub = EventHub(queue_size=3)
    slow, fast = hub.open(), hub.open()
    assert slow is not None and fast is not None
    for n in range(3):
        hub.publish("tick", {"n": n})
        await fast.queue.get()
    hub.publish("tick", {"n": 3})  # slow's queue was full: it is dropped
    assert slow.dropped and hub.clients == 1 and hub.dropped_total == 1
    assert await slow.queue.get() is None  # its stream ends at the next read
    assert b'"n":3' in (await fast.queue.get() or b"")


async def test_the_client_limit_is_enforced() -> None:
    """open() refuses beyond max_clients; closing one frees a place."""
    hub = EventHub(max_clients=2)
    first, second = hub.open(), hub.open()
    assert first is not None and second is not None and hub.open() is None
    hub.close(first)
    assert hub.open() is not None


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient, FakeView]]:
    view = FakeView()
    view.add("Oslo")
    async with TestClient(TestServer(create_app(view, FAST))) as client:
        yield client, view


async def test_the_stream_greets_then_ticks_with_metrics_and_members(served: tuple[TestClient, FakeView]) -> None:
    """hello carries health, metrics and members; metrics events follow every tick."""
    http, _ = served
    async with http.get("/api/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        hello = await next_event(stream, "hello")
        assert hello["health"] == {"node": "n1", "topic": "test topic", "entries": 1}
        assert [m["name"] for m in hello["members"]] == ["n1"]  # type: ignore[index]
        tick = await next_event(stream, "metrics")
        assert tick["metrics"]["entries"] == 1 and tick["sample"]["entries"] == 1.0  # type: ignore[index]


async def test_new_entries_arrive_as_one_batched_event(served: tuple[TestClient, FakeView]) -> None:
    """Entries added to the view reach an open stream as an "entries" event, in order."""
    http, view = served
    async with http.get("/api/events") as stream:
        await next_event(stream, "hello")
        view.add("<script>alert(1)</script>")
        view.add("Bergen")
        event = await next_event(stream, "entries")
        texts = [entry["text"] for entry in event["entries"]]  # type: ignore[attr-defined]
        while len(texts) < 2:
            texts += [entry["text"] for entry in (await next_event(stream, "entries"))["entries"]]  # type: ignore[attr-defined]
        assert texts == ["<script>alert(1)</script>", "Bergen"] and event["more"] is False


async def test_a_burst_of_entries_is_capped_and_flagged(served: tuple[TestClient, FakeView]) -> None:
    """Thousands of entries at once send a bounded event with more=true (the page reloads)."""
    http, view = served
    async with http.get("/api/events") as stream:
        await next_event(stream, "hello")
        for n in range(500):
            view.add(f"Place {n}")
        event = await next_event(stream, "entries")
        assert event["more"] is True and len(event["entries"]) == 200  # type: ignore[arg-type]


async def test_a_membership_change_is_pushed(served: tuple[TestClient, FakeView]) -> None:
    """A member changing state produces a "members" event with the new table."""
    http, view = served
    async with http.get("/api/events") as stream:
        await next_event(stream, "hello")  # carries the members; "members" events say what changed
        view.member_list.append(MemberView("n2", "127.0.0.1:7002", "suspect", 4, time.time()))
        event = await next_event(stream, "members")
        assert [(m["name"], m["state"]) for m in event["members"]] == [("n1", "alive"), ("n2", "suspect")]  # type: ignore[attr-defined,index]


async def test_beyond_the_client_limit_the_stream_is_a_503() -> None:
    """max_event_clients streams at once; the next gets 503 with Retry-After."""
    config = WebUIConfig(tick_s=0.05, flush_s=0.02, max_event_clients=2)
    async with (
        TestClient(TestServer(create_app(FakeView(), config))) as http,
        http.get("/api/events") as one,
        http.get("/api/events") as two,
    ):
        await next_event(one, "hello")
        await next_event(two, "hello")
        refused = await http.get("/api/events")
        assert refused.status == 503 and refused.headers["Retry-After"] == "10"


async def test_an_idle_stream_gets_heartbeats() -> None:
    """With nothing to say, the stream still sends a comment line every heartbeat_s."""
    config = WebUIConfig(tick_s=3600, flush_s=0.02, heartbeat_s=0.05)
    async with TestClient(TestServer(create_app(FakeView(), config))) as http, http.get("/api/events") as stream:
        await next_event(stream, "hello")
        lines = [await asyncio.wait_for(stream.content.readline(), 5) for _ in range(4)]
        assert b": ping\n" in lines


async def test_shutdown_ends_open_streams_promptly() -> None:
    """Stopping the server with a browser connected does not wait for the stream."""
    view = FakeView()
    runner = web.AppRunner(create_app(view, FAST))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with (
        TestClient(TestServer(web.Application())) as client,
        client.session.get(f"http://127.0.0.1:{port}/api/events") as stream,
    ):
        await next_event(stream, "hello")
        assert view.listener_count == 1
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 5
        assert view.listener_count == 0  # the app unsubscribed from the view
