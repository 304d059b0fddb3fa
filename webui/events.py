"""Server-sent events: fan one stream of page events out to many browsers, safely.

The hub encodes each event once (``event: NAME`` / ``data: JSON``, the text/event-stream
format of the HTML standard) and offers it to every client's bounded queue without waiting.
A client whose queue is full is too slow to keep up: it is dropped (its stream ends, and the
browser's ``EventSource`` reconnects and reloads) rather than buffering without bound or
slowing the node down. A client that stops reading altogether (a sleeping laptop) leaves its
stream waiting on a write that never completes, where it would never see the end: ending
such a stream cuts its connection, so a dropped client frees its connection at once and
shutdown does not wait for it. At most ``max_clients`` streams are open at once; beyond that
the route answers 503. An idle stream gets a comment line every ``heartbeat_s`` so proxies
and the browser keep it open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

from aiohttp import web

__all__ = ["EventHub", "Subscription", "encode_event", "sse_handler"]

log = logging.getLogger(__name__)

RECONNECT_DELAY_MS = 2000  # the browser's wait before reconnecting a closed stream


def encode_event(name: str, data: Mapping[str, object]) -> bytes:
    """One event in text/event-stream form (JSON data never holds a raw newline)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"event: {name}\ndata: {payload}\n\n".encode()


class Subscription:
    """One client's queue of encoded events; ``None`` in it means "end the stream"."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.dropped = False
        self.cut_connection: Callable[[], None] | None = None  # set by the stream while a write is pending

    def offer(self, chunk: bytes) -> bool:
        """Queue ``chunk``; False when the client is too slow (the queue is full)."""
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Discard what is queued and make the stream end at its next read, or now if it is stuck writing."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        if self.cut_connection is not None:
            # a write pending on a client that does not read may never return, so the None would never be read
            self.cut_connection()


class EventHub:
    """Not thread-safe; lives on the event loop."""

    def __init__(self, *, max_clients: int = 100, queue_size: int = 256, heartbeat_s: float = 15.0) -> None:
        self.max_clients = max_clients
        self.heartbeat_s = heartbeat_s
        self._queue_size = queue_size
        self._clients: set[Subscription] = set()
        self.dropped_total = 0

    def __repr__(self) -> str:
        return f"<EventHub clients={len(self._clients)}/{self.max_clients} dropped={self.dropped_total}>"

    @property
    def clients(self) -> int:
        return len(self._clients)

    def open(self) -> Subscription | None:
        """A new client's subscription, or None when ``max_clients`` are connected."""
        if len(self._clients) >= self.max_clients:
            return None
        subscription = Subscription(self._queue_size)
        self._clients.add(subscription)
        return subscription

    def close(self, subscription: Subscription) -> None:
        self._clients.discard(subscription)

    def publish(self, name: str, data: Mapping[str, object]) -> None:
        """Offer an event to every client; drop the ones that cannot keep up."""
        if not self._clients:
            return
        chunk = encode_event(name, data)
        for subscription in tuple(self._clients):
            if not subscription.offer(chunk):
                self._drop(subscription)

    def close_all(self) -> None:
        """End every stream (at shutdown: open streams would otherwise hold the server)."""
        for subscription in tuple(self._clients):
            subscription.end()
        self._clients.clear()

    def _drop(self, subscription: Subscription) -> None:
        subscription.dropped = True
        subscription.end()
        self._clients.discard(subscription)
        self.dropped_total += 1
        log.info("dropped a slow event-stream client (%d queued events unread)", self._queue_size)


async def sse_handler(request: web.Request, hub: EventHub, greeting: list[bytes]) -> web.StreamResponse:
    """Stream ``greeting`` then the hub's events to one client until it leaves or is dropped."""
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store"}
    if request.method == "HEAD":
        return web.Response(headers=headers)
    subscription = hub.open()
    if subscription is None:
        raise web.HTTPServiceUnavailable(
            text='{"error": "too many event-stream clients"}',
            content_type="application/json",
            headers={"Retry-After": "10"},
        )
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
        retry = f"retry: {RECONNECT_DELAY_MS}\n\n".encode()
        await _write(response, subscription, request.transport, retry + b"".join(greeting))
        while True:
            try:
                chunk = await asyncio.wait_for(subscription.queue.get(), hub.heartbeat_s)
            except TimeoutError:
                chunk = b": ping\n\n"
            if chunk is None:
                break
            await _write(response, subscription, request.transport, chunk)
    except (ConnectionResetError, ConnectionError):
        pass  # the client left
    finally:
        hub.close(subscription)
    return response


async def _write(
    response: web.StreamResponse, subscription: Subscription, transport: asyncio.Transport | None, chunk: bytes
) -> None:
    """Write ``chunk``; ending the subscription meanwhile aborts the connection (the write then returns)."""
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the event-stream client left")
    subscription.cut_connection = transport.abort
    try:
        await response.write(chunk)
    finally:
        subscription.cut_connection = None
