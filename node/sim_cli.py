"""``gossip-sim``: N full nodes in one process on a virtual clock. Parses options, builds a
``SimConfig``, runs it (``node.simulation.run_simulation``), shows it, writes the report.

A live table (per node: entries, calls, coverage) is refreshed at every sample on a terminal,
one plain line per sample otherwise; the results table goes to stdout, the JSON report to
``--report FILE``. Options also come from ``SWARMLIST_SIM_*`` environment variables.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from node.cli_options import budget_config, budget_options, partition_config, verification_policy, work_options
from node.errors import ConfigError
from node.llm.sim.universe import available_universes
from node.simulation import NodeEvent, SimConfig, SimReport, SimSample, run_simulation

__all__ = ["main", "EXIT_OK", "EXIT_CONFIG", "live_table", "sample_line", "results_table", "cluster_table"]

EXIT_OK = 0
EXIT_CONFIG = 2  # bad options (click's own usage errors use 2 too)

_PLAIN_WIDTH = 150


def _node_events(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[NodeEvent, ...]:
    try:
        return tuple(NodeEvent.parse(value) for value in values)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param=param) from exc


def _percent(value: float) -> str:
    return f"{value:.1%}"


def live_table(sample: SimSample) -> Table:
    """One frame of the live display: the cluster at ``sample.t_s``."""
    agreed = "all digests equal" if sample.digests_equal else "digests differ"
    table = Table(title=f"gossip-sim  t = {sample.t_s:,.1f} s (virtual)  coverage {_percent(sample.coverage_union)}"
                        f"  {agreed}")  # fmt: skip
    for column in ("node", "state", "entries", "records", "calls", "tokens", "coverage", "precision"):
        table.add_column(column, justify="left" if column in ("node", "state") else "right")
    for node in sample.nodes:
        state = ("producing" if node.producing else "idle") if node.alive else "[red]down[/red]"
        table.add_row(node.name, state, f"{node.entries:,}", f"{node.records:,}", f"{node.calls:,}",
                      f"{node.tokens:,}", _percent(node.coverage), _percent(node.precision))  # fmt: skip
    return table


def sample_line(sample: SimSample) -> str:
    """One sample as a plain log line (when the output is not a terminal)."""
    live = [node for node in sample.nodes if node.alive]
    return (
        f"t={sample.t_s:.1f}s live={len(live)}/{len(sample.nodes)} coverage={sample.coverage_union:.3f} "
        f"coverage_min={sample.coverage_min:.3f} calls={sum(n.calls for n in sample.nodes)} "
        f"entries={','.join(str(n.entries) for n in live)} digests_equal={sample.digests_equal}"
    )


def results_table(report: SimReport) -> Table:
    """Per node: what it holds, what it cost, and its digest."""
    table = Table(title=f"gossip-sim results: {report.config['nodes']} nodes, {report.universe['name']}, "
                        f"seed {report.config['rng_seed']}, {report.end_reason}",
                  caption="state: up (incarnation) or down; digest: records:BLAKE2b of their sorted keys")  # fmt: skip
    columns = ("node", "state", "entries", "records", "calls", "tokens", "coverage", "precision",
               "alias leak", "records out", "wire out", "digest")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("node", "state", "digest") else "right")
    for node in report.nodes:
        state = f"up ({node['incarnation']})" if node["alive"] else "[red]down[/red]"
        count, _, digest = str(node["digest"]).partition(":")
        table.add_row(
            node["name"], state, f"{node['entries']:,}", f"{node['records']:,}", f"{node['calls']:,}",
            f"{node['tokens']:,}", _percent(node["coverage"]), _percent(node["precision"]),
            _percent(node["alias_leakage"]), _kib(node["record_bytes_out"]), _kib(node["wire_bytes_out"]),
            f"{count}:{digest[:12]}",
        )  # fmt: skip
    return table


def cluster_table(report: SimReport) -> Table:
    """The cluster as a whole, against the ground truth, and how it converged."""
    cluster = report.cluster
    table = Table(title="cluster", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    universe = report.universe
    if cluster["converged"]:
        after = _seconds(cluster["convergence_after_last_record_s"])
        converged = f"yes, at {cluster['converged_at_s']:.2f} s ({after} after the last new record)"
    else:
        converged = f"no: {cluster['distinct_digests']} distinct digests"
    coverage = f"{_percent(cluster['coverage'])} / {_percent(cluster['coverage_min'])}"
    rows = [
        ("coverage (union / worst node)", f"{coverage} of {universe['truth_size']:,} true items"),
        ("coverage of what the model can produce",
         f"{_percent(cluster['coverage_of_producible'])} of {universe['producible']:,}"),
        ("precision (worst node)", _percent(cluster["precision_min"])),
        ("alias leakage (worst node)", _percent(cluster["alias_leakage_max"])),
        ("duplicate share of generated items", _percent(cluster["duplicate_share"])),
        ("entries accepted on two nodes at once", f"{cluster['concurrent_duplicates']:,}"),
        ("LLM calls (failed)", f"{cluster['calls']:,} ({cluster['calls_failed']:,})"),
        ("of which split / verification calls", f"{cluster['split_calls']:,} / {cluster['verify_calls']:,}"),
        ("rejected lines (worst node) / recall lost to rejection",
         f"{cluster['rejected_lines_max']:,} / {_percent(cluster['recall_lost_to_rejection'])}"),
        ("tokens", f"{cluster['tokens']:,}"),
        ("gossip: record bytes pushed / all wire bytes",
         f"{_kib(cluster['record_bytes_out'])} / {_kib(cluster['wire_bytes'])}"),
        ("last new entry", _seconds(cluster["last_new_entry_at_s"], suffix=" (virtual)")),
        ("converged", converged),
        ("time", f"{report.virtual_s:,.1f} s virtual in {report.real_s:.1f} s real"),
        ("simulated LLM",
         f"parameters {report.sim_params['version']}, popularity alpha {report.popularity_alpha:.3f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def plan_table(report: SimReport) -> Table | None:
    """The partition plan the run built, and the coverage of its top partitions at the end."""
    plan = report.plan
    if plan is None:
        return None
    largest = plan["largest_leaf"]
    caption = (
        f"{plan['partitions']:,} partitions, depth {plan['depth']}, {plan['leaves']:,} leaves "
        f"({plan['live_leaves']:,} live, {plan['retired_leaves']:,} retired); largest leaf: "
        f"{largest['partition'] or '(whole topic)'} with {largest['entries']:,} entries" if largest else ""
    )
    table = Table(title="partition plan (first two levels)", caption=caption)
    for column, justify in (("partition", "left"), ("state", "left"), ("leaves", "right"), ("true items", "right"),
                            ("coverage", "right")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in plan["top_partitions"]:
        indent = "  " * (row["depth"] - 1)
        label = row["partition"].split(" > ")[-1]
        coverage = "—" if row["coverage"] is None else _percent(row["coverage"])
        table.add_row(f"{indent}{label}", row["status"], f"{row['leaves']:,}", f"{row['truth']:,}", coverage)
    return table


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def _seconds(value: float | None, *, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.2f} s{suffix}"


@click.command(context_settings={"auto_envvar_prefix": "SWARMLIST_SIM", "show_default": True})
@click.option("--nodes", type=click.IntRange(1, 1000), default=5, help="Full nodes in the cluster.")
@click.option("--topic", default=None, help="What to enumerate (default: the universe's own topic).")
@click.option("--universe", type=click.Choice(available_universes()), default="countries",
              help="The simulated LLM's universe, and the ground truth the run is measured against.")  # fmt: skip
@click.option("--rng-seed", type=int, default=0, help="Seeds everything: one seed reproduces a run exactly.")
@click.option("--max-calls", type=click.IntRange(min=0), default=0,
              help="LLM calls per node process (0 = until the topic is exhausted).")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 256), default=2, help="Concurrent LLM calls per node.")
@click.option("--items-per-call", type=click.IntRange(1, 200), default=20, help="Entries asked for per call.")
@work_options
@budget_options
@click.option("--loss", type=click.FloatRange(0.0, 1.0), default=0.0, help="Probability each message leg is lost.")
@click.option("--latency-ms", type=click.FloatRange(min=0.0), default=1.0, help="One-way network delay.")
@click.option("--partition-at", type=click.FloatRange(min=0.0), default=None,
              help="Virtual second at which the first half of the nodes is cut off from the rest.")  # fmt: skip
@click.option("--heal-at", type=click.FloatRange(min=0.0), default=None, help="Virtual second the partition heals.")
@click.option("--kill", "kills", multiple=True, callback=_node_events, metavar="NODE@T",
              help="Crash a node (node2 or 2) at virtual second T: silent, in-flight work lost, store kept. "
                   "Repeatable.")  # fmt: skip
@click.option("--restart", "restarts", multiple=True, callback=_node_events, metavar="NODE@T",
              help="Restart a killed node on its data dir at virtual second T. Repeatable.")  # fmt: skip
@click.option("--time-limit-s", type=click.FloatRange(min=0.0, min_open=True), default=600.0,
              help="Virtual seconds the run may last at most.")  # fmt: skip
@click.option("--sample-interval-s", type=click.FloatRange(min=0.0, min_open=True), default=5.0,
              help="Virtual seconds between samples (time series, live table).")  # fmt: skip
@click.option("--llm-time-scale", type=click.FloatRange(min=0.0), default=1.0,
              help="Simulated LLM latency (1 = a real model's pace; virtual time makes it free).")  # fmt: skip
@click.option("--gossip-profile", type=click.Choice(["lan", "local"]), default="lan",
              help="Gossip timings, as gossip-node's.")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the nodes' data dirs here (default: a temporary dir, removed). Must be empty.")  # fmt: skip
@click.option("--list-files", is_flag=True, help="Keep each node's list.jsonl current in its data dir (slower).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON report here.")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning")
def main(**options: Any) -> None:
    """Simulate a swarmlist cluster: N full nodes, one process, the in-memory network, a virtual clock."""
    try:
        config = _build_config(options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(level=options["log_level"].upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    progress = Console(stderr=True)
    if progress.is_terminal:
        with Live(console=progress, refresh_per_second=4, transient=True) as live:
            report = run_simulation(config, on_sample=lambda sample: live.update(live_table(sample)))
    else:
        report = run_simulation(config, on_sample=lambda sample: progress.print(sample_line(sample), soft_wrap=True,
                                                                                  highlight=False))  # fmt: skip
    output = Console()
    if not output.is_terminal:
        output = Console(width=_PLAIN_WIDTH)  # a file or pipe: don't squeeze the tables into 80 columns
    plan = plan_table(report)
    output.print(Group(results_table(report), *([plan] if plan is not None else []), cluster_table(report)))
    if options["report_file"] is not None:
        path: Path = options["report_file"]
        try:
            path.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
        output.print(f"report: {path}", soft_wrap=True)
    sys.exit(EXIT_OK)


def _build_config(options: dict[str, Any]) -> SimConfig:
    data_dir: Path | None = options["data_dir"]
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():  # a FIFO, a device
        raise ConfigError(f"--data-dir {data_dir} is not a directory")
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        raise ConfigError(f"--data-dir {data_dir} is not empty: a simulation starts from fresh nodes")
    report_file: Path | None = options["report_file"]
    if report_file is not None and not report_file.parent.is_dir():
        raise ConfigError(f"--report {report_file}: directory {report_file.parent} does not exist")
    return SimConfig(
        nodes=options["nodes"],
        topic=options["topic"],
        universe=options["universe"],
        rng_seed=options["rng_seed"],
        max_calls=options["max_calls"],
        concurrency=options["concurrency"],
        items_per_call=options["items_per_call"],
        partitioning=partition_config(options),
        verification=verification_policy(options),
        budget=budget_config(options),
        loss=options["loss"],
        latency_ms=options["latency_ms"],
        partition_at_s=options["partition_at"],
        heal_at_s=options["heal_at"],
        kills=options["kills"],
        restarts=options["restarts"],
        time_limit_s=options["time_limit_s"],
        sample_interval_s=options["sample_interval_s"],
        llm_time_scale=options["llm_time_scale"],
        gossip_profile=options["gossip_profile"],
        data_dir=data_dir,
        list_files=options["list_files"],
    )
