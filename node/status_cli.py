"""``gossip-node status --peer HOST:PORT``: a cluster summary from any one node's read API.

It reads ``/healthz``, ``/api/members``, ``/api/metrics`` and ``/api/convergence`` — the same
read-only, unauthenticated GET routes the page uses (the cluster key guards gossip, not
reading) — and prints the members with their state, round trip, last contact and why a peer is
suspect, dead or left; the list, calls and the partition plan's progress; and whether the
other members' set digests equal this node's. With ``--web-port`` the API is on that port, so
``--peer`` names it. An unreachable peer, or an answer that is not a swarmlist node's, is one
clear line on stderr and exit 2.

``gossip-node status`` is dispatched before the node's own options are parsed
(``WithStatusSubcommand``), so the single-command ``gossip-node`` keeps working as it was.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gossip.errors import TransportError
from gossip.http_transport import format_address, parse_address

__all__ = ["EXIT_OK", "EXIT_UNAVAILABLE", "ClusterStatus", "StatusError", "WithStatusSubcommand", "fetch_status",
           "render_status", "status"]  # fmt: skip

EXIT_OK = 0
EXIT_UNAVAILABLE = 2  # the peer cannot be reached, or what answered is not a swarmlist node
_MAX_BODY_BYTES = 16 << 20  # a members list and metrics are kilobytes; a runaway answer is cut
_STATE_STYLES = {"alive": "green", "suspect": "yellow", "dead": "red", "left": "dim"}


class StatusError(Exception):
    """The status could not be fetched; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What one node's read API said about itself and the cluster."""

    peer: str  # the base URL asked
    health: Mapping[str, Any]  # node, topic, entries, uptime_s
    members: Sequence[Mapping[str, Any]]
    metrics: Mapping[str, Any]
    convergence: Mapping[str, Any]  # {"available": false} until anti-entropy has summaries


def base_url(peer: str) -> str:
    """``host:port`` (IPv6 in brackets) or an ``http(s)://`` URL → the base URL to ask."""
    if peer.startswith(("http://", "https://")):
        return peer.rstrip("/")
    try:
        host, port = parse_address(peer)
    except TransportError as exc:
        raise click.BadParameter(f"expected host:port (IPv6 as [::1]:7070) or a URL, got {peer!r}") from exc
    return f"http://{format_address(host, port)}"


def fetch_status(peer: str, *, timeout_s: float = 5.0) -> ClusterStatus:
    """Ask the node at ``peer`` (a base URL); ``StatusError`` if it cannot or is not a swarmlist node."""
    health = _get_json(peer, "/healthz", timeout_s)
    if not (isinstance(health, dict) and isinstance(health.get("node"), str) and "topic" in health):
        raise StatusError(f"{peer} answered /healthz, but not as a swarmlist node (no node name and topic)")
    members = _get_json(peer, "/api/members", timeout_s)
    metrics = _get_json(peer, "/api/metrics", timeout_s)
    convergence = _get_json(peer, "/api/convergence", timeout_s)
    if not (isinstance(members, dict) and isinstance(members.get("members"), list)
            and isinstance(metrics, dict) and isinstance(convergence, dict)):  # fmt: skip
        raise StatusError(f"{peer} answered, but its API does not look like a swarmlist node's")
    rows = [member for member in members["members"] if isinstance(member, dict)]
    return ClusterStatus(peer, health, rows, metrics, convergence)


def _get_json(peer: str, path: str, timeout_s: float) -> Any:
    request = urllib.request.Request(peer + path, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(_MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        hint = " (is this the node's web port? With --web-port the API is served there)" if exc.code == 404 else ""
        raise StatusError(f"{peer}{path} answered HTTP {exc.code}: not a swarmlist node's API{hint}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise StatusError(f"cannot reach {peer}: {reason}") from exc
    except TimeoutError as exc:
        raise StatusError(f"cannot reach {peer}: no answer within {timeout_s:g} s") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset, or an answer that is not HTTP at all
        said = " ".join(str(exc).split())[:200]  # the peer's bytes: one line, bounded
        raise StatusError(f"cannot read {peer}{path}: {said}") from exc
    if len(body) > _MAX_BODY_BYTES:
        raise StatusError(f"{peer}{path} answered more than {_MAX_BODY_BYTES:,} bytes: not a swarmlist node")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StatusError(f"{peer}{path} did not answer JSON: not a swarmlist node's API") from exc


# ---------------------------------------------------------------------------------- rendering


def render_status(found: ClusterStatus, console: Console, *, now: float | None = None) -> None:
    """Print the summary: who answered, the members, the work, the agreement of the sets."""
    now = time.time() if now is None else now
    health = found.health
    console.print(f"[bold]{_plain(health.get('node'))}[/bold] at {_plain(found.peer)} — topic "
                  f"{_plain(repr(health.get('topic')))}, up {_duration(health.get('uptime_s'))}",
                  soft_wrap=True, markup=True, highlight=False)  # fmt: skip
    console.print(_members_table(found.members, now))
    console.print(_work_table(found.metrics))
    console.print(_agreement_table(found))


def _members_table(members: Sequence[Mapping[str, Any]], now: float) -> Table:
    table = Table(title="Members", title_justify="left")
    for column, justify in (("name", "left"), ("address", "left"), ("state", "left"), ("inc.", "right"),
                            ("RTT", "right"), ("last heard", "right"), ("why", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for member in sorted(members, key=lambda m: str(m.get("name"))):
        state = str(member.get("state", "?"))
        reason = member.get("reason")
        why = "" if not reason else f"{reason}{_at(member.get('reason_at'))}"
        table.add_row(
            _plain(member.get("name", "?")), _plain(member.get("address", "?")),
            f"[{_STATE_STYLES.get(state, 'default')}]{_plain(state)}[/]", _plain(member.get("incarnation", "?")),
            _rtt(member.get("rtt_s")), _ago(now, member.get("last_heard")), _plain(why),
        )  # fmt: skip
    counts = {state: sum(1 for m in members if m.get("state") == state) for state in _STATE_STYLES}
    table.caption = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    return table


def _work_table(metrics: Mapping[str, Any]) -> Table:
    table = Table(title="Work", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    found = metrics.get("estimate")
    estimate: Mapping[str, Any] = found if isinstance(found, dict) else {}
    rows = [
        ("entries", _number(metrics.get("entries"))),
        ("LLM calls (this node)", (f"{_number(metrics.get('calls'))} ({_number(metrics.get('calls_failed'))} "
                                   f"failed), {_number(metrics.get('tokens'))} tokens")),
        ("LLM calls (cluster, observed)", (f"{_number(metrics.get('observed_calls'))}: "
                                           f"{_number(metrics.get('generated_items'))} items, "
                                           f"{_number(metrics.get('new_items'))} new")),
        ("estimated total", f"{_number(estimate.get('total'))} (remaining {_number(estimate.get('remaining'))})"),
    ]  # fmt: skip
    plan = metrics.get("plan")
    if isinstance(plan, dict):
        progress = (f"{_number(plan.get('partitions'))} partitions, {_number(plan.get('live_leaves'))} live leaves, "
                    f"{_number(plan.get('retired_leaves'))} retired, depth {_number(plan.get('depth'))}; "
                    f"{_number(plan.get('owned'))} owned here")  # fmt: skip
        rows.append(("partition plan", progress))
    if metrics.get("stopped"):
        rows.append(("stopped", _plain(metrics["stopped"])))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _agreement_table(found: ClusterStatus) -> Table:
    """Each member's set against this node's: exactly equal digests, or the estimated gap."""
    table = Table(title="Digest agreement with " + _plain(found.health.get("node")), title_justify="left")
    for column in ("member", "records", "agreement"):
        table.add_column(column)
    convergence = found.convergence
    names = convergence.get("nodes") or []
    if not convergence.get("available") or len(names) < 2:
        table.caption = "no peer's digest heard yet"
        return table
    similarity = (convergence.get("similarity") or [[]])[0]
    difference = (convergence.get("difference") or [[]])[0]
    counts = convergence.get("counts") or []
    equal = 0
    for index, name in enumerate(names[1:], start=1):
        gap = difference[index] if index < len(difference) else None
        similar = similarity[index] if index < len(similarity) else None
        if gap == 0:
            equal += 1
            verdict = "[green]equal[/]"
        elif similar is None:
            verdict = "unknown (no recent summary)"
        else:
            verdict = f"[yellow]differs[/]: ~{similar:.0%} similar" + (f", ~{gap:,.0f} records apart" if gap else "")
        table.add_row(_plain(name), _number(counts[index] if index < len(counts) else None), verdict)
    table.caption = f"{equal} of {len(names) - 1} peers hold exactly this node's set"
    return table


def _plain(value: object) -> str:
    """A value from the network as literal text: rich would read brackets in a peer's name as markup."""
    return escape(str(value))


def _number(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _rtt(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value * 1000:.1f} ms" if value < 0.01 else f"{value * 1000:.0f} ms"


def _ago(now: float, when: object) -> str:
    if not isinstance(when, int | float) or isinstance(when, bool):
        return "–"
    seconds = max(0.0, now - when)
    return "now" if seconds < 2 else f"{_duration(seconds)} ago"


def _at(when: object) -> str:
    if not isinstance(when, int | float) or isinstance(when, bool):
        return ""
    return f" at {datetime.fromtimestamp(when).strftime('%H:%M:%S')}"


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------- commands


@click.command(context_settings={"show_default": True})
@click.option("--peer", required=True,
              help="host:port of any node's page and API (its --web-port, if it has one), or a URL.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1, max=300), default=5.0,
              help="Seconds to wait for each answer.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what the node answered as one JSON object instead.")
def status(peer: str, timeout_s: float, as_json: bool) -> None:
    """Print a cluster summary as one node sees it: members, work, agreement of the sets."""
    url = base_url(peer)
    try:
        found = fetch_status(url, timeout_s=timeout_s)
    except StatusError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        document = {"peer": found.peer, "health": found.health, "members": found.members,
                    "metrics": found.metrics, "convergence": found.convergence}  # fmt: skip
        click.echo(json.dumps(document, ensure_ascii=False))
        return
    render_status(found, Console(highlight=False))


class WithStatusSubcommand(click.Command):
    """A click command that runs ``status`` instead when its first argument is ``status``.

    ``gossip-node`` is one command with required options; a click group would make every
    existing invocation spell a subcommand. So ``gossip-node status …`` is dispatched here,
    before the node's options are parsed, and everything else is parsed as before.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        argv = list(sys.argv[1:] if args is None else args)
        if argv[:1] == ["status"]:
            name = f"{prog_name or os.path.basename(sys.argv[0]) or 'gossip-node'} status"
            return status.main(argv[1:], name, complete_var, standalone_mode, **extra)
        return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
