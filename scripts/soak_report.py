"""What ``scripts/soak.py`` shows and concludes: the live table, the audit of the data dirs, the figures.

The audit reads each stopped node's SQLite file (committed record keys, read-only) and its
``list.jsonl``: every record acknowledged at any time — committed by a victim before or at its
kill, or held by any node at the end — must be on every node; a record missing from any
node is lost. RSS growth is measured per process (a restart starts a new one): from its first
sample after the warm-up to its last during the soak; each node reports its longest process.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from node.export import LIST_FILENAME
from node.sim_report import set_digest
from scripts.soak_nodes import Run, SoakNode
from tests.node.crash_harness import listed_ids, read_list

__all__ = ["Kill", "LiveTable", "RssGrowth", "print_summary", "summarize", "verify_stores"]

_FAULT_COUNTS = ("requests", "request_lost", "reply_lost", "duplicated", "delayed")
_PLAIN_PROGRESS_EVERY_S = 30.0  # without a terminal, one progress block this often


@dataclass(frozen=True, slots=True)
class Kill:
    """One node killed, and what it had acknowledged."""

    at_s: float
    node: str
    signal: str
    purpose: str  # "churn", or "quiesce" (the restart that stops production at the end)
    listed_before: int  # entries its API listed just before
    committed_before: int  # records in its SQLite file just before
    committed_at_death: int  # ... and once it was dead (at least as many)
    exit_code: int | None


class LiveTable:
    """One line per node, redrawn at each sample on a terminal; a block every 30 s otherwise."""

    def __init__(self) -> None:
        self._console = _console()
        self._live: Live | None = None
        self._printed_at = float("-inf")

    def __enter__(self) -> LiveTable:
        if self._console.is_terminal:
            self._live = Live(Table(), console=self._console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, tb)
            self._live = None

    def note(self, text: str) -> None:
        self._console.print(text, highlight=False)

    def update(self, nodes: Sequence[SoakNode], now_s: float, end_s: float, kills: int) -> None:
        table = _node_table(nodes, title=f"soak at {now_s:.0f} s of {end_s:.0f} s; {kills} kills")
        if self._live is not None:
            self._live.update(table)
        elif now_s - self._printed_at >= _PLAIN_PROGRESS_EVERY_S:
            self._printed_at = now_s
            self._console.print(table)
            sys.stdout.flush()


def _console() -> Console:
    """A console as wide as the tables need, also when the output is a pipe or a file (80 columns otherwise)."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 180))


def _node_table(nodes: Sequence[SoakNode], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("node", "state", "pid", "up s", "RSS MiB", "records", "entries", "view a/s/d/l", "producing",
                   "runs"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("node", "state") else "right")
    for node in nodes:
        run = node.run
        sample = run.samples[-1] if run is not None and run.samples else None
        state = "up" if node.running and run is not None and run.ready_s is not None else (
            "starting" if node.running else "down")  # fmt: skip
        view = Counter(sample.members.values()) if sample is not None else Counter[str]()
        fresh = sample is not None and run is not None and run.ended_s is None
        table.add_row(
            node.name, state, str(run.pid) if run else "-",
            f"{sample.at_s - run.started_s:.0f}" if fresh and sample and run else "-",
            f"{sample.rss_mib:.1f}" if fresh and sample else "-",
            _number(sample.records if fresh and sample else None), _number(sample.entries if fresh and sample else None),
            "/".join(str(view[state]) for state in ("alive", "suspect", "dead", "left")) if fresh else "-",
            {True: "yes", False: "no", None: "-"}[sample.producing if fresh and sample else None], str(len(node.runs)),
        )  # fmt: skip
    return table


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def verify_stores(nodes: Sequence[SoakNode], *, acknowledged: set[str], listed: set[str],
                  vanished: set[str]) -> dict[str, Any]:  # fmt: skip
    """Audit the stopped nodes' data dirs against everything acknowledged along the way."""
    keys = {node.name: node.committed() for node in nodes}
    lists = {node.name: (node.data_dir / LIST_FILENAME).read_bytes() if (node.data_dir / LIST_FILENAME).exists()
             else b"" for node in nodes}  # fmt: skip
    shown = {node.name: listed_ids(read_list(node.data_dir / LIST_FILENAME)) for node in nodes}
    everywhere = set.intersection(*keys.values())
    anywhere = set.union(*keys.values())
    every_acknowledged = acknowledged | anywhere
    missing_listed = {name: len(listed - ids) for name, ids in shown.items()}
    per_node: dict[str, dict[str, Any]] = {
        name: {"records": len(held), "digest": set_digest(sorted(held)),
               "missing_acknowledged": len(every_acknowledged - held), "listed": len(shown[name]),
               "missing_listed_before_kills": missing_listed[name],
               "list_sha256": hashlib.sha256(lists[name]).hexdigest()[:16]}
        for name, held in keys.items()
    }  # fmt: skip
    return {
        "acknowledged": len(every_acknowledged),
        "acknowledged_by_victims": len(acknowledged),
        "entries_listed_before_kills": len(listed),
        "lost": len(every_acknowledged - everywhere),
        "lost_listed_entries": max(missing_listed.values()),
        "vanished_on_kill": len(vanished),
        "digests_identical": len({row["digest"] for row in per_node.values()}) == 1,
        "lists_identical": len(set(lists.values())) == 1,
        "per_node": per_node,
    }


@dataclass(frozen=True, slots=True)
class RssGrowth:
    """One process's resident memory from its first sample after the warm-up to its last in the soak,
    with the records it held then (the store and the in-memory indexes grow with them)."""

    pid: int
    from_s: float
    minutes: float
    first_mib: float
    last_mib: float
    growth_mib: float
    mib_per_min: float
    records_first: int | None
    records_last: int | None


def _rss_growth(run: Run, warm_up_s: float, end_s: float) -> RssGrowth | None:
    samples = [s for s in run.samples if s.at_s - run.started_s >= warm_up_s and s.at_s <= end_s]
    if len(samples) < 2 or samples[-1].at_s - samples[0].at_s < 10:
        return None
    first, last = samples[0], samples[-1]
    minutes = (last.at_s - first.at_s) / 60
    return RssGrowth(pid=run.pid, from_s=round(first.at_s, 1), minutes=round(minutes, 2),
                     first_mib=round(first.rss_mib, 1), last_mib=round(last.rss_mib, 1),
                     growth_mib=round(last.rss_mib - first.rss_mib, 1),
                     mib_per_min=round((last.rss_mib - first.rss_mib) / minutes, 2),
                     records_first=first.records, records_last=last.records)  # fmt: skip


def summarize(nodes: Sequence[SoakNode], stores: Mapping[str, Any], *, kills: Sequence[Kill],
              false_deaths: Mapping[tuple[str, str, int], float], unbidden_exits: Sequence[str],
              timeline: Mapping[str, float | None], soak_end_s: float, warm_up_s: float) -> dict[str, Any]:  # fmt: skip
    """The figures of the run, per node and for the cluster, and whether the promises held."""
    rows = []
    series: dict[str, list[list[float | int | None]]] = {}
    faults: Counter[str] = Counter()
    for node in nodes:
        growths = [g for g in (_rss_growth(run, warm_up_s, soak_end_s) for run in node.runs) if g is not None]
        longest = max(growths, key=lambda growth: growth.minutes, default=None)
        samples = [s for run in node.runs for s in run.samples]
        during = [s for s in samples if s.at_s <= soak_end_s and s.producing is not None]
        series[node.name] = [[round(s.at_s, 1), run.pid, round(s.rss_mib, 1), s.records, s.entries]
                             for run in node.runs for s in run.samples]  # fmt: skip
        for run in node.runs:
            last = next((s for s in reversed(run.samples) if s.faults), None)
            if last is not None:
                faults.update({name: int(last.faults.get(name, 0)) for name in _FAULT_COUNTS})
        rows.append({
            "node": node.name,
            "sigkill": sum(k.node == node.name and k.signal == "SIGKILL" for k in kills),
            "sigterm": sum(k.node == node.name and k.signal == "SIGTERM" for k in kills),
            "restarts": len(node.runs) - 1,
            "rss_peak_mib": round(max((s.rss_mib for s in samples), default=0.0), 1),
            "rss_growth": asdict(longest) if longest is not None else None,  # the node's longest measured process
            "processes_measured": len(growths),
            "seen_dead_while_alive": sum(member == node.name for _, member, _ in false_deaths),
            "refutations": sum(max((s.refutations for s in run.samples), default=0) for run in node.runs),
            # share of the samples taken during the soak that found the node producing
            "producing_share": round(sum(bool(s.producing) for s in during) / max(1, len(during)), 3),
            "restart_ready_s": [round(run.ready_s - run.started_s, 1) for run in node.runs[1:] if run.ready_s],
            # a SIGTERM'd node leaves, flushes its list and exits 0; anything else is worth a look
            "sigterm_exit_codes": [run.exit_code for run in node.runs if run.end_signal == "SIGTERM"],
            "records": stores["per_node"][node.name]["records"],
            "digest": stores["per_node"][node.name]["digest"],
        })
    ok = (stores["lost"] == 0 and stores["vanished_on_kill"] == 0 and stores["lost_listed_entries"] == 0
          and stores["digests_identical"] and stores["lists_identical"] and timeline.get("reconverge_s") is not None
          and not unbidden_exits)  # fmt: skip
    return {
        "ok": ok,
        "lost": stores["lost"],
        "reconverge_s": timeline.get("reconverge_s"),
        "kills": dict(Counter(f"{k.purpose} {k.signal}" for k in kills)),
        "restarts": sum(row["restarts"] for row in rows),
        "false_deaths": len(false_deaths),
        "false_death_sightings": [{"observer": o, "member": m, "at_s": at} for (o, m, _), at in false_deaths.items()],
        "unbidden_exits": list(unbidden_exits),
        "unclean_sigterm_exits": sum(code != 0 for row in rows for code in row["sigterm_exit_codes"]),
        "faults_injected": dict(faults),
        "timeline": dict(timeline),
        "stores": {name: value for name, value in stores.items() if name != "per_node"},
        "nodes": rows,
        "kill_log": [asdict(k) for k in kills],
        "series_columns": ["at_s", "pid", "rss_mib", "records", "entries"],
        "series": series,
    }


def print_summary(results: Mapping[str, Any]) -> None:
    console = _console()
    table = Table(title="soak: per node", title_justify="left")
    for column in ("node", "SIGKILL", "SIGTERM", "restarts", "RSS MiB", "Δ MiB", "over min", "MiB/min", "peak MiB",
                   "producing", "false deaths", "refutations", "records", "digest"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("node", "digest") else "right")
    for row in results["nodes"]:
        growth = row["rss_growth"]
        table.add_row(
            row["node"], str(row["sigkill"]), str(row["sigterm"]), str(row["restarts"]),
            f"{growth['first_mib']}→{growth['last_mib']}" if growth else "-", f"{growth['growth_mib']:+}" if growth else "-",
            f"{growth['minutes']}" if growth else "-", f"{growth['mib_per_min']:+}" if growth else "-",
            str(row["rss_peak_mib"]), f"{row['producing_share']:.0%}", str(row["seen_dead_while_alive"]),
            str(row["refutations"]),
            f"{row['records']:,}", row["digest"][:16],
        )  # fmt: skip
    console.print(table)
    stores = results["stores"]
    print(f"records lost: {results['lost']} of {stores['acknowledged']:,} acknowledged "
          f"({stores['acknowledged_by_victims']:,} committed by victims at their kills; "
          f"{stores['entries_listed_before_kills']:,} entries listed before kills, {stores['lost_listed_entries']} "
          f"missing; {stores['vanished_on_kill']} vanished from a victim's own store)")  # fmt: skip
    print(f"digests identical: {stores['digests_identical']}; list.jsonl identical: {stores['lists_identical']}; "
          f"reconverged {results['reconverge_s']} s after faults off")  # fmt: skip
    print(f"kills: {results['kills']}; restarts: {results['restarts']}; false deaths: {results['false_deaths']}; "
          f"unbidden exits: {len(results['unbidden_exits'])}; SIGTERM exits other than 0: "
          f"{results['unclean_sigterm_exits']}")  # fmt: skip
    print(f"faults injected: {results['faults_injected']}")
    print(f"timeline (s): {results['timeline']}")
    for line in results["unbidden_exits"]:
        print(f"  unbidden exit: {line}")
    for event in results.get("isolated", []):
        print(f"  isolated: {event['node']} (process {event['run']}) saw no live peer at {event['at_s']} s: its join failed")
    if results.get("sources_changed_during_run"):
        print(f"WARNING: source files changed during the run, so restarted nodes ran other code than their peers: "
              f"{', '.join(results['sources_changed_during_run'][:10])}")  # fmt: skip
    print(f"soak {'PASSED' if results['ok'] else 'FAILED'}")
