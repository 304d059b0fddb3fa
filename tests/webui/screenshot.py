"""Take docs/screenshot.png: the page of a real node mid-run (1280x900).

Run: .venv/bin/python -m tests.webui.screenshot [docs/screenshot.png] [--universe NAME]
  or, against a node already running (e.g. node 1 of scripts/run-local.sh):
     .venv/bin/python -m tests.webui.screenshot --url http://127.0.0.1:7071/ --wait-s 0
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page

from tests.webui.browser import chromium, gossip_node


async def take(path: Path, universe: str, wait_s: float, time_scale: float) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        extra = ["--universe", universe, "--topic", "cities of Europe"] if universe != "countries" else []
        extra += ["--sim-time-scale", str(time_scale)]
        async with gossip_node(Path(data_dir), *extra) as url, chromium() as browser:
            await _shoot(browser, url, path, wait_s)


async def take_existing(path: Path, url: str, wait_s: float) -> None:
    """Shoot the page of a node that is already running (a cluster's page shows its members)."""
    async with chromium() as browser:
        await _shoot(browser, url, path, wait_s)


async def _shoot(browser: Browser, url: str, path: Path, wait_s: float) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(url)
    await page.wait_for_selector("#list-body tr.entry", timeout=60_000)
    await asyncio.sleep(wait_s)  # let the charts gather some history
    await page.locator("#list-body tr.entry").nth(_most_explained(await _visible_details(page))).click()
    await page.wait_for_selector("tr.detail .observations", timeout=10_000)
    await page.screenshot(path=str(path))


async def _visible_details(page: Page) -> list[dict[str, Any]]:
    """The observation details of the first rows on screen."""
    ids = await page.locator("#list-body tr.entry").evaluate_all("rows => rows.slice(0, 12).map(r => r.dataset.id)")
    details: list[dict[str, Any]] = await page.evaluate(
        "ids => Promise.all(ids.map(id => fetch('/api/entries/' + id).then(r => r.json())))", ids
    )
    return details


def _most_explained(details: list[dict[str, Any]]) -> int:
    """The row whose detail shows the most (aliases first, then dropped duplicates)."""
    scores = [(len(d["entry"]["aliases"]), len(d["observations"])) for d in details]
    return max(range(len(scores)), key=lambda index: scores[index])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", default="docs/screenshot.png", type=Path)
    parser.add_argument("--universe", default="countries")
    parser.add_argument("--wait-s", type=float, default=20.0, help="seconds of history before the shot")
    parser.add_argument("--time-scale", type=float, default=0.2, help="the simulated LLM's pace (mid-run shot)")
    parser.add_argument("--url", help="shoot this running node's page instead of starting a node")
    args = parser.parse_args()
    if args.url:
        asyncio.run(take_existing(args.path, args.url, args.wait_s))
    else:
        asyncio.run(take(args.path, args.universe, args.wait_s, args.time_scale))
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
