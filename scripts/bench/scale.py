"""Scale: gossip-sim with 10, 50 and 100 nodes on a 20,000-item synthetic universe, and how the costs grow with N.

Each run is ``node.simulation.Simulation`` (what ``gossip-sim`` runs: full nodes, SQLite
stores, SWIM membership, push dissemination, anti-entropy, the simulated LLM, the in-memory
network, virtual time) on ``synthetic-20000`` (``node.llm.sim.synthetic``), in a fresh
process of its own. Production is limited on purpose — the point is dissemination and
anti-entropy at scale, not coverage — in two series that meet at N = 100:

- *same work per node*: every node may make ``PER_NODE_CALLS`` LLM calls, so the set to
  replicate grows with N (what adding nodes to a cluster does);
- *same total work*: ``TOTAL_CALLS`` calls split evenly over the N nodes, so the set stays
  about the same size and what grows with N is the protocol's own cost.

Per run: *convergence*, the virtual seconds from the last new record anywhere to the moment
every node's digest (count + BLAKE2b of its record keys) was identical, checked every
``CHECK_INTERVAL_S``; *messages and bytes per node per second*, every leg the in-memory
network carried (requests and replies, lost ones included, HMAC envelopes included) ÷ N,
split into membership (SWIM), push (Payloads) and anti-entropy, over the *busy* phase
(production start until fewer than half the nodes still produce: one hung LLM call can
keep a run going long after the rest is done) and over the whole run; *memory per node*,
(peak RSS of the run's process − its RSS once the universe and the simulated model were
loaded, the peak reset then) ÷ N: everything the N nodes allocate (SQLite caches, dedup
indexes, lists, queues), plus the report's transient memory and the model's lazily built
tables, which all nodes share; and whether all N digests ended identical. Then, per series
and metric, the growth exponent: the least-squares slope of log(metric) on log(N). Memory
per node is modelled as a + b·(entry records) + c·(other records), fitted on the runs
below the largest N, checked on it, then fitted on all runs and extrapolated to a node
holding the whole universe.

Run: .venv/bin/python scripts/bench/scale.py [--sizes 10 50 100] [--per-node-calls 6]
     [--total-calls 600] [--seed 1] [--workers 2] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from gossip.messages import MessageType
from gossip.testing import TrafficCount, run_virtual
from node.llm.sim.universe import load_universe
from node.simulation import SimConfig, SimSample, Simulation, derived_seed
from node.store import DB_FILENAME
from scripts.bench.report import machine_info, write_results
from scripts.bench.scale_report import (
    SAME_PER_NODE,
    SAME_TOTAL,
    memory_model,
    predict_memory,
    print_tables,
    render_markdown,
    series_exponents,
)

SECTION = "Scale"
JSON_PATH = ROOT / "docs" / "benchmarks" / "scale.json"
UNIVERSE = "synthetic-20000"
SIZES = (10, 50, 100)
PER_NODE_CALLS = 6
TOTAL_CALLS = 600  # = 100 × PER_NODE_CALLS: the two series meet at N = 100
CHECK_INTERVAL_S = 0.05  # convergence is timed to this resolution (virtual seconds)
SAMPLE_INTERVAL_S = 1.0  # traffic is read at every sample of the harness (each also reads every list: not finer)
MAX_MEMORY_SHARE = 0.5  # a run predicted to need more of MemAvailable than this is not started
LAYERS: Mapping[str, frozenset[MessageType]] = {
    "membership": frozenset({MessageType.PING, MessageType.ACK, MessageType.NACK, MessageType.PING_REQ,
                             MessageType.PUSH_PULL}),  # fmt: skip
    "push": frozenset({MessageType.PAYLOADS}),
    "anti_entropy": frozenset({MessageType.AE_DIGEST, MessageType.AE_SYMBOLS, MessageType.AE_SYMBOLS_REQUEST,
                               MessageType.AE_RECORDS}),  # fmt: skip
}


@dataclass(frozen=True, slots=True)
class RunSpec:
    series: str
    nodes: int
    calls_per_node: int
    seed: int


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh, so the universe's generation does not count (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def _by_layer(traffic: Mapping[tuple[MessageType, Any], TrafficCount]) -> dict[str, dict[str, int]]:
    layers = {layer: {"messages": 0, "bytes": 0} for layer in LAYERS}
    for (kind, _leg), count in traffic.items():
        layer = next((name for name, kinds in LAYERS.items() if kind in kinds), None)
        if layer is None:
            raise ValueError(f"message type {kind!r} belongs to no layer")
        layers[layer]["messages"] += count.messages
        layers[layer]["bytes"] += count.bytes
    return layers


def _held_by_kind(data_dir: Path) -> dict[str, dict[str, int]]:
    """Records of one node's store by kind: how many, and their encoded bytes."""
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT kind, count(*), sum(length(body)) FROM records GROUP BY kind ORDER BY kind")
        return {kind or "?": {"records": count, "bytes": size} for kind, count, size in rows}
    finally:
        connection.close()


def _disk_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def sim_config(spec: RunSpec, data_dir: Path | None = None) -> SimConfig:
    """The run's ``SimConfig``: the defaults of ``gossip-sim`` but for N, the call budget, the seed and timing."""
    return SimConfig(universe=UNIVERSE, nodes=spec.nodes, max_calls=spec.calls_per_node, rng_seed=spec.seed,
                     check_interval_s=CHECK_INTERVAL_S, sample_interval_s=SAMPLE_INTERVAL_S, data_dir=data_dir)


@dataclass(frozen=True, slots=True)
class TrafficSample:
    """The network's counters by layer at one virtual moment, and how many producers were still at work."""

    t_s: float
    producing: int
    layers: Mapping[str, Mapping[str, int]]


def busy_window(samples: Sequence[TrafficSample], nodes: int) -> tuple[TrafficSample, TrafficSample] | None:
    """(first, last) sample of the busy phase: from production start until fewer than half the nodes produce.

    One straggler (a hung LLM call waits out its timeout) can keep a run going long after the
    others are done; rates over this window show the load while the cluster works.
    """
    if len(samples) < 2:
        return None
    end = next((sample for sample in samples[1:] if 2 * sample.producing < nodes), samples[-1])
    return samples[0], end


def _rates(first: Mapping[str, Mapping[str, int]], last: Mapping[str, Mapping[str, int]], nodes: int,
           seconds: float) -> dict[str, Any]:  # fmt: skip
    """Messages and bytes per node per second between two counter snapshots, in all and by layer."""
    layers = {layer: {measure: (last[layer][measure] - first[layer][measure]) / nodes / seconds
                      for measure in ("messages", "bytes")} for layer in LAYERS}  # fmt: skip
    return {
        "messages_per_node_s": sum(layer["messages"] for layer in layers.values()),
        "bytes_per_node_s": sum(layer["bytes"] for layer in layers.values()),
        "layers_per_node_s": layers,
    }


def run_one(spec: RunSpec) -> dict[str, Any]:
    """One simulation in this (fresh) process, measured; JSON-ready."""
    logging.basicConfig(level=logging.ERROR)
    load_universe(UNIVERSE)
    started_real, started_cpu = time.perf_counter(), time.process_time()
    samples: list[TrafficSample] = []

    def on_sample(sample: SimSample) -> None:  # the first is taken as production starts
        producing = sum(node.producing for node in sample.nodes)
        samples.append(TrafficSample(sample.t_s, producing, _by_layer(simulation.network.traffic())))

    with tempfile.TemporaryDirectory(prefix="scale-bench-") as scratch:
        config = sim_config(spec, Path(scratch) / "nodes")
        simulation = Simulation(config, on_sample=on_sample)  # loads the universe and the model all nodes share
        _reset_peak_rss()
        baseline_rss = _status_bytes("VmRSS")
        report = run_virtual(simulation.run())
        peak_rss = _status_bytes("VmHWM")
        held = _held_by_kind(Path(scratch) / "nodes" / "node1")
        disk = _disk_bytes(Path(scratch) / "nodes")
    cluster = report.cluster
    nodes = spec.nodes
    total = simulation.network.total()
    zero = {layer: {"messages": 0, "bytes": 0} for layer in LAYERS}
    whole = _rates(zero, _by_layer(simulation.network.traffic()), nodes, report.virtual_s)
    window = busy_window(samples, nodes)
    busy = _rates(window[0].layers, window[1].layers, nodes, window[1].t_s - window[0].t_s) if window else whole
    records = sum(kind["records"] for kind in held.values())
    memory_per_node = max(0, peak_rss - baseline_rss) / nodes
    cpu_s = time.process_time() - started_cpu
    return {
        **asdict(spec),
        "seeds": {"rng_seed": spec.seed, "network": derived_seed(spec.seed, "network"),
                  "model_knowledge": report.seeds["model_knowledge"]},  # fmt: skip
        "calls": cluster["calls"],
        "records_held": records,
        "entry_records_held": held.get("entry", {}).get("records", 0),
        "list_lines": report.nodes[0]["entries"],
        "held_by_kind": held,
        "end_reason": report.end_reason,
        "virtual_s": report.virtual_s,
        "busy_from_s": window[0].t_s if window else 0.0,
        "busy_until_s": window[1].t_s if window else report.virtual_s,
        "last_record_at_s": cluster["last_record_at_s"],
        "converged": cluster["converged"],
        "distinct_digests": cluster["distinct_digests"],
        "all_identical": cluster["converged"] and cluster["distinct_digests"] == 1
        and cluster["live_nodes"] == nodes,
        "convergence_s": cluster["convergence_after_last_record_s"],
        "messages": total.messages,
        "bytes": total.bytes,
        **busy,
        "whole_run": whole,
        "wire_kib_per_record_per_node": total.bytes / nodes / records / 1024 if records else None,
        "coverage": cluster["coverage"],
        "alias_leakage_max": cluster["alias_leakage_max"],
        "baseline_rss_mib": baseline_rss / 2**20,
        "peak_rss_mib": peak_rss / 2**20,
        "memory_per_node_mib": memory_per_node / 2**20,
        "memory_per_record_kib": memory_per_node / records / 1024 if records else None,
        "disk_per_node_mib": disk / nodes / 2**20,
        "real_s": time.perf_counter() - started_real,
        "cpu_s": cpu_s,
        "cpu_s_per_node": cpu_s / nodes,
        "sim_params": report.sim_params["version"],
        "popularity_alpha": report.popularity_alpha,
    }


# --------------------------------------------------------------------------- main


def plan_runs(sizes: Sequence[int], per_node_calls: int, total_calls: int, seed: int) -> list[RunSpec]:
    """Both series; a run both would make (total ÷ N = per node) is made once, in the per-node series."""
    specs = [RunSpec(SAME_PER_NODE, n, per_node_calls, seed) for n in sizes]
    specs += [RunSpec(SAME_TOTAL, n, max(1, round(total_calls / n)), seed) for n in sizes
              if round(total_calls / n) != per_node_calls]  # fmt: skip
    return sorted(specs, key=lambda spec: (spec.nodes, spec.series != SAME_PER_NODE))


def _as_series(runs: list[dict[str, Any]], total_calls: int) -> list[dict[str, Any]]:
    """The shared run counted in both series (listed once per series)."""
    extra = [dict(run, series=SAME_TOTAL) for run in runs
             if run["series"] == SAME_PER_NODE and run["calls_per_node"] * run["nodes"] == total_calls]  # fmt: skip
    return sorted(runs + extra, key=lambda run: (run["series"] != SAME_PER_NODE, run["nodes"]))


def _available_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _largest_wave(specs: Sequence[RunSpec], before: Sequence[dict[str, Any]], console: Console,
                  ) -> tuple[list[RunSpec], list[dict[str, Any]]]:  # fmt: skip
    """The largest runs that fit, and each one's memory predicted from the smaller runs (skipped ones say why)."""
    fitting: list[RunSpec] = []
    predictions: list[dict[str, Any]] = []
    for spec in specs:
        prediction = predict_memory(before, spec.nodes, spec.calls_per_node)
        if prediction is None:
            fitting.append(spec)
            continue
        prediction["calls_per_node"] = spec.calls_per_node
        budget = MAX_MEMORY_SHARE * _available_gib()
        if prediction["total_gib"] > budget:
            prediction["skipped"] = f"predicted {prediction['total_gib']:.1f} GiB > {budget:.1f} GiB"
        else:
            fitting.append(spec)
        console.print(f"N = {spec.nodes}, {spec.calls_per_node} calls/node: predicted {prediction['per_node_mib']:.1f} "
                      f"MiB/node, {prediction['total_gib']:.2f} GiB; {prediction.get('skipped', 'running it')}")  # fmt: skip
        predictions.append(prediction)
    return fitting, predictions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--per-node-calls", type=int, default=PER_NODE_CALLS)
    parser.add_argument("--total-calls", type=int, default=TOTAL_CALLS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=JSON_PATH)
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    console = Console(width=240)
    started = time.perf_counter()
    specs = plan_runs(args.sizes, args.per_node_calls, args.total_calls, args.seed)
    largest = max(args.sizes)
    results: list[dict[str, Any]] = []
    # The smaller clusters first: their memory predicts the largest's before it starts.
    with ProcessPoolExecutor(max_workers=args.workers, max_tasks_per_child=1) as pool:
        for run in pool.map(run_one, [spec for spec in specs if spec.nodes < largest]):
            results.append(run)
            console.print(f"{run['series']}, N = {run['nodes']}: {run['real_s']:.0f} s real, "
                          f"{run['memory_per_node_mib']:.1f} MiB/node, identical={run['all_identical']}")  # fmt: skip
        wave, predictions = _largest_wave([spec for spec in specs if spec.nodes == largest], results, console)
        for run in pool.map(run_one, wave):
            results.append(run)
            console.print(f"{run['series']}, N = {run['nodes']}: {run['real_s']:.0f} s real, "
                          f"{run['memory_per_node_mib']:.1f} MiB/node, identical={run['all_identical']}")  # fmt: skip
    runs = _as_series(results, args.total_calls)
    payload = {
        "universe": UNIVERSE, "sizes": args.sizes, "per_node_calls": args.per_node_calls,
        "total_calls": args.total_calls, "seed": args.seed, "check_interval_s": CHECK_INTERVAL_S,
        "sample_interval_s": SAMPLE_INTERVAL_S,
        "simulation": {key: value for key, value in sim_config(specs[0]).describe().items()
                       if key not in ("nodes", "max_calls", "rng_seed", "data_dir")},  # fmt: skip
        "runs": runs, "growth_exponents": series_exponents(runs), "predicted_before_run": predictions,
        "memory_model": memory_model(results, largest, len(load_universe(UNIVERSE).items)),
        "real_s": time.perf_counter() - started,
    }  # fmt: skip
    print_tables(console, runs, payload["growth_exponents"], payload["memory_model"], UNIVERSE)
    console.print(f"{payload['real_s']:.0f} s real in all")
    if not args.no_write:
        command = "python scripts/bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
        machine = machine_info()
        write_results(SECTION, payload, render_markdown(payload, machine, command.strip(), args), args.out,
                      machine=machine)  # fmt: skip
        console.print(f"wrote {args.out} and the '{SECTION}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
