"""Every lever and the seed's options, side by side: calls, tokens and time to each coverage.

One universe (default european-cities), the same seeds, the same per-run LLM budget, and the
same prompt builder, parser, dedup and concurrency per producer for every configuration; only
the named lever differs from *swarmlist* (5 gossip nodes, partitioned, known entries by how
often they were generated, exact → fuzzy dedup), and each configuration's difference is
printed. The configurations (design.md, "Where it comes from"):

- *single producer*: one node, concurrency 2, the whole topic, the whole run budget;
- *independent producers*: 5 one-node runs that never exchange a record (the same simulated
  model, each its own sampling seed), a fifth of the budget each, no partitioning; their lists
  are merged at the end (union of the records, listed with the same dedup) — naive parallelism;
- *central shared state* (the seed's Option 1): 5 producers on one in-process store with zero
  propagation delay = one node with concurrency 5 × 2, without and with partitioning (the
  latter is the seed's own recommendation, the ideal a P2P design can only approach);
- *swarmlist* and its ablations: no partitioning; no known entries in the prompts; known
  entries chosen by recency; exact dedup only (no fuzzy stage, no alias clusters); 5% of
  messages lost; and, to show where the ordering of known entries can matter, no partitioning with
  known entries by recency (beside "swarmlist, no partitioning"); and one variant: the calls
  dealt out network-wide as the central scheduler would (``PartitionConfig.schedule="shared"``).

No configuration has a stop rule on the whole topic (``NEVER_STOP``): without partitioning a
run spends its budget, so what it reaches is the most it can within it; partitioned runs stop
when every partition is retired. Per configuration, mean ± sd over the seeds: LLM calls,
prompt and completion tokens and virtual seconds until the union of the lists first held
50/80/90/95% of the universe and of what the simulated model can produce (it never knows ~11%
of the long tail, so 90/95% of the universe are out of everyone's reach — the simulator is not
tuned for this benchmark), the ratio of calls to the lower bound (coverage × size ÷ items per
answer: a perfectly obedient model), and where each run ended: coverage, precision, alias
leakage, duplicate share, gossip bytes per entry. Then the issue's targets, met or not, at 95%
and at the highest coverage every configuration reached. Tables and verdicts:
``scripts/bench/levers_report.py``.

Run: .venv/bin/python scripts/bench/levers.py [--universe european-cities] [--seeds 1 2 3]
     [--budget-per-node 1000] [--workers 2] [--only NAME ...] [--no-write] [--save-runs FILE | --load-runs FILE]
     [--note TEXT]
     (the full run: seeds 1 2 3, budget 1000 per node, 2 workers: ~42 min on 2 cores; --load-runs re-renders
     the tables, the PNG and the docs from a --save-runs file without running again)
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.testing import run_virtual  # noqa: E402
from node.assembly import Node  # noqa: E402
from node.estimate import StopRule  # noqa: E402
from node.global_list import GlobalList  # noqa: E402
from node.normalize import EntryId  # noqa: E402
from node.sim_report import SimReport, SimSample, listed_entry_ids  # noqa: E402
from node.simulation import SimConfig, Simulation, derived_seed, run_simulation  # noqa: E402
from partitioning.config import PartitionConfig  # noqa: E402
from scripts.bench.levers_report import (  # noqa: E402
    JSON_PATH,
    PNG_PATH,
    SECTION,
    markdown_section,
    plot,
    print_tables,
    summarise,
)
from scripts.bench.report import machine_info, write_results  # noqa: E402

NEVER_STOP = StopRule(remaining_threshold=0.0, min_yield=0.0)  # whole-topic runs spend their budget
SWARMLIST = "swarmlist"
PRODUCERS = 5  # the seed's "~5 concurrent LLM producers"
CONCURRENCY = 2  # concurrent calls per producer, every configuration


@dataclass(frozen=True)
class Lever:
    """One configuration: how it differs from swarmlist."""

    name: str
    what: str  # what it stands for, one line
    changes: Mapping[str, Any] = field(default_factory=dict)  # SimConfig fields, besides the budget
    independent: bool = False  # PRODUCERS separate one-node runs, lists merged at the end


LEVERS = (
    Lever("single producer", "one producer, its own results in its prompts",
          {"nodes": 1, "partitioning": PartitionConfig.off()}),
    Lever("independent producers", f"{PRODUCERS} producers, each knowing only its own results; union at the end",
          {"nodes": 1, "partitioning": PartitionConfig.off()}, independent=True),
    Lever("central shared state", f"Option 1: {PRODUCERS} producers on one in-process store, zero delay",
          {"nodes": 1, "concurrency": PRODUCERS * CONCURRENCY, "partitioning": PartitionConfig.off()}),
    Lever("central shared state, partitioned", "Option 1 with swarmlist's partitioning: the ideal",
          {"nodes": 1, "concurrency": PRODUCERS * CONCURRENCY}),
    Lever(SWARMLIST, f"{PRODUCERS} gossip nodes, partitioned (the default)"),
    Lever("swarmlist, calls dealt out network-wide", "variant: every node computes one central scheduler's calls "
          "and takes its share, any node retires", {"partitioning": PartitionConfig(schedule="shared")}),
    Lever("swarmlist, no partitioning", "ablation: every call about the whole topic",
          {"partitioning": PartitionConfig.off()}),
    Lever("swarmlist, no known entries", "ablation: prompts carry no known entries", {"known_entries": "none"}),
    Lever("swarmlist, known entries by recency", "ablation: newest known entries first, not most generated",
          {"known_entries": "recency"}),
    Lever("swarmlist, no partitioning, known entries by recency",
          "where the ordering can matter: without partitioning the known list outgrows the prompt",
          {"partitioning": PartitionConfig.off(), "known_entries": "recency"}),
    Lever("swarmlist, exact dedup only", "ablation: no fuzzy stage, no alias clusters", {"fuzzy_dedup": False}),
    Lever("swarmlist, 5% message loss", "ablation: each message leg lost with probability 0.05", {"loss": 0.05}),
)  # fmt: skip


def base_config(universe: str, budget_per_node: int, time_limit_s: float) -> SimConfig:
    """swarmlist as every configuration starts from it (rng_seed set per run)."""
    return SimConfig(universe=universe, nodes=PRODUCERS, concurrency=CONCURRENCY, max_calls=budget_per_node,
                     stop=NEVER_STOP, time_limit_s=time_limit_s, sample_interval_s=1.0, idle_stop_s=30.0)  # fmt: skip


def lever_config(lever: Lever, base: SimConfig, seed: int) -> SimConfig:
    """The SimConfig of ``lever`` (for independent producers: of each of its one-node runs)."""
    run_budget = base.max_calls * base.nodes  # the same LLM budget for every configuration's run
    config = replace(base, rng_seed=seed, **lever.changes)
    if lever.independent:
        return replace(config, max_calls=run_budget // PRODUCERS)
    return replace(config, max_calls=run_budget // config.nodes)


def config_diff(lever: Lever, base: SimConfig) -> str:
    """What ``lever`` changes in swarmlist's config, as ``field: swarmlist → this`` pairs."""
    mine, theirs = _flat(lever_config(lever, base, 0).describe()), _flat(replace(base, rng_seed=0).describe())
    changed = [f"{key}: {theirs[key]} → {mine[key]}" for key in mine if mine[key] != theirs[key]]
    if lever.independent:
        changed.insert(0, f"{PRODUCERS} separate runs (seeds derived from the run's, one model), union at the end")
    return "; ".join(changed) or "(none)"


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as ``partitioning.enabled``-style keys, so a diff names the one field."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


Point = tuple[float, int, int, int, int]  # (virtual s, calls, prompt tokens, all tokens, truth items covered)


def _totals(sample: SimSample) -> tuple[int, int, int]:
    return (sum(n.calls for n in sample.nodes), sum(n.prompt_tokens for n in sample.nodes),
            sum(n.tokens for n in sample.nodes))  # fmt: skip


def run_lever(lever: Lever, base: SimConfig, seed: int) -> dict[str, Any]:
    """One run of ``lever`` with ``seed``: its coverage curve and where it ended."""
    started = time.perf_counter()
    config = lever_config(lever, base, seed)
    if lever.independent:
        result = _run_independent(config, seed)
    else:
        report = run_simulation(config)
        cluster = report.cluster
        truth = int(str(report.universe["truth_size"]))
        curve: list[Point] = [(s.t_s, *_totals(s), round(s.coverage_union * truth)) for s in report.series]
        result = {
            "curve": curve,
            "coverage": cluster["coverage"],
            "coverage_of_producible": cluster["coverage_of_producible"],
            "precision": cluster["precision_min"],
            "alias_leakage": cluster["alias_leakage_max"],
            "duplicate_share": cluster["duplicate_share"],
            "lines": max(int(node["entries"]) for node in report.nodes),
            "entry_ids": max(int(node.get("entry_ids", 0)) for node in report.nodes),
            "wire_bytes": cluster["wire_bytes"],
            "converged": cluster["converged"],
            "end_reason": report.end_reason,
            "stop_reasons": sorted({str(node["stop_reason"]) for node in report.nodes}),
            "virtual_s": report.virtual_s,
            "split_calls": cluster["split_calls"],
            "universe": report.universe,
            "sim_params": report.sim_params,
            "popularity_alpha": report.popularity_alpha,
        }
    last = result["curve"][-1]
    # The curves count covered truth items and the report divides them by what the model can
    # produce: right only if the model never generates an item it does not know. Check it.
    producible = int(result["universe"]["producible"])
    result["covered_outside_producible"] = last[4] - round(result["coverage_of_producible"] * producible)
    result.update(lever=lever.name, seed=seed, calls=last[1], prompt_tokens=last[2], completion_tokens=last[3] - last[2],
                  real_s=round(time.perf_counter() - started, 1))  # fmt: skip
    result["gossip_bytes_per_entry"] = result["wire_bytes"] / result["entry_ids"] if result["entry_ids"] else 0.0
    return result


class _Tracker:
    """Follows one one-node run: at each sample, the truth items its list newly covers."""

    def __init__(self) -> None:
        self.sim: Simulation | None = None
        self.node: Node | None = None
        self.points: list[tuple[Point, list[EntryId]]] = []
        self._seen: set[EntryId] = set()

    def remember(self, sim: Simulation) -> None:
        self.node = sim.live_nodes()[0]  # kept after the run: closed, but its in-memory list is whole

    def sample(self, sample: SimSample) -> None:
        assert self.sim is not None and self.node is not None
        covered = self.sim.truth.quality(self.node.state.entries).covered
        self.points.append(((sample.t_s, *_totals(sample), len(covered)), sorted(covered - self._seen)))
        self._seen.update(covered)


def _run_independent(config: SimConfig, seed: int) -> dict[str, Any]:
    """PRODUCERS one-node runs on one model (``model_seed``), each its own seed; their lists merged."""
    trackers: list[_Tracker] = []
    reports: list[SimReport] = []
    for producer in range(1, PRODUCERS + 1):
        tracker = _Tracker()
        one = replace(config, rng_seed=derived_seed(seed, "independent producer", producer), model_seed=seed)
        tracker.sim = sim = Simulation(one, on_sample=tracker.sample)
        sim.at(0.0, tracker.remember, label="remember the node")
        reports.append(run_virtual(sim.run()))
        tracker.sample(reports[-1].series[-1])  # what it committed after its last sample
        trackers.append(tracker)
    truth = trackers[0].sim.truth if trackers[0].sim else None
    assert truth is not None
    merged = GlobalList()  # the same dedup as every node: the merge clusters near-duplicates too
    for tracker in trackers:
        assert tracker.node is not None
        merged.add_all(record for line in tracker.node.state.entries for record in (line.record, *line.aliases))
    quality = truth.quality(merged)
    union_ids = listed_entry_ids(merged)
    items = sum(int(row["items"]) for report in reports for row in report.nodes)
    first = reports[0]
    return {
        "curve": _union_curve([tracker.points for tracker in trackers]),
        "coverage": quality.coverage,
        "coverage_of_producible": len(quality.covered & truth.producible) / len(truth.producible),
        "precision": quality.precision,
        "alias_leakage": quality.alias_leakage,
        "duplicate_share": 1.0 - len(union_ids) / items if items else 0.0,
        "lines": quality.lines,
        "entry_ids": len(union_ids),
        "wire_bytes": sum(int(report.cluster["wire_bytes"]) for report in reports),
        "converged": True,
        "end_reason": "merged",
        "stop_reasons": sorted({str(row["stop_reason"]) for report in reports for row in report.nodes}),
        "virtual_s": max(report.virtual_s for report in reports),
        "split_calls": sum(int(report.cluster["split_calls"]) for report in reports),
        "universe": first.universe,
        "sim_params": first.sim_params,
        "popularity_alpha": first.popularity_alpha,
    }


def _union_curve(runs: Sequence[Sequence[tuple[Point, list[EntryId]]]]) -> list[Point]:
    """The runs side by side in virtual time: calls and tokens summed, covered items united.

    Each run holds its last point until its next one (it has stopped after its last).
    """
    events = sorted((point[0], index, point, new) for index, run in enumerate(runs) for point, new in run)
    latest: dict[int, Point] = {}
    covered: set[EntryId] = set()
    curve: list[Point] = []
    for t_s, index, point, new in events:
        latest[index] = point
        covered.update(new)
        merged: Point = (t_s, sum(p[1] for p in latest.values()), sum(p[2] for p in latest.values()),
                         sum(p[3] for p in latest.values()), len(covered))  # fmt: skip
        if curve and curve[-1][0] == t_s:
            curve[-1] = merged
        else:
            curve.append(merged)
    return curve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--budget-per-node", type=int, default=1000,
                        help=f"LLM calls per node of swarmlist; every run's budget is {PRODUCERS}× this")  # fmt: skip
    parser.add_argument("--time-limit-s", type=float, default=100_000.0, help="virtual seconds per run at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations (names as printed)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--save-runs", type=Path, metavar="FILE", help="also keep every run, curves included (.json.gz)")
    parser.add_argument("--load-runs", type=Path, metavar="FILE",
                        help="render the runs kept by --save-runs instead of running (tables, PNG, docs)")  # fmt: skip
    parser.add_argument("--note", default="", help="a line for the docs section, under the command (provenance)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    console = Console() if sys.stdout.isatty() else Console(width=240)
    levers = [lever for lever in LEVERS if not args.only or lever.name in args.only]
    if not levers:
        parser.error(f"--only matches no configuration; names: {', '.join(lever.name for lever in LEVERS)}")
    base = base_config(args.universe, args.budget_per_node, args.time_limit_s)
    diffs = {lever.name: config_diff(lever, base) for lever in levers}
    for lever in levers:
        console.print(f"[bold]{lever.name}[/bold] — {lever.what}: {diffs[lever.name]}", highlight=False)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    if args.load_runs:
        with gzip.open(args.load_runs, "rt", encoding="utf-8") as kept:
            saved = json.load(kept)
        runs = [run for run in saved["runs"] if run["lever"] in diffs]
        started -= saved["elapsed_s"]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        # whole-topic runs (the longest: they spend their budget) first, so the pool does not end on one
        jobs = [(lever, seed) for lever in sorted(levers, key=lambda lever: "partitioning" not in lever.changes)
                for seed in args.seeds]  # fmt: skip
        futures = [pool.submit(run_lever, lever, base, seed) for lever, seed in jobs if not args.load_runs]
        for future in futures:
            run = future.result()
            runs.append(run)
            console.print(f"{run['lever']:<36} seed {run['seed']}: {run['calls']:>6,} calls, {run['coverage']:.1%} of "
                          f"the universe, {run['virtual_s']:,.0f} s virtual, {run['real_s']:.0f} s real; "
                          f"{', '.join(run['stop_reasons'])}", highlight=False)  # fmt: skip
    elapsed = time.perf_counter() - started
    if args.save_runs:
        with gzip.open(args.save_runs, "wt", encoding="utf-8") as keep:
            json.dump({"elapsed_s": elapsed, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, keep)
    for run in runs:
        if run["covered_outside_producible"]:
            console.print(f"{run['lever']} seed {run['seed']}: {run['covered_outside_producible']} covered item(s) "
                          "outside what the model knows (another item's name?), counted in the producible columns",
                          highlight=False)  # fmt: skip
    budget = args.budget_per_node * PRODUCERS
    summary = summarise(runs, [lever.name for lever in levers], items_per_call=base.items_per_call)
    print_tables(console, summary, diffs, budget=budget)
    console.print(f"{elapsed:.0f} s in all ({args.workers} workers)", highlight=False)
    if args.no_write:
        return 0
    info = machine_info()
    plotted = plot(summary, PNG_PATH)
    if not plotted:
        console.print("matplotlib is not installed: no PNG (pip install -e '.[bench]')")
    command = (f"scripts/bench/levers.py --universe {args.universe} --seeds {' '.join(map(str, args.seeds))} "
               f"--budget-per-node {args.budget_per_node} --workers {args.workers}")  # fmt: skip
    markdown = markdown_section(summary, diffs, command=command, budget=budget, seeds=args.seeds, machine=info,
                                elapsed_s=elapsed, png=PNG_PATH if plotted else None, base=base,
                                note=args.note)  # fmt: skip
    options = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    results = {"summary": summary, "diffs": diffs, "args": options, "run_budget_calls": budget,
               "elapsed_s": round(elapsed, 1), "base_config": base.describe(),
               "runs": [{key: value for key, value in run.items() if key != "curve"} for run in runs]}  # fmt: skip
    write_results(SECTION, results, markdown, JSON_PATH, machine=info)
    console.print(f"wrote {JSON_PATH.relative_to(ROOT)}, {PNG_PATH.relative_to(ROOT) if plotted else 'no PNG'} "
                  "and docs/benchmarks.md")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
