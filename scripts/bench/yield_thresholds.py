"""How the yield thresholds that split and retire a leaf were chosen: the candidates, side by side.

``partitioning.policy.judge`` splits a big leaf once its yield (fresh entries per item asked over
its last ``window_calls`` calls) falls below ``split_yield_share`` and retires any other leaf
below ``low_yield_share``; a small dry leaf (< 40 known) is split instead when Chao1 sees at least
``min_split_remaining`` unseen entries. Each candidate here is swarmlist as the levers benchmark runs it
(5 gossip nodes on european-cities, the same seeds, budget and simulated model; see
``scripts/bench/levers.py``) with only those four fields changed. Per candidate, mean ± sd over
the seeds: LLM calls (split calls included) until the cluster's list first held 10/20/40/60/70%
of the universe, and where the runs ended: coverage, calls, split calls, precision.

The defaults were chosen from this table on seeds 1-3, so on those seeds they are fitted; run
other seeds (``--seeds 4 5 6``) to see them held out.

Run: .venv/bin/python scripts/bench/yield_thresholds.py [--seeds 1 2 3] [--workers 2] [--no-write]
     [--only NAME ...] [--save-runs FILE | --load-runs FILE] [--note TEXT]
     (the full run: 7 candidates × 3 seeds, ~35 min on 2 cores)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from partitioning.config import PartitionConfig  # noqa: E402
from scripts.bench.levers import Lever, base_config, run_lever  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Partitioning: yield thresholds"
JSON_PATH = ROOT / "docs" / "benchmarks" / "yield_thresholds.json"
LEVELS = (0.1, 0.2, 0.4, 0.6, 0.7)
DEFAULT = PartitionConfig()


def _candidate(split: float, window: int, retire: float, small_unseen: float = DEFAULT.min_split_remaining) -> Lever:
    config = PartitionConfig(split_yield_share=split, window_calls=window, low_yield_share=retire,
                             min_split_remaining=small_unseen)  # fmt: skip
    default = " (default)" if config == DEFAULT else ""
    small = ""
    if small_unseen != DEFAULT.min_split_remaining:
        small = ", small dry parts never split" if math.isinf(small_unseen) else f", small dry parts split at ≥ {small_unseen:g} unseen"
    name = f"split < {split}, retire < {retire}, window {window}{small}{default}"
    return Lever(name, "", {"partitioning": config})


CANDIDATES = (
    _candidate(0.4, 3, 0.4),  # one share for both, as before the split share existed
    _candidate(0.8, 3, 0.4),
    _candidate(0.8, 3, 0.3),
    _candidate(0.8, 2, 0.4),
    _candidate(0.8, 2, 0.3),
    # the default's rule for small parts (< 40 known): split once dry if Chao1 sees >= 10 unseen
    _candidate(0.8, 2, 0.4, small_unseen=20.0),
    _candidate(0.8, 2, 0.4, small_unseen=math.inf),
)


def _reach(curve: Sequence[Sequence[float]], count: float) -> int | None:
    """Calls when the curve (``levers.Point`` rows) first held ``count`` truth items."""
    return next((int(point[1]) for point in curve if point[4] >= count), None)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per candidate: calls to each level (None where a run never got there) and the ends."""
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        group = [run for run in runs if run["lever"] == name]
        if not group:
            continue
        truth = int(group[0]["universe"]["truth_size"])
        reached = {f"{level:.0%}": [_reach(run["curve"], level * truth) for run in group] for level in LEVELS}
        summary[name] = {
            "seeds": [run["seed"] for run in group],
            "calls_to": {level: None if None in hits else _mean_sd([hit for hit in hits if hit is not None])
                         for level, hits in reached.items()},  # fmt: skip
            **{key: _mean_sd([float(run[key]) for run in group])
               for key in ("coverage", "calls", "split_calls", "precision")},  # fmt: skip
        }
    return summary


def _cell(value: tuple[float, float] | None, percent: bool = False) -> str:
    if value is None:
        return "not reached"
    mean, sd = value
    return f"{mean:.1%} ± {sd:.1%}" if percent else f"{mean:,.0f} ± {sd:,.0f}"


def rows(summary: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    return [[name, *(_cell(row["calls_to"][f"{level:.0%}"]) for level in LEVELS), _cell(row["coverage"], True),
             _cell(row["calls"]), _cell(row["split_calls"]), _cell(row["precision"], True)]
            for name, row in summary.items()]  # fmt: skip


HEADER = ["candidate", *(f"calls to {level:.0%}" for level in LEVELS), "ends at", "calls", "split calls", "precision"]


def markdown(summary: Mapping[str, Mapping[str, Any]], *, command: str, seeds: Sequence[int],
             machine: Mapping[str, Any], sim_params: str, note: str = "") -> str:  # fmt: skip
    lines = [f"`{command}`", "", *([note, ""] if note else []),
             "Swarmlist as the levers benchmark runs it (5 nodes, european-cities, 1,000 calls per node at most), "
             "only the yield thresholds changed: *split* = `split_yield_share` (a leaf with ≥ 40 known entries is "
             "split below it), *retire* = `low_yield_share` (below it, a leaf with ≥ 40 known entries is split, a "
             "smaller one split if Chao1 estimates ≥ `min_split_remaining` unseen entries in it and retired "
             "otherwise), *window* = `window_calls` (calls the yield is judged over); *small dry parts* names a "
             "`min_split_remaining` other than the default 10. Coverage is of the universe (7,706 cities; the model knows ~89%); mean ± sd over the seeds.", "",
             "| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows(summary)]
    lines += ["", f"Simulated LLM parameters {sim_params}; seeds {list(seeds)}.", "",
              machine_summary(machine)]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--save-runs", type=Path, metavar="FILE", help="also keep every run, curves included (.json.gz)")
    parser.add_argument("--load-runs", type=Path, metavar="FILE", help="render the runs of a --save-runs file")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="only these candidates (names as printed); the docs keep the full table, so with --only "
                             "nothing is written: save the runs, merge them and render with --load-runs")  # fmt: skip
    parser.add_argument("--note", default="", help="a line for the docs section, under the command (provenance)")
    args = parser.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=240)
    base = base_config("european-cities", 1000, 100_000.0)
    names = [candidate.name for candidate in CANDIDATES]
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"no candidate named {sorted(unknown)}; the candidates: {names}")
    if args.only:
        names = [name for name in names if name in args.only]
    started = time.perf_counter()
    if args.load_runs:
        with gzip.open(args.load_runs, "rt", encoding="utf-8") as kept:
            runs = [run for run in json.load(kept)["runs"] if run["lever"] in names and run["seed"] in args.seeds]
    else:
        chosen = [candidate for candidate in CANDIDATES if candidate.name in names]
        jobs = [(candidate, seed) for candidate in chosen for seed in args.seeds]
        runs = []
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(run_lever, candidate, base, seed) for candidate, seed in jobs]
            for future in futures:
                run = future.result()
                runs.append(run)
                console.print(f"{run['lever']:<48} seed {run['seed']}: {run['calls']:>6,} calls, "
                              f"{run['coverage']:.1%} of the universe", highlight=False)  # fmt: skip
    if args.save_runs:
        with gzip.open(args.save_runs, "wt", encoding="utf-8") as keep:
            json.dump({"runs": runs}, keep)
    if not runs:
        parser.error("no run to show: --load-runs holds none of these candidates and seeds")
    summary = summarise(runs, names)
    table = Table(*HEADER, title=f"yield thresholds, seeds {args.seeds}")
    for row in rows(summary):
        table.add_row(*row)
    console.print(table)
    console.print(f"{time.perf_counter() - started:.0f} s", highlight=False)
    if args.no_write or args.only:
        return 0
    info = machine_info()
    command = f"scripts/bench/yield_thresholds.py --seeds {' '.join(map(str, args.seeds))} --workers {args.workers}"
    sim_params = str(runs[0]["sim_params"]["version"])
    text = markdown(summary, command=command, seeds=args.seeds, machine=info, sim_params=sim_params, note=args.note)
    write_results(SECTION, {"summary": summary, "args": {k: str(v) for k, v in vars(args).items()}}, text, JSON_PATH,
                  machine=info)  # fmt: skip
    console.print(f"wrote {JSON_PATH.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
