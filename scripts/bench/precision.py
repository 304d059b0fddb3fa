"""Precision: the default list with and without verification calls, and with a fixed or adaptive ask, on the same seeds.

5 nodes on european-cities (``gossip-sim``'s engine, partitioning on), the simulated LLM as
instrument — including its verification answers (``docs/simulated-llm.md``: it calls a real item
it knows "not real" with probability ``p_false_reject_known`` and catches an invention with
``p_reject_invented``, rates from Chain-of-Verification, arXiv 2309.11495). Only the
verification policy or the ask differs between configurations:

- *no verification, fixed ask*: statuses from repeated generation alone (nothing is rejected);
  every call asks ``items_per_call`` (20) items;
- *no verification, adaptive ask*: the same, but a call asks ``ceil(ask_gain × the leaf's
  recent fresh entries per call)`` items, within ``min_ask``..20 (``partitioning.ask``): a nearly
  dry leaf is probed with small asks, since the model invents to fill a count it cannot (issue
  #15); once at the default ``ask_gain`` (1 / ``low_yield_share``), once at ``--high-gain``;
- *verification, majority*: up to ``--share`` of the calls verify entries generated once; an
  entry is rejected when more verdicts say "not real" than "real";
- *verification, strict*: the same, but one "not real" rejects an entry never repeated;
- *verification, sequential* (the default rule): verdicts weighed by the verifier's error
  rates until their likelihood ratio passes 99 either way (``node.evidence``), at the default
  batch of 80 entries a call and at 160 (every verification row with the default ask).

Per configuration, mean ± sd over the seeds: precision of the default list (rejected lines
left out; worst node), coverage of the universe and of what the model can produce, recall lost
to wrong rejections (real items whose only lines were rejected), the share of calls spent
verifying, rejected lines, calls, tokens, invented lines (lines naming no real item, worst
node) and the plan's leaves. The verification issue's targets: precision ≥ 99.5% at ≤ 10% extra
calls, recall loss ≤ 0.5%. Issue #15 adopts the adaptive ask as the default only if it raises
precision while keeping ≥ 98% of the fixed ask's coverage of producible at ≤ 10% more calls;
the script prints that verdict.

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
from partitioning.config import PartitionConfig  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Precision"
ASK_NOTE = (
    "*Adaptive ask* (issue #15, `partitioning.ask`): a call asks ceil(ask_gain × the leaf's fresh entries per call "
    "over its last `window_calls` calls) items, within min_ask..20; a leaf is still split or retired when its "
    "fresh entries per item *really asked* fall below `split_yield_share` (a big leaf) or `low_yield_share` (any "
    "other) — the judge recomputes each call's ask "
    "from the calls before it, since observation records do not carry it. *Invented lines*: lines naming no "
    "real item of the universe (worst node); *leaves*: leaves of the final plan."
)
RULE_NOTE = (
    "*Majority* and *strict*: the fixed-count rules, at most 3 verdicts an entry; *sequential*: each verdict weighed "
    "by the verifier's error rates (×2.8 for 'real', ×0.47 for 'not real') until the ratio passes 99 either way, at "
    "most 24 verdicts an entry (`node/evidence.py`). *Recall lost*: real items whose only lines were rejected, as a "
    "share of the universe."
)
JSON_PATH = ROOT / "docs" / "benchmarks" / "precision.json"


FIXED, ADAPTIVE = "no verification, fixed ask", "no verification, adaptive ask"
ADOPT_MIN_COVERAGE = 0.98  # of the fixed ask's coverage of producible
ADOPT_MAX_EXTRA_CALLS = 0.10


def variants(share: float, high_gain: float) -> dict[str, tuple[VerificationPolicy, PartitionConfig]]:
    default = PartitionConfig()
    return {
        FIXED: (VerificationPolicy.off(), replace(default, adaptive_ask=False)),
        ADAPTIVE: (VerificationPolicy.off(), replace(default, adaptive_ask=True)),
        f"{ADAPTIVE}, gain {high_gain:g}": (VerificationPolicy.off(),
                                            replace(default, adaptive_ask=True, ask_gain=high_gain)),
        "verification, majority": (VerificationPolicy(call_share=share, rule="majority", max_checks=3), default),
        "verification, strict": (VerificationPolicy(call_share=share, rule="strict", max_checks=3), default),
        "verification, sequential": (VerificationPolicy(call_share=share), default),
        "verification, sequential, batch 160": (VerificationPolicy(call_share=share, batch=160), default),
    }  # fmt: skip


def run_one(name: str, variant: tuple[VerificationPolicy, PartitionConfig], base: SimConfig) -> dict[str, Any]:
    started = time.perf_counter()
    policy, partitioning = variant
    report = run_simulation(replace(base, verification=policy, partitioning=partitioning))
    cluster = report.cluster
    worst = min(report.nodes, key=lambda node: float(node["precision"]))
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
        "tokens": cluster["tokens"],
        "invented_lines": round(int(worst["entries"]) * (1.0 - float(worst["precision"]))),
        "leaves": report.plan["leaves"] if report.plan else 0,
        "adaptive_ask": partitioning.adaptive_ask,
        "ask_gain": partitioning.ask_gain,
        "min_ask": partitioning.min_ask,
        "real_s": round(time.perf_counter() - started, 1),
        "sim_params": report.sim_params,
    }


def adoption(fixed: dict[str, tuple[float, float]], adaptive: dict[str, tuple[float, float]], name: str) -> str:
    """Issue #15's rule, on the means: higher precision, ≥ 98% of the coverage of producible, ≤ 10% more calls."""
    precision_gain = adaptive["precision"][0] - fixed["precision"][0]
    coverage_ratio = adaptive["coverage_of_producible"][0] / fixed["coverage_of_producible"][0]
    extra_calls = adaptive["calls"][0] / fixed["calls"][0] - 1.0
    invented_ratio = adaptive["invented_lines"][0] / max(1.0, fixed["invented_lines"][0])
    passes = precision_gain > 0 and coverage_ratio >= ADOPT_MIN_COVERAGE and extra_calls <= ADOPT_MAX_EXTRA_CALLS
    return (f"*{name}* vs the fixed ask: precision {precision_gain * 100:+.1f} points, coverage of producible "
            f"{coverage_ratio:.1%} of the fixed ask's, calls {extra_calls:+.1%}, invented lines ×{invented_ratio:.2f} "
            f"— {'meets' if passes else 'misses'} the adoption rule (precision up, coverage ≥ "
            f"{ADOPT_MIN_COVERAGE:.0%}, calls ≤ +{ADOPT_MAX_EXTRA_CALLS:.0%})")  # fmt: skip


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--high-gain", type=float, default=4.0, help="the second adaptive ask's ask_gain")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations (names as printed)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    chosen = variants(args.share, args.high_gain)
    if args.only:
        unknown = sorted(set(args.only) - set(chosen))
        if unknown:
            parser.error(f"unknown configuration(s) {unknown}; choose from {sorted(chosen)}")
        chosen = {name: variant for name, variant in chosen.items() if name in args.only}
    logging.basicConfig(level=logging.ERROR)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    base = SimConfig(universe=args.universe, nodes=5, time_limit_s=20_000.0, idle_stop_s=30.0)
    jobs = [(name, variant, replace(base, rng_seed=seed)) for seed in args.seeds
            for name, variant in chosen.items()]  # fmt: skip
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for run in pool.map(run_one, *zip(*jobs, strict=True)):
            runs.append(run)
            console.print(f"{run['variant']:<44} seed {run['seed']}: precision {run['precision']:.1%}, coverage "
                          f"{run['coverage']:.1%}, recall lost {run['recall_lost']:.2%}, verify share "
                          f"{run['verify_share']:.1%}, calls {run['calls']}, invented lines {run['invented_lines']}, "
                          f"{run['real_s']:.0f} s", highlight=False)  # fmt: skip
    columns = ("precision", "coverage", "coverage_of_producible", "recall_lost", "verify_share", "rejected_lines",
               "calls", "tokens", "invented_lines", "leaves")  # fmt: skip
    counts = ("rejected_lines", "calls", "tokens", "invented_lines", "leaves")
    table = Table(title=f"precision of the default list, {args.universe}, 5 nodes (mean ± sd over seeds {args.seeds})")
    table.add_column("configuration")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    md = ["| configuration | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
          "|---|" + "---:|" * len(columns)]  # fmt: skip
    summary: dict[str, Any] = {}
    for name in chosen:
        group = [run for run in runs if run["variant"] == name]
        stats = {column: _mean_sd([float(run[column]) for run in group]) for column in columns}
        summary[name] = stats
        cells = [f"{stats[c][0]:,.0f} ± {stats[c][1]:,.0f}" if c in counts
                 else f"{stats[c][0]:.2%} ± {stats[c][1]:.2%}" for c in columns]  # fmt: skip
        table.add_row(name, *cells)
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    console.print(table)
    params = runs[0]["sim_params"]
    note = (f"Simulated LLM parameters {params['version']}: p_false_reject_known {params.get('p_false_reject_known')}, "
            f"p_reject_invented {params.get('p_reject_invented')}, invented_rate {params.get('invented_rate')}, "
            f"invented_rate_exhausted {params.get('invented_rate_exhausted')}; verification share {args.share}; "
            f"adaptive ask: min_ask {PartitionConfig().min_ask}, ask_gain {PartitionConfig().ask_gain:g} and "
            f"{args.high_gain:g}; default ask: {'adaptive' if PartitionConfig().adaptive_ask else 'fixed'}; "
            f"seeds {args.seeds}.")  # fmt: skip
    verdicts = [adoption(summary[FIXED], summary[name], name) for name in summary
                if name.startswith(ADAPTIVE) and FIXED in summary]  # fmt: skip
    note += "\n\n" + "\n".join(f"- {verdict}" for verdict in verdicts)
    console.print(note, highlight=False)
    if not args.no_write:
        info = machine_info()
        markdown = (f"`scripts/bench/precision.py --seeds {' '.join(map(str, args.seeds))} --share {args.share} "
                    f"--high-gain {args.high_gain:g} --workers {args.workers}`\n\n"
                    + "\n".join(md) + f"\n\n{ASK_NOTE}\n\n{RULE_NOTE}\n\n{note}\n\n{machine_summary(info)}")  # fmt: skip
        write_results(SECTION, {"summary": summary, "runs": runs, "args": vars(args)}, markdown, JSON_PATH, machine=info)
        console.print(f"wrote {JSON_PATH.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
