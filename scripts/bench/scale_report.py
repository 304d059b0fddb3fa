"""What the scale runs show: growth exponents, the memory model and its extrapolation, the tables and the docs section.

The measuring is ``scripts/bench/scale.py``; this module turns its runs (JSON-ready dicts)
into fits — least squares of log(metric) on log(N) for the growth exponent, and memory per
node = a + b·(entry records held) + c·(other records held) — and into the rich tables and
the "Scale" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from scripts.bench.report import machine_summary

__all__ = [
    "FITTED",
    "SAME_PER_NODE",
    "SAME_TOTAL",
    "growth_exponent",
    "least_squares",
    "memory_model",
    "power_fit",
    "predict_memory",
    "print_tables",
    "render_markdown",
    "series_exponents",
]

SAME_PER_NODE = "same work per node"
SAME_TOTAL = "same total work"
FITTED = ("convergence_s", "messages_per_node_s", "bytes_per_node_s", "wire_kib_per_record_per_node",
          "memory_per_node_mib", "records_held", "cpu_s_per_node")  # fmt: skip
GOSSIP_ROUND_S = 0.2  # BroadcastConfig.lan()'s interval, to read convergence times in rounds


# --------------------------------------------------------------------------- fits


def power_fit(sizes: Sequence[float], values: Sequence[float | None]) -> tuple[float, float] | None:
    """(C, k) of value ≈ C·N^k, least squares on log(value) against log(N); None with < 2 usable points."""
    points = [(math.log(n), math.log(v)) for n, v in zip(sizes, values, strict=True) if v is not None and v > 0]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return math.exp(mean_y - slope * mean_x), slope


def growth_exponent(sizes: Sequence[float], values: Sequence[float | None]) -> float | None:
    """The k of value ∝ N^k (``power_fit``'s slope)."""
    fit = power_fit(sizes, values)
    return None if fit is None else fit[1]


def least_squares(rows: Sequence[Sequence[float]], ys: Sequence[float]) -> list[float] | None:
    """Coefficients c of y ≈ Σ c_i·x_i (include a column of ones for an intercept); None if underdetermined."""
    matrix = np.asarray(rows, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] < matrix.shape[1] or np.linalg.matrix_rank(matrix) < matrix.shape[1]:
        return None
    coefficients, *_ = np.linalg.lstsq(matrix, np.asarray(ys, dtype=float), rcond=None)
    return [float(c) for c in coefficients]


def series_exponents(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per series, the growth exponent of each metric in ``FITTED``."""
    exponents: dict[str, dict[str, float | None]] = {}
    for series in (SAME_PER_NODE, SAME_TOTAL):
        rows = sorted((run for run in runs if run["series"] == series), key=lambda run: run["nodes"])
        if len(rows) >= 2:
            exponents[series] = {metric: growth_exponent([r["nodes"] for r in rows], [r[metric] for r in rows])
                                 for metric in FITTED}  # fmt: skip
    return exponents


def _memory_terms(run: Mapping[str, Any]) -> list[float]:
    return [1.0, float(run["entry_records_held"]), float(run["records_held"] - run["entry_records_held"])]


def _memory_fit(runs: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    fit = least_squares([_memory_terms(run) for run in runs], [run["memory_per_node_mib"] * 1024 for run in runs])
    if fit is None:
        return None
    return {"a_mib": fit[0] / 1024, "kib_per_entry_record": fit[1], "kib_per_other_record": fit[2]}


def _predicted_mib(fit: Mapping[str, float], entries: float, others: float) -> float:
    return fit["a_mib"] + (fit["kib_per_entry_record"] * entries + fit["kib_per_other_record"] * others) / 1024


def memory_model(runs: Sequence[Mapping[str, Any]], largest: int, universe_size: int) -> dict[str, Any]:
    """Memory per node = a + b·(entry records held) + c·(other records held), by least squares on
    every run, extrapolated to a node holding an entry record for every item of the universe
    (the other records left out: a lower bound when c ≥ 0)."""
    distinct = list({(run["nodes"], run["calls_per_node"]): run for run in runs}.values())
    model: dict[str, Any] = {}
    fit = _memory_fit(distinct)
    if fit is not None:
        per_node = _predicted_mib(fit, universe_size, 0)
        model["fit_all"] = fit
        model["full_universe"] = {"entry_records": universe_size, "per_node_mib": per_node,
                                  "nodes": largest, "gib": per_node * largest / 1024}  # fmt: skip
    return model


def predict_memory(before: Sequence[Mapping[str, Any]], nodes: int, calls_per_node: int) -> dict[str, Any] | None:
    """Memory of a run not made yet, from those made: its records by a power law in N over the runs
    with its per-node budget (else its total), then the memory model fitted on every run made."""
    family = [run for run in before if run["calls_per_node"] == calls_per_node]
    if len({run["nodes"] for run in family}) < 2:
        family = [run for run in before if run["calls_per_node"] * run["nodes"] == calls_per_node * nodes]
    sizes = [run["nodes"] for run in family]
    records = power_fit(sizes, [run["records_held"] for run in family])
    entries = power_fit(sizes, [run["entry_records_held"] for run in family])
    model = _memory_fit(list({(run["nodes"], run["calls_per_node"]): run for run in before}.values()))
    if records is None or entries is None or model is None:
        return None
    held = records[0] * nodes ** records[1]
    entry_records = min(held, entries[0] * nodes ** entries[1])
    per_node = _predicted_mib(model, entry_records, held - entry_records)
    return {"nodes": nodes, "records_held": held, "entry_records_held": entry_records, "per_node_mib": per_node,
            "total_gib": per_node * nodes / 1024}  # fmt: skip


# --------------------------------------------------------------------------- output


def _f(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


ROW_HEADERS = ("series", "N", "calls (per node)", "records held (entries)", "run s", "busy s",
               "converged after last record s", "busy msgs/node/s", "busy KiB/node/s",
               "busy push / AE / membership KiB/node/s", "whole run msgs, KiB/node/s", "wire KiB/record/node",
               "MiB/node", "KiB/record/node", "identical digests", "CPU / real s")  # fmt: skip


def row_cells(run: Mapping[str, Any]) -> list[str]:
    layers = run["layers_per_node_s"]
    split = " / ".join(f"{layers[name]['bytes'] / 1024:,.1f}" for name in ("push", "anti_entropy", "membership"))
    whole = run["whole_run"]
    identical = f"yes, all {run['nodes']}" if run["all_identical"] else f"NO ({run['distinct_digests']} digests)"
    return [run["series"], str(run["nodes"]), f"{run['calls']:,} ({run['calls_per_node']})",
            f"{run['records_held']:,} ({run['entry_records_held']:,})", f"{run['virtual_s']:.1f}",
            f"{run['busy_from_s']:.1f}–{run['busy_until_s']:.1f}", _f(run["convergence_s"]),
            f"{run['messages_per_node_s']:,.1f}", f"{run['bytes_per_node_s'] / 1024:,.1f}", split,
            f"{whole['messages_per_node_s']:,.1f}, {whole['bytes_per_node_s'] / 1024:,.1f}",
            _f(run["wire_kib_per_record_per_node"]), f"{run['memory_per_node_mib']:,.1f}",
            _f(run["memory_per_record_kib"]), identical, f"{run['cpu_s']:,.0f} / {run['real_s']:,.0f}"]  # fmt: skip


def exponent_cells(series: str, exponents: Mapping[str, float | None]) -> list[str]:
    return [series, *(_f(exponents.get(metric)) for metric in FITTED)]


EXPONENT_HEADERS = ("series", "convergence", "busy msgs/node/s", "busy bytes/node/s", "wire bytes/record/node",
                    "memory/node", "records held", "CPU/node")  # fmt: skip


def print_tables(console: Console, runs: Sequence[Mapping[str, Any]], exponents: Mapping[str, Any],
                 memory: Mapping[str, Any], universe: str) -> None:  # fmt: skip
    table = Table(title=f"Scale: gossip-sim on {universe} (virtual time; per node = ÷ N)")
    for header in ROW_HEADERS:
        table.add_column(header, justify="left" if header == "series" else "right")
    for run in runs:
        table.add_row(*row_cells(run))
    console.print(table)
    fits = Table(title="Growth with N: least-squares exponent k of metric ∝ N^k")
    for header in EXPONENT_HEADERS:
        fits.add_column(header, justify="left" if header == "series" else "right")
    for series, values in exponents.items():
        fits.add_row(*exponent_cells(series, values))
    console.print(fits)
    console.print_json(data=memory)


def _reading(runs: Sequence[Mapping[str, Any]], exponents: Mapping[str, Mapping[str, float | None]]) -> list[str]:
    """What the figures say, computed from them (so a rerun cannot leave a stale sentence)."""
    per_node = exponents.get(SAME_PER_NODE, {})
    converged = [run["convergence_s"] for run in runs if run["convergence_s"] is not None]
    largest = max(runs, key=lambda run: run["nodes"])
    lines = [
        (f"- **Identical digests**: {sum(run['all_identical'] for run in runs)} of {len(runs)} rows ended with every "
         f"node's digest identical; at N = {largest['nodes']}: "
         f"{'all ' + str(largest['nodes']) if largest['all_identical'] else 'NOT all'}."),
    ]
    if converged:
        lines.append(
            f"- **Convergence** after the last new record took {min(converged):.2f}–{max(converged):.2f} s, "
            f"{min(converged) / GOSSIP_ROUND_S:.1f}–{max(converged) / GOSSIP_ROUND_S:.1f} push rounds of "
            f"{GOSSIP_ROUND_S:g} s, at every N. It is one measurement per run (one seed), so its fitted "
            "exponent is noise, not a trend.")  # fmt: skip
    if per_node:
        lines.append(
            f"- **Traffic** (same work per node): busy messages per node per second grow as N^"
            f"{_f(per_node.get('messages_per_node_s'))} (records are batched into one Payloads message per push), "
            f"busy bytes per node per second as N^{_f(per_node.get('bytes_per_node_s'))}: each node carries every "
            "record, and the cluster makes N times as many; per record held, a node's wire bytes grow as N^"
            f"{_f(per_node.get('wire_kib_per_record_per_node'))} (push sends each record ⌈ln(N/ε)⌉ times).")
        lines.append(
            f"- **Memory** per node grows as N^{_f(per_node.get('memory_per_node_mib'))} while the records each "
            f"node holds grow as N^{_f(per_node.get('records_held'))}: every node holds the whole replicated set, "
            "so its memory is a cost per record held (the model below), paid N times in one process.")
    return lines


def render_markdown(payload: Mapping[str, Any], machine: Mapping[str, Any], command: str, args: argparse.Namespace) -> str:
    runs, exponents, memory = payload["runs"], payload["growth_exponents"], payload["memory_model"]
    first = runs[0]
    lines = [
        (f"`gossip-sim` runs (`node.simulation.Simulation`: full nodes with SQLite stores, SWIM membership, push "
         "dissemination and anti-entropy on the in-memory network, 1 ms latency, no loss, virtual time) on "
         f"`{payload['universe']}`, a synthetic universe of 20,000 invented places (`node.llm.sim.synthetic`; "
         f"docs/simulated-llm.md), simulated LLM parameters {first['sim_params']} (popularity α "
         f"{first['popularity_alpha']:.3f}, its faults included), seed {payload['seed']}, concurrency 2, 20 items "
         "per call, partitioning on, each run in a fresh process. The universe and the simulated model are one "
         "object per run, shared by all nodes; everything else (store, dedup index, list, gossip state) is each "
         "node's own."),
        "",
        ("**What was limited**: production. The point is dissemination and anti-entropy at scale, not coverage, "
         f"so each node has an LLM call budget: *{SAME_PER_NODE}* gives every node {payload['per_node_calls']} "
         f"calls (the set to replicate grows with N); *{SAME_TOTAL}* splits {payload['total_calls']} calls over "
         "the N nodes (fewer calls per node leave more of them to the first, coarse partitions, so the set shrinks "
         "somewhat with N); where the two series ask the same run (N × calls per node = the total), it is made "
         f"once and listed in both. The runs cover {_coverage_range(runs)} of the universe; nothing was shared "
         "between nodes beyond the universe and the model."),
        "",
        (f"*Converged after last record*: virtual seconds from the last new record anywhere to every digest "
         f"identical (checked every {payload['check_interval_s']:g} s). *Busy*: from production start until fewer "
         "than half the nodes still produce (a hung LLM call can keep one node going long after the rest"
         f"{_stragglers(runs)}); *msgs, KiB/node/s*: every leg on the wire (requests and replies, HMAC "
         "envelopes included) ÷ N per virtual second, busy and over the whole run, split into push (Payloads), "
         "anti-entropy and membership (SWIM). *Wire KiB/record/node*: all wire bytes ÷ N ÷ records held. "
         "*MiB/node*: (peak RSS − RSS once universe and model were loaded, peak reset then) ÷ N: RSS, not "
         "tracemalloc; it includes SQLite caches, the report's transient memory and the model's lazily built "
         "tables. *Records held*: node1's store at the end, all kinds (entry records in brackets)."),
        "",
        "| " + " | ".join(ROW_HEADERS) + " |",
        "|" + "---|" + "---:|" * (len(ROW_HEADERS) - 1),
        *("| " + " | ".join(row_cells(run)) + " |" for run in runs),
        "",
        "Growth with N: the least-squares exponent k of metric ∝ N^k (log metric on log N) over each series' runs.",
        "",
        "| " + " | ".join(EXPONENT_HEADERS) + " |",
        "|---|" + "---:|" * (len(EXPONENT_HEADERS) - 1),
        *("| " + " | ".join(exponent_cells(series, values)) + " |" for series, values in exponents.items()),
        "",
        *_reading(runs, exponents),
        "",
        *_memory_lines(memory, payload, machine),
        "",
        f"Command: `{command}` ({payload['real_s']:.0f} s real on {args.workers} worker processes).",
        "",
        machine_summary(machine),
    ]
    return "\n".join(lines)


def _coverage_range(runs: Sequence[Mapping[str, Any]]) -> str:
    coverage = [run["coverage"] for run in runs]
    return f"{min(coverage):.1%}–{max(coverage):.1%}"


def _stragglers(runs: Sequence[Mapping[str, Any]]) -> str:
    late = {(run["nodes"], run["calls_per_node"]): run for run in runs
            if run["virtual_s"] > 2 * run["busy_until_s"] + 1}  # fmt: skip
    return "".join(f"; the N = {run['nodes']}, {run['calls_per_node']}-call run was busy until "
                   f"{run['busy_until_s']:.1f} s and lasted {run['virtual_s']:.1f} s" for run in late.values())


def _memory_lines(memory: Mapping[str, Any], payload: Mapping[str, Any], machine: Mapping[str, Any]) -> list[str]:
    lines = []
    for prediction in payload.get("predicted_before_run", []):
        measured = next((run for run in payload["runs"] if run["nodes"] == prediction["nodes"]
                         and run["calls_per_node"] == prediction["calls_per_node"]), None)  # fmt: skip
        outcome = (f"measured {measured['memory_per_node_mib']:,.1f} MiB/node ({measured['records_held']:,} records)"
                   if measured else f"not run: {prediction.get('skipped', '?')}")  # fmt: skip
        lines.append(
            f"- **Memory at N = {prediction['nodes']}, predicted before it ran** from the smaller runs (records by a "
            f"power law in N, memory by the model below): {prediction['per_node_mib']:,.1f} MiB/node for "
            f"{prediction['records_held']:,.0f} records, {prediction['total_gib']:,.2f} GiB in all; {outcome}.")
    fit, full = memory.get("fit_all"), memory.get("full_universe")
    if fit and full:
        lines.append(
            f"- **Memory model** (least squares on every run): per node {fit['a_mib']:,.2f} MiB + "
            f"{fit['kib_per_entry_record']:,.2f} KiB per entry record (dedup index, list, state, SQLite cache) + "
            f"{fit['kib_per_other_record']:,.2f} KiB per other record (observations, usage, plan). **Extrapolated, "
            f"not measured**: a node holding an entry for each of the universe's {full['entry_records']:,} items "
            f"needs about {full['per_node_mib']:,.0f} MiB before the observation and usage records of the calls "
            f"that found them, so {full['nodes']} such nodes in one process need at least {full['gib']:,.1f} GiB "
            f"(of the machine's {machine.get('memory_gib')}): full coverage at N = {full['nodes']} was not run.")
    return lines
