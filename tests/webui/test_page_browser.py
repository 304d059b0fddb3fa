"""Browser tests of the page: Debian's chromium driven by Playwright (async API).

One test serves a fake view (hostile entries, aliases, observations on cue) with
``create_app`` on a loopback port; one drives the page of a real ``gossip-node`` process;
one drives the third node's page of a real 3-process cluster (the merged list). They wait for selectors, never for fixed times.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import ConsoleMessage, Dialog, Page, expect

from tests.node.processes import NodeProcess
from tests.webui.browser import chromium, gossip_node
from tests.webui.fake_view import FakeView
from webui.app import WebUIConfig, create_app
from webui.view import MemberView

pytestmark = pytest.mark.slow

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "<b onmouseover=alert(4)>bold</b>",
]
TIMEOUT_MS = 30_000
CLUSTER_TIMEOUT_MS = 90_000  # joins, gossip and anti-entropy among real processes on 2 shared cores
CLUSTER_KEY = ("--cluster-key", "0123456789abcdef-test-key")


@pytest.fixture
async def fake_site() -> AsyncIterator[tuple[str, FakeView]]:
    view = FakeView(node="n1", topic="Norwegian towns <i>and</i> hostile names")
    for name in ["Oslo", "Tromsø", *HOSTILE]:
        view.add(name)
    view.add("Bergen", aliases=("Bjørgvin",), dropped=(("bergen", "exact", 1.0), ("Bergen city", "fuzzy", 0.86)))
    view.member_list.append(MemberView("n2", "127.0.0.1:7002", "suspect", 3, time.time() - 4))
    runner = web.AppRunner(create_app(view, WebUIConfig(tick_s=0.2, flush_s=0.05)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", view
    finally:
        await runner.cleanup()


@pytest.fixture
async def page() -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh page, with every dialog, page error and console error recorded as a problem."""
    problems: list[str] = []
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        tab = await context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)

        async def on_dialog(dialog: Dialog) -> None:
            problems.append(f"dialog: {dialog.message}")
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.append(f"console: {message.text}")

        tab.on("dialog", on_dialog)
        tab.on("console", on_console)
        tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        yield tab, problems
        await context.close()


async def test_fake_view_page_shows_hostile_text_aliases_search_members_and_live_entries(
    fake_site: tuple[str, FakeView], page: tuple[Page, list[str]]
) -> None:
    """Hostile entries render as literal text; details explain drops; search filters; new entries arrive live."""
    url, view = fake_site
    tab, problems = page
    await tab.goto(url)
    rows = tab.locator("#list-body tr.entry")
    await expect(rows).to_have_count(7)
    texts = await tab.locator("#list-body .entry-text").all_text_contents()
    assert set(HOSTILE) <= set(texts)  # the markup is shown, character for character
    assert await tab.locator("#list-body img, #list-body script, #list-body svg, #list-body b").count() == 0
    await tab.locator("#list-body tr.entry", has_text="onmouseover").hover()
    await expect(tab.locator("#topic")).to_have_text("Norwegian towns <i>and</i> hostile names")

    await tab.locator("#list-body tr.entry", has_text="Bergen").click()
    detail = tab.locator("#list-body tr.detail")
    await expect(detail.locator(".chip")).to_have_text(["Bjørgvin"])
    await expect(detail.locator(".observation")).to_have_count(3)
    await expect(detail.locator(".observation", has_text="Bergen city")).to_contain_text("near-duplicate 86%")

    await tab.fill("#search", "troms")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Tromsø")
    await tab.fill("#search", "")
    await expect(rows).to_have_count(7)

    members = tab.locator("#members-body tr.member")
    await expect(members).to_have_count(2)
    await expect(members.nth(1)).to_contain_text("suspect")

    view.add("Zzyzx <iframe src=javascript:alert(5)>")
    await expect(tab.locator("#recent li").first).to_contain_text("Zzyzx <iframe src=javascript:alert(5)>")
    await expect(rows).to_have_count(8)  # the list reloads itself
    view.member_list.append(MemberView("n3", "127.0.0.1:7003", "alive", 1, time.time()))
    await expect(members).to_have_count(3)
    assert await tab.locator("iframe").count() == 0
    assert problems == []


async def test_real_node_page_shows_the_list_filling_live(tmp_path: Path, page: tuple[Page, list[str]]) -> None:
    """Against a real gossip-node: the list fills, new entries arrive live, the node is in the member table."""
    tab, problems = page
    async with gossip_node(tmp_path / "node", "--sim-time-scale", "0.3") as url:
        await tab.goto(url)
        await expect(tab.locator("#live")).to_have_class("live on")
        await expect(tab.locator("#list-body tr.entry").first).to_be_visible()
        await expect(tab.locator("#recent li:not(.placeholder)").first).to_be_visible()  # pushed live
        node_name = (await tab.locator("#node-name").text_content()) or ""
        member = tab.locator("#members-body tr.member")
        await expect(member).to_have_count(1)
        await expect(member.first).to_contain_text(node_name)
        await expect(member.first.locator(".state")).to_have_text("alive")
        await expect(tab.locator("#c-entries")).not_to_have_text("–")
        first = int((await tab.locator("#list-count").text_content() or "0").replace(",", ""))
        await tab.wait_for_function(
            "n => parseInt(document.getElementById('list-count').textContent.replace(/,/g, '')) > n", arg=first
        )
        await tab.fill("#search", "zzzz-no-such-country")
        await expect(tab.locator("#list-empty")).to_be_visible()
        assert problems == []  # checked while the node runs: once it stops, reconnects fail loudly


@pytest.fixture
def keyed_cluster(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Three keyed ``gossip-node`` processes joined through the first; killed afterwards (a graceful
    leave checks nothing here and costs seconds, each node gossiping it to peers that are leaving too)."""
    nodes: list[NodeProcess] = []
    try:
        nodes.append(NodeProcess(tmp_path / "a", *CLUSTER_KEY, "--sim-time-scale", "0.5"))
        nodes[0].wait_started()
        # The other two only need the seed's address: they start together (a start is mostly CPU-bound imports).
        for name in ("b", "c"):
            seed = ("--seed", nodes[0].address)
            nodes.append(NodeProcess(tmp_path / name, *CLUSTER_KEY, "--sim-time-scale", "0.5", *seed))
        for node in nodes[1:]:
            node.wait_started()
        yield nodes
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)


async def test_page_of_the_third_node_shows_the_merged_cluster_list_live(
    keyed_cluster: list[NodeProcess], page: tuple[Page, list[str]]
) -> None:
    """3 real nodes: node 3's page lists node 1's and node 2's entries, grows live, searches, shows 3 alive."""
    tab, problems = page
    third = keyed_cluster[2]
    names = [await asyncio.to_thread(node.name) for node in keyed_cluster]
    await tab.goto(third.url + "/")
    await tab.evaluate("window.loadedOnce = true")  # gone if the page reloads
    await expect(tab.locator("#node-name")).to_have_text(names[2])
    rows = tab.locator("#list-body tr.entry")
    await expect(rows.first).to_be_visible()

    members = tab.locator("#members-body tr.member")
    await expect(members).to_have_count(3, timeout=CLUSTER_TIMEOUT_MS)
    await expect(members.locator(".state")).to_have_text(["alive"] * 3, timeout=CLUSTER_TIMEOUT_MS)
    assert sorted(await members.locator("td:first-child").all_text_contents()) == sorted(names)

    # The list the page serves is the merged one: the same node's API holds every node's entries,
    # and the visible origin column shows rows the other nodes found.
    await tab.wait_for_function(
        """async names => {
             const body = await (await fetch('/api/entries?limit=1000')).json();
             const origins = new Set(body.entries.map(e => e.origin));
             return names.every(n => origins.has(n));
           }""",
        arg=names,
        timeout=CLUSTER_TIMEOUT_MS,
        polling=500,
    )
    await tab.wait_for_function(
        "own => [...document.querySelectorAll('#list-body .origin-cell')].some(c => c.textContent !== own)",
        arg=names[2],
        timeout=CLUSTER_TIMEOUT_MS,
    )

    shown = int((await tab.locator("#list-count").text_content() or "0").replace(",", ""))
    await tab.wait_for_function(
        "n => parseInt(document.getElementById('list-count').textContent.replace(/,/g, '')) > n",
        arg=shown,
        timeout=CLUSTER_TIMEOUT_MS,
    )
    await expect(tab.locator("#recent li:not(.placeholder)").first).to_be_visible()  # pushed live
    assert await tab.evaluate("window.loadedOnce") is True

    unfiltered = await rows.count()
    wanted = (await rows.first.locator(".entry-text").text_content()) or ""
    await tab.fill("#search", wanted)
    await expect(tab.locator("#list-count")).to_contain_text("matching")
    await expect(rows.locator(".entry-text", has_text=wanted).first).to_be_visible()
    assert 1 <= await rows.count() < unfiltered
    await tab.fill("#search", "zzzz-no-such-country")
    await expect(tab.locator("#list-empty")).to_be_visible()

    # The partition plan: the whole topic at first, owned by a live member; once a part is
    # split or retired, the panel shows the plan's states (with partitioning on by default).
    partitions = tab.locator("#partitions-body tr.partition")
    await expect(tab.locator("#partitions-panel")).to_be_visible(timeout=CLUSTER_TIMEOUT_MS)
    await expect(partitions.first).to_be_visible()
    # Read in one go: the plan moves on between two reads. By now the small topic may be exhausted,
    # every leaf retired, so the check is row by row: an active part shows its live owner, a split or
    # retired one shows none.
    rows_shown = await partitions.evaluate_all(
        "rows => rows.map(r => [r.cells[1].textContent, r.cells[4].textContent])"
    )
    assert rows_shown
    for owner, state in rows_shown:
        assert state in {"active", "split", "retired"}
        assert (owner in names) if state == "active" else (owner == "–"), (owner, state)
    assert problems == []  # checked while the nodes run: once they stop, reconnects fail loudly


async def test_members_table_shows_each_peers_rtt_and_why_it_is_suspect(
    fake_site: tuple[str, FakeView], page: tuple[Page, list[str]]
) -> None:
    """The RTT and Why columns: a suspect peer's smoothed RTT in ms and the reason with its time."""
    url, view = fake_site
    tab, problems = page
    view.member_list.append(MemberView("n4", "127.0.0.1:7004", "suspect", 2, time.time(), rtt_s=0.0123,
                                       reason="no ack to direct probes nor to 2 indirect probes (0 nacks)",
                                       reason_at=time.time()))  # fmt: skip
    await tab.goto(url)
    row = tab.locator("#members-body tr.member", has_text="n4")
    await expect(row.locator(".rtt")).to_have_text("12 ms")
    await expect(row.locator(".reason")).to_have_text(re.compile(r"^no ack to direct probes nor to 2 indirect "
                                                                 r"probes \(0 nacks\) at \d\d:\d\d:\d\d$"))  # fmt: skip
    assert problems == []


async def test_the_spend_line_shows_the_network_spend_and_what_is_left_of_the_budget(
    fake_site: tuple[str, FakeView], page: tuple[Page, list[str]]
) -> None:
    """One line under the counters: calls and tokens spent network-wide, the budget and what is left."""
    url, view = fake_site
    tab, problems = page
    await tab.goto(url)
    line = tab.locator("#spend")
    await expect(line).to_be_hidden()  # a view without a spend group shows no line
    view.metric_values["spend"] = {"calls": 1234, "prompt_tokens": 450_000, "completion_tokens": 98_000,
                                   "budget_calls": 2000, "budget_tokens": None, "remaining_calls": 766,
                                   "remaining_tokens": None}  # fmt: skip
    await expect(line).to_have_text("Network spend: 1,234 LLM calls, 450K prompt + 98K completion tokens"
                                    " · budget 2,000 calls, 766 left")  # fmt: skip
    assert problems == []
