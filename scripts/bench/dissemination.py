"""Dissemination: rounds, time and bytes to get a record to every node, vs cluster size and loss, beside theory.

For each cluster size N and message loss p, N ``gossip.broadcast.Broadcaster``s run on the
in-memory network (2 ms ± 2 ms one way, HMAC-sealed envelopes, every request and reply leg
lost independently with probability p) under the virtual-time loop, with a converged, static
membership view (this measures dissemination alone; ``scripts/bench/membership.py`` measures
the view). Each trial is a fresh cluster: one record (120 B, about an entry record) is
published at a random node at a random moment of the round grid, then:

- *rounds*: with ``BroadcastConfig.lan()`` minus the idle flush (pure 200 ms rounds, as the
  models count), the rounds until the last node holds it, ⌈elapsed / interval⌉; a trial
  where push gave up before reaching everyone counts as *missed* (anti-entropy's job);
- *age at delivery*: from publish to the merge at each other node (the harness dates records;
  a receiver of an opaque record cannot);
- *time with idle flush*: the same with ``lan()`` as shipped (a quiet node sends after 10 ms);
- *bytes / entry / node*: Payloads request bytes on the wire (envelopes included; replies are
  empty) until every queue is empty, per record and node — for a lone record, and for a burst
  of 200 records published at once at one node (batched: the envelope is amortised).

Beside them, theory: Demers et al. (PODC 1987, citing Pittel 1987): push with one peer per
round informs everyone in log2 N + ln N + O(1) rounds — the issue's bound is
⌈log2 N⌉ + ⌈ln N⌉ + 2; the same two-phase argument with f peers per round gives
log_{f+1} N + ln N / f; and Serf's convergence simulator (serf.io/docs/internals/simulator,
``simulator.js``): infected(x) = N / (1 + (N + 1)·e^(−c·N·x)) with
c = (fanout / N)·(1 − loss)·(1 − failed)·0.5, plotted until 99.99 % converged.

A second table checks the retransmit limit on the push model itself (synchronous rounds, no
network, many trials): how often an epidemic misses some node with memberlist's
4·⌈log10(N + 1)⌉ sends per node and with ours, ⌈ln(N / ε)⌉, ε = 10⁻³.

Run: .venv/bin/python scripts/bench/dissemination.py [--sizes 5 10 20 50 100 200] [--losses 0 0.05 0.2]
     [--trials-scale 1.0] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.auth import Wire  # noqa: E402
from gossip.broadcast import BroadcastConfig, Broadcaster, sends_per_rumour  # noqa: E402
from gossip.clock import LoopClock  # noqa: E402
from gossip.membership import MemberInfo  # noqa: E402
from gossip.messages import MemberState, MessageType  # noqa: E402
from gossip.testing import InMemoryNetwork, Leg, TrafficCount, run_virtual  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Dissemination"
JSON_PATH = ROOT / "docs" / "benchmarks" / "dissemination.json"
RECORD_BYTES = 120
BURST_RECORDS = 200
SERF_MAX_CONVERGE = 0.9999  # the simulator plots until this fraction
# Trials per size at scale 1 (fresh clusters; fewer for large N, where each costs N·k messages).
TRIALS = {5: 400, 10: 300, 20: 200, 50: 80, 100: 40, 200: 20}
MODEL_TRIALS = {5: 4000, 9: 4000, 10: 4000, 20: 3000, 50: 1500, 99: 800, 100: 600, 200: 300}
MODEL_EXTRA_SIZES = (9, 99)
PURE_ROUNDS = dataclasses.replace(BroadcastConfig.lan(), idle_flush_delay_s=None)


# ---------------------------------------------------------------------------- theory


def demers_rounds(size: int) -> int:
    """⌈log2 N⌉ + ⌈ln N⌉: push with one peer per round (Pittel's log2 N + ln N + O(1))."""
    return math.ceil(math.log2(size)) + math.ceil(math.log(size))


def fanout_push_rounds(size: int, fanout: int) -> float:
    """log_{f+1} N + ln N / f: growth by (1 + f) per round, then each missing node escapes w.p. e^−f a round."""
    return math.log(size, fanout + 1) + math.log(size) / fanout


def serf_fraction(rounds: float, size: int, fanout: int, loss: float, failed: float = 0.0) -> float:
    """Serf's simulator: the fraction of N infected after ``rounds`` gossip rounds."""
    contact = (fanout / size) * (1 - loss) * (1 - failed) * 0.5
    infected = size / (1 + (size + 1) * math.exp(-contact * size * rounds))
    return infected / size


def serf_rounds(size: int, fanout: int, loss: float, target: float = SERF_MAX_CONVERGE) -> int:
    """The first whole round at which Serf's model reaches ``target`` (as its graph ends)."""
    rounds = 0
    while serf_fraction(rounds, size, fanout, loss) < target:
        rounds += 1
    return rounds


# ---------------------------------------------------------------------------- the measurement


class _View:
    def __init__(self, infos: list[MemberInfo]) -> None:
        self._infos = infos

    def members(self) -> list[MemberInfo]:
        return self._infos


class _Store:
    """The record delegate: a set, plus who got the record when."""

    def __init__(self, name: str, trial: _Trial) -> None:
        self.name = name
        self.held: set[bytes] = set()
        self._trial = trial

    async def merge(self, items: Sequence[bytes]) -> Sequence[bytes]:
        new = [item for item in dict.fromkeys(items) if item not in self.held]
        self.held.update(new)
        for item in new:
            self._trial.arrived(item)
        return new


class _Trial:
    def __init__(self, size: int, loss: float, seed: int, config: BroadcastConfig) -> None:
        self.size = size
        self.published_at = 0.0
        self.ages: list[float] = []  # per delivery to a node other than the origin: seconds since publish
        self.network = InMemoryNetwork(seed, latency_s=0.002, jitter_s=0.002, loss=loss)
        self.config = config
        self.seed = seed
        self.holders: dict[bytes, int] = {}
        self.complete_at: dict[bytes, float] = {}
        self.nodes: list[Broadcaster] = []
        self.stores: list[_Store] = []

    def arrived(self, item: bytes) -> None:
        now = asyncio.get_running_loop().time()
        count = self.holders.get(item, 0) + 1
        self.holders[item] = count
        if count > 1:
            self.ages.append(now - self.published_at)
        if count == self.size:
            self.complete_at[item] = now

    async def start(self) -> None:
        infos = [MemberInfo(f"n{i:03d}", f"10.0.{i // 200}.{i % 200 + 1}:7946", MemberState.ALIVE, 0, 0.0)
                 for i in range(self.size)]  # fmt: skip
        view = _View(infos)
        for info in infos:
            wire = Wire("bench", key=b"bench key", name=info.name, address=info.address, clock=LoopClock().wall)
            transport = self.network.transport(info.address, wire)
            store = _Store(info.name, self)
            node = Broadcaster(info.name, transport, view, delegate=store, config=self.config,
                               rng=random.Random(f"{self.seed}/{info.name}"))  # fmt: skip
            await transport.start(node.handle)  # type: ignore[arg-type]  # only Payloads travel here
            await node.start()
            self.nodes.append(node)
            self.stores.append(store)

    def publish(self, origin: int, items: list[bytes]) -> float:
        self.published_at = asyncio.get_running_loop().time()
        for item in items:
            self.stores[origin].held.add(item)
            self.arrived(item)
        self.nodes[origin].publish(items)
        return asyncio.get_running_loop().time()

    def quiet(self) -> bool:
        return all(node.queue_depth == 0 for node in self.nodes)

    def payload_bytes(self) -> int:
        return self.network.traffic().get((MessageType.PAYLOADS, Leg.REQUEST), TrafficCount()).bytes

    async def aclose(self) -> None:
        for node in self.nodes:
            await node.aclose()
        await self.network.aclose()


@dataclass(frozen=True, slots=True)
class TrialResult:
    seconds: float | None  # publish → the last node holds every record; None if push missed someone
    payload_bytes: int  # Payloads request bytes on the wire until every queue was empty
    delivery_ages: tuple[float, ...]  # seconds from publish to each other node's merge


async def _run_trial(size: int, loss: float, seed: int, config: BroadcastConfig, records: int,
                     until_quiet: bool) -> TrialResult:  # fmt: skip
    trial = _Trial(size, loss, seed, config)
    await trial.start()
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0, config.interval_s))  # anywhere in the round grid
    items = [f"{seed}:{index}:".encode().ljust(RECORD_BYTES, b"r") for index in range(records)]
    published_at = trial.publish(rng.randrange(size), items)
    give_up_at = published_at + 200 * config.interval_s
    loop = asyncio.get_running_loop()
    while loop.time() < give_up_at:
        done = len(trial.complete_at) == len(items)
        if trial.quiet() or (done and not until_quiet):
            break
        await asyncio.sleep(config.interval_s / 4)
    seconds = max(trial.complete_at.values()) - published_at if len(trial.complete_at) == len(items) else None
    result = TrialResult(seconds, trial.payload_bytes(), tuple(trial.ages))
    await trial.aclose()
    return result


def _run_batch(job: tuple[int, float, list[int], str, int, bool]) -> list[TrialResult]:
    """One worker's share: trials ``seeds`` of one configuration (a separate process)."""
    size, loss, seeds, variant, records, until_quiet = job
    config = PURE_ROUNDS if variant == "rounds" else BroadcastConfig.lan()
    logging.basicConfig(level=logging.ERROR)
    return [run_virtual(_run_trial(size, loss, seed, config, records, until_quiet)) for seed in seeds]


# ---------------------------------------------------------------------------- the push model


def model_epidemic(size: int, fanout: int, sends: int, loss: float, rng: random.Random) -> bool:
    """Synchronous push: each informed node sends to ``fanout`` distinct random peers a round,
    ``sends`` times in all; True if everyone was reached."""
    remaining = {0: sends}
    informed = {0}
    while len(informed) < size:
        active = [node for node, left in remaining.items() if left > 0]
        if not active:
            return False
        newly: set[int] = set()
        for node in active:
            count = min(fanout, size - 1, remaining[node])
            remaining[node] -= count
            for peer in rng.sample(range(size - 1), count):
                target = peer + (peer >= node)  # skip ourselves
                if target not in informed and rng.random() >= loss:
                    newly.add(target)
        informed |= newly
        remaining.update(dict.fromkeys(newly, sends))
    return True


def _model_job(job: tuple[int, float, int, int]) -> dict[str, Any]:
    size, loss, trials, seed = job
    rng = random.Random(seed)
    fanout = PURE_ROUNDS.fanout
    memberlist = 4 * math.ceil(math.log10(size + 1))
    ours = sends_per_rumour(size, PURE_ROUNDS.miss_probability)
    missed_memberlist = sum(not model_epidemic(size, fanout, memberlist, loss, rng) for _ in range(trials))
    missed_ours = sum(not model_epidemic(size, fanout, ours, loss, rng) for _ in range(trials))
    return {"size": size, "loss": loss, "trials": trials, "memberlist_sends": memberlist, "our_sends": ours,
            "memberlist_missed": missed_memberlist / trials, "our_missed": missed_ours / trials}  # fmt: skip


# ---------------------------------------------------------------------------- putting it together


@dataclass(frozen=True, slots=True)
class Row:
    size: int
    loss: float
    trials: int
    reached_all: float  # share of trials where push alone reached every node
    rounds_p50: float
    rounds_p99: float
    rounds_max: int
    within_demers_bound: float  # share of trials within ⌈log2 N⌉ + ⌈ln N⌉ + 2 rounds
    seconds_p50: float
    seconds_p99: float
    age_p50: float  # record age at delivery, over every (trial, receiving node)
    age_p99: float
    flush_trials: int
    flush_seconds_p50: float
    flush_seconds_p99: float
    bytes_per_entry_node: float  # a lone record
    burst_bytes_per_entry_node: float  # a burst of BURST_RECORDS records
    sends_per_node: int
    demers_rounds: int
    fanout_push_rounds: float
    serf_rounds: int
    serf_fraction_at_our_p50: float


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summarise(size: int, loss: float, rounds_trials: list[TrialResult], flush_trials: list[TrialResult],
              burst: list[TrialResult]) -> Row:  # fmt: skip
    interval_s = PURE_ROUNDS.interval_s
    seconds = [t.seconds for t in rounds_trials if t.seconds is not None]
    rounds = [max(1, math.ceil(s / interval_s - 1e-9)) for s in seconds]
    bound = demers_rounds(size) + 2
    flush_seconds = [t.seconds for t in flush_trials if t.seconds is not None]
    ages = [age for t in rounds_trials for age in t.delivery_ages]
    p50 = statistics.median(rounds) if rounds else math.nan
    fanout = PURE_ROUNDS.fanout
    return Row(
        size=size,
        loss=loss,
        trials=len(rounds_trials),
        reached_all=len(seconds) / len(rounds_trials),
        rounds_p50=p50,
        rounds_p99=_quantile(rounds, 0.99),
        rounds_max=max(rounds, default=0),
        within_demers_bound=sum(r <= bound for r in rounds) / len(rounds_trials),
        seconds_p50=statistics.median(seconds) if seconds else math.nan,
        seconds_p99=_quantile(seconds, 0.99),
        age_p50=statistics.median(ages) if ages else math.nan,
        age_p99=_quantile(ages, 0.99),
        flush_trials=len(flush_trials),
        flush_seconds_p50=statistics.median(flush_seconds) if flush_seconds else math.nan,
        flush_seconds_p99=_quantile(flush_seconds, 0.99),
        bytes_per_entry_node=statistics.fmean(t.payload_bytes for t in rounds_trials) / size,
        burst_bytes_per_entry_node=statistics.fmean(t.payload_bytes for t in burst) / (BURST_RECORDS * size),
        sends_per_node=sends_per_rumour(size, PURE_ROUNDS.miss_probability),
        demers_rounds=demers_rounds(size),
        fanout_push_rounds=fanout_push_rounds(size, fanout),
        serf_rounds=serf_rounds(size, fanout, loss),
        serf_fraction_at_our_p50=serf_fraction(p50, size, fanout, loss) if rounds else math.nan,
    )


def render_markdown(rows: Sequence[Row], model: Sequence[dict[str, Any]], machine: dict[str, Any], command: str,
                    real_s: float, cpu_s: float) -> str:  # fmt: skip
    config = PURE_ROUNDS
    lines = [
        (f"Push dissemination of `gossip.broadcast` (`BroadcastConfig.lan()`: {config.interval_s * 1000:.0f} ms "
         f"rounds, fanout {config.fanout}, each node sends a record ⌈ln(N/ε)⌉ times, ε = {config.miss_probability:g}) "
         "on the in-memory network (2 ms ± 2 ms one way, HMAC-sealed envelopes; each request and reply leg lost "
         "with probability *loss*), in virtual time, with a converged static membership view. Each trial is a "
         f"fresh cluster: one {RECORD_BYTES} B record published at a random node at a random moment. *Rounds*: "
         "⌈elapsed / interval⌉ until the last node holds it, with the idle flush off (pure rounds, as the models "
         "count); rounds are staggered per node, so a record may take more than one hop in a round. *Age at "
         "delivery*: publish → merge at each other node (what a receiver cannot see in an opaque record, the "
         "harness can). *Reached*: "
         "trials where push alone reached every node (the rest is anti-entropy's job). *Flush*: the same with "
         f"`lan()` as shipped ({(BroadcastConfig.lan().idle_flush_delay_s or 0) * 1000:.0f} ms idle flush). "
         "*Bytes/entry/node*: Payloads request bytes on the wire until every queue emptied, per record and node, "
         f"for a lone record and for a burst of {BURST_RECORDS} published at once (batched). Theory: *Demers* "
         "⌈log2 N⌉ + ⌈ln N⌉ (push to one peer a round; the bound tested is that + 2); *f-push* "
         "log_{f+1} N + ln N / f; *Serf*: rounds until Serf's convergence model "
         "N / (1 + (N + 1)·e^(−(f/N)(1 − loss)·0.5·N·x)) reaches 99.99 %, and what it predicts at our median."),
        "",
        ("| N | loss | trials | reached | rounds p50 / p99 / max | ≤ Demers + 2 | Demers | f-push | Serf "
         "| Serf at our p50 | time to all p50 / p99 (s) | age at delivery p50 / p99 (s) | flush: time to all p50 / p99 (s) "
         "| sends/node | bytes/entry/node lone / burst |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.size} | {r.loss:.0%} | {r.trials} | {r.reached_all:.1%} "
            f"| {r.rounds_p50:g} / {r.rounds_p99:g} / {r.rounds_max} | {r.within_demers_bound:.1%} "
            f"| {r.demers_rounds} | {r.fanout_push_rounds:.1f} | {r.serf_rounds} | {r.serf_fraction_at_our_p50:.1%} "
            f"| {r.seconds_p50:.2f} / {r.seconds_p99:.2f} | {r.age_p50:.2f} / {r.age_p99:.2f} "
            f"| {r.flush_seconds_p50:.2f} / {r.flush_seconds_p99:.2f} "
            f"| {r.sends_per_node} | {r.bytes_per_entry_node:.0f} / {r.burst_bytes_per_entry_node:.0f} |"
        )
    lines += [
        "",
        ("The retransmit limit on the push model (synchronous rounds, fanout 3, no network): share of epidemics "
         "that miss at least one node, with memberlist's 4·⌈log10(N + 1)⌉ sends per node and with ours."),
        "",
        "| N | loss | trials | memberlist sends | missed | our sends | missed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in model:
        lines.append(
            f"| {m['size']} | {m['loss']:.0%} | {m['trials']} | {m['memberlist_sends']} | {m['memberlist_missed']:.2%} "
            f"| {m['our_sends']} | {m['our_missed']:.2%} |"
        )
    lines += ["", f"Command: `{command}` ({real_s:.0f} s real, {cpu_s:.0f} s CPU).", "", machine_summary(machine)]
    return "\n".join(lines)


def _json_number(value: object) -> object:
    """NaN (no trial reached everyone) as null: JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _split(seeds: list[int], parts: int) -> list[list[int]]:
    return [chunk for chunk in (seeds[index::parts] for index in range(parts)) if chunk]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(TRIALS))
    parser.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    parser.add_argument("--trials-scale", type=float, default=1.0, help="multiply every trial count")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=JSON_PATH)
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=180)
    started = time.perf_counter()

    jobs: list[tuple[tuple[int, float, str], tuple[int, float, list[int], str, int, bool]]] = []
    for size in args.sizes:
        trials = max(4, round(TRIALS.get(size, 20) * args.trials_scale))
        for loss_index, loss in enumerate(args.losses):
            base = args.seed * 1_000_000 + size * 1000 + loss_index * 100_000
            seeds = list(range(base, base + trials))
            parts = max(1, min(args.workers * 2, trials // 10))
            for chunk in _split(seeds, parts):
                jobs.append(((size, loss, "rounds"), (size, loss, chunk, "rounds", 1, True)))
            flush_seeds = seeds[: max(4, trials // 4)]
            for chunk in _split(flush_seeds, max(1, parts // 2)):
                jobs.append(((size, loss, "flush"), (size, loss, chunk, "flush", 1, False)))
            jobs.append(((size, loss, "burst"), (size, loss, seeds[:1], "rounds", BURST_RECORDS, True)))
    # Plus N = 9 and 99, where memberlist's ⌈log10(N + 1)⌉ is at its lowest for the size.
    model_sizes = sorted({*args.sizes, *MODEL_EXTRA_SIZES})
    model_jobs = [(size, loss, max(100, round(MODEL_TRIALS.get(size, 1000) * args.trials_scale)), args.seed + size)
                  for size in model_sizes for loss in args.losses]  # fmt: skip

    # Largest first: the big clusters' trials are the long poles of the pool.
    jobs.sort(key=lambda job: -job[0][0])
    collected: dict[tuple[int, float, str], list[TrialResult]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        model_futures = [pool.submit(_model_job, job) for job in model_jobs]
        futures = [(key, pool.submit(_run_batch, job)) for key, job in jobs]
        for key, future in futures:
            collected.setdefault(key, []).extend(future.result())
        model = [future.result() for future in model_futures]

    rows = [summarise(size, loss, collected[(size, loss, "rounds")], collected[(size, loss, "flush")],
                      collected[(size, loss, "burst")])
            for size in args.sizes for loss in args.losses]  # fmt: skip
    real_s = time.perf_counter() - started
    cpu_s = sum(usage.ru_utime + usage.ru_stime for usage in (resource.getrusage(resource.RUSAGE_SELF),
                                                             resource.getrusage(resource.RUSAGE_CHILDREN)))  # fmt: skip

    table = Table(title="Dissemination: rounds to everyone vs theory (virtual time)")
    for header in ("N", "loss", "trials", "reached", "rounds p50/p99/max", "≤bound", "Demers", "f-push", "Serf",
                   "time p50/p99 s", "flush p50 s", "B/entry/node lone/burst"):  # fmt: skip
        table.add_column(header, justify="right")
    for r in rows:
        table.add_row(str(r.size), f"{r.loss:.0%}", str(r.trials), f"{r.reached_all:.1%}",
                      f"{r.rounds_p50:g}/{r.rounds_p99:g}/{r.rounds_max}", f"{r.within_demers_bound:.1%}",
                      str(r.demers_rounds), f"{r.fanout_push_rounds:.1f}", str(r.serf_rounds),
                      f"{r.seconds_p50:.2f}/{r.seconds_p99:.2f}", f"{r.flush_seconds_p50:.2f}",
                      f"{r.bytes_per_entry_node:.0f}/{r.burst_bytes_per_entry_node:.0f}")  # fmt: skip
    console.print(table)
    model_table = Table(title="Push model: share of epidemics missing someone")
    for header in ("N", "loss", "trials", "memberlist sends", "missed", "our sends", "missed"):
        model_table.add_column(header, justify="right")
    for m in model:
        model_table.add_row(str(m["size"]), f"{m['loss']:.0%}", str(m["trials"]), str(m["memberlist_sends"]),
                            f"{m['memberlist_missed']:.2%}", str(m["our_sends"]), f"{m['our_missed']:.2%}")  # fmt: skip
    console.print(model_table)
    console.print(f"{real_s:.0f} s real, {cpu_s:.0f} s CPU on {args.workers} workers")

    if not args.no_write:
        machine = machine_info()
        command = "python scripts/bench/dissemination.py " + " ".join(argv if argv is not None else sys.argv[1:])
        payload = {
            "config": asdict(PURE_ROUNDS) | {"idle_flush_delay_s (flush rows)": BroadcastConfig.lan().idle_flush_delay_s},
            "record_bytes": RECORD_BYTES,
            "burst_records": BURST_RECORDS,
            "serf_max_converge": SERF_MAX_CONVERGE,
            "rows": [{name: _json_number(value) for name, value in asdict(row).items()} for row in rows],
            "push_model": model,
            "real_s": real_s,
            "cpu_s": cpu_s,
        }
        write_results(SECTION, payload, render_markdown(rows, model, machine, command.strip(), real_s, cpu_s), args.out)
        console.print(f"wrote {args.out} and the '{SECTION}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
