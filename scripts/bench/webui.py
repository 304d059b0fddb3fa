"""Web UI latency: ``/api/entries`` and ``/api/metrics`` p50/p99 at 1k, 10k and 100k entries.

    .venv/bin/python scripts/bench/webui.py [--sizes 1000 10000 100000] [--requests 2000]
        [--with-estimate] [--no-docs]

The node side is real — a ``NodeState`` (global list with its dedup index), ``StateView``
and the web application of ``webui.create_app`` served on loopback — and it keeps
producing while it is measured: a task applies a new entry and an observation record every
``--produce-interval-ms`` (as the producer does after each resolved item), so the list,
the entry events and the tallies move under the load. The list grows to each size in turn
(synthetic names, a seeded RNG); at each size a client in a separate process (so client
and server don't share a GIL) sends ``--requests`` requests per route with
``--concurrency`` in flight and times each one:

- ``entries``: ``/api/entries?limit=100`` with a cursor drawn from 50 positions across the
  list (the page's Next button), and the first page;
- ``metrics``: ``/api/metrics`` (the sampler's latest snapshot);
- ``search``: ``/api/entries?q=…`` (a scan; fewer requests, reported for information).

``metrics()`` is the runtime's counters by default. ``--with-estimate`` adds what the
runtime's metrics also compute today, the Chao1 estimate over every sample (O(samples)),
which the sampler takes about once a second: its cost shows up in every route's tail.
Target: p99 at 100k ≤ 2× p99 at 1k for ``entries`` and ``metrics`` (flat cost).

Writes ``docs/benchmarks/webui.json`` and the "## Web UI" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp
from aiohttp import web

from node.normalize import entry_id
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem
from node.runtime import exhaustion_estimate
from node.state import NodeState
from node.view import StateView, encode_cursor
from scripts.bench.report import machine_info, machine_summary, write_results
from webui.app import create_app
from webui.view import MemberView

SECTION = "Web UI"
SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in ("a", "e", "i", "o", "u", "ay", "ou")]


def _name(rng: random.Random) -> str:
    """A synthetic place name: two words of 2–4 syllables (near-duplicates are rare, as in a real list)."""
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(2)]
    return " ".join(word.capitalize() for word in words)


class Workload:
    """A node's state growing like a producer's: entries plus one observation per call."""

    def __init__(self, seed: int) -> None:
        self.state = NodeState()
        self._rng = random.Random(seed)
        self._call = 0
        self._hlc = 0
        self.tokens = 0

    def add_call(self, new_entries: int) -> None:
        """One call: ``new_entries`` new names and some repeats of known ones."""
        self._call += 1
        items: list[ObservedItem] = []
        for _ in range(new_entries):
            text = _name(self._rng)
            self._hlc += 1
            record = EntryRecord(id=entry_id(text), text=text, partition="", origin="bench", hlc=self._hlc)
            self.state.apply(record)
            items.append(ObservedItem(record.id, MatchKind.NEW))
        for line in self.state.entries.page(None, 3):  # a few repeats of the model's favourites
            items.append(ObservedItem(line.record.id, MatchKind.EXACT))
        self._hlc += 1
        self.state.apply(
            ObservationRecord(node="bench", call=self._call, partition="", hlc=self._hlc, items=tuple(items))
        )
        self.tokens += 600

    def grow_to(self, lines: int) -> None:
        while len(self.state.entries) < lines:
            self.add_call(min(20, lines - len(self.state.entries)))

    def metrics(self, with_estimate: bool) -> dict[str, object]:
        calls = self.state.observation_count
        metrics: dict[str, object] = {"node": "bench", "entries": len(self.state.entries), "calls": calls,
                                      "calls_failed": 0, "tokens": self.tokens}  # fmt: skip
        if with_estimate:
            estimate = exhaustion_estimate(self.state)
            metrics["estimate"] = {"total": estimate.estimate, "low": estimate.low, "remaining": estimate.remaining}
        return metrics


async def _produce(workload: Workload, interval_s: float, stop: asyncio.Event) -> int:
    added = 0
    while not stop.is_set():
        workload.add_call(1)
        added += 1
        await asyncio.sleep(interval_s)
    return added


def _client(
    url: str, paths: Mapping[str, list[str]], counts: Mapping[str, int], concurrency: int, out: Connection
) -> None:
    """In a separate process: time ``counts[kind]`` GETs of ``paths[kind]`` (random choice), per kind."""
    out.send(asyncio.run(_load(url, paths, counts, concurrency)))
    out.close()


async def _load(
    url: str, paths: Mapping[str, list[str]], counts: Mapping[str, int], concurrency: int
) -> dict[str, list[float]]:
    rng = random.Random(1)
    timings: dict[str, list[float]] = {kind: [] for kind in paths}
    async with aiohttp.ClientSession(url) as session:
        for kind, choices in paths.items():
            for _ in range(max(10, counts[kind] // 10)):  # warm up (untimed): connections, caches
                async with session.get(rng.choice(choices)) as response:
                    await response.read()
            remaining = counts[kind]

            async def worker(kind: str = kind, choices: list[str] = choices) -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    path = rng.choice(choices)
                    started = time.perf_counter()
                    async with session.get(path) as response:
                        await response.read()
                        assert response.status == 200, (path, response.status)
                    timings[kind].append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    workload = Workload(args.seed)
    view = StateView(
        workload.state, node_name="bench", topic="bench", metrics=lambda: workload.metrics(args.with_estimate),
        members=lambda: [MemberView("bench", "127.0.0.1:0", "alive", 1, time.time())],
    )  # fmt: skip
    runner = web.AppRunner(create_app(view), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    results = []
    context = multiprocessing.get_context("spawn")
    try:
        for size in args.sizes:
            started = time.perf_counter()
            workload.grow_to(size)
            build_s = time.perf_counter() - started
            lines = workload.state.entries
            keys = [line.sort_key for line in lines.page(None, len(lines))]
            cursors = [encode_cursor(keys[int(i * len(keys) / 50)]) for i in range(50)]
            words = sorted({line.record.text.split()[0][:5].lower() for line in lines.page(None, 200)})[:20]
            paths = {
                "entries": ["/api/entries?limit=100", *(f"/api/entries?limit=100&cursor={c}" for c in cursors)],
                "metrics": ["/api/metrics"],
                "search": [f"/api/entries?limit=100&q={w}" for w in words],
            }
            counts = {"entries": args.requests, "metrics": args.requests, "search": max(20, args.requests // 50)}
            stop = asyncio.Event()
            producer = asyncio.create_task(_produce(workload, args.produce_interval_ms / 1000, stop))
            receive, send = context.Pipe(duplex=False)
            client = context.Process(target=_client, args=(url, paths, counts, args.concurrency, send))
            client.start()
            send.close()
            while not receive.poll():  # keep serving while the client measures
                await asyncio.sleep(0.05)
            timings = receive.recv()
            client.join()
            stop.set()
            produced = await producer
            row: dict[str, Any] = {"size": size, "build_s": round(build_s, 1), "produced_during": produced}
            for kind, values in timings.items():
                row[kind] = {
                    "n": len(values),
                    "p50_ms": round(_percentile(values, 0.50) * 1000, 3),
                    "p99_ms": round(_percentile(values, 0.99) * 1000, 3),
                    "mean_ms": round(statistics.fmean(values) * 1000, 3),
                }
            results.append(row)
            print(f"{size:>7} entries: " + "  ".join(
                f"{kind} p50 {row[kind]['p50_ms']:.2f} ms p99 {row[kind]['p99_ms']:.2f} ms" for kind in timings
            ) + f"  (built in {build_s:.1f}s, {produced} calls produced meanwhile)", flush=True)  # fmt: skip
    finally:
        await runner.cleanup()
    return results


def _markdown(results: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    rows = ["| entries | entries p50 | entries p99 | metrics p50 | metrics p99 | search p50 | search p99 |",
            "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in results:
        rows.append(
            f"| {row['size']:,} | " + " | ".join(
                f"{row[kind][q]:.2f} ms" for kind in ("entries", "metrics", "search") for q in ("p50_ms", "p99_ms")
            ) + " |"
        )  # fmt: skip
    first, last = results[0], results[-1]
    ratios = {kind: last[kind]["p99_ms"] / first[kind]["p99_ms"] for kind in ("entries", "metrics")}
    verdict = ", ".join(f"{kind} {ratio:.2f}×" for kind, ratio in ratios.items())
    met = all(ratio <= 2.0 for ratio in ratios.values())
    return "\n".join(
        [
            (
                f"`{command}`: a node's `NodeState` + `StateView` + `webui.create_app` on loopback, producing one "
                f"call every {args.produce_interval_ms} ms while a separate client process sends {args.requests} "
                f"requests per route ({args.concurrency} in flight); `entries` = a page of 100 after a random cursor, "
                f"`metrics` = `/api/metrics`, `search` = `/api/entries?q=` (a scan, for information). "
                f"metrics() {'with' if args.with_estimate else 'without'} the Chao1 estimate."
            ),
            "",
            *rows,
            "",
            (
                f"p99 at {last['size']:,} over p99 at {first['size']:,}: {verdict} — target ≤ 2× "
                f"{'met' if met else 'NOT met'}."
            ),
            "",
            machine_summary(machine_info()),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--produce-interval-ms", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--with-estimate", action="store_true")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "webui.json")
    args = parser.parse_args()
    results = asyncio.run(_measure(args))
    command = "scripts/bench/webui.py " + " ".join(sys.argv[1:])
    if not args.no_docs:
        payload = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "sizes": results,
        }
        write_results(SECTION, payload, _markdown(results, args, command.strip()), args.out)
        print(f"wrote {args.out} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
