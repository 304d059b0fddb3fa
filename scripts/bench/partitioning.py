"""The partitioning lever: calls and prompt tokens to reach each coverage, with and without a partition plan.

One run per (configuration, seed) of ``gossip-sim``'s engine (``node.simulation``): 5 nodes on
the in-memory network, the simulated LLM over a real universe (default european-cities), the
same seeds, prompt builder, parser, dedup, concurrency and per-node call budget — only the
partitioning differs:

- *partitioned*: swarmlist's default — the LLM-made plan, split and retired as it goes
  (``PartitionConfig()``); it stops by itself when every partition is retired;
- *whole topic*: no partitioning, every call about the whole topic with the known entries that
  fit the prompt, and no stop rule, so it spends its whole budget (the most it can reach);
- *whole topic, stop rule*: the same with the node's default stop rule (where a user's run
  would end);
- two more partitioned runs that differ in how entries found before a split reach the
  children's prompts (``PartitionConfig.parent_entries``): *inherited* (what cannot be routed by
  its initial goes into every child's prompt) and *not passed down* (children start empty) —
  beside the default *routed* rule, what each choice costs in calls and duplicates.

Coverage is measured against what the model can produce (``coverage of producible``: the
simulated model never knows about 11% of the long tail, so no system can list it — the share
of the universe is printed beside it). For each level, the calls (all LLM calls, split calls
included) and prompt tokens when the cluster's union first reached it, mean ± sd over the
seeds; the ratio partitioned ÷ whole topic, or, where the whole-topic run never reached the
level within its budget, an upper bound (partitioned ÷ budget). Each run also prints the plan
it built.

Run: .venv/bin/python scripts/bench/partitioning.py [--universe european-cities] [--seeds 1 2 3]
     [--budget-per-node 1000] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from node.estimate import StopRule  # noqa: E402
from node.simulation import SimConfig, SimSample, run_simulation  # noqa: E402
from partitioning.config import PartitionConfig  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Partitioning lever"
JSON_PATH = ROOT / "docs" / "benchmarks" / "partitioning.json"
LEVELS = (0.1, 0.15, 0.5, 0.7, 0.8, 0.9, 0.95)  # coverage of what the model can produce
NEVER_STOP = StopRule(remaining_threshold=0.0, min_yield=0.0)


@dataclass(frozen=True)
class Variant:
    name: str
    partitioning: PartitionConfig
    stop: StopRule


VARIANTS = (
    Variant("partitioned", PartitionConfig(), StopRule()),
    Variant("partitioned, parent entries inherited", PartitionConfig(parent_entries="inherit"), StopRule()),
    Variant("partitioned, parent entries not passed down", PartitionConfig(parent_entries="none"), StopRule()),
    Variant("whole topic", PartitionConfig.off(), NEVER_STOP),
    Variant("whole topic, stop rule", PartitionConfig.off(), StopRule()),
)


def run_one(variant: Variant, base: SimConfig) -> dict[str, Any]:
    """One simulated run; returns its curve (calls, prompt tokens, coverage) and final figures."""
    config = replace(base, partitioning=variant.partitioning, stop=variant.stop)
    curve: list[tuple[int, int, float]] = []

    def sample(point: SimSample) -> None:
        curve.append((sum(n.calls for n in point.nodes), sum(n.prompt_tokens for n in point.nodes),
                      point.coverage_union))  # fmt: skip

    started = time.perf_counter()
    report = run_simulation(config, on_sample=sample)
    cluster = report.cluster
    truth, producible = report.universe["truth_size"], report.universe["producible"]
    scale = truth / producible  # coverage of producible = coverage of the truth × truth / producible
    reached: dict[str, dict[str, int] | None] = {}
    for level in LEVELS:
        hit = next(((calls, tokens) for calls, tokens, cov in curve if cov * scale >= level), None)
        reached[f"{level:.2f}"] = {"calls": hit[0], "prompt_tokens": hit[1]} if hit else None
    plan = report.plan
    return {
        "variant": variant.name,
        "seed": config.rng_seed,
        "calls": cluster["calls"],
        "split_calls": cluster["split_calls"],
        "prompt_tokens": cluster["prompt_tokens"],
        "coverage_of_producible": cluster["coverage_of_producible"],
        "coverage": cluster["coverage"],
        "precision_min": cluster["precision_min"],
        "duplicate_share": cluster["duplicate_share"],
        "end_reason": report.end_reason,
        "stop_reasons": sorted({str(node["stop_reason"]) for node in report.nodes}),
        "virtual_s": report.virtual_s,
        "real_s": round(time.perf_counter() - started, 1),
        "reached": reached,
        "plan": {key: plan[key] for key in ("partitions", "depth", "leaves", "retired_leaves", "largest_leaf",
                                            "superseded_events")} if plan else None,  # fmt: skip
        "sim_params": report.sim_params,
        "popularity_alpha": report.popularity_alpha,
        "universe": report.universe,
    }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: Sequence[dict[str, Any]], budget_calls: int) -> dict[str, Any]:
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    summary: dict[str, Any] = {}
    for name, group in by_variant.items():
        levels: dict[str, Any] = {}
        for level in (f"{level:.2f}" for level in LEVELS):
            hits = [run["reached"][level] for run in group]
            if all(hit is not None for hit in hits):
                levels[level] = {
                    "calls": _mean_sd([hit["calls"] for hit in hits if hit]),
                    "prompt_tokens": _mean_sd([hit["prompt_tokens"] for hit in hits if hit]),
                }
            else:
                levels[level] = {"reached_in": sum(hit is not None for hit in hits), "runs": len(hits)}
        summary[name] = {
            "levels": levels,
            "calls": _mean_sd([run["calls"] for run in group]),
            "prompt_tokens": _mean_sd([run["prompt_tokens"] for run in group]),
            "coverage_of_producible": _mean_sd([run["coverage_of_producible"] for run in group]),
            "coverage": _mean_sd([run["coverage"] for run in group]),
            "precision_min": _mean_sd([run["precision_min"] for run in group]),
            "duplicate_share": _mean_sd([run["duplicate_share"] for run in group]),
            "split_calls": _mean_sd([run["split_calls"] for run in group]),
        }
    ratios: dict[str, Any] = {}
    part, whole = summary.get("partitioned"), summary.get("whole topic")
    if part and whole:
        for level, hit in part["levels"].items():
            other = whole["levels"][level]
            if "calls" not in hit:
                ratios[level] = None
            elif "calls" in other:
                if other["calls"][0] <= 0 or other["prompt_tokens"][0] <= 0:
                    ratios[level] = None  # reached before a call had finished: no ratio to take
                    continue
                ratios[level] = {"calls": hit["calls"][0] / other["calls"][0],
                                 "prompt_tokens": hit["prompt_tokens"][0] / other["prompt_tokens"][0]}  # fmt: skip
            else:  # the whole-topic runs never got there: their whole budget is a lower bound
                ratios[level] = {"calls_below": hit["calls"][0] / budget_calls}
    summary["ratios"] = ratios
    return summary


def _fmt(value: tuple[float, float], *, digits: int = 0) -> str:
    mean, sd = value
    return f"{mean:,.{digits}f} ± {sd:,.{digits}f}"


def tables(summary: dict[str, Any], budget_calls: int) -> tuple[Table, Table, str]:
    levels = [f"{level:.2f}" for level in LEVELS]
    reach = Table(title="calls / prompt tokens to reach each coverage of what the model can produce (mean ± sd)")
    reach.add_column("configuration")
    for level in levels:
        reach.add_column(f"{float(level):.0%}", justify="right")
    md = ["| configuration | " + " | ".join(f"{float(level):.0%}" for level in levels) + " |",
          "|---|" + "---:|" * len(levels)]  # fmt: skip
    for name in (variant.name for variant in VARIANTS):
        if name not in summary:
            continue
        cells = []
        for level in levels:
            hit = summary[name]["levels"][level]
            if "calls" in hit:
                cells.append(f"{_fmt(hit['calls'])} calls / {hit['prompt_tokens'][0] / 1e6:,.2f} M tok")
            else:
                cells.append(f"not reached ({hit['reached_in']}/{hit['runs']} runs)")
        reach.add_row(name, *cells)
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    ratio_cells = []
    for level in levels:
        ratio = summary["ratios"].get(level)
        if ratio is None:
            ratio_cells.append("—")
        elif "calls" in ratio:
            ratio_cells.append(f"{ratio['calls']:.2f}× calls, {ratio['prompt_tokens']:.2f}× tokens")
        else:
            ratio_cells.append(f"< {ratio['calls_below']:.2f}× calls (whole topic never got there in {budget_calls:,})")
    reach.add_row("partitioned ÷ whole topic", *ratio_cells)
    md.append("| **partitioned ÷ whole topic** | " + " | ".join(ratio_cells) + " |")
    final = Table(title="where each run ended (mean ± sd)")
    for column in ("configuration", "calls (splits)", "prompt tokens", "coverage of producible",
                   "coverage of universe", "precision (worst node)", "duplicate share"):  # fmt: skip
        final.add_column(column, justify="left" if column == "configuration" else "right")
    md += ["", "| configuration | calls (splits) | prompt tokens | coverage of producible | coverage of universe "
           "| precision | duplicate share |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name in (variant.name for variant in VARIANTS):
        if name not in summary:
            continue
        row = summary[name]
        cells = [f"{_fmt(row['calls'])} ({row['split_calls'][0]:,.0f})", _fmt(row["prompt_tokens"]),
                 *(f"{row[key][0]:.1%} ± {row[key][1]:.1%}" for key in ("coverage_of_producible", "coverage",
                                                                         "precision_min", "duplicate_share"))]  # fmt: skip
        final.add_row(name, *cells)
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    return reach, final, "\n".join(md)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--budget-per-node", type=int, default=1000, help="LLM calls per node, every configuration")
    parser.add_argument("--time-limit-s", type=float, default=20_000.0, help="virtual seconds per run at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    console = Console() if sys.stdout.isatty() else Console(width=220)
    base = SimConfig(universe=args.universe, nodes=args.nodes, max_calls=args.budget_per_node,
                     time_limit_s=args.time_limit_s, sample_interval_s=1.0, idle_stop_s=30.0)  # fmt: skip
    budget_calls = args.budget_per_node * args.nodes
    jobs = [(variant, replace(base, rng_seed=seed)) for seed in args.seeds for variant in VARIANTS]
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, variant, config) for variant, config in jobs]
        for future in futures:
            run = future.result()
            runs.append(run)
            plan = run["plan"]
            plan_text = (f"plan depth {plan['depth']}, {plan['leaves']} leaves, largest "
                         f"{plan['largest_leaf']['entries'] if plan['largest_leaf'] else 0}") if plan else "no plan"
            console.print(
                f"{run['variant']:<24} seed {run['seed']}: {run['calls']:>6,} calls, "
                f"{run['coverage_of_producible']:.1%} of producible, {run['real_s']:.0f} s real; {plan_text}; "
                f"{', '.join(run['stop_reasons'])}", highlight=False,
            )  # fmt: skip
    summary = summarise(runs, budget_calls)
    reach, final, markdown = tables(summary, budget_calls)
    console.print(reach)
    console.print(final)
    first = runs[0]
    params = (f"Simulated LLM parameters {first['sim_params']['version']} (popularity α {first['popularity_alpha']:.3f}); "
              f"universe {args.universe}: {first['universe']['truth_size']:,} true items, "
              f"{first['universe']['producible']:,} the model can produce; {args.nodes} nodes, concurrency 2, "
              f"20 items per call, budget {args.budget_per_node:,} calls per node; seeds {args.seeds}.")  # fmt: skip
    console.print(params, highlight=False)
    console.print(f"{time.perf_counter() - started:.0f} s in all", highlight=False)
    if not args.no_write:
        info = machine_info()
        intro = (
            "5 `gossip-sim` nodes, the same seeds, prompts, parser, dedup, concurrency and per-node call budget; only "
            "the partitioning differs. Each cell: all LLM calls (split calls included) and prompt tokens until the "
            "cluster first held that share of what the simulated model can produce, mean ± sd over the seeds. The "
            "last row divides partitioned by whole topic; where the whole-topic runs never got there, the bound uses "
            "their whole budget. The second table: where each run ended (precision counts invented entries, "
            "which verification would remove)."
        )
        markdown = (f"`scripts/bench/partitioning.py --universe {args.universe} --seeds {' '.join(map(str, args.seeds))} "
                    f"--budget-per-node {args.budget_per_node}`\n\n{intro}\n\n{markdown}\n\n{params}\n\n"
                    f"{machine_summary(info)}")  # fmt: skip
        write_results(SECTION, {"summary": summary, "runs": runs, "levels": LEVELS,
                                "budget_calls": budget_calls, "args": vars(args)},
                      markdown, JSON_PATH, machine=info)  # fmt: skip
        console.print(f"wrote {JSON_PATH.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
