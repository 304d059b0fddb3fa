"""Hostile clients beyond single inputs (issue #14): slow-loris trickles, a flood from one
address, and a ``Sampler`` of a process's peak memory and /healthz latency meanwhile.

``python -m tests.node.hostile_clients flood URL REQUESTS BODY_BYTES SOURCE`` runs a flood in
a process of its own (so its buffers and CPU are not the measured node's) and prints the
statuses as JSON.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from gossip.messages import Ping
from tests.node.fuzz_target import TARGET_NAME, rss_bytes
from tests.node.gossip_inputs import Sealer


class Sampler:
    """Samples a process's peak resident memory and /healthz latency on threads (context manager).

    Health is probed two ways: over one kept-alive connection, and over a fresh connection each
    time (what a monitor does; it also needs the node to keep accepting).
    """

    def __init__(self, url: str, pid: int | str = "self", *, interval_s: float = 0.05) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._pid = pid
        self._interval_s = interval_s
        self.rss_before = rss_bytes(pid)
        self.rss_peak = self.rss_before
        self.kept_latencies: list[float] = []  # over one kept-alive connection
        self.fresh_latencies: list[float] = []  # over a new connection each time
        self.statuses: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._memory, daemon=True),
                         threading.Thread(target=self._health, args=(False,), daemon=True),
                         threading.Thread(target=self._health, args=(True,), daemon=True)]  # fmt: skip

    def __enter__(self) -> Sampler:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def latencies(self) -> list[float]:
        return self.kept_latencies + self.fresh_latencies

    def summary(self) -> dict[str, Any]:
        return {
            "rss_before_mib": round(self.rss_before / 2**20, 1),
            "rss_peak_growth_mib": round((self.rss_peak - self.rss_before) / 2**20, 1),
            "healthz_probes": len(self.latencies),
            "healthz_max_s": round(max(self.latencies, default=0.0), 3),
            "healthz_kept_connection_max_s": round(max(self.kept_latencies, default=0.0), 3),
            "healthz_new_connection_max_s": round(max(self.fresh_latencies, default=0.0), 3),
            "healthz_statuses": dict(self.statuses),
        }

    def _memory(self) -> None:
        while not self._stop.wait(0.005):
            self.rss_peak = max(self.rss_peak, rss_bytes(self._pid))

    def _health(self, fresh: bool) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.wait(self._interval_s):
            started = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (http.client.HTTPException, OSError) as exc:
                status = type(exc).__name__
                connection = None
            if fresh and connection is not None:
                connection.close()
                connection = None
            (self.fresh_latencies if fresh else self.kept_latencies).append(time.monotonic() - started)
            self.statuses[status] += 1
        if connection is not None:
            connection.close()


async def flood(url: str, *, requests: int, body: bytes, source: str = "127.0.0.2",
                path: str = "/gossip/payloads") -> Counter[str]:  # fmt: skip
    """``requests`` concurrent POSTs of ``body`` from one peer address (loopback answers all of
    127/8, so a flood from 127.0.0.2 is one peer and a probe from 127.0.0.1 another)."""
    statuses: Counter[str] = Counter()

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            async with session.post(url + path, data=body, headers={"Content-Type": "application/msgpack"}) as response:
                await response.read()
                statuses[str(response.status)] += 1
        except aiohttp.ClientError as exc:  # a refused connection may be closed before its answer is read
            statuses[type(exc).__name__] += 1

    connector = aiohttp.TCPConnector(limit=0, local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(requests)))
    return statuses


def flood_from_another_process(url: str, *, requests: int, body_bytes: int, source: str = "127.0.0.2") -> Counter[str]:
    """``flood`` run by a child Python, so its buffers and CPU are not the measured process's."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.node.hostile_clients", "flood", url, str(requests), str(body_bytes), source]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=True)
    return Counter(json.loads(done.stdout))


async def slow_loris(host: str, port: int, *, heads: int, bodies: int, byte_every_s: float, give_up_s: float,
                     body_path: str = "/gossip/ping") -> tuple[Counter[str], float]:  # fmt: skip
    """Clients that trickle a request head (``heads``) or a body (``bodies``) one byte at a time.

    Returns how each ended — "closed" (by the node), the first bytes of an answer ("HTTP/1.1
    408"), or "still open" after ``give_up_s`` — and the longest any lasted.
    """
    ping = Sealer().seal(Ping(1, TARGET_NAME))
    head = b"POST /gossip/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n" + b"X-Pad: y\r\n" * 500
    body_head = f"POST {body_path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(ping) + 10_000}\r\n\r\n".encode()

    async def trickle(prefix: bytes, payload: bytes) -> tuple[str, float]:
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        writer.write(prefix)
        try:
            for byte in payload:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(64), byte_every_s)
                except TimeoutError:
                    if time.monotonic() - started > give_up_s:
                        return "still open", time.monotonic() - started
                    continue
                return (answer[:12].decode() or "closed"), time.monotonic() - started
            return "sent everything", time.monotonic() - started
        except ConnectionError:
            return "closed", time.monotonic() - started
        finally:
            writer.close()

    tasks = [trickle(b"", head) for _ in range(heads)] + [trickle(body_head, ping + b"\x00" * 10_000)
                                                          for _ in range(bodies)]  # fmt: skip
    ends = await asyncio.gather(*tasks)
    return Counter(end for end, _ in ends), max((elapsed for _, elapsed in ends), default=0.0)


if __name__ == "__main__" and sys.argv[1:2] == ["flood"]:
    _url, _requests, _bytes, _source = sys.argv[2:6]
    print(json.dumps(asyncio.run(flood(_url, requests=int(_requests), body=b"\x00" * int(_bytes), source=_source))))
