"""One node, one-shot, on the simulated LLM: coverage, precision, duplicates, cost, and how
well the exhaustion estimate tracks the truth.

Runs the real producer (prompts, parser, dedup, SQLite store, stop rule) in-process with the
in-process simulated LLM and no real waiting (latency and backoff sleeps are skipped; the
simulated latency is still summed and reported). After every call it measures the list
against the universe's ground truth (which the system itself never reads):

- coverage: share of the universe's distinct entries that the list holds (canonical or alias);
  also against the items the simulated model can produce at all (its long-tail ceiling);
- precision: share of list lines that name a real item; alias leakage: lines whose real item
  another line already holds (a duplicate the fuzzy stage missed);
- the Chao1 estimate with its 95% interval, for several repeat-suppression corrections, and
  whether the interval holds the truth (the items the model can still produce).

Run: .venv/bin/python scripts/bench/single_node.py [--universe european-cities] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # ahead of scripts/bench, whose webui.py would shadow the package
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

from node.estimate import StopRule, estimate_topic  # noqa: E402
from node.hlc import HybridClock  # noqa: E402
from node.llm.sim.backend import SimulatedBackend  # noqa: E402
from node.llm.sim.model import SimulatedModel  # noqa: E402
from node.llm.sim.params import SimParams  # noqa: E402
from node.llm.sim.universe import load_universe  # noqa: E402
from node.producer import Producer, ProducerConfig  # noqa: E402
from node.runtime import ExhaustionTracker  # noqa: E402
from node.state import NodeState  # noqa: E402
from node.store import Store  # noqa: E402

SUPPRESSIONS = (0.0, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Snapshot:
    calls: int
    lines: int
    items: int
    tokens: int
    simulated_latency_s: float
    coverage: float  # of the universe's truth
    coverage_of_producible: float  # of what the model can produce
    precision: float
    alias_leakage: float
    duplicate_share: float  # generated items that were exact/fuzzy duplicates
    producible: int  # truth: distinct entries the model can produce
    estimates: dict[str, tuple[float, float, float]]  # suppression -> (estimate, low, high)
    real_only: tuple[float, float, float]  # estimate over samples of real items only, s=0


async def _no_wait(_seconds: float) -> None:
    return None


async def run_once(universe_name: str, seed: int, producer_config: ProducerConfig) -> list[Snapshot]:
    universe = load_universe(universe_name)
    truth_index = universe.id_of_any_name()
    truth_ids = universe.truth_ids()
    params = SimParams().replace(time_scale=1.0)  # latency computed at real pace, never waited
    model = SimulatedModel(universe, params, knowledge_seed=seed)
    producible_items = model.known_items()
    name_id_of_item = {index: key for key, index in truth_index.items()}
    producible = len({universe.items[i].name for i in producible_items})
    backend = SimulatedBackend(model, seed=seed, sleep=_no_wait, hang_timeout_s=60.0)
    latency = 0.0
    original_answer = backend._answer

    def answer_and_count(messages):  # type: ignore[no-untyped-def]
        nonlocal latency
        answer = original_answer(messages)
        latency += answer.latency_s
        return answer

    backend._answer = answer_and_count  # type: ignore[method-assign]
    snapshots: list[Snapshot] = []
    with tempfile.TemporaryDirectory() as directory:
        store = await Store.open(directory, topic=universe.topic)
        state = NodeState()
        tracker = ExhaustionTracker(state, StopRule())
        last_calls = 0

        def snapshot() -> None:
            nonlocal last_calls
            calls = state.observation_count
            if calls == last_calls:
                return
            last_calls = calls
            snapshots.append(_measure(state, producer, truth_index, truth_ids, producible_items, producible, latency))

        producer = Producer(
            config=producer_config, backend=backend, store=store, state=state, clock=HybridClock(),
            topic=universe.topic, should_stop=tracker.reason_to_stop,
            on_change=snapshot, sleep=_no_wait,
        )  # fmt: skip
        await producer.run(asyncio.Event())
        await store.aclose()
    del name_id_of_item
    return snapshots


def _measure(state, producer, truth_index, truth_ids, producible_items, producible, latency) -> Snapshot:  # type: ignore[no-untyped-def]
    covered: set[int] = set()
    real_lines = leaked = 0
    for line in state.entries:
        items = {truth_index[r.id] for r in (line.record, *line.aliases) if r.id in truth_index}
        if line.record.id in truth_index:
            real_lines += 1
            if truth_index[line.record.id] in covered:
                leaked += 1
        covered |= items
    lines = len(state.entries)
    truth_size = len(truth_ids)
    covered_names = {truth_index_key for truth_index_key in covered}
    estimates = {}
    for suppression in SUPPRESSIONS:
        overall = estimate_topic(state.sample_stream(), repeat_suppression=suppression).overall
        estimates[f"{suppression:g}"] = (overall.estimate, overall.low, overall.high)
    real_samples = [(p, e) for p, e in state.sample_stream() if e in truth_index]
    real = estimate_topic(real_samples).overall
    calls = state.calls()
    items = sum(call.items for call in calls)
    new = sum(call.new for call in calls)
    return Snapshot(
        calls=len(calls),
        lines=lines,
        items=items,
        tokens=producer.stats.prompt_tokens + producer.stats.completion_tokens,
        simulated_latency_s=latency,
        coverage=len(covered_names) / truth_size,
        coverage_of_producible=len(covered & producible_items) / max(1, len(producible_items)),
        precision=real_lines / lines if lines else 1.0,
        alias_leakage=leaked / lines if lines else 0.0,
        duplicate_share=(items - new) / items if items else 0.0,
        producible=producible,
        estimates=estimates,
        real_only=(real.estimate, real.low, real.high),
    )


def _checkpoints(snapshots: Sequence[Snapshot]) -> list[tuple[str, Snapshot]]:
    total = len(snapshots)
    return [(f"{share}%", snapshots[max(0, round(total * share / 100) - 1)]) for share in (25, 50, 75, 100)]


def _interval_holds(snapshot: Snapshot, key: str, truth: int) -> bool:
    _estimate, low, high = snapshot.estimates[key]
    return low <= truth <= high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--calibration-universe", default="countries")
    parser.add_argument("--calibration-seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "single_node.json")
    parser.add_argument("--no-docs", action="store_true", help="print only; don't write docs/benchmarks.md")
    args = parser.parse_args()
    console = Console(width=200)
    logging.basicConfig(level=logging.ERROR)  # the producer's per-fault warnings would drown the tables
    producer_config = ProducerConfig(concurrency=2)
    params = SimParams()
    alphas = {name: SimulatedModel(load_universe(name), params).popularity_alpha
              for name in (args.universe, args.calibration_universe)}  # fmt: skip
    console.print(f"simulated LLM parameters {params.version}: {params.describe()}; solved alpha {alphas}")
    started = time.perf_counter()

    main_runs = {seed: asyncio.run(run_once(args.universe, seed, producer_config)) for seed in args.seeds}
    first_seed = args.seeds[0]
    table = Table(title=f"gossip-node one-shot on {args.universe} (seed {first_seed}, producer {producer_config})")
    for column in ("point", "calls", "list lines", "coverage", "of producible", "precision", "alias leakage",
                   "dup share", "tokens", "sim. latency", "estimate (95%)", "truth"):  # fmt: skip
        table.add_column(column, justify="right")
    rows = []
    for label, snap in _checkpoints(main_runs[first_seed]):
        estimate, low, high = snap.estimates["0"]
        row = [label, f"{snap.calls}", f"{snap.lines:,}", f"{snap.coverage:.1%}", f"{snap.coverage_of_producible:.1%}",
               f"{snap.precision:.1%}", f"{snap.alias_leakage:.1%}", f"{snap.duplicate_share:.0%}",
               f"{snap.tokens:,}", f"{snap.simulated_latency_s / 60:.1f} min",
               f"{estimate:,.0f} ({low:,.0f}–{high:,.0f})", f"{snap.producible:,}"]  # fmt: skip
        table.add_row(*row)
        rows.append(row)
    console.print(table)

    # Estimator calibration: interval coverage of the producible truth at the 4 checkpoints,
    # over many seeds on the small universe, for each repeat-suppression correction.
    calibration_runs = [asyncio.run(run_once(args.calibration_universe, seed, producer_config))
                        for seed in range(100, 100 + args.calibration_seeds)]  # fmt: skip
    calibration: dict[str, dict[str, float]] = {}
    for key in [f"{s:g}" for s in SUPPRESSIONS]:
        per_point: dict[str, float] = {}
        for share in ("25%", "50%", "75%", "100%"):
            hits = []
            for run in calibration_runs + list(main_runs.values()):
                snap = dict(_checkpoints(run))[share]
                hits.append(_interval_holds(snap, key, snap.producible))
            per_point[share] = sum(hits) / len(hits)
        calibration[key] = per_point
    cal_table = Table(title=f"95% interval holds the producible truth ({args.calibration_seeds} seeds on "
                            f"{args.calibration_universe} + {len(args.seeds)} on {args.universe})")  # fmt: skip
    cal_table.add_column("repeat suppression s", justify="right")
    for share in ("25%", "50%", "75%", "100%"):
        cal_table.add_column(f"at {share}", justify="right")
    for key, per_point in calibration.items():
        cal_table.add_row(key, *(f"{value:.0%}" for value in per_point.values()))
    console.print(cal_table)
    elapsed = time.perf_counter() - started
    console.print(f"wall time {elapsed:.0f}s")

    results = {
        "universe": args.universe,
        "seeds": args.seeds,
        "calibration_universe": args.calibration_universe,
        "calibration_seeds": list(range(100, 100 + args.calibration_seeds)),
        "producer": asdict(producer_config),
        "sim_params": params.describe(),
        "sim_alpha": alphas,
        "checkpoints": {str(seed): [asdict(s) for _, s in _checkpoints(run)] for seed, run in main_runs.items()},
        "interval_coverage": calibration,
        "wall_s": elapsed,
    }
    header = "| point | calls | list lines | coverage | of producible | precision | alias leakage | dup share | tokens | sim. latency | estimate (95%) | truth |"
    lines = [header, "|" + "---|" * 12] + ["| " + " | ".join(row) + " |" for row in rows]
    cal_lines = ["| s | at 25% | at 50% | at 75% | at 100% |", "|---|---|---|---|---|"]
    cal_lines += [f"| {key} | " + " | ".join(f"{v:.0%}" for v in per.values()) + " |" for key, per in calibration.items()]
    markdown = "\n".join(
        [
            f"`scripts/bench/single_node.py`: one `gossip-node`-equivalent run to exhaustion on `{args.universe}` "
            f"(seed {first_seed}; simulated LLM parameters {params.version}, alpha {alphas[args.universe]:g}; "
            f"producer {producer_config}). "
            "Coverage is against the universe's ground truth; *of producible* against the items the simulated "
            "model can produce at all (its long-tail ceiling); *truth* in the estimate column is that count.",
            "",
            *lines,
            "",
            "How often the estimate's 95% interval holds the producible truth, by repeat-suppression correction s:",
            "",
            *cal_lines,
            "",
            machine_summary(machine_info()),
            "",
        ]
    )
    if not args.no_docs:
        write_results("Single node, one-shot", results, markdown, args.out)
        console.print(f"wrote {args.out} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
