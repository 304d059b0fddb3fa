"""Precision: the default list with and without verification calls, on the same runs' seeds.

5 nodes on european-cities (``gossip-sim``'s engine, partitioning on), the simulated LLM as
instrument — including its verification answers (``docs/simulated-llm.md``: it calls a real item
it knows "not real" with probability ``p_false_reject_known`` and catches an invention with
``p_reject_invented``, rates from Chain-of-Verification, arXiv 2309.11495). Only the
verification policy differs between configurations:

- *no verification*: statuses from repeated generation alone (nothing is rejected);
- *verification, majority*: up to ``--share`` of the calls verify entries generated once; an
  entry is rejected when more verdicts say "not real" than "real";
- *verification, strict*: the same, but one "not real" rejects an entry never repeated.

Per configuration, mean ± sd over the seeds: precision of the default list (rejected lines
left out; worst node), coverage of the universe and of what the model can produce, recall lost
to wrong rejections (real items whose only lines were rejected), the share of calls spent
verifying, rejected lines. The issue's targets: precision ≥ 99.5% at ≤ 10% extra calls, recall
loss ≤ 0.5%.

Run: .venv/bin/python scripts/bench/precision.py [--seeds 1 2] [--share 0.1] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from node.evidence import VerificationPolicy  # noqa: E402
from node.simulation import SimConfig, run_simulation  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Precision"
JSON_PATH = ROOT / "docs" / "benchmarks" / "precision.json"


def variants(share: float) -> dict[str, VerificationPolicy]:
    return {
        "no verification": VerificationPolicy.off(),
        "verification, majority": VerificationPolicy(call_share=share, strict_singletons=False),
        "verification, strict": VerificationPolicy(call_share=share, strict_singletons=True),
    }


def run_one(name: str, policy: VerificationPolicy, base: SimConfig) -> dict[str, Any]:
    started = time.perf_counter()
    report = run_simulation(replace(base, verification=policy))
    cluster = report.cluster
    return {
        "variant": name,
        "seed": base.rng_seed,
        "precision": cluster["precision_min"],
        "coverage": cluster["coverage"],
        "coverage_of_producible": cluster["coverage_of_producible"],
        "recall_lost": cluster["recall_lost_to_rejection"],
        "calls": cluster["calls"],
        "verify_calls": cluster["verify_calls"],
        "verify_share": cluster["verify_calls"] / cluster["calls"] if cluster["calls"] else 0.0,
        "rejected_lines": cluster["rejected_lines_max"],
        "lines": max(int(node["entries"]) for node in report.nodes),
        "real_s": round(time.perf_counter() - started, 1),
        "sim_params": report.sim_params,
    }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    base = SimConfig(universe=args.universe, nodes=5, time_limit_s=20_000.0, idle_stop_s=30.0)
    jobs = [(name, policy, replace(base, rng_seed=seed)) for seed in args.seeds
            for name, policy in variants(args.share).items()]  # fmt: skip
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for run in pool.map(run_one, *zip(*jobs, strict=True)):
            runs.append(run)
            console.print(f"{run['variant']:<24} seed {run['seed']}: precision {run['precision']:.1%}, coverage "
                          f"{run['coverage']:.1%}, recall lost {run['recall_lost']:.2%}, verify share "
                          f"{run['verify_share']:.1%}, {run['real_s']:.0f} s", highlight=False)  # fmt: skip
    columns = ("precision", "coverage", "coverage_of_producible", "recall_lost", "verify_share", "rejected_lines",
               "calls")  # fmt: skip
    table = Table(title=f"precision of the default list, {args.universe}, 5 nodes (mean ± sd over seeds {args.seeds})")
    table.add_column("configuration")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    md = ["| configuration | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
          "|---|" + "---:|" * len(columns)]  # fmt: skip
    summary: dict[str, Any] = {}
    for name in variants(args.share):
        group = [run for run in runs if run["variant"] == name]
        stats = {column: _mean_sd([float(run[column]) for run in group]) for column in columns}
        summary[name] = stats
        cells = [f"{stats[c][0]:,.0f} ± {stats[c][1]:,.0f}" if c in ("rejected_lines", "calls")
                 else f"{stats[c][0]:.2%} ± {stats[c][1]:.2%}" for c in columns]  # fmt: skip
        table.add_row(name, *cells)
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    console.print(table)
    params = runs[0]["sim_params"]
    note = (f"Simulated LLM parameters {params['version']}: p_false_reject_known {params.get('p_false_reject_known')}, "
            f"p_reject_invented {params.get('p_reject_invented')}; verification share {args.share}; seeds {args.seeds}.")  # fmt: skip
    console.print(note, highlight=False)
    if not args.no_write:
        info = machine_info()
        markdown = (f"`scripts/bench/precision.py --seeds {' '.join(map(str, args.seeds))} --share {args.share}`\n\n"
                    + "\n".join(md) + f"\n\n{note}\n\n{machine_summary(info)}")  # fmt: skip
        write_results(SECTION, {"summary": summary, "runs": runs, "args": vars(args)}, markdown, JSON_PATH, machine=info)
        console.print(f"wrote {JSON_PATH.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
