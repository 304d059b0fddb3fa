"""Tests for webui.app: the read-only JSON API over a fake NodeView."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping

import pytest
from aiohttp.test_utils import TestClient, TestServer

from webui.app import MAX_PAGE_LIMIT, create_app
from webui.view import EntryPage, EntryView, ExportFormat, MemberView

ENTRIES = [
    EntryView(id=f"{i:032x}", text=f"City {i}", partition="p", origin="n1", hlc=i, aliases=(), status="unconfirmed")
    for i in range(5)
]


class FakeView:
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def entries(self, *, cursor: str | None, limit: int, query: str | None, partition: str | None) -> EntryPage:
        self.calls.append({"cursor": cursor, "limit": limit, "query": query, "partition": partition})
        if cursor == "bogus":
            raise ValueError("cursor is not one this node issued")
        start = int(cursor) if cursor else 0
        chunk = ENTRIES[start : start + limit]
        more = start + limit < len(ENTRIES)
        return EntryPage(tuple(chunk), str(start + limit) if more else None, len(ENTRIES))

    def members(self) -> list[MemberView]:
        return [MemberView("n1", "127.0.0.1:7001", "alive", 3, 1700000000.0)]

    def metrics(self) -> Mapping[str, object]:
        return {"entries": len(ENTRIES)}

    def export(self, fmt: ExportFormat) -> Iterator[str]:
        return iter([f"{e.text}\n" for e in ENTRIES])

    def health(self) -> Mapping[str, object]:
        return {"node": "n1"}


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, FakeView]]:
    view = FakeView()
    async with TestClient(TestServer(create_app(view))) as test_client:
        yield test_client, view


async def test_entries_pages_with_a_cursor_until_the_end(client: tuple[TestClient, FakeView]) -> None:
    """Following next_cursor walks the whole list once, in order."""
    http, _ = client
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await (await http.get("/api/entries", params=params)).json()
        assert body["total"] == 5
        seen += [entry["text"] for entry in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [e.text for e in ENTRIES]
    assert set(body["entries"][0]) == {"id", "text", "partition", "origin", "hlc", "aliases", "status"}


@pytest.mark.parametrize(
    "query",
    ["limit=0", f"limit={MAX_PAGE_LIMIT + 1}", "limit=ten", "limit=-5", "cursor=bogus", "q=" + "x" * 201],
)
async def test_bad_query_parameters_are_a_400_with_a_reason(client: tuple[TestClient, FakeView], query: str) -> None:
    """Out-of-range, non-numeric, oversized or forged parameters get a JSON 400."""
    http, _ = client
    response = await http.get(f"/api/entries?{query}")
    assert response.status == 400
    assert "error" in await response.json()


async def test_filters_reach_the_view(client: tuple[TestClient, FakeView]) -> None:
    """q and partition are passed through to the view."""
    http, view = client
    await http.get("/api/entries", params={"q": "paris", "partition": "France"})
    assert view.calls[-1] == {"cursor": None, "limit": 100, "query": "paris", "partition": "France"}


async def test_members_metrics_health_and_export(client: tuple[TestClient, FakeView]) -> None:
    """Each read route answers with the view's data in the documented shape."""
    http, _ = client
    members = await (await http.get("/api/members")).json()
    assert members == {"members": [{"name": "n1", "address": "127.0.0.1:7001", "state": "alive",
                                    "incarnation": 3, "last_heard": 1700000000.0}]}  # fmt: skip
    assert (await (await http.get("/api/metrics")).json()) == {"entries": 5}
    assert (await (await http.get("/healthz")).json()) == {"status": "ok", "node": "n1"}
    export = await http.get("/api/export", params={"format": "txt"})
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/plain")
    assert (await export.text()).splitlines() == [e.text for e in ENTRIES]
    assert (await http.get("/api/export", params={"format": "xml"})).status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/api/entries", "/api/members", "/api/export", "/healthz", "/api/metrics"])
async def test_anything_but_get_is_refused(client: tuple[TestClient, FakeView], method: str, path: str) -> None:
    """The API is read-only: other methods get 405."""
    http, _ = client
    response = await http.request(method, path)
    assert response.status == 405


async def test_head_is_allowed(client: tuple[TestClient, FakeView]) -> None:
    """HEAD works wherever GET does."""
    http, _ = client
    assert (await http.head("/healthz")).status == 200
