"""The node's read-only HTTP surface: JSON API, exports and health, over a ``NodeView``.

``create_app(view)`` returns an aiohttp application; the node serves it on its one port
(next to the gossip routes). Everything is GET/HEAD: any other method gets 405, so nothing
here can change a node. Query parameters are validated and bounded; a bad one is a 400 with
a JSON error naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from webui.view import EntryView, NodeView

__all__ = ["create_app", "add_routes", "MAX_PAGE_LIMIT", "DEFAULT_PAGE_LIMIT"]

log = logging.getLogger(__name__)

MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100
MAX_QUERY_CHARS = 200
_VIEW_KEY = web.AppKey("view", NodeView)
_EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "txt": "text/plain"}


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": {message!r}}}'.replace("'", '"'), content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _bad_request(f"{name} must be within {low}..{high}")
    return value


def _text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_QUERY_CHARS:
        raise _bad_request(f"{name} must be at most {MAX_QUERY_CHARS} characters")
    return raw


def _entry_json(entry: EntryView) -> dict[str, object]:
    return {
        "id": entry.id,
        "text": entry.text,
        "partition": entry.partition,
        "origin": entry.origin,
        "hlc": entry.hlc,
        "aliases": list(entry.aliases),
        "status": entry.status,
    }


async def _entries(request: web.Request) -> web.Response:
    view = request.app[_VIEW_KEY]
    limit = _int_param(request, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
    try:
        page = view.entries(
            cursor=_text_param(request, "cursor"),
            limit=limit,
            query=_text_param(request, "q"),
            partition=_text_param(request, "partition"),
        )
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    return web.json_response(
        {"entries": [_entry_json(e) for e in page.entries], "next_cursor": page.next_cursor, "total": page.total}
    )


async def _members(request: web.Request) -> web.Response:
    members = request.app[_VIEW_KEY].members()
    return web.json_response(
        {
            "members": [
                {"name": m.name, "address": m.address, "state": m.state, "incarnation": m.incarnation,
                 "last_heard": m.last_heard}  # fmt: skip
                for m in members
            ]
        }
    )


async def _metrics(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[_VIEW_KEY].metrics()))


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **request.app[_VIEW_KEY].health()})


async def _export(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "jsonl")
    if fmt not in _EXPORT_TYPES:
        raise _bad_request(f"format must be one of {sorted(_EXPORT_TYPES)}")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{_EXPORT_TYPES[fmt]}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="list.{fmt}"',
        }
    )
    await response.prepare(request)
    chunks: Iterable[str] = request.app[_VIEW_KEY].export(fmt)  # type: ignore[arg-type]
    batch: list[str] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= 500:  # stream in slices: a 100k list never sits in memory as one body
            await response.write("".join(batch).encode("utf-8"))
            batch.clear()
    await response.write("".join(batch).encode("utf-8"))
    await response.write_eof()
    return response


def add_routes(app: web.Application, view: NodeView) -> None:
    """Mount the read-only routes on ``app`` (which may also carry the gossip routes)."""
    app[_VIEW_KEY] = view
    for path, handler in (
        ("/api/entries", _entries),
        ("/api/members", _members),
        ("/api/metrics", _metrics),
        ("/api/export", _export),
        ("/healthz", _health),
    ):
        resource = app.router.add_resource(path)
        resource.add_route("GET", handler)
        resource.add_route("HEAD", handler)
        resource.add_route("*", _method_not_allowed)


async def _method_not_allowed(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])


def create_app(view: NodeView) -> web.Application:
    """A read-only application over ``view``."""
    app = web.Application(client_max_size=64 * 1024)
    add_routes(app, view)
    return app
