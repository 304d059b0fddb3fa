"""How much verification the precision targets need at least, on this simulated LLM.

Issue #15 asks for precision ≥ 99.5% with ≤ 0.5% of recall lost, at ≤ 10% extra calls. This
script asks whether any verification policy that sees the evidence a swarmlist node records
(below) can do that, and answers with a lower bound on the verdicts it must collect.

1. A 5-node run on european-cities, verification off (``gossip-sim``'s engine, the default
   plan), per seed. Every line of the final list is put in a *cell* by the evidence a node
   has before verifying: generated once or repeated, and the largest share of new items in
   the answers that generated it, in tenths (an answer that is mostly repeats came from a
   partition that ran dry, where the model invents: the strongest prior a node has). The
   ground truth says how many lines of each cell are real (r) and invented (v), as the
   precision benchmark reads them (a line is real when its shown name is); a real line whose
   items other lines cover too costs no recall when rejected, so it is left out of the cells
   (free to keep or drop) and only counted among the real lines.
2. A policy may treat each cell differently: keep it all, reject it all, or test its lines
   with verdicts. A test that keeps an invention with probability a and rejects a real line
   with probability b needs, per line, at least d(1−b ‖ a) / D(real ‖ invented) verdicts on
   a real line and d(a ‖ 1−b) / D(invented ‖ real) on an invented one, in expectation — Wald's
   bound for sequential tests (d: the binary Kullback–Leibler divergence; D: that of one
   verdict, from the verifier's rates). It holds for every test, however adaptive.
3. The targets, as the precision benchmark measures them: kept inventions ≤ 0.5/99.5 of the
   real lines (all of them kept: generous); rejected real lines ≤ 0.5% of the universe. The
   cheapest choice of a test per cell under both is bounded from below by Lagrangian duality
   (weak duality: every multiplier pair gives a lower bound; the best one found is printed).
   The inner minimum over (a, b) is taken over boxes of a grid 12% apart over seven decades,
   each box scored at its cheapest corner for the divergences and for the penalties
   separately, so the grid can only lower the bound; ``tests/scripts/test_precision_bound.py``
   also checks it against a real sequential test's spending.

The bound is generous to the policy: it knows each cell's share of real lines (a node does not;
the lines' labels are taken as independent draws with that share), verdicts are independent
draws (the simulator's; a real model's errors on one item are correlated, which costs more
verdicts), and no verdict is wasted on overshoot. It covers policies that see these cells:
evidence finer than a cell (which answers, which partition, the text itself) is outside it. So if
even this bound needs more than 10% extra calls at the largest batch a call may carry in every
seed, the targets are out of reach on this instrument for a policy built on this evidence.

Run: .venv/bin/python scripts/bench/precision_bound.py [--seeds 1 2] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.testing import run_virtual  # noqa: E402
from node.errors import LLMError  # noqa: E402
from node.evidence import VerificationPolicy  # noqa: E402
from node.llm.sim.backend import SimulatedBackend  # noqa: E402
from node.prompts import PromptTemplates, build_verify_prompt  # noqa: E402
from node.sim_report import GroundTruth  # noqa: E402
from node.simulation import SimConfig, Simulation  # noqa: E402
from node.state import NodeState  # noqa: E402
from partitioning.config import PartitionConfig  # noqa: E402
from scripts.bench.report import machine_info, machine_summary, write_results  # noqa: E402

SECTION = "Precision: the least verification the targets need"
JSON_PATH = ROOT / "docs" / "benchmarks" / "precision_bound.json"
PRECISION_TARGET = 0.995
RECALL_LOSS_TARGET = 0.005  # of the universe, as the precision benchmark's "recall lost"
CALL_SHARE_TARGET = 0.10
ASKS = ("fixed", "adaptive")  # the default ask, and partitioning.ask's (fewer inventions, less coverage)
BATCHES = (80, 200)  # the default batch, and the most VerificationPolicy allows
# Verifiers better than the one measured (says "real" of a real item, of an invented one): what
# the bound would be with them — how good a verifier the targets need. Not the simulator's rates.
BETTER_VERIFIERS = ((0.8, 0.1), (0.9, 0.05), (0.95, 0.02))

Cell = tuple[bool, int]  # (repeated, tenth of the best new-item share of its generating answers)


def cells_of(state: NodeState, truth: GroundTruth) -> tuple[dict[Cell, list[int]], int]:
    """Every line of the list in its evidence cell: (cell -> [real lines, invented lines], real lines
    left out because other lines cover their items too)."""
    lines_covering: Counter[int] = Counter()
    for line in state.entries:
        lines_covering.update({item for record in (line.record, *line.aliases)
                               if (item := truth.item_of(record.id)) is not None})  # fmt: skip
    cells: dict[Cell, list[int]] = {}
    free = 0
    for line in state.entries:
        records = (line.record, *line.aliases)
        real = truth.item_of(line.record.id) is not None
        items = {item for record in records if (item := truth.item_of(record.id)) is not None}
        if real and all(lines_covering[item] > 1 for item in items):
            free += 1
            continue
        generations = state.evidence(line).generations
        best = max((observation.new_share for record in records
                    for observation, _item, _detail in state.observations_of(record.id)), default=0.0)  # fmt: skip
        cell = (generations >= 2, min(9, int(best * 10)))
        cells.setdefault(cell, [0, 0])[0 if real else 1] += 1
    return cells, free


def run_seed(seed: int, universe: str, ask: str) -> dict[str, Any]:
    """One unverified run: its calls and its list's evidence cells, with the truth's counts."""
    started = time.perf_counter()
    config = SimConfig(universe=universe, nodes=5, time_limit_s=20_000.0, idle_stop_s=30.0, rng_seed=seed,
                       verification=VerificationPolicy.off(),
                       partitioning=PartitionConfig(adaptive_ask=ask == "adaptive"))  # fmt: skip
    simulation = Simulation(config)
    report = run_virtual(simulation.run())
    truth = simulation.truth
    if not simulation.final_states:
        raise RuntimeError(f"seed {seed}: the run ended with no node running ({report.end_reason})")
    state = max(simulation.final_states.values(), key=lambda state: state.entries.entry_count)
    cells, free_real = cells_of(state, truth)
    return {
        "seed": seed,
        "ask": ask,
        "coverage": float(report.cluster["coverage"]),
        "calls": int(report.cluster["calls"]),
        "tokens": int(report.cluster["tokens"]),
        "tokens_per_verdict": _tokens_per_verdict(simulation, [line.record.text for line in state.entries]),
        "truth_size": truth.size,
        "cells": [[repeated, tenth, real, invented] for (repeated, tenth), (real, invented) in sorted(cells.items())],
        "free_real_lines": free_real,
        "sim_params": report.sim_params,
        "real_s": round(time.perf_counter() - started, 1),
    }


def _tokens_per_verdict(simulation: Simulation, texts: Sequence[str]) -> dict[int, float]:
    """Prompt + completion tokens per item of one verification call of each batch size, as the
    simulated model bills it (the run's own lines as the items)."""
    backend = SimulatedBackend(simulation.model, seed=0)
    per_item: dict[int, float] = {}
    for batch in BATCHES:
        messages = build_verify_prompt(PromptTemplates(), topic=simulation.topic, partition=[], items=texts[:batch])
        for _attempt in range(20):  # the simulated provider fails some calls, as providers do
            try:
                completion = run_virtual(backend.complete(messages, json_mode=True))
                break
            except LLMError:
                continue
        else:
            raise RuntimeError("20 simulated verification calls in a row failed")
        per_item[batch] = (completion.usage.prompt_tokens + completion.usage.completion_tokens) / batch
    return per_item


def _binary_kl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d(x ‖ y) for Bernoulli(x) and Bernoulli(y), elementwise, with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(x > 0, x * np.log(x / y), 0.0)
        second = np.where(x < 1, (1 - x) * np.log((1 - x) / (1 - y)), 0.0)
    return first + second


def least_verdicts(cells: Sequence[tuple[int, int]], *, allowed_kept_inventions: float, allowed_rejected_real: float,
                   p_real: float, p_invented: float) -> tuple[float, float, float]:  # fmt: skip
    """A lower bound on the verdicts any policy needs: (bound, multiplier per kept invention, per rejected real)."""
    verdict_real = p_real * math.log(p_real / p_invented) + (1 - p_real) * math.log((1 - p_real) / (1 - p_invented))
    verdict_invented = (p_invented * math.log(p_invented / p_real)
                        + (1 - p_invented) * math.log((1 - p_invented) / (1 - p_real)))  # fmt: skip
    # a: P(keep | invented), b: P(reject | real). Over each box [a0, a1] × [b0, b1] of the grid
    # the divergences fall as a and b grow (a test that errs more needs less evidence) and the
    # penalties rise, so the divergences at (a1, b1) plus the penalties at (a0, b0) are at most
    # the box's true minimum: the grid can only lower the bound. A box touching a ≥ 1 − b (no
    # better than chance, or worse) may need no verdict at all; it is scored at 0 verdicts.
    grid = np.concatenate(([0.0], np.logspace(-7, 0, 141)))
    low, high = grid[:-1], grid[1:]
    a0, b0 = (axis.ravel() for axis in np.meshgrid(low, low, indexing="ij"))
    a1, b1 = (axis.ravel() for axis in np.meshgrid(high, high, indexing="ij"))
    informative = a1 < 1 - b1
    per_real = np.where(informative, _binary_kl(1 - b1, a1) / verdict_real, 0.0)
    per_invented = np.where(informative, _binary_kl(a1, 1 - b1) / verdict_invented, 0.0)
    a, b = a0, b0  # where the penalties are scored
    best = (-math.inf, 0.0, 0.0)
    for keep_price in np.logspace(-3, 4, 57):
        for reject_price in np.logspace(-3, 4, 57):
            dual = -keep_price * allowed_kept_inventions - reject_price * allowed_rejected_real
            for real, invented in cells:
                cost = keep_price * invented * a + reject_price * real * b
                if real:
                    cost = cost + real * per_real
                if invented:
                    cost = cost + invented * per_invented
                dual += float(cost.min())
            if dual > best[0]:
                best = (dual, float(keep_price), float(reject_price))
    return best


def bound_for(run: dict[str, Any], policy: VerificationPolicy) -> dict[str, Any]:
    """The bound for one run's cells, with ``policy``'s verifier rates."""
    cells = [(real, invented) for _repeated, _tenth, real, invented in run["cells"]]
    real_lines = sum(real for real, _ in cells)
    real_lines += run["free_real_lines"]  # kept for free: they count for precision
    allowed_kept = (1 - PRECISION_TARGET) / PRECISION_TARGET * real_lines
    allowed_rejected = RECALL_LOSS_TARGET * run["truth_size"]
    verdicts, keep_price, reject_price = least_verdicts(
        cells, allowed_kept_inventions=allowed_kept, allowed_rejected_real=allowed_rejected,
        p_real=policy.p_real_says_real, p_invented=policy.p_invented_says_real,
    )  # fmt: skip
    calls = run["calls"]
    return {
        "seed": run["seed"],
        "ask": run["ask"],
        "coverage": run["coverage"],
        "lines": sum(real + invented for real, invented in cells),
        "real_lines": real_lines,
        "invented_lines": sum(invented for _, invented in cells),
        "invented_repeated": sum(inv for repeated, _t, _r, inv in run["cells"] if repeated),
        "real_singletons": sum(real for repeated, _t, real, _i in run["cells"] if not repeated),
        "allowed_kept_inventions": allowed_kept,
        "allowed_rejected_real": allowed_rejected,
        "least_verdicts": verdicts,
        "calls": calls,
        **{f"least_calls_batch_{batch}": verdicts / batch for batch in BATCHES},
        **{f"least_share_batch_{batch}": (verdicts / batch) / (calls + verdicts / batch) for batch in BATCHES},
        # the extra cost in the unit that is billed, against the whole enumeration's tokens
        # (bigger batches share one prompt's instructions among more verdicts)
        **{f"least_extra_tokens_batch_{batch}": verdicts * run["tokens_per_verdict"][batch] / run["tokens"]
           for batch in BATCHES},
        "multipliers": [keep_price, reject_price],
    }


def _cells_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    totals: Counter[tuple[bool, int, str]] = Counter()
    for run in runs:
        for repeated, tenth, real, invented in run["cells"]:
            totals[(repeated, tenth, "real")] += real
            totals[(repeated, tenth, "invented")] += invented
    rows = ["| best new-item share of its answers | once: real | once: invented | repeated: real "
            "| repeated: invented |",
            "|---|---:|---:|---:|---:|"]  # fmt: skip
    for tenth in range(10):
        counts = [totals[(repeated, tenth, kind)] for repeated in (False, True) for kind in ("real", "invented")]
        shares = f"{tenth / 10:.1f}–{(tenth + 1) / 10:.1f}"
        rows.append(f"| {shares} | " + " | ".join(f"{count:,}" for count in counts) + " |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="european-cities")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rebound", type=Path, metavar="JSON",
                        help="recompute the bounds and tables from the runs a previous run wrote (no simulation)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    policy = VerificationPolicy()
    if args.rebound:
        runs = json.loads(args.rebound.read_text(encoding="utf-8"))["results"]["runs"]
        for run in runs:  # JSON made the batch keys strings
            run["tokens_per_verdict"] = {int(batch): value for batch, value in run["tokens_per_verdict"].items()}
        args.seeds = sorted({run["seed"] for run in runs})
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            jobs = [(seed, args.universe, ask) for ask in ASKS for seed in args.seeds]
            runs = list(pool.map(run_seed, *zip(*jobs, strict=True)))
    bounds = [bound_for(run, policy) for run in runs]
    header = ["ask", "seed", "coverage", "lines", "invented", "of them repeated", "real generated once",
              "kept inventions allowed",
              "rejected real allowed", "least verdicts", *(f"least calls, {b} a call" for b in BATCHES),
              *(f"least share of calls, {b} a call" for b in BATCHES),
              *(f"least extra tokens, {b} a call" for b in BATCHES)]  # fmt: skip
    md = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for bound in bounds:
        cells = [bound["ask"], str(bound["seed"]), f"{bound['coverage']:.1%}", f"{bound['lines']:,}",
                 f"{bound['invented_lines']:,}",
                 f"{bound['invented_repeated']:,}", f"{bound['real_singletons']:,}",
                 f"{bound['allowed_kept_inventions']:.0f}", f"{bound['allowed_rejected_real']:.0f}",
                 f"{bound['least_verdicts']:,.0f}",
                 *(f"{bound[f'least_calls_batch_{b}']:,.0f} (run: {bound['calls']:,} calls)" for b in BATCHES),
                 *(f"{bound[f'least_share_batch_{b}']:.1%}" for b in BATCHES),
                 *(f"+{bound[f'least_extra_tokens_batch_{b}']:.0%}" for b in BATCHES)]  # fmt: skip
        md.append("| " + " | ".join(cells) + " |")
        console.print(f"{bound['ask']} ask, seed {bound['seed']}: at least {bound['least_verdicts']:,.0f} verdicts = "
                      + ", ".join(f"{bound[f'least_share_batch_{b}']:.1%} of calls at {b} a call" for b in BATCHES)
                      + f"; +{bound[f'least_extra_tokens_batch_{max(BATCHES)}']:.0%} tokens",
                      highlight=False)  # fmt: skip
    better_md = ["| says 'real' of a real item | of an invented one | least verdicts | least share of calls, 80 a call "
                 "| least share of calls, 200 a call | least extra tokens |", "|---:|---:|---:|---:|---:|---:|"]
    first_enough: tuple[float, float] | None = None  # the first of them whose bound fits the share
    for p_real, p_invented in BETTER_VERIFIERS:
        better = [bound_for(run, VerificationPolicy(p_real_says_real=p_real, p_invented_says_real=p_invented))
                  for run in runs if run["ask"] == ASKS[0]]  # fmt: skip
        means = {key: statistics.fmean(bound[key] for bound in better)
                 for key in ("least_verdicts", *(f"least_share_batch_{b}" for b in BATCHES),
                             f"least_extra_tokens_batch_{max(BATCHES)}")}  # fmt: skip
        if first_enough is None and means[f"least_share_batch_{min(BATCHES)}"] <= CALL_SHARE_TARGET:
            first_enough = (p_real, p_invented)
        better_md.append(f"| {p_real} | {p_invented} | {means['least_verdicts']:,.0f} | "
                         + " | ".join(f"{means[f'least_share_batch_{b}']:.1%}" for b in BATCHES)
                         + f" | +{means[f'least_extra_tokens_batch_{max(BATCHES)}']:.0%} |")  # fmt: skip
    def mean_of(key: str, ask: str) -> float:
        return statistics.fmean(bound[key] for bound in bounds if bound["ask"] == ask)

    # the most favourable production (the ask whose lists need the least) at the largest batch
    def least_of(key: str, ask: str) -> float:  # the most favourable seed
        return min(float(bound[key]) for bound in bounds if bound["ask"] == ask)

    def says(ask: str) -> str:
        small, large = (least_of(f"least_share_batch_{b}", ask) for b in BATCHES)
        return (f"from the {ask} ask's lists (coverage {mean_of('coverage', ask):.1%}) a policy that sees these "
                f"cells needs at least {small:.1%} of the calls at {min(BATCHES)} items a call and {large:.1%} at "
                f"{max(BATCHES)}, and {least_of(f'least_extra_tokens_batch_{max(BATCHES)}', ask):.0%} more tokens "
                f"than the enumeration spent (the most favourable seed)")  # fmt: skip

    reachable = [ask for ask in ASKS if least_of(f"least_share_batch_{max(BATCHES)}", ask) <= CALL_SHARE_TARGET]
    verdict = ("; ".join(says(ask) for ask in ASKS).capitalize() + ". "
               + (f"The bound rules the targets out for every ask at up to {max(BATCHES)} items a call."
                  if not reachable else
                  f"The bound leaves the {CALL_SHARE_TARGET:.0%} call share open only for the "
                  f"{' and '.join(reachable)} ask at {max(BATCHES)} items a call; a real test spends more than "
                  "the bound (overshoot, priors it cannot know)."))  # fmt: skip
    console.print(verdict, highlight=False)
    params = runs[0]["sim_params"]
    note = (f"Verifier rates weighed: says 'real' of a real item {policy.p_real_says_real}, of an invented one "
            f"{policy.p_invented_says_real} (simulated LLM parameters {params['version']}: p_false_reject_known "
            f"{params.get('p_false_reject_known')}, p_reject_invented {params.get('p_reject_invented')}). Targets: "
            f"precision ≥ {PRECISION_TARGET:.1%}, recall lost ≤ {RECALL_LOSS_TARGET:.1%} of the universe, "
            f"≤ {CALL_SHARE_TARGET:.0%} of calls verifying. Seeds {args.seeds}; runs took "
            + ", ".join(f"{run['real_s']:.0f} s" for run in runs) + ".")  # fmt: skip
    if not args.no_write:
        info = machine_info()
        markdown = "\n".join([
            f"`scripts/bench/precision_bound.py --seeds {' '.join(map(str, args.seeds))}`", "",
            "Lines of each run's final list (5 nodes, verification off, the default fixed ask) by the evidence a "
            "node has before verifying, all seeds together:", "",
            *_cells_table([run for run in runs if run["ask"] == ASKS[0]]), "",
            "The least verification a policy that sees those cells needs to reach the targets (Wald's bound for "
            "sequential tests, Lagrangian lower bound over per-cell tests; see the script's docstring):", "",
            *md, "", verdict, "",
            "The same bound for verifiers better than the one measured (hypothetical rates, mean over the fixed "
            "ask's seeds) — " + (f"the first whose bound fits {CALL_SHARE_TARGET:.0%} of the calls at {min(BATCHES)} "
                           f"items a call says 'real' of {first_enough[0]:.0%} of real items and of "
                           f"{first_enough[1]:.0%} of inventions:" if first_enough is not None
                           else "none of them fits the share:"), "", *better_md, "",
            note, "", machine_summary(info),
        ])  # fmt: skip
        arguments = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
        write_results(SECTION, {"bounds": bounds, "runs": runs, "args": arguments}, markdown, JSON_PATH, machine=info)
        console.print(f"wrote {JSON_PATH.relative_to(ROOT)} and docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
