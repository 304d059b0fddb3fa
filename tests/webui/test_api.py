"""Tests for webui.app: the read-only JSON API, /metrics and the hardening headers, over a fake view."""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from node.normalize import entry_id
from node.records import EntryRecord
from node.state import NodeState
from node.view import StateView
from tests.webui.fake_view import FakeView
from webui.app import MAX_PAGE_LIMIT, WebUIConfig, create_app
from webui.view import ConvergenceView, MemberView, PartitionView

FAST = WebUIConfig(tick_s=0.05, flush_s=0.02)
NAMES = ["Oslo", "Bergen", "Tromsø", "Ålesund", "Bodø"]


@pytest.fixture
def view() -> FakeView:
    fake = FakeView()
    for name in NAMES:
        fake.add(name)
    return fake


@pytest.fixture
async def http(view: FakeView) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(view, FAST))) as client:
        yield client


async def _walk(http: TestClient, limit: int, **params: str) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        query = {"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        body = await (await http.get("/api/entries", params=query)).json()
        seen += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_entries_pages_with_a_cursor_until_the_end(http: TestClient) -> None:
    """Following next_cursor walks the whole list once, in order, in the documented shape."""
    seen = await _walk(http, 2)
    assert [e["text"] for e in seen] == sorted(NAMES, key=str.casefold)
    assert set(seen[0]) == {"id", "text", "partition", "origin", "hlc", "aliases", "status"}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        f"limit={MAX_PAGE_LIMIT + 1}",
        "limit=ten",
        "limit=-5",
        "cursor=bogus",
        "q=" + "x" * 201,
        "status=gone",
    ],
)
async def test_bad_query_parameters_are_a_400_with_a_reason(http: TestClient, query: str) -> None:
    """Out-of-range, non-numeric, oversized or forged parameters get a JSON 400."""
    response = await http.get(f"/api/entries?{query}")
    assert response.status == 400
    assert "error" in await response.json()


@pytest.mark.parametrize("path", ["/api/series?max_points=1", "/api/discovery?max_points=x", "/api/export?format=xml"])
async def test_other_bad_parameters_are_a_400(http: TestClient, path: str) -> None:
    """Every validated parameter refuses nonsense."""
    assert (await http.get(path)).status == 400


async def test_filters_reach_the_view(http: TestClient, view: FakeView) -> None:
    """q, partition and status are passed through to the view."""
    await http.get("/api/entries", params={"q": "paris", "partition": "France", "status": "confirmed"})
    assert view.requests[-1] == {"cursor": None, "limit": 100, "query": "paris", "partition": "France",
                                 "status": "confirmed"}  # fmt: skip


async def test_members_metrics_health_and_export(http: TestClient) -> None:
    """Each read route answers with the view's data in the documented shape."""
    members = (await (await http.get("/api/members")).json())["members"]
    assert [(m["name"], m["address"], m["state"], m["incarnation"]) for m in members] == [
        ("n1", "127.0.0.1:7001", "alive", 1)
    ]
    metrics = await (await http.get("/api/metrics")).json()
    assert metrics["entries"] == len(NAMES) and metrics["sampled_at"] > 0
    assert (await (await http.get("/healthz")).json())["status"] == "ok"
    export = await http.get("/api/export", params={"format": "txt"})
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/plain")
    assert (await export.text()).splitlines() == sorted(NAMES, key=str.casefold)


async def test_metrics_come_from_the_latest_sample(view: FakeView) -> None:
    """/api/metrics serves the sampler's snapshot, which follows the view tick by tick."""
    async with TestClient(TestServer(create_app(view, FAST))) as http:
        first = await (await http.get("/api/metrics")).json()
        view.metric_values["calls"] = 41
        for _ in range(200):
            later = await (await http.get("/api/metrics")).json()
            if later["calls"] == 41:
                break
            await _tick()
        assert first["calls"] == 0 and later["calls"] == 41 and later["sampled_at"] > first["sampled_at"]


async def _tick() -> None:
    await asyncio.sleep(FAST.tick_s / 2)


async def test_entry_detail_explains_what_was_dropped(http: TestClient, view: FakeView) -> None:
    """/api/entries/{id} lists the generated items that resolved to the line and how."""
    entry = view.add(
        "Trondheim", aliases=("Nidaros",), dropped=(("trondheim", "exact", 1.0), ("Trondhjem", "fuzzy", 0.88))
    )
    body = await (await http.get(f"/api/entries/{entry.id}")).json()
    assert body["entry"]["aliases"] == ["Nidaros"] and body["generated"] == 3
    assert [(o["text"], o["match"], o["score"]) for o in body["observations"]] == [
        ("Trondheim", "new", 1.0),
        ("trondheim", "exact", 1.0),
        ("Trondhjem", "fuzzy", 0.88),
    ]


@pytest.mark.parametrize("entry", ["0" * 32, "not-hex", "x" * 65, "..%2F..%2Fetc"])
async def test_entry_detail_of_an_unknown_or_malformed_id_is_a_404(http: TestClient, entry: str) -> None:
    """Unknown ids and anything that is not an id are a JSON 404."""
    response = await http.get(f"/api/entries/{entry}")
    assert response.status == 404


async def test_panels_without_a_source_say_unavailable(http: TestClient, view: FakeView) -> None:
    """partitions() and convergence() returning None become {"available": false}; values appear once set."""
    assert (await (await http.get("/api/partitions")).json())["available"] is False
    assert (await (await http.get("/api/convergence")).json()) == {"available": False}
    view.partition_list = [PartitionView("Europe > Norway", 5, 4, 40, 5, "n1", "active")]
    view.convergence_view = ConvergenceView(("n1", "n2"), ((1.0, 0.5), (0.5, None)))
    partitions = await (await http.get("/api/partitions")).json()
    assert partitions["available"] is True
    assert partitions["partitions"] == [{"path": "Europe > Norway", "entries": 5, "calls": 4, "items": 40, "new": 5,
                                         "yield": 1.25, "owner": "n1", "state": "active"}]  # fmt: skip
    assert (await (await http.get("/api/convergence")).json()) == {
        "available": True, "nodes": ["n1", "n2"], "similarity": [[1.0, 0.5], [0.5, None]]
    }  # fmt: skip


async def test_discovery_and_series_feed_the_charts(http: TestClient) -> None:
    """The discovery curve is cumulative; the series holds numeric samples with a time."""
    discovery = await (await http.get("/api/discovery")).json()
    assert discovery["points"][0] == [0, 0, 0] and discovery["points"][-1] == [5, 5, 5]
    series = await (await http.get("/api/series")).json()
    assert series["interval_s"] == FAST.tick_s
    assert series["samples"] and {"t", "entries", "calls"} <= set(series["samples"][-1])


async def test_prometheus_output_parses_with_prometheus_client(http: TestClient, view: FakeView) -> None:
    """/metrics is valid Prometheus text: counters, gauges, members by state, gossip by direction."""
    view.metric_values.update(
        calls=12, tokens=3400, calls_failed=1, estimate={"total": 250.5, "low": 200.0, "high": None},
        gossip={"messages_in": 7, "bytes_out": 900}, queue_depth=3, stopped=None, flag=True,
    )  # fmt: skip
    view.member_list.append(MemberView('n2 "quoted"\n', "127.0.0.1:7002", "suspect", 2, 0.0))
    await _tick()
    await _tick()
    response = await http.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }
    assert samples[("swarmlist_llm_calls_total", ())] == 12
    assert samples[("swarmlist_llm_tokens_total", ())] == 3400
    assert samples[("swarmlist_llm_call_failures_total", ())] == 1
    assert samples[("swarmlist_entries", ())] == len(NAMES)
    assert samples[("swarmlist_estimated_total_entries", ())] == 250.5
    assert ("swarmlist_estimated_total_entries_high", ()) not in samples  # None: unknown, not zero
    assert samples[("swarmlist_members", (("state", "alive"),))] == 1
    assert samples[("swarmlist_members", (("state", "suspect"),))] == 1
    assert samples[("swarmlist_gossip_messages_total", (("direction", "in"),))] == 7
    assert samples[("swarmlist_gossip_bytes_total", (("direction", "out"),))] == 900
    assert samples[("swarmlist_queue_depth", ())] == 3  # unknown numeric keys pass through as gauges
    assert samples[("swarmlist_node_info", (("node", "n1"), ("topic", "test topic")))] == 1
    assert not any(name.startswith("swarmlist_flag") for name, _ in samples)  # booleans are not numbers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize(
    "path",
    ["/", "/static/app.js", "/api/entries", "/api/members", "/api/export", "/healthz", "/api/metrics",
     "/api/events", "/metrics", "/api/partitions", "/api/convergence", "/api/series", "/api/discovery"],
)  # fmt: skip
async def test_anything_but_get_is_refused(http: TestClient, method: str, path: str) -> None:
    """The web surface is read-only: other methods get 405."""
    assert (await http.request(method, path)).status == 405


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/entries", "/api/events", "/metrics", "/api/export"])
async def test_head_is_allowed(http: TestClient, path: str) -> None:
    """HEAD works wherever GET does (and does not hang on the event stream)."""
    assert (await http.head(path)).status == 200


@pytest.mark.parametrize("path", ["/", "/api/entries", "/api/entries/zz", "/nowhere", "/static/missing.js"])
async def test_every_response_carries_the_hardening_headers(http: TestClient, path: str) -> None:
    """A strict CSP (no inline script), nosniff and no framing on pages, API answers and errors."""
    response = await http.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_the_page_and_its_assets_are_served(http: TestClient) -> None:
    """/ is the page; its script, style and the vendored chart library come from /static/."""
    page = await http.get("/")
    html = await page.text()
    assert page.headers["Content-Type"].startswith("text/html") and 'src="/static/app.js"' in html
    assert "<script>" not in html and " style=" not in html and "onclick" not in html  # nothing inline
    for path, kind in [("/static/app.js", "text/javascript"), ("/static/style.css", "text/css"),
                       ("/static/vendor/uPlot.iife.min.js", "text/javascript"),
                       ("/static/vendor/uPlot.LICENSE", "text/plain")]:  # fmt: skip
        response = await http.get(path)
        assert response.status == 200 and response.headers["Content-Type"].startswith(kind), path
    etag = (await http.get("/static/app.js")).headers["ETag"]
    assert (await http.get("/static/app.js", headers={"If-None-Match": etag})).status == 304


@pytest.mark.parametrize(
    "path",
    ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/vendor/../../view.py",
     "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/.%2e/.%2e/pyproject.toml", "/static/"],
)  # fmt: skip
async def test_no_path_leaves_the_static_directory(http: TestClient, path: str) -> None:
    """Traversal attempts get a 404, never a file from outside webui/static."""
    response = await http.get(path, allow_redirects=False)
    body = await response.read()
    assert response.status == 404 or response.status >= 300 and response.status < 400
    assert b"import" not in body and b"root:" not in body and b"[project]" not in body


async def test_cursor_is_stable_while_entries_arrive() -> None:
    """Entries added between pages (before and after the cursor) never make a page repeat or skip a line."""
    state = NodeState()
    rng = random.Random(7)
    names = sorted({"".join(rng.choice(string.ascii_lowercase) for _ in range(9)).capitalize() for _ in range(200)})
    first_batch = names[::2]  # random words: no two are near-duplicates, so each stays its own line
    for hlc, name in enumerate(first_batch):
        state.apply(EntryRecord(id=entry_id(name), text=name, partition="", origin="n1", hlc=hlc))
    view = StateView(state, node_name="n1", topic="t", members=list, metrics=dict)
    seen: list[str] = []
    arrivals = reversed(names[1::2])  # the others arrive, from the end of the list backwards
    async with TestClient(TestServer(create_app(view, FAST))) as http:
        cursor = None
        while True:
            params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
            body = await (await http.get("/api/entries", params=params)).json()
            seen += [entry["text"] for entry in body["entries"]]
            for _ in range(3):  # entries arrive, some behind the cursor, some ahead of it
                name = next(arrivals, None)
                if name is not None:
                    state.apply(EntryRecord(id=entry_id(name), text=name, partition="", origin="n2", hlc=10_000))
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)), "a line was served twice"
    assert seen == sorted(seen), "pages went backwards"
    assert set(first_batch) <= set(seen), "a line present from the start was skipped"
    assert len(seen) > len(first_batch)  # arrivals ahead of the cursor were picked up


async def test_error_bodies_are_json(http: TestClient) -> None:
    """A 400 body is valid JSON even when the message has quotes."""
    body = await (await http.get("/api/entries?limit=ten")).text()
    assert json.loads(body) == {"error": "limit must be an integer"}


async def test_members_carry_rtt_and_why_and_convergence_carries_digest_agreement(
    http: TestClient, view: FakeView
) -> None:
    """/api/members adds rtt_s, reason and reason_at (None while unknown); /api/convergence adds the
    difference matrix (0.0 = equal digests) and record counts when the node has them."""
    view.member_list.append(MemberView("n2", "127.0.0.1:7002", "dead", 4, 1_700_000_000.0, rtt_s=0.0042,
                                       reason="declared dead by n3", reason_at=1_700_000_010.0))  # fmt: skip
    members = (await (await http.get("/api/members")).json())["members"]
    assert members[0]["rtt_s"] is None and members[0]["reason"] is None and members[0]["reason_at"] is None
    assert {k: members[1][k] for k in ("state", "rtt_s", "reason", "reason_at")} == {
        "state": "dead", "rtt_s": 0.0042, "reason": "declared dead by n3", "reason_at": 1_700_000_010.0}  # fmt: skip
    view.convergence_view = ConvergenceView(("n1", "n2"), ((1.0, 1.0), (1.0, 1.0)),
                                            difference=((0.0, 0.0), (0.0, 0.0)), counts=(5, 5))  # fmt: skip
    convergence = await (await http.get("/api/convergence")).json()
    assert convergence["difference"] == [[0.0, 0.0], [0.0, 0.0]] and convergence["counts"] == [5, 5]
