"""Hostile input at a real node's gossip endpoint (issue #14): nothing crashes, leaks or changes.

The target is a whole node (``tests.node.fuzz_target.InProcessNode``: store, producer, gossip
and web routes on one port, a cluster key) on 127.0.0.1, with its timeouts shortened so the
slow-loris cases take a second, not half a minute. Every test counts outcomes and asserts
crashed = 0 and state changed = 0, with the table in the assertion message. The long run is
``scripts/fuzz/gossip.py`` (≥ 10,000 inputs against a ``gossip-node`` process).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gossip.messages import MAX_MESSAGE_BYTES, Ping
from tests import suite_report
from tests.suite_report import FUZZ_COLUMNS, HOSTILE_INPUT as SECTION
from tests.node.fuzz_target import TARGET_NAME, InProcessNode
from tests.node.gossip_fuzz import Fuzzer, assert_clean, own_records, run_many
from tests.node.gossip_inputs import KINDS, Sealer
from tests.node.hostile_clients import Sampler, flood_from_another_process, slow_loris

pytestmark = pytest.mark.slow  # a real node on loopback sockets

IDLE_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
PAGES = ("/healthz", "/api/entries?limit=1000", "/api/members", "/api/metrics", "/api/partitions",
         "/api/convergence", "/api/export?format=jsonl", "/metrics")  # fmt: skip


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessNode]:
    node = InProcessNode(tmp_path_factory.mktemp("fuzz-target"), idle_timeout_s=IDLE_TIMEOUT_S,
                         body_timeout_s=BODY_TIMEOUT_S).start()  # fmt: skip
    yield node
    node.stop()


def _get(target: InProcessNode, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(target.url + path, timeout=10) as response:
        return response.status, response.read()


def _address(target: InProcessNode) -> tuple[str, int]:
    host, port = target.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_generated_hostile_messages_crash_nothing_and_only_valid_records_change_the_set(tmp_path: Path) -> None:
    """Every kind of input, drawn by hypothesis from real envelopes: 0 crashed, 0 unexpected,
    0 state changes beyond the valid records authenticated messages carried; then the node
    still commits records of its own (its clock survived forged timestamps), serves every
    page, and restarts on its data dir with everything it acknowledged."""
    target = InProcessNode(tmp_path).start()
    try:
        fuzzer = Fuzzer(target)
        tally = run_many(fuzzer, 450, own_records(target.data_dir), seed=14)
        fuzzer.close()
        suite_report.record_tally(SECTION, "gossip endpoint", tally, FUZZ_COLUMNS)
        assert_clean(tally)
        assert set(tally.kinds) == set(KINDS), tally.table()
        for kind in ("mutated envelope", "truncated", "wrong key", "no MAC", "stale or future", "other cluster",
                     "oversized", "deep nesting", "huge counts", "wrong types", "replayed"):  # fmt: skip
            assert tally.of(kind).rejected > 0, tally.table()
        assert tally.total("log_lines") <= tally.total("rejected"), tally.table()

        own = target.commit_own_record(concurrency=7)
        assert own in target.record_keys()
        for path in PAGES:
            assert _get(target, path)[0] == 200, path
        assert json.loads(_get(target, "/healthz")[1])["node"] == TARGET_NAME
        assert not [line for line in target.log_lines() if line.level in ("ERROR", "CRITICAL")]
        acknowledged = target.record_keys()
    finally:
        target.stop()
    restarted = InProcessNode(tmp_path, calls=1).start()  # replays and re-indexes every record it stored
    try:
        assert restarted.record_keys() >= acknowledged
        assert not [line for line in restarted.log_lines() if line.level in ("ERROR", "CRITICAL")]
    finally:
        restarted.stop()


def test_an_oversized_body_is_refused_with_413_before_it_is_read(target: InProcessNode) -> None:
    """A declared length over MAX_MESSAGE_BYTES is answered 413 after the headers alone; a
    chunked body is cut off as soon as it passes the limit; the record set is unchanged."""
    before = target.record_keys()
    with socket.create_connection(_address(target), timeout=5) as sock:
        sock.sendall(f"POST /gossip/payloads HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_MESSAGE_BYTES + 1}\r\n\r\n"
                     .encode() + b"\x00" * 1024)  # fmt: skip
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")  # the other megabyte was never sent
    with socket.create_connection(_address(target), timeout=5) as sock:
        sock.sendall(b"POST /gossip/payloads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"\x00" * 64 * 1024)
        answer = b""
        for _ in range(MAX_MESSAGE_BYTES // (64 * 1024) + 8):
            sock.sendall(chunk)
            sock.settimeout(0.01)
            try:
                answer = sock.recv(4096)
                break
            except TimeoutError:
                continue
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert target.record_keys() == before


async def test_slow_loris_connections_are_cut_off_and_block_no_one(target: InProcessNode) -> None:
    """20 clients trickling request heads and 20 trickling bodies, a byte every 0.1 s: the node
    answers others at once meanwhile, closes the heads after its idle timeout and refuses the
    bodies 408 after its body timeout; the record set is unchanged."""
    before = target.record_keys()
    host, port = _address(target)
    trickles = asyncio.create_task(slow_loris(host, port, heads=20, bodies=20, byte_every_s=0.1,
                                              give_up_s=IDLE_TIMEOUT_S + 2.0))  # fmt: skip
    await asyncio.sleep(0.3)
    async with aiohttp.ClientSession() as session:
        for seq in range(5):  # everyone else is served while the trickles are open
            started = time.monotonic()
            async with session.get(target.url + "/healthz") as response:
                assert response.status == 200
            async with session.post(target.url + "/gossip/ping", data=Sealer().seal(Ping(seq, TARGET_NAME))) as response:
                assert response.status == 200
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.1)
    ends, longest_s = await trickles
    assert ends == {"closed": 20, "HTTP/1.1 408": 20}, ends
    assert longest_s < max(IDLE_TIMEOUT_S, BODY_TIMEOUT_S) + 1.5
    assert target.record_keys() == before


def test_a_burst_of_2000_requests_from_one_peer_is_bounded_and_healthz_stays_quick(tmp_path: Path) -> None:
    """2,000 concurrent POSTs of 256 KiB from one address (another process) at a node with the
    production timeouts and bounds: it keeps at most its per-peer cap of their connections
    (the rest get 503 unread) and reads at most its per-peer bound of requests at once (429),
    memory stays bounded, /healthz from another address answers quickly throughout, and the
    record set is unchanged."""
    target = InProcessNode(tmp_path, calls=1).start()
    try:
        before = target.record_keys()
        with Sampler(target.url) as sampler:
            time.sleep(0.2)
            statuses = flood_from_another_process(target.url, requests=2000, body_bytes=256 * 1024)
            time.sleep(0.2)
        after = target.record_keys()
    finally:
        target.stop()
    summary = f"statuses {dict(statuses)}, {sampler.summary()}"
    assert sum(statuses.values()) == 2000
    # Answers are refusals only: 503 over the connection cap, 429 over the request bound, 400
    # for the garbage that was read; a connection the node closed on a refusal is no crash.
    answers = {status for status in statuses if status[0].isdigit()}
    assert answers <= {"400", "429", "503"}, summary
    assert statuses["503"] > 0 and statuses["400"] > 0, summary  # the cap engaged; the admitted ones were judged
    # Every probe is answered. Quick means well under a second over a kept connection (the
    # on-demand run measures 0.15–0.35 s; 2 s leaves room for a loaded CI machine): that is the
    # node's event loop. A fresh connection's time also holds the kernel's SYN retransmission
    # (1 s, then 2 s more) while the flood fills the listen backlog, which says nothing about
    # the node and made this flaky (2.05 s once on 2 shared cores); it is in the summary.
    assert set(sampler.statuses) == {"200"} and len(sampler.fresh_latencies) > 0, summary
    assert max(sampler.kept_latencies) < 2.0, summary
    # Without the caps the node buffered every body at once: ~+300 MiB (measured before the fix).
    assert sampler.rss_peak - sampler.rss_before < 150 * 2**20, summary
    assert after == before
