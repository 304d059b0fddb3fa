"""Helpers for the browser tests: Debian's chromium under Playwright, and a real node process.

Playwright's async API inside our own fixtures (pytest-playwright's sync fixtures would break
pytest-asyncio); Playwright's own browser download cannot work here, so it drives
``/usr/bin/chromium`` (scripts/test.sh installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_LISTENING = re.compile(r"node API: (http://[^/\s]+/)")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Debian chromium, closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def gossip_node(data_dir: Path, *extra: str, startup_timeout_s: float = 60.0) -> AsyncIterator[str]:
    """A real ``gossip-node`` process on a free loopback port; yields its base URL."""
    executable = Path(sys.executable).with_name("gossip-node")
    process = await asyncio.create_subprocess_exec(
        str(executable),
        "--topic", "countries of the world",
        "--universe", "countries",
        "--data-dir", str(data_dir),
        "--port", "0",
        "--sim-time-scale", "0.05",
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    try:
        url = await asyncio.wait_for(_listening_url(process.stderr, seen), startup_timeout_s)
        drain = asyncio.create_task(_drain(process.stderr))
        try:
            yield url
        finally:
            drain.cancel()
    except TimeoutError:
        raise AssertionError("gossip-node did not print its URL:\n" + "".join(seen)) from None
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _listening_url(stream: asyncio.StreamReader, seen: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode("utf-8", "replace")
        if not line:
            raise AssertionError("gossip-node exited:\n" + "".join(seen))
        seen.append(line)
        found = _LISTENING.search(line)
        if found:
            return found.group(1)


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the node's log so its pipe never fills and blocks it."""
    while await stream.readline():
        pass
