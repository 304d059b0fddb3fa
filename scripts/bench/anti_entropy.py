"""Anti-entropy: bytes on the wire and round trips to reconcile two record sets, vs full-state push-pull and a Merkle tree.

For each set size n and difference d, two nodes share n records (100 bytes each, like an
entry record, in 16 partitions) and each holds its own extra ones: ⌈d/2⌉ only at A, ⌊d/2⌋ only
at B (so the counts say nothing and MinHash is the only estimate). Then:

- **ours** — one ``gossip.anti_entropy`` round started by A, over the in-memory network with
  HMAC-sealed envelopes: the bytes of every request and reply leg, envelopes included, and
  the round trips. Checked: both end with A ∪ B and equal digests. Partition summaries are
  off here (``partition_refresh_s=0``); their cost, paid once per peer per refresh interval,
  is measured on its own below the table.
- **full-state push-pull** — each side sends all its records to the other in messages of
  the same size limit; round trips = the larger side's message count.
- **Merkle tree** (Riak/Cassandra style) — a 16-ary tree over the key space, leaves of ~8
  keys (depth ⌈log16(n/8)⌉); the initiator sends the 16 child hashes (8 bytes each) of every
  node that differs, level by level, and the responder answers a 16-bit mask of the children
  that differ; at the leaves the initiator sends its keys in differing leaves, the responder
  answers with the records the initiator lacks and the keys it lacks, and a last message
  pushes those. Computed exactly from the two key sets (a node differs iff a differing key
  lies under it: ideal hashes), with the same per-message envelope overhead as ours.
- **information limit** — 16 bytes per differing key plus the differing records' bytes: what
  must travel at the least. Targets (the issue): identical check ≤ 1 KB; reconciliation ≤
  2 × limit + 2 KB and ≤ 3 round trips.
- **MinHash's estimate** — d̂ = (1 − J)/(1 + J)·(|A| + |B|) from the two 256-byte sketches, and
  its relative error; beside it, the error of the estimate ``gossip.riblt.estimate_difference``
  makes from 19 coded symbols plus the counts of the next 256 — a round's smallest first batch
  and what sizes its second batch when the first does not decode.

A classic IBLT is not run: it must be sized for d in advance, and Eppstein et al.'s strata
estimator (32 strata × 80 cells) of 28-byte cells is 71,680 bytes whatever d — more than ours
moves for d ≤ 300 records, before the IBLT itself. Each cell is repeated ``--trials`` times
(different records); bytes are means, round trips the worst trial.

Run: .venv/bin/python scripts/bench/anti_entropy.py [--sizes 1000 10000 100000] [--big]
     [--differences 0 1 10 100 1000 10000] [--trials 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.anti_entropy import AntiEntropy, AntiEntropyConfig, RoundReport  # noqa: E402
from gossip.keyset import KeySet  # noqa: E402
from gossip.membership import MemberInfo  # noqa: E402
from gossip.messages import MemberState, RecordTransfer, encode_message  # noqa: E402
from gossip.riblt import count_differences, count_residues, estimate_difference  # noqa: E402
from gossip.sketch import estimate_jaccard, estimated_difference  # noqa: E402
from gossip.testing import InMemoryNetwork, make_wire, run_virtual  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

RECORD_BYTES = 100
PARTITIONS = [f"p{index:02d}" for index in range(16)]
KEY_COST = 16  # the information limit counts 16 bytes per differing key
MERKLE_FANOUT = 16
MERKLE_LEAF_KEYS = 8
MERKLE_HASH_BYTES = 8
STRATA_ESTIMATOR_BYTES = 32 * 80 * 28
CONFIG = AntiEntropyConfig(interval_s=2.0, request_timeout_s=60.0, partition_refresh_s=0.0)
ADDRESS_A, ADDRESS_B = "10.0.0.1:7946", "10.0.0.2:7946"


def make_record(index: int, tag: str) -> bytes:
    return f"{PARTITIONS[index % len(PARTITIONS)]}|{tag}{index:012d}|".encode().ljust(RECORD_BYTES, b".")


def key_of(record: bytes) -> bytes:
    return hashlib.blake2b(record, digest_size=16).digest()


def partition_of(record: bytes) -> str:
    return record[:3].decode()


class LayeredStore:
    """A ``RecordStore`` over a shared read-only base and this node's own records (so big bases are not copied)."""

    def __init__(self, base: dict[bytes, bytes], keys: KeySet) -> None:
        self.base = base
        self.own: dict[bytes, bytes] = {}
        self.keys = keys

    def commit(self, items: Sequence[bytes]) -> list[bytes]:
        new = []
        for item in items:
            key = key_of(item)
            if key not in self.own and key not in self.base:
                self.own[key] = item
                self.keys.add(key, partition_of(item))
                new.append(item)
        return new

    async def fetch(self, keys: Sequence[bytes]) -> Sequence[bytes]:
        found = []
        for key in keys:
            item = self.own.get(key) or self.base.get(key)
            if item is not None:
                found.append(item)
        return found

    async def merge(self, items: Sequence[bytes]) -> Sequence[bytes]:
        return self.commit(items)


class Base:
    """n shared records and the key set holding them (copied per trial)."""

    def __init__(self, size: int) -> None:
        started = time.perf_counter()
        records = [make_record(index, "c") for index in range(size)]
        self.records = {key_of(record): record for record in records}
        self.keys = KeySet(cached_symbols=CONFIG.cached_symbols)
        self.keys.add_many((key, partition_of(record)) for key, record in self.records.items())
        self.keys.sketch()  # fold everything in now, not inside a timed round
        self.build_s = time.perf_counter() - started


def envelope_overhead() -> int:
    """Bytes an envelope adds around a body (HMAC-sealed, the names and addresses used here)."""

    async def measure() -> int:
        message = RecordTransfer((), (), 0, bytes(16))
        return len(make_wire(ADDRESS_A, name="node-a").seal(message)) - len(encode_message(message))

    return run_virtual(measure)


def reconcile(a: tuple[KeySet, LayeredStore], b: tuple[KeySet, LayeredStore], config: AntiEntropyConfig,
              seed: int) -> tuple[RoundReport, int, float]:  # fmt: skip
    """One round from A to B on a fresh network: the report, wire bytes (both legs) and wall seconds."""

    async def main() -> tuple[RoundReport, int, float]:
        network = InMemoryNetwork(seed, latency_s=0.001)
        members = [MemberInfo("node-a", ADDRESS_A, MemberState.ALIVE, 0, 0.0),
                   MemberInfo("node-b", ADDRESS_B, MemberState.ALIVE, 0, 0.0)]  # fmt: skip
        engines = []
        for (keys, store), member in zip((a, b), members, strict=True):
            transport = network.transport(member.address, make_wire(member.address, name=member.name))
            engine = AntiEntropy(member.name, transport, _View(members), store=store, config=config,
                                 rng=random.Random(seed), keys=keys)  # fmt: skip
            await transport.start(engine.handle)
            engines.append(engine)
        started = time.perf_counter()
        report = await engines[0].reconcile(members[1])
        elapsed = time.perf_counter() - started
        wire = network.total().bytes
        await network.aclose()
        return report, wire, elapsed

    return run_virtual(main)


class _View:
    def __init__(self, members: list[MemberInfo]) -> None:
        self._members = members

    def members(self) -> list[MemberInfo]:
        return self._members


def batched(sizes: Sequence[int], budget: int) -> tuple[int, int]:
    """(body bytes, messages) to send items of these sizes in messages of at most ``budget`` body bytes."""
    messages, used, total = 0, budget, 0
    for size in sizes:
        cost = size + (2 if size < 256 else 3)
        if used + cost > budget:
            messages += 1
            used = 16
            total += 16
        used += cost
        total += cost
    return total, messages


def full_state(count_a: int, count_b: int, overhead: int) -> tuple[int, int]:
    """Bytes and round trips of full-state push-pull: every record both ways."""
    budget = CONFIG.max_message_bytes
    bytes_a, messages_a = batched([RECORD_BYTES] * count_a, budget)
    bytes_b, messages_b = batched([RECORD_BYTES] * count_b, budget)
    round_trips = max(messages_a, messages_b, 1)
    return bytes_a + bytes_b + 2 * round_trips * overhead, round_trips


def merkle(keys_a: Sequence[bytes], keys_b: Sequence[bytes], only_a: int, only_b: int,
           differing: Sequence[bytes], overhead: int) -> tuple[int, int]:  # fmt: skip
    """Bytes and round trips of a level-by-level Merkle descent (see the module docstring)."""
    depth = max(1, math.ceil(math.log(max(len(keys_a), len(keys_b), 1) / MERKLE_LEAF_KEYS, MERKLE_FANOUT)))
    if not differing:
        return MERKLE_HASH_BYTES + 2 * overhead, 1
    shift = 64 - 4 * depth

    def prefixes(keys: Sequence[bytes], level: int) -> np.ndarray:
        words = np.frombuffer(b"".join(keys), dtype=">u8")[::2]
        return words >> np.uint64(64 - 4 * level) if level else np.zeros(len(keys), np.uint64)

    total = 0
    for level in range(depth):  # one round trip per level: children of the nodes differing at `level`
        nodes = len(np.unique(prefixes(differing, level)))
        total += nodes * MERKLE_FANOUT * MERKLE_HASH_BYTES + nodes * 2 + 2 * overhead
    leaves = np.unique(np.frombuffer(b"".join(differing), dtype=">u8")[::2] >> np.uint64(shift))
    leaf_keys_a = int(np.isin(prefixes(keys_a, depth), leaves).sum())
    total += leaf_keys_a * 18 + overhead  # A's keys in the differing leaves
    total += only_b * (RECORD_BYTES + 2) + only_a * 18 + overhead  # B: the records A lacks, the keys B lacks
    total += only_a * (RECORD_BYTES + 2) + 2 * overhead  # A pushes what B lacks
    return total, depth + 2


def run_cell(base: Base, size: int, difference: int, trial: int, overhead: int) -> dict[str, Any]:
    rng = random.Random(f"{size}/{difference}/{trial}")
    tag_a, tag_b = f"a{trial}x{rng.getrandbits(20)}", f"b{trial}x{rng.getrandbits(20)}"
    extra_a = [make_record(index, tag_a) for index in range(math.ceil(difference / 2))]
    extra_b = [make_record(index, tag_b) for index in range(difference // 2)]
    keys_a, keys_b = base.keys.copy(), base.keys.copy()
    store_a, store_b = LayeredStore(base.records, keys_a), LayeredStore(base.records, keys_b)
    store_a.commit(extra_a)
    store_b.commit(extra_b)
    union_count = size + difference
    jaccard = estimate_jaccard(keys_a.sketch(), keys_b.sketch())
    minhash = (1.0 - jaccard) / (1.0 + jaccard) * (len(keys_a) + len(keys_b))
    prefix_block = keys_a.symbols(0, 19).minus(keys_b.symbols(0, 19))
    extra = count_differences(count_residues(keys_a.symbols(19, 275).counts), keys_b.symbols(19, 275).counts, 19,
                              int(prefix_block.counts[0]))  # fmt: skip
    prefix = estimate_difference(prefix_block, extra).value
    differing = [key_of(record) for record in extra_a + extra_b]
    all_a, all_b = keys_a.keys_from(0, len(keys_a)), keys_b.keys_from(0, len(keys_b))
    merkle_bytes, merkle_trips = merkle(all_a, all_b, len(extra_a), len(extra_b), differing, overhead)
    full_bytes, full_trips = full_state(len(keys_a), len(keys_b), overhead)
    report, wire, elapsed = reconcile((keys_a, store_a), (keys_b, store_b), CONFIG, seed=trial)
    if not (report.verified and keys_a.digest == keys_b.digest and len(keys_a) == union_count):
        raise AssertionError(f"n={size} d={difference}: round did not end exact: {report}")
    limit = difference * (KEY_COST + RECORD_BYTES)
    return {
        "n": size, "d": difference, "trial": trial, "bytes": wire, "round_trips": report.round_trips,
        "symbols": report.symbols, "outcome": report.outcome, "seconds": round(elapsed, 4),
        "limit": limit, "full_state_bytes": full_bytes, "full_state_round_trips": full_trips,
        "merkle_bytes": merkle_bytes, "merkle_round_trips": merkle_trips,
        "minhash_estimate": round(minhash, 1), "prefix_estimate": round(prefix, 1),
        "estimated_difference": report.estimated_difference,
    }  # fmt: skip


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["n"], row["d"]), []).append(row)
    summary = []
    for (size, difference), trials in sorted(cells.items()):
        mean_bytes = statistics.mean(row["bytes"] for row in trials)
        limit = trials[0]["limit"]
        minhash_errors = [abs(row["minhash_estimate"] - difference) / difference for row in trials] if difference else []
        prefix_errors = [abs(row["prefix_estimate"] - difference) / difference for row in trials] if difference else []
        target = 1024 if difference == 0 else 2 * limit + 2048
        summary.append({
            "n": size, "d": difference, "trials": len(trials),
            "bytes": round(mean_bytes), "round_trips_max": max(row["round_trips"] for row in trials),
            "round_trips_mean": round(statistics.mean(row["round_trips"] for row in trials), 2),
            "limit": limit, "ratio_to_limit": round(mean_bytes / limit, 2) if limit else None,
            "target_bytes": target, "meets_bytes": max(row["bytes"] for row in trials) <= target,
            "meets_round_trips": max(row["round_trips"] for row in trials) <= 3,
            "full_state_bytes": round(statistics.mean(row["full_state_bytes"] for row in trials)),
            "full_state_round_trips": trials[0]["full_state_round_trips"],
            "merkle_bytes": round(statistics.mean(row["merkle_bytes"] for row in trials)),
            "merkle_round_trips": trials[0]["merkle_round_trips"],
            "minhash_estimate_mean": round(statistics.mean(row["minhash_estimate"] for row in trials), 1),
            "minhash_relative_error": round(statistics.mean(minhash_errors), 3) if minhash_errors else None,
            "prefix_relative_error": round(statistics.mean(prefix_errors), 3) if prefix_errors else None,
            "seconds_mean": round(statistics.mean(row["seconds"] for row in trials), 4),
        })  # fmt: skip
    return summary


def partition_refresh_cost(base: Base, overhead: int) -> dict[str, Any]:
    """Bytes of an identical check that also refreshes the peer's partition summaries (16 partitions)."""
    config = AntiEntropyConfig(interval_s=2.0, request_timeout_s=60.0, partition_refresh_s=30.0)
    keys_a, keys_b = base.keys.copy(), base.keys.copy()
    report, wire, _ = reconcile((keys_a, LayeredStore(base.records, keys_a)),
                                (keys_b, LayeredStore(base.records, keys_b)), config, seed=99)  # fmt: skip
    return {"partitions": len(PARTITIONS), "bytes": wire, "round_trips": report.round_trips,
            "bytes_per_partition": round((wire - 2 * overhead) / len(PARTITIONS))}  # fmt: skip


def _kb(value: float) -> str:
    return f"{value / 1024:,.1f} KB" if value >= 1024 else f"{value:,.0f} B"


def render(summary: list[dict[str, Any]], refresh: dict[str, Any], overhead: int, info: dict[str, Any],
           builds: dict[int, float]) -> tuple[Table, str]:  # fmt: skip
    table = Table(title="Anti-entropy: one round, A and B differing by d (half each side)")
    headers = ["n", "d", "ours", "RTs", "÷ limit", "target", "full state (RTs)", "Merkle (RTs)", "MinHash d̂ (err)",
               "prefix err"]  # fmt: skip
    for header in headers:
        table.add_column(header, justify="right")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in summary:
        ok = "✓" if row["meets_bytes"] and row["meets_round_trips"] else "✗"
        cells = [
            f"{row['n']:,}", f"{row['d']:,}", _kb(row["bytes"]), str(row["round_trips_max"]),
            f"{row['ratio_to_limit']:.2f}" if row["ratio_to_limit"] else "—",
            f"{ok} ≤ {_kb(row['target_bytes'])}",
            f"{_kb(row['full_state_bytes'])} ({row['full_state_round_trips']})",
            f"{_kb(row['merkle_bytes'])} ({row['merkle_round_trips']})",
            f"{row['minhash_estimate_mean']:,.0f}" + (f" ({row['minhash_relative_error']:.0%})"
                                                      if row["minhash_relative_error"] is not None else ""),
            f"{row['prefix_relative_error']:.0%}" if row["prefix_relative_error"] is not None else "—",
        ]  # fmt: skip
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    met = sum(row["meets_bytes"] and row["meets_round_trips"] for row in summary)
    markdown = "\n".join([
        "`scripts/bench/anti_entropy.py`: one anti-entropy round between two nodes sharing n records (100 B, 16 "
        "partitions), A holding ⌈d/2⌉ records B lacks and B ⌊d/2⌋ that A lacks. *ours* is measured on the in-memory "
        "network: every request and reply leg, HMAC-sealed envelopes included (≈ "
        f"{overhead} B each); both sides were checked to end with A ∪ B and equal digests. *Full state* and *Merkle* "
        "(16-ary, leaves of ~8 keys, 8-byte hashes, one round trip per level) are computed exactly from the same sets "
        "with the same envelope overhead. The *limit* is 16 B per differing key plus the differing records; the "
        "target is ≤ 1 KB for an identical check (d = 0) and ≤ 2 × limit + 2 KB and ≤ 3 round trips otherwise. "
        "*MinHash d̂* = (1 − J)/(1 + J)·(|A| + |B|) from the 256-byte sketches (its mean relative error in brackets); "
        "*prefix err* is the relative error of the estimate from 19 coded symbols plus the 1-byte counts of the next "
        "256 (a round's smallest first batch), which sizes the second batch when the first does not decode. Bytes are means over the trials, round trips the worst trial.",
        "",
        *lines,
        "",
        f"Targets met in {met} of {len(summary)} cells. Refreshing a peer's partition summaries (count, digest and "
        f"sketch of each of {refresh['partitions']} partitions, both ways, every `partition_refresh_s` per peer) made "
        f"an identical check cost {_kb(refresh['bytes'])} (≈ {refresh['bytes_per_partition']} B per partition); it is "
        "off in the table above. A classic IBLT would first need a strata estimator of "
        f"{_kb(STRATA_ESTIMATOR_BYTES)} (32 strata × 80 cells × 28 B) whatever d. Building the shared key set "
        "(digest, sketches, symbol cache): " + ", ".join(f"n = {size:,} in {seconds:.1f} s" for size, seconds in builds.items())
        + ".",
        "",
        machine_summary(info),
    ])  # fmt: skip
    return table, markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--big", action="store_true", help="add n = 1,000,000 (about 2 GB of memory, a few minutes)")
    parser.add_argument("--differences", type=int, nargs="+", default=[0, 1, 10, 100, 1000, 10_000])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    sizes = list(args.sizes) + ([1_000_000] if args.big else [])
    console = Console()
    overhead = envelope_overhead()
    rows: list[dict[str, Any]] = []
    builds: dict[int, float] = {}
    refresh: dict[str, Any] = {}
    started = time.perf_counter()
    for size in sizes:
        base = Base(size)
        builds[size] = round(base.build_s, 2)
        console.log(f"n={size:,}: shared set built in {base.build_s:.1f} s")
        for difference in args.differences:
            for trial in range(args.trials):
                rows.append(run_cell(base, size, difference, trial, overhead))
            last = rows[-1]
            console.log(f"  d={difference:,}: {last['bytes']:,} B, {last['round_trips']} RTs, {last['outcome']}")
        if size == 100_000 or (not refresh and size == sizes[-1]):
            refresh = partition_refresh_cost(base, overhead)
        del base
    summary = summarise(rows)
    info = machine_info()
    table, markdown = render(summary, refresh, overhead, info, builds)
    console.print(table)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    if not args.no_write:
        results = {"summary": summary, "trials": rows, "partition_refresh": refresh, "envelope_overhead_bytes": overhead,
                   "strata_estimator_bytes": STRATA_ESTIMATOR_BYTES, "record_bytes": RECORD_BYTES,
                   "build_seconds": builds, "config": {"symbol_overhead": CONFIG.symbol_overhead,
                                                       "symbol_slack": CONFIG.symbol_slack,
                                                       "cached_symbols": CONFIG.cached_symbols}}  # fmt: skip
        write_results("Anti-entropy", results, markdown, ROOT / "docs" / "benchmarks" / "anti_entropy.json", machine=info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
