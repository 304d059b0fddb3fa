"""One ``gossip-node --exit-when-done`` run on the simulated LLM, measured against ground truth.

Runs the real command as a user would (a subprocess: the CLI, the planner's partitioning, the
producer, SQLite), to its own end: every partition retired or split. Then reads its data dir:
the store's records, replayed in HLC order into a fresh ``NodeState``, are the node's state
after any number of calls, so the run is measured at 25/50/75/100% of its calls without
touching the node while it runs. The ground truth (the universe, which the node never reads)
gives, at each point:

- coverage of the universe (a line counts for its item if its text or an alias names it),
  and of the items the simulated model can produce at all (its long-tail ceiling);
- precision (lines naming a real item), alias leakage (lines whose item another line already
  holds), duplicate share (generated items that were exact or fuzzy duplicates);
- LLM calls (enumeration and split calls) and tokens, from the node's own usage records;
- the node's exhaustion estimate as the page shows it (``node.assembly.exhaustion_estimate``,
  plan-aware: unseen entries only in live partitions), as entries remaining with its 95%
  interval, beside the truth: the real items the rest of the run went on to find.

Run: .venv/bin/python scripts/bench/single_node.py [--universe european-cities] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence, Set as AbstractSet
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # ahead of scripts/bench, whose webui.py would shadow the package
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

from node.assembly import exhaustion_estimate  # noqa: E402
from node.hlc import hlc_physical_ms  # noqa: E402
from node.llm.sim.model import SimulatedModel  # noqa: E402
from node.llm.sim.params import SimParams  # noqa: E402
from node.llm.sim.universe import load_universe  # noqa: E402
from node.records import ObservationRecord, PlanRecord, Record, UsageRecord  # noqa: E402
from node.state import NodeState  # noqa: E402
from node.store import Store  # noqa: E402
from partitioning.plan import PartitionPlan  # noqa: E402

TOPIC = "cities of Europe"
POINTS = (25, 50, 75, 100)
GOSSIP_NODE = Path(sys.executable).with_name("gossip-node")


@dataclass(frozen=True)
class Point:
    """The node's state after one share of its run's enumeration calls."""

    share: int  # % of the run's enumeration calls
    calls: int  # enumeration calls (observation records)
    llm_calls: int  # every LLM call: enumeration, split and failed ones (usage records)
    tokens: int  # prompt + completion
    elapsed_s: float  # since the node's first record (HLC wall-clock part)
    lines: int
    real_covered: int  # universe items the list holds
    coverage: float
    coverage_of_producible: float
    precision: float
    alias_leakage: float
    duplicate_share: float
    live_leaves: int
    remaining: tuple[float, float, float]  # the node's estimate of entries remaining: centre, low, high
    found_later: int  # truth: real items the rest of the run added


@dataclass(frozen=True)
class Run:
    seed: int
    exit_code: int
    wall_s: float
    producible: int
    universe_size: int
    points: list[Point]


def run_node(universe: str, seed: int, data_dir: Path, extra: Sequence[str] = ()) -> tuple[int, float]:
    """The user's command, to its end; (exit code, wall seconds). Its log goes to ``data_dir/node.log``."""
    command = [str(GOSSIP_NODE), "--topic", TOPIC if universe == "european-cities" else universe,
               "--llm", "sim", "--universe", universe, "--exit-when-done", "--data-dir", str(data_dir / "node"),
               "--port", "0", "--rng-seed", str(seed), *extra]  # fmt: skip
    started = time.perf_counter()
    with open(data_dir / "node.log", "wb") as log_file:
        code = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, check=False).returncode
    return code, time.perf_counter() - started


async def load_records(data_dir: Path, topic: str) -> list[Record]:
    store = await Store.open(data_dir, topic=topic)
    try:
        return await store.load_records()
    finally:
        await store.aclose()


def replay(records: Iterable[Record], universe_name: str, seed: int) -> tuple[list[Point], int, int]:
    """The run's records in HLC order into a fresh state, measured at each share of its calls;
    (points, items the model can produce, universe size)."""
    universe = load_universe(universe_name)
    ground = _Ground(universe.id_of_any_name(), SimulatedModel(universe, SimParams(), knowledge_seed=seed).known_items())
    ordered = sorted(records, key=lambda record: record.hlc)
    total_calls = sum(isinstance(record, ObservationRecord) for record in ordered)
    # the last point is the run's end, after its final retirements, not its last call
    marks = {max(1, round(total_calls * share / 100)): share for share in POINTS[:-1]}
    state = NodeState()
    plan_events: list[PlanRecord] = []
    llm_calls = tokens = calls = 0
    start_ms = hlc_physical_ms(ordered[0].hlc) if ordered else 0
    measured: list[tuple[Point, int]] = []

    def measure(share: int, hlc: int) -> None:
        point, covered = ground.measure(state, PartitionPlan(plan_events))
        elapsed_s = (hlc_physical_ms(hlc) - start_ms) / 1000
        point = replace(point, share=share, calls=calls, llm_calls=llm_calls, tokens=tokens, elapsed_s=elapsed_s)
        measured.append((point, covered))

    for record in ordered:
        state.apply(record)
        if isinstance(record, UsageRecord):
            llm_calls += 1
            tokens += record.prompt_tokens + record.completion_tokens
        elif isinstance(record, PlanRecord):
            plan_events.append(record)
        elif isinstance(record, ObservationRecord):
            calls += 1
            if calls in marks:
                measure(marks[calls], record.hlc)
    if ordered:
        measure(POINTS[-1], ordered[-1].hlc)
    final = measured[-1][1] if measured else 0
    points = [replace(point, found_later=final - covered) for point, covered in measured]
    producible = len({universe.items[i].name for i in ground.producible_items})
    return points, producible, len(universe.truth_ids())


@dataclass(frozen=True)
class _Ground:
    """The universe's ground truth, which only the benchmark reads."""

    truth_index: Mapping[str, int]  # any name's id -> item
    producible_items: AbstractSet[int]  # items the simulated model can produce at all

    def measure(self, state: NodeState, plan: PartitionPlan) -> tuple[Point, int]:
        """The list's quality and the node's estimate now (counters left 0); and the items it covers."""
        covered: set[int] = set()
        real_lines = leaked = 0
        for line in state.entries:
            records = (line.record, *line.aliases)
            items = {self.truth_index[record.id] for record in records if record.id in self.truth_index}
            if line.record.id in self.truth_index:
                real_lines += 1
                if self.truth_index[line.record.id] in covered:
                    leaked += 1
            covered |= items
        lines = len(state.entries)
        calls = state.calls()
        generated = sum(call.items for call in calls)
        new = sum(call.new for call in calls)
        estimate = exhaustion_estimate(state, plan)
        seen = estimate.observed
        point = Point(
            share=0, calls=0, llm_calls=0, tokens=0, elapsed_s=0.0, lines=lines, real_covered=len(covered),
            coverage=len(covered) / len(set(self.truth_index.values())),
            coverage_of_producible=len(covered & self.producible_items) / max(1, len(self.producible_items)),
            precision=real_lines / lines if lines else 1.0,
            alias_leakage=leaked / lines if lines else 0.0,
            duplicate_share=(generated - new) / generated if generated else 0.0,
            live_leaves=len(plan.live_leaves()),
            remaining=(estimate.estimate - seen, estimate.low - seen, estimate.high - seen),
            found_later=0,
        )  # fmt: skip
        return point, len(covered)


def measure_run(universe: str, seed: int, workdir: Path, extra: Sequence[str] = ()) -> Run:
    code, wall = run_node(universe, seed, workdir, extra)
    if code != 0:
        raise SystemExit(f"gossip-node exited {code} (seed {seed}); its log: {workdir / 'node.log'}")
    topic = TOPIC if universe == "european-cities" else universe
    records = asyncio.run(load_records(workdir / "node", topic))
    points, producible, size = replay(records, universe, seed)
    return Run(seed, code, wall, producible, size, points)


def _row(point: Point) -> list[str]:
    centre, low, high = point.remaining
    return [f"{point.share}%", f"{point.calls:,}", f"{point.llm_calls:,}", f"{point.tokens:,}",
            f"{point.elapsed_s:.0f} s", f"{point.lines:,}", f"{point.coverage:.1%}",
            f"{point.coverage_of_producible:.1%}", f"{point.precision:.1%}", f"{point.alias_leakage:.2%}",
            f"{point.duplicate_share:.0%}", f"{point.live_leaves:,}",
            f"{centre:,.0f} ({low:,.0f}–{high:,.0f})", f"{point.found_later:,}"]  # fmt: skip


COLUMNS = ("point", "calls", "LLM calls", "tokens", "elapsed", "list lines", "coverage", "of producible",
           "precision", "alias leakage", "dup share", "live parts", "estimated remaining (95%)",
           "found later (truth)")  # fmt: skip


def summary(runs: Sequence[Run]) -> str:
    """How the node's estimate fared against the truth at the points before each run's end (at
    the end every part is retired and the estimate is 0, trivially right)."""
    before_end = [point for run in runs for point in run.points[:-1]]
    if not before_end:
        return ""
    finite = [point for point in before_end if math.isfinite(point.remaining[2])]
    held = sum(point.remaining[1] <= point.found_later <= point.remaining[2] for point in finite)
    ratios = sorted(max(point.remaining[0], 1.0) / max(point.found_later, 1) for point in before_end)
    return (
        f"Before the end, the estimate's upper bound was infinite at {len(before_end) - len(finite)} of "
        f"{len(before_end)} points (a live part not called yet could hold anything); its finite intervals "
        f"held the truth at {held} of {len(finite)}. Its centre was {ratios[0]:.1f}–{ratios[-1]:.1f}× what the "
        f"rest of the run found (median {ratios[len(ratios) // 2]:.1f}×)."
    )


def render(runs: Sequence[Run], results: Mapping[str, Any], machine: Mapping[str, Any], console: Console) -> str:
    """Print each run's table; return the docs section."""
    command = results["command"]
    tables: list[str] = []
    for run in runs:
        table = Table(title=f"{command} (seed {run.seed}): ended in {run.wall_s:.0f} s, exit {run.exit_code}")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        rows = [_row(point) for point in run.points]
        for row in rows:
            table.add_row(*row)
        console.print(table)
        tables += [f"**Seed {run.seed}** (wall time {run.wall_s:.0f} s; the model can produce {run.producible:,} "
                   f"of the universe's {run.universe_size:,} items)", "",
                   "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
                   *("| " + " | ".join(row) + " |" for row in rows), ""]  # fmt: skip
    findings = summary(runs)
    console.print(findings)
    seeds = " ".join(str(run.seed) for run in runs)
    return "\n".join([
        f"`scripts/bench/single_node.py --universe {results['universe']} --seeds {seeds}` "
        f"({results['wall_s'] / 60:.0f} min): the real command `{command}` (its defaults: partitioning on, "
        "2 concurrent calls, 20 entries a call, simulated latency × 0.05), run to its own end, then its data "
        "dir's records replayed in HLC order and measured against the universe's ground truth at 25/50/75/100% "
        "of its enumeration calls (100% is the end, after the last retirements). *LLM calls* adds split calls "
        "and failed ones; *elapsed* is the node's own clock. *Estimated remaining* is the node's plan-aware "
        "estimate as its page shows it (entries not yet seen in the partitions still live, 95% interval); "
        "*found later* is the truth it estimates: the real items the rest of the run went on to find. "
        f"Simulated LLM parameters {results['sim_params']['version']}.",
        "",
        *tables,
        findings,
        "",
        machine_summary(machine),
        "",
    ])  # fmt: skip


def _load(path: Path) -> tuple[list[Run], dict[str, Any], dict[str, Any]]:
    saved = json.loads(path.read_text())  # as write_results wrote it: the machine beside the results
    results: dict[str, Any] = saved["results"]
    runs = [Run(**{**run, "points": [Point(**{**point, "remaining": tuple(point["remaining"])})
                                     for point in run["points"]]}) for run in results["runs"]]  # fmt: skip
    return runs, results, saved["machine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universe", default="european-cities", choices=["countries", "european-cities"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--rng-seed of each run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "single_node.json")
    parser.add_argument("--load", action="store_true", help="render --out's saved runs instead of running")
    parser.add_argument("--no-docs", action="store_true", help="print only; don't write docs/benchmarks.md")
    args = parser.parse_args()
    console = Console(width=220)
    logging.basicConfig(level=logging.ERROR)
    if args.load:
        runs, results, machine = _load(args.out)
    else:
        started = time.perf_counter()
        machine = machine_info()
        runs = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="swarmlist-single-") as directory:
                console.print(f"seed {seed}: gossip-node --exit-when-done on {args.universe} …")
                run = measure_run(args.universe, seed, Path(directory))
            console.print(f"  ended (exit {run.exit_code}) in {run.wall_s:.0f} s after {run.points[-1].calls:,} calls")
            runs.append(run)
        results = {
            "command": f'gossip-node --topic "{TOPIC}" --llm sim --universe {args.universe} --exit-when-done '
                       "--data-dir DIR --port 0 --rng-seed SEED",
            "universe": args.universe,
            "seeds": args.seeds,
            "sim_params": SimParams().describe(),
            "runs": [asdict(run) for run in runs],
            "wall_s": time.perf_counter() - started,
        }  # fmt: skip
    markdown = render(runs, results, machine, console)
    if not args.no_docs:
        write_results("Single node, one-shot", results, markdown, args.out)
        console.print(f"wrote {args.out} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
