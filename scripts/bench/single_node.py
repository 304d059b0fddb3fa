"""One ``gossip-node --exit-when-done`` run on the simulated LLM, measured against ground truth.

Runs the real command as a user would (a subprocess: the CLI, the planner's partitioning, the
producer, SQLite), to its own end: every partition retired or split. Then reads its data dir:
the store's records, applied in the order the node stored them to a fresh ``NodeState``, are
the node's state after any number of calls, so the run is measured at 25/50/75% of its
enumeration calls and at its end without touching the node while it runs. The ground truth
(the universe, which the node never reads) gives, at each point:

- coverage of the universe (a line counts for its item if its text or an alias names it),
  and of the items the simulated model can produce at all (its long-tail ceiling);
- precision (lines naming a real item), alias leakage (lines whose item another line already
  holds), duplicate share (generated items that were exact or fuzzy duplicates);
- LLM calls (enumeration, split and failed ones) and tokens, from the node's usage records;
- the node's exhaustion estimate as its page shows it (``node.assembly.exhaustion_estimate``:
  entries not seen yet in the partitions still live, with a 95% interval), beside what the
  rest of the run found: list lines (the estimate's own unit: it counts every distinct
  generated entry, inventions too) and real items. Neither is exactly what the estimate
  estimates — the planner retires each part once it runs dry, while Chao1 extrapolates as if
  the calls went on — so they are references, not its truth (``scripts/bench/estimator.py``
  scores the estimate against a held-out truth).

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
from node.config import LLMSettings  # noqa: E402
from node.hlc import hlc_physical_ms  # noqa: E402
from node.llm.sim.model import SimulatedModel  # noqa: E402
from node.llm.sim.params import SimParams  # noqa: E402
from node.llm.sim.universe import load_universe  # noqa: E402
from node.producer import ProducerConfig  # noqa: E402
from node.records import ObservationRecord, PlanRecord, Record, UsageRecord  # noqa: E402
from node.sim_report import GroundTruth  # noqa: E402
from node.state import NodeState  # noqa: E402
from node.store import Store  # noqa: E402
from partitioning.plan import PartitionPlan  # noqa: E402

TOPIC = "cities of Europe"
POINTS = (25, 50, 75, 100)
GOSSIP_NODE = Path(sys.executable).with_name("gossip-node")
PRODUCER = ProducerConfig()  # gossip-node's producer defaults, which the command runs with


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
    lines_later: int  # list lines the rest of the run added
    found_later: int  # real items the rest of the run added


@dataclass(frozen=True)
class Run:
    """One run of the command and its points."""

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
    """A stopped node's records, in the order it stored them."""
    store = await Store.open(data_dir, topic=topic)
    try:
        return await store.load_records()
    finally:
        await store.aclose()


def replay(records: Sequence[Record], universe_name: str, seed: int) -> tuple[list[Point], int, int]:
    """The run's records, in the order the node stored (and applied) them, into a fresh state,
    measured at each share of its calls; (points, items the model can produce, universe size).

    Not HLC order: a call's observation is stamped before it waits for the store, so another
    call's records can carry a later HLC and still come first.
    """
    universe = load_universe(universe_name)
    truth = GroundTruth(universe, SimulatedModel(universe, SimParams(), knowledge_seed=seed))
    total_calls = sum(isinstance(record, ObservationRecord) for record in records)
    # the last point is the run's end, after its final retirements, not its last call
    marks = [max(1, round(total_calls * share / 100)) for share in POINTS[:-1]]
    if len(set(marks)) < len(marks):
        raise ValueError(f"a run of {total_calls} calls is too short to measure at {POINTS[:-1]}% of them")
    state = NodeState()
    plan_events: list[PlanRecord] = []
    llm_calls = tokens = calls = 0
    start_ms = min((hlc_physical_ms(record.hlc) for record in records), default=0)
    latest_ms = start_ms
    measured: list[Point] = []

    def measure(share: int) -> None:
        counters = _Counters(share, calls, llm_calls, tokens, (latest_ms - start_ms) / 1000)
        measured.append(_measure(truth, state, PartitionPlan(plan_events), counters))

    for record in records:
        state.apply(record)
        latest_ms = max(latest_ms, hlc_physical_ms(record.hlc))
        if isinstance(record, UsageRecord):
            llm_calls += 1
            tokens += record.prompt_tokens + record.completion_tokens
        elif isinstance(record, PlanRecord):
            plan_events.append(record)
        elif isinstance(record, ObservationRecord):
            calls += 1
            if calls in marks:
                measure(POINTS[marks.index(calls)])
    if records:
        measure(POINTS[-1])
    if not measured:
        return [], len(truth.producible), truth.size
    end = measured[-1]
    points = [replace(point, lines_later=end.lines - point.lines, found_later=end.real_covered - point.real_covered)
              for point in measured]  # fmt: skip
    return points, len(truth.producible), truth.size


@dataclass(frozen=True)
class _Counters:
    """What the replay counted up to a point (the list's quality comes from the state)."""

    share: int
    calls: int
    llm_calls: int
    tokens: int
    elapsed_s: float


def _measure(truth: GroundTruth, state: NodeState, plan: PartitionPlan, counters: _Counters) -> Point:
    """The list as its page shows it (rejected lines left out) and the node's estimate now
    ("later" columns left 0)."""
    quality = truth.quality(state.entries, state.rejected_ids())
    calls = state.calls()
    generated = sum(call.items for call in calls)
    new = sum(call.new for call in calls)
    estimate = exhaustion_estimate(state, plan)
    seen = estimate.observed
    point = Point(
        share=counters.share, calls=counters.calls, llm_calls=counters.llm_calls, tokens=counters.tokens,
        elapsed_s=counters.elapsed_s, lines=quality.lines, real_covered=len(quality.covered),
        coverage=quality.coverage,
        coverage_of_producible=len(quality.covered & truth.producible) / max(1, len(truth.producible)),
        precision=quality.precision, alias_leakage=quality.alias_leakage,
        duplicate_share=(generated - new) / generated if generated else 0.0,
        live_leaves=len(plan.live_leaves()),
        remaining=(estimate.estimate - seen, estimate.low - seen, estimate.high - seen),
        lines_later=0, found_later=0,
    )  # fmt: skip
    return point


def measure_run(universe: str, seed: int, workdir: Path, extra: Sequence[str] = ()) -> Run:
    """Run the command in ``workdir`` (``extra`` options appended) and measure its data dir."""
    code, wall = run_node(universe, seed, workdir, extra)
    if code != 0:
        raise SystemExit(f"gossip-node exited {code} (seed {seed}); its log: {workdir / 'node.log'}")
    topic = TOPIC if universe == "european-cities" else universe
    records = asyncio.run(load_records(workdir / "node", topic))
    if not any(isinstance(record, ObservationRecord) for record in records):
        raise SystemExit(f"gossip-node made no call (seed {seed}); its log: {workdir / 'node.log'}")
    points, producible, size = replay(records, universe, seed)
    return Run(seed, code, wall, producible, size, points)


def _row(point: Point) -> list[str]:
    centre, low, high = point.remaining
    return [f"{point.share}%", f"{point.calls:,}", f"{point.llm_calls:,}", f"{point.tokens:,}",
            f"{point.elapsed_s:.0f} s", f"{point.lines:,}", f"{point.coverage:.1%}",
            f"{point.coverage_of_producible:.1%}", f"{point.precision:.1%}", f"{point.alias_leakage:.2%}",
            f"{point.duplicate_share:.0%}", f"{point.live_leaves:,}",
            f"{centre:,.0f} ({low:,.0f}–{high:,.0f})", f"{point.lines_later:,}", f"{point.found_later:,}"]  # fmt: skip


COLUMNS = ("point", "calls", "LLM calls", "tokens", "elapsed", "list lines", "coverage", "of producible",
           "precision", "alias leakage", "dup share", "live parts", "estimated remaining (95%)",
           "lines added later", "real items added later")  # fmt: skip


def summary(runs: Sequence[Run]) -> str:
    """How the node's estimate compares with what the rest of each run added, at the points
    before its end (at the end every part is retired and the estimate is 0, trivially right)."""
    before_end = [point for run in runs for point in run.points[:-1]]
    if not before_end:
        return ""
    finite = [point for point in before_end if math.isfinite(point.remaining[2])]
    held = sum(point.remaining[1] <= point.lines_later <= point.remaining[2] for point in finite)

    def median_range(values: Sequence[float]) -> str:
        ordered = sorted(values)
        return f"{ordered[0]:.1f}–{ordered[-1]:.1f}× (median {ordered[len(ordered) // 2]:.1f}×)"

    return (
        f"Before the end, the estimate's upper bound was infinite at {len(before_end) - len(finite)} of "
        f"{len(before_end)} points: some live part's calls had returned no items yet, and Chao1 knows nothing "
        f"of such a part. Its finite intervals held the lines the rest of the run added at {held} of "
        f"{len(finite)}. Its centre was "
        f"{median_range([max(p.remaining[0], 1.0) / max(p.lines_later, 1) for p in before_end])} the lines the "
        f"rest of the run added, and "
        f"{median_range([max(p.remaining[0], 1.0) / max(p.found_later, 1) for p in before_end])} its real items."
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
        f"({results['wall_s'] / 60:.0f} min): the real command `{command}` with its defaults (partitioning on, "
        f"{PRODUCER.concurrency} concurrent calls, {PRODUCER.items_per_call} entries a call, simulated latency × "
        f"{LLMSettings().time_scale:g}), run to its own end; then its data dir's records, applied in the order the "
        "node stored them, measured against the universe's ground truth at 25/50/75% of its enumeration calls "
        "and at its end (100%, after the last retirements). *LLM calls* adds split calls and failed ones; "
        "*elapsed* is the node's own clock. *Estimated remaining* is the node's plan-aware estimate as its page "
        "shows it: entries not seen yet in the partitions still live, with a 95% interval. Beside it, what the "
        "rest of the run added: list lines (the estimate's unit: every distinct generated entry, inventions "
        "too) and real items. They are references, not the estimate's truth: the planner retires each part "
        "once it runs dry, while Chao1 extrapolates as if the calls went on (`estimator.py` scores it against "
        f"a held-out truth). Simulated LLM parameters {results['sim_params']['version']}.",
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
