"""The node's read-only web surface over a ``NodeView``: the page, JSON API, live events, /metrics.

``create_app(view)`` returns an aiohttp application; ``add_routes(app, view)`` mounts the same
routes on an application that also carries the gossip routes (the node's one port).
Everything is GET/HEAD: any other method gets 405, so nothing here can change a node.

| route | answer |
|---|---|
| ``/`` | the page |
| ``/static/{file}`` | the page's script, style and vendored chart library |
| ``/api/entries?limit=&cursor=&q=&partition=&status=`` | a keyset page of the list |
| ``/api/entries/{id}`` | a line with the generated items that resolved to it ("why dropped") |
| ``/api/members``, ``/api/metrics``, ``/api/partitions``, ``/api/convergence`` | as named |
| ``/api/series?max_points=`` | the sampled metrics history (charts) |
| ``/api/discovery?max_points=`` | the discovery curve: new entries against LLM calls |
| ``/api/events`` | server-sent events: ``hello``, ``metrics``, ``members``, ``entries`` |
| ``/api/export?format=jsonl|csv|txt`` | the whole list, streamed |
| ``/metrics`` | Prometheus text format |
| ``/healthz`` | liveness |
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from webui import api
from webui.assets import Assets, add_security_headers
from webui.events import EventHub, encode_event, sse_handler
from webui.json_values import member_json
from webui.prometheus import ViewCollector, build_registry, metrics_handler
from webui.sampler import Sampler
from webui.view import NodeView

__all__ = ["DEFAULT_PAGE_LIMIT", "MAX_PAGE_LIMIT", "WebUIConfig", "add_routes", "create_app"]

MAX_PAGE_LIMIT = api.MAX_PAGE_LIMIT
DEFAULT_PAGE_LIMIT = api.DEFAULT_PAGE_LIMIT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True)
class WebUIConfig:
    """How the web UI samples and streams."""

    tick_s: float = 1.0  # metrics sample and "metrics" event period; the charts' resolution
    flush_s: float = 0.25  # new entries are batched this long into one "entries" event
    history: int = 1800  # metric samples kept for the charts (30 min at 1 s)
    max_event_clients: int = 100  # concurrent event streams; more get 503
    event_queue_size: int = 256  # events buffered per stream; a client this far behind is dropped
    heartbeat_s: float = 15.0  # comment line on an idle stream, so proxies keep it open


@dataclass(frozen=True, slots=True)
class _WebUI:
    view: NodeView
    hub: EventHub
    sampler: Sampler
    assets: Assets
    registry: CollectorRegistry


_UI_KEY = web.AppKey("webui", _WebUI)


def add_routes(app: web.Application, view: NodeView, config: WebUIConfig | None = None) -> None:
    """Mount the read-only routes, the sampler task and the hardening headers on ``app``."""
    config = config or WebUIConfig()
    hub = EventHub(
        max_clients=config.max_event_clients, queue_size=config.event_queue_size, heartbeat_s=config.heartbeat_s
    )
    sampler = Sampler(view, hub, tick_s=config.tick_s, flush_s=config.flush_s, history=config.history)
    registry = build_registry(ViewCollector(sampler, hub, view.health))
    ui = _WebUI(view=view, hub=hub, sampler=sampler, assets=Assets.load(), registry=registry)
    app[_UI_KEY] = ui

    routes: dict[str, Handler] = {
        "/": _answer(lambda request: ui.assets.response(request, "index.html")),
        "/static/{name:.+}": _answer(lambda request: ui.assets.response(request, request.match_info["name"])),
        "/api/entries": _answer(lambda request: api.entries(request, view)),
        "/api/entries/{entry_id}": _answer(lambda request: api.entry_detail(request, view)),
        "/api/members": _answer(lambda request: api.members(view)),
        "/api/metrics": _answer(lambda request: api.metrics(sampler)),
        "/api/series": _answer(lambda request: api.series(request, sampler)),
        "/api/discovery": _answer(lambda request: api.discovery(request, view)),
        "/api/partitions": _answer(lambda request: api.partitions(view)),
        "/api/convergence": _answer(lambda request: api.convergence(view)),
        "/api/export": _stream(lambda request: api.export(request, view)),
        "/api/events": _stream(lambda request: sse_handler(request, hub, [_hello(ui)])),
        "/metrics": _stream(lambda request: metrics_handler(request, registry)),
        "/healthz": _answer(lambda request: api.health(view)),
    }
    for path, handler in routes.items():
        resource = app.router.add_resource(path)
        resource.add_route("GET", handler)
        resource.add_route("HEAD", handler)
        resource.add_route("*", _method_not_allowed)
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(_end_event_streams)
    app.cleanup_ctx.append(_run_sampler)


def _answer(answer: Callable[[web.Request], web.StreamResponse]) -> Handler:
    """A handler for a route answered without waiting (the view never blocks)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer(request)

    return handler


def _stream(answer: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Handler:
    """A handler for a route that writes as it goes (export, events, /metrics)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await answer(request)

    return handler


def _hello(ui: _WebUI) -> bytes:
    """The first event of a stream: everything the page shows before the next tick."""
    ui.sampler.ensure_sampled()
    return encode_event(
        "hello",
        {
            "t": ui.sampler.sampled_at,
            "health": dict(ui.view.health()),
            "metrics": ui.sampler.latest,
            "members": [member_json(m) for m in ui.sampler.members],
        },
    )


async def _method_not_allowed(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])


async def _end_event_streams(app: web.Application) -> None:
    app[_UI_KEY].hub.close_all()


async def _run_sampler(app: web.Application) -> AsyncIterator[None]:
    ui = app[_UI_KEY]
    unsubscribe = ui.view.subscribe(ui.sampler.on_entry)
    task = asyncio.create_task(ui.sampler.run(), name="webui-sampler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        unsubscribe()


def create_app(view: NodeView, config: WebUIConfig | None = None) -> web.Application:
    """A read-only application over ``view``."""
    app = web.Application(client_max_size=64 * 1024)
    add_routes(app, view, config)
    return app
