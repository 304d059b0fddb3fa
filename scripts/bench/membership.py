"""Membership (SWIM + Lifeguard): failure detection time and false positives vs cluster size and loss.

For each cluster size N and message loss p, N members (``GossipConfig.lan()``: 1 s protocol
period) run on the in-memory network (2 ms ± 2 ms one way, every request and reply leg lost
independently with probability p) under the virtual-time loop, so hours of protocol take
seconds. After the cluster converges:

1. a quiet window (``--quiet-periods``) at loss p with no failure: every suspicion of a live
   member is a false suspicion, every death verdict a false positive;
2. ``--kills`` members are killed one after another; for each we time the first suspicion,
   the first death verdict and the moment every live member has declared it dead, and compare
   with SWIM's expectations: first detection after e/(e − 1) ≈ 1.58 protocol periods on
   average (Das et al. 2002, §3.1; our failed probe round itself lasts up to 1.5 periods),
   and everyone within the (2N − 1)-period round-robin bound plus Lifeguard's longest
   suspicion (§4.3).

Run: .venv/bin/python scripts/bench/membership.py [--sizes 5 10 20 50 100 200] [--losses 0 0.05 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.auth import Wire  # noqa: E402
from gossip.clock import LoopClock  # noqa: E402
from gossip.config import GossipConfig  # noqa: E402
from gossip.membership import MemberInfo, Membership  # noqa: E402
from gossip.messages import MemberState  # noqa: E402
from gossip.suspicion import suspicion_timeout_s  # noqa: E402
from gossip.testing import InMemoryNetwork, InMemoryTransport, run_virtual  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Membership"
JSON_PATH = ROOT / "docs" / "benchmarks" / "membership.json"
SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)  # ≈ 1.582


@dataclass(frozen=True, slots=True)
class Verdict:
    time: float
    observer: str
    member: str
    state: MemberState


class _Watcher:
    """Delegate recording suspicions and death verdicts with the virtual time."""

    def __init__(self, observer: str, verdicts: list[Verdict]) -> None:
        self._observer = observer
        self._verdicts = verdicts

    def _record(self, member: MemberInfo) -> None:
        now = asyncio.get_running_loop().time()
        self._verdicts.append(Verdict(now, self._observer, member.name, member.state))

    def on_join(self, member: MemberInfo) -> None:
        pass

    def on_leave(self, member: MemberInfo) -> None:
        self._record(member)

    def on_update(self, member: MemberInfo) -> None:
        if member.state is MemberState.SUSPECT:
            self._record(member)


@dataclass(frozen=True, slots=True)
class Result:
    size: int
    loss: float
    quiet_periods: int
    false_suspicions_per_1000_member_periods: float
    false_deaths: int  # death verdicts by live members about live members, over the whole run
    falsely_dead_members: int  # distinct members those verdicts were about
    kills: int
    first_suspicion_periods_mean: float
    first_dead_s_mean: float
    dead_by_all_s_mean: float
    dead_by_all_s_max: float
    swim_bound_s: float
    nominal_suspicion_s: float
    requests_per_member_period: float
    max_health_score: int
    virtual_s: float
    real_s: float


def swim_bound_s(size: int, config: GossipConfig) -> float:
    """Round-robin completeness (2N − 1 failed rounds) plus the longest Lifeguard suspicion."""
    round_s = config.probe_interval_s + 2 * config.probe_timeout_s
    nominal_s = suspicion_timeout_s(config.suspicion_mult, size, config.probe_interval_s)
    return (2 * size - 1) * round_s + nominal_s * config.suspicion_max_timeout_mult


async def _measure(size: int, loss: float, *, quiet_periods: int, kills: int, seed: int) -> dict[str, Any]:
    config = GossipConfig.lan()
    network = InMemoryNetwork(seed=seed, latency_s=0.002, jitter_s=0.002)
    verdicts: list[Verdict] = []
    members: dict[str, tuple[InMemoryTransport, Membership]] = {}
    loop = asyncio.get_running_loop()
    first_address = ""
    for index in range(size):
        name, address = f"n{index:03d}", f"10.0.{index // 200}.{index % 200 + 1}:7946"
        wire = Wire("bench", key=b"bench key", name=name, address=address, clock=LoopClock().wall)
        transport = network.transport(address, wire)
        membership = Membership(name, transport, config, incarnation=0, rng=random.Random(f"{seed}/{name}"),
                                delegate=_Watcher(name, verdicts))  # fmt: skip
        await transport.start(membership.handle)
        await membership.start()
        await membership.join([first_address] if first_address else [])
        first_address = first_address or address
        members[name] = (transport, membership)

    live = set(members)

    def converged() -> bool:
        return all({m.name for m in ms.members() if m.is_live} == live for _, ms in members.values())

    while not converged():
        await asyncio.sleep(0.1)
    network.set_defaults(loss=loss)
    network.reset_counters()
    started = loop.time()

    def raised() -> int:
        return sum(ms.metrics()["suspicions_raised"] for _, ms in members.values())

    # A suspicion spreads to every member, so count failed probes of live members at their
    # source (the accusers' counter), not the suspect notifications everyone receives.
    raised_before = raised()
    quiet_start = loop.time()
    await asyncio.sleep(quiet_periods * config.probe_interval_s)
    false_suspicions = raised() - raised_before
    suspect_notifications = sum(1 for v in verdicts if v.time >= quiet_start and v.state is MemberState.SUSPECT)

    rng = random.Random(seed)
    first_suspicions, first_deaths, all_deaths = [], [], []
    for _ in range(min(kills, size - 2)):  # keep two members: someone must be left to notice
        victim = rng.choice(sorted(live))
        live.discard(victim)
        network.kill(members[victim][0].local_address)
        killed_at = loop.time()
        survivors = [members[name][1] for name in live]
        limit = killed_at + swim_bound_s(len(live) + 1, config) * 2
        while loop.time() < limit and any(
            (info := ms.member(victim)) is not None and info.is_live for ms in survivors
        ):
            await asyncio.sleep(0.05)
        about = [v for v in verdicts if v.member == victim and v.time >= killed_at]
        suspected = [v.time for v in about if v.state is MemberState.SUSPECT]
        dead = [v.time for v in about if v.state is MemberState.DEAD and v.observer in live]
        first_suspicions.append((min(suspected) - killed_at) / config.probe_interval_s if suspected else math.nan)
        first_deaths.append(min(dead) - killed_at if dead else math.nan)
        all_deaths.append(loop.time() - killed_at)
        await asyncio.sleep(10 * config.probe_interval_s)

    all_names = set(members)
    killed = all_names - live
    # Verdicts by live members about live members (a killed member keeps running, cut off, and
    # its verdicts reach no one).
    false_deaths = [v for v in verdicts if v.state is MemberState.DEAD and v.member not in killed
                    and v.observer not in killed and v.time >= started]  # fmt: skip
    elapsed = loop.time() - started
    requests = sum(count.messages for (_, leg), count in network.traffic().items() if leg == "request")
    result = {
        "false_suspicions_raised": false_suspicions,
        "suspect_notifications": suspect_notifications,
        "false_deaths": len(false_deaths),
        "falsely_dead_members": len({v.member for v in false_deaths}),
        "first_suspicion_periods": first_suspicions,
        "first_dead_s": first_deaths,
        "dead_by_all_s": all_deaths,
        "requests": requests,
        "elapsed_s": elapsed,
        "max_health_score": max(members[name][1].health_score for name in live),  # the killed are not healthy
    }
    for transport, membership in members.values():
        await membership.aclose()
        await transport.aclose()
    await network.aclose()
    return result


def run_one(size: int, loss: float, *, quiet_periods: int, kills: int, seed: int) -> Result:
    config = GossipConfig.lan()
    real_started = time.perf_counter()
    raw = run_virtual(_measure(size, loss, quiet_periods=quiet_periods, kills=kills, seed=seed))
    real_s = time.perf_counter() - real_started
    member_periods = size * quiet_periods
    return Result(
        size=size,
        loss=loss,
        quiet_periods=quiet_periods,
        false_suspicions_per_1000_member_periods=1000 * raw["false_suspicions_raised"] / member_periods,
        false_deaths=raw["false_deaths"],
        falsely_dead_members=raw["falsely_dead_members"],
        kills=len(raw["dead_by_all_s"]),
        first_suspicion_periods_mean=statistics.fmean(raw["first_suspicion_periods"]),
        first_dead_s_mean=statistics.fmean(raw["first_dead_s"]),
        dead_by_all_s_mean=statistics.fmean(raw["dead_by_all_s"]),
        dead_by_all_s_max=max(raw["dead_by_all_s"]),
        swim_bound_s=swim_bound_s(size, config),
        nominal_suspicion_s=suspicion_timeout_s(config.suspicion_mult, size, config.probe_interval_s),
        requests_per_member_period=raw["requests"] / (size * raw["elapsed_s"] / config.probe_interval_s),
        max_health_score=raw["max_health_score"],
        virtual_s=raw["elapsed_s"],
        real_s=real_s,
    )


def render_markdown(results: Sequence[Result], machine: dict[str, Any], command: str) -> str:
    lines = [
        ("Failure detection of `gossip.membership` (SWIM + Lifeguard, `GossipConfig.lan()`: 1 s "
        "period, 0.5 s probe timeout, 3 indirect checks, suspicion ×4, max ×6) on the in-memory "
        "network (2 ms ± 2 ms one way; each request and reply leg lost with probability *loss*), "
        "in virtual time. *First suspicion* is in protocol periods after the kill; SWIM expects "
        f"{SWIM_FIRST_DETECTION_PERIODS:.2f} periods to the first failed probe (e/(e − 1)), and "
        "our failed round itself lasts up to 1.5 periods (direct timeout, then the relays' wait). "
        "*Dead by all*: until every live member declared the victim dead; the bound is SWIM's "
        "round-robin 2N − 1 rounds plus Lifeguard's longest suspicion. *False suspicions* are "
        "failed probes of live members per 1000 member-periods in the quiet window; *false deaths* "
        "are death verdicts by live members about live members over the whole run (verdicts / "
        "distinct members)."),
        "",
        ("| N | loss | first suspicion (periods) | first dead (s) | dead by all, mean / max (s) "
         "| bound (s) | false suspicions /1000 | false deaths | requests /member/period | max health |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.size} | {r.loss:.0%} | {r.first_suspicion_periods_mean:.2f} | {r.first_dead_s_mean:.1f} "
            f"| {r.dead_by_all_s_mean:.1f} / {r.dead_by_all_s_max:.1f} | {r.swim_bound_s:.0f} "
            f"| {r.false_suspicions_per_1000_member_periods:.2f} | {r.false_deaths} / {r.falsely_dead_members} "
            f"| {r.requests_per_member_period:.2f} | {r.max_health_score} |"
        )
    kills = max((r.kills for r in results), default=0)
    quiet = results[0].quiet_periods if results else 0
    lines += [
        "",
        f"Up to {kills} kills per row (N − 2 at most), after {quiet} quiet periods. Command: `{command}`.",
        "",
        machine_summary(machine),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200])
    parser.add_argument("--losses", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    parser.add_argument("--quiet-periods", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=JSON_PATH)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    console = Console()
    table = Table(title="Membership: detection and false positives (virtual time)")
    for header in ("N", "loss", "1st suspicion (T)", "1st dead (s)", "dead by all mean/max (s)", "bound (s)",
                   "false susp./1000", "false deaths", "req/member/T", "max health", "real (s)"):  # fmt: skip
        table.add_column(header, justify="right")
    results: list[Result] = []
    for size in args.sizes:
        for loss in args.losses:
            result = run_one(size, loss, quiet_periods=args.quiet_periods, kills=args.kills, seed=args.seed)
            results.append(result)
            table.add_row(str(size), f"{loss:.0%}", f"{result.first_suspicion_periods_mean:.2f}",
                          f"{result.first_dead_s_mean:.1f}",
                          f"{result.dead_by_all_s_mean:.1f} / {result.dead_by_all_s_max:.1f}",
                          f"{result.swim_bound_s:.0f}", f"{result.false_suspicions_per_1000_member_periods:.2f}",
                          f"{result.false_deaths} / {result.falsely_dead_members}",
                          f"{result.requests_per_member_period:.2f}", str(result.max_health_score),
                          f"{result.real_s:.1f}")  # fmt: skip
            console.print(f"N={size} loss={loss:.0%}: done in {result.real_s:.1f} s real "
                          f"({result.virtual_s:.0f} s virtual)")  # fmt: skip
    console.print(table)
    if not args.no_write:
        machine = machine_info()
        command = "python scripts/bench/membership.py " + " ".join(argv if argv is not None else sys.argv[1:])
        payload = {
            "swim_expected_first_detection_periods": SWIM_FIRST_DETECTION_PERIODS,
            "config": asdict(GossipConfig.lan()),
            "rows": [asdict(result) for result in results],
        }
        write_results(SECTION, payload, render_markdown(results, machine, command.strip()), args.out)
        console.print(f"wrote {args.out} and the '{SECTION}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
