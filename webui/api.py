"""The JSON API handlers: the list, one entry's observations, members, metrics and their history.

Query parameters are validated and bounded; a bad one is a 400 with a JSON error naming it.
Panels whose source the node does not have yet (partitions, convergence) answer
``{"available": false}`` with a 200, so the page can hide them without logging errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from aiohttp import web

from webui.json_values import (
    convergence_json,
    discovery_json,
    entry_json,
    entry_observations_json,
    member_json,
    partition_json,
)
from webui.sampler import Sampler
from webui.view import STATUSES, ExportFormat, NodeView

__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "MAX_PAGE_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_SERIES_POINTS",
    "bad_request",
    "convergence",
    "discovery",
    "entries",
    "entry_detail",
    "export",
    "health",
    "members",
    "metrics",
    "partitions",
    "series",
]

MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100
MAX_QUERY_CHARS = 200
MAX_SERIES_POINTS = 2000
_ENTRY_ID = re.compile(r"[0-9a-f]{1,64}")
_EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "txt": "text/plain"}


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be within {low}..{high}")
    return value


def _text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_QUERY_CHARS:
        raise bad_request(f"{name} must be at most {MAX_QUERY_CHARS} characters")
    return raw


def _json(body: object) -> web.Response:
    return web.json_response(body, dumps=lambda value: json.dumps(value, ensure_ascii=False, allow_nan=False))


def entries(request: web.Request, view: NodeView) -> web.Response:
    limit = _int_param(request, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
    status = _text_param(request, "status")
    if status is not None and status not in STATUSES:
        raise bad_request(f"status must be one of {', '.join(STATUSES)}")
    try:
        page = view.entries(
            cursor=_text_param(request, "cursor"),
            limit=limit,
            query=_text_param(request, "q"),
            partition=_text_param(request, "partition"),
            status=status,
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return _json(
        {"entries": [entry_json(e) for e in page.entries], "next_cursor": page.next_cursor, "total": page.total}
    )


def entry_detail(request: web.Request, view: NodeView) -> web.Response:
    entry_id = request.match_info["entry_id"]
    found = view.entry_observations(entry_id) if _ENTRY_ID.fullmatch(entry_id) else None
    if found is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such entry"}), content_type="application/json")
    return _json(entry_observations_json(found))


def members(view: NodeView) -> web.Response:
    return _json({"members": [member_json(m) for m in view.members()]})


def metrics(sampler: Sampler) -> web.Response:
    sampler.ensure_sampled()
    return _json({**sampler.latest, "sampled_at": sampler.sampled_at})


def series(request: web.Request, sampler: Sampler) -> web.Response:
    sampler.ensure_sampled()
    max_points = _int_param(request, "max_points", 600, 2, MAX_SERIES_POINTS)
    return _json({"interval_s": sampler.tick_s, "samples": sampler.series(max_points)})


def discovery(request: web.Request, view: NodeView) -> web.Response:
    max_points = _int_param(request, "max_points", 500, 2, MAX_SERIES_POINTS)
    return _json(
        {"columns": ["calls", "items", "new"], "points": [discovery_json(p) for p in view.discovery(max_points)]}
    )


def partitions(view: NodeView) -> web.Response:
    found = view.partitions()
    if found is None:
        return _json({"available": False, "partitions": []})
    return _json({"available": True, "partitions": [partition_json(p) for p in found]})


def convergence(view: NodeView) -> web.Response:
    found = view.convergence()
    if found is None:
        return _json({"available": False})
    return _json({"available": True, **convergence_json(found)})


def health(view: NodeView) -> web.Response:
    return _json({"status": "ok", **view.health()})


async def export(request: web.Request, view: NodeView) -> web.StreamResponse:
    fmt = request.query.get("format", "jsonl")
    if fmt not in _EXPORT_TYPES:
        raise bad_request(f"format must be one of {sorted(_EXPORT_TYPES)}")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{_EXPORT_TYPES[fmt]}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="list.{fmt}"',
        }
    )
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    chunks: Iterable[str] = view.export(_export_format(fmt))
    batch: list[str] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= 500:  # stream in slices: a 100k list never sits in memory as one body
            await response.write("".join(batch).encode("utf-8"))
            batch.clear()
    await response.write("".join(batch).encode("utf-8"))
    await response.write_eof()
    return response


def _export_format(fmt: str) -> ExportFormat:
    if fmt == "csv":
        return "csv"
    if fmt == "txt":
        return "txt"
    return "jsonl"
