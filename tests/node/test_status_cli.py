"""``gossip-node status --peer HOST:PORT``: a cluster summary from one node's read API.

Against the web app over a fake view (members with a reason and an RTT, a convergence matrix)
on a loopback port; against servers that are not swarmlist nodes, or not there at all; and
against a real two-node cluster, where one node is killed and the summary says why it is gone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from node import cli as node_cli
from node.status_cli import EXIT_UNAVAILABLE, base_url
from tests.node.processes import GOSSIP_NODE, NodeProcess, eventually
from tests.webui.fake_view import FakeView
from webui.app import WebUIConfig, create_app
from webui.view import ConvergenceView, MemberView

WIDE = {"COLUMNS": "220"}  # rich wraps table cells at the terminal's width; 80 without one
KEY_ARGS = ("--cluster-key", "0123456789abcdef-test-key")


async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_node() -> AsyncIterator[str]:
    """A node's web app over a fake view: n2 suspect with a reason, n3 dead, n2's set equal to n1's."""
    view = FakeView(node="n1", topic="countries of the world")
    for name in ("Norway", "Sweden", "Finland"):
        view.add(name)
    now = time.time()
    view.member_list[0] = MemberView("n1", "127.0.0.1:7001", "alive", 2, now)
    view.member_list += [
        MemberView("n2", "127.0.0.1:7002", "suspect", 3, now - 4, rtt_s=0.0123,
                   reason="no ack to direct probes nor to 2 indirect probes (2 nacks)", reason_at=now - 4),
        MemberView("n3", "[::1]:7003", "dead", 5, now - 300, reason="declared dead by n2", reason_at=now - 30),
    ]  # fmt: skip
    view.metric_values.update(calls=12, calls_failed=1, tokens=3400, observed_calls=30, generated_items=600,
                              new_items=210, plan={"partitions": 7, "live_leaves": 4, "retired_leaves": 2,
                                                   "depth": 2, "owned": 3})  # fmt: skip
    view.convergence_view = ConvergenceView(
        ("n1", "n2", "n3"), ((1.0, 1.0, 0.9), (1.0, 1.0, None), (0.9, None, 1.0)),
        difference=((0.0, 0.0, 12.0), (0.0, 0.0, None), (12.0, None, 0.0)), counts=(120, 120, 108),
    )  # fmt: skip
    async for address in _serve(create_app(view, WebUIConfig(tick_s=0.05))):
        yield address


async def _status(*args: str) -> Result:
    """``gossip-node status ARGS`` through the real command (its dispatch included), off the loop."""
    return await asyncio.to_thread(CliRunner().invoke, node_cli.main, ["status", *args], env=WIDE)


async def test_the_summary_shows_members_with_rtt_and_why_work_plan_and_digest_agreement(fake_node: str) -> None:
    result = await _status("--peer", fake_node)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "n1 at http://" + fake_node in out and "'countries of the world'" in out
    n2 = next(line for line in out.splitlines() if "127.0.0.1:7002" in line)
    assert "suspect" in n2 and "12 ms" in n2 and "no ack to direct probes nor to 2 indirect probes" in n2
    assert time.strftime("%H:%M", time.localtime(time.time() - 4)) in n2  # "… at HH:MM:SS", local time
    n3 = next(line for line in out.splitlines() if "[::1]:7003" in line)
    assert "dead" in n3 and "declared dead by n2" in n3 and "5 min ago" in n3
    assert "1 alive, 1 suspect, 1 dead" in out
    assert "12 (1 failed), 3,400 tokens" in out and "30: 600 items, 210 new" in out
    assert "7 partitions, 4 live leaves, 2 retired, depth 2; 3 owned here" in out
    agreement = {line.split()[1]: line for line in out.splitlines() if line.strip().startswith(("│ n2", "│ n3"))
                 and ("equal" in line or "differs" in line)}  # fmt: skip
    assert "equal" in agreement["n2"] and "120" in agreement["n2"]
    assert "differs" in agreement["n3"] and "~90% similar, ~12 records apart" in agreement["n3"]
    assert "1 of 2 peers hold exactly this node's set" in out


async def test_json_output_is_what_the_node_answered(fake_node: str) -> None:
    result = await _status("--peer", f"http://{fake_node}/", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["health"]["node"] == "n1"
    reasons = {member["name"]: member["reason"] for member in document["members"]}
    assert reasons == {"n1": None, "n2": "no ack to direct probes nor to 2 indirect probes (2 nacks)",
                       "n3": "declared dead by n2"}  # fmt: skip
    assert document["convergence"]["counts"] == [120, 120, 108]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_peer_is_one_clear_line_and_exit_2() -> None:
    result = await _status("--peer", f"127.0.0.1:{_free_port()}", "--timeout", "5")
    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot reach http://127.0.0.1:") and "refused" in result.stderr
    assert result.stderr.count("\n") == 1


async def _html(request: web.Request) -> web.Response:
    return web.Response(text="<html>a wiki</html>", content_type="text/html")


async def _not_ours(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "something else"})


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([], "answered HTTP 404: not a swarmlist node's API (is this the node's web port?"),
        ([web.get("/healthz", _html)], "/healthz did not answer JSON: not a swarmlist node's API"),
        ([web.get("/healthz", _not_ours)], "answered /healthz, but not as a swarmlist node"),
    ],
)
async def test_a_server_that_is_not_a_swarmlist_node_is_refused_with_exit_2(
    routes: list[web.RouteDef], message: str
) -> None:
    app = web.Application()
    app.add_routes(routes)
    async for address in _serve(app):
        result = await _status("--peer", address)
        assert result.exit_code == EXIT_UNAVAILABLE
        assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_peer_that_is_not_an_address_is_a_usage_error() -> None:
    result = CliRunner().invoke(node_cli.main, ["status", "--peer", "http//nope"])
    assert result.exit_code == 2 and "expected host:port" in result.stderr
    assert base_url("[::1]:7070") == "http://[::1]:7070"
    assert base_url("https://node.example:8443/") == "https://node.example:8443"


def test_the_node_command_still_runs_as_before_and_mentions_status() -> None:
    """Without ``status`` first, ``gossip-node`` parses its own options exactly as it did."""
    result = CliRunner().invoke(node_cli.main, ["--topic", "t", "--print-config"])
    assert result.exit_code == 0 and "NodeConfig(" in result.stdout
    helped = CliRunner().invoke(node_cli.main, ["--help"])
    assert "gossip-node status --peer HOST:PORT" in helped.stdout
    assert "--web-port" in helped.stdout
    status_help = CliRunner().invoke(node_cli.main, ["status", "--help"])
    assert status_help.exit_code == 0 and "--peer" in status_help.stdout


# ---------------------------------------------------------------------------------- processes


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        for name in ("a", "b"):
            seed = ("--seed", nodes[0].address) if nodes else ()
            node = NodeProcess(tmp_path / name, *KEY_ARGS, "--sim-time-scale", "0.5", *seed)
            nodes.append(node)
            node.wait_started()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _run_status(peer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOSSIP_NODE, "status", "--peer", peer], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "220", "PATH": "/usr/bin:/bin"})  # fmt: skip


@pytest.mark.slow
def test_status_of_a_real_cluster_then_of_a_killed_member(pair: list[NodeProcess]) -> None:
    """The installed command on a keyed cluster (the read API needs no key): both alive with an RTT;
    after SIGKILL the survivor's summary says why the other is suspect or dead."""
    first, second = pair
    names = {first.name(), second.name()}
    eventually(lambda: first.members() == dict.fromkeys(names, "alive"), message="both alive")
    eventually(lambda: all(m["rtt_s"] for m in first.get("/api/members")["members"][1:]), message="an RTT")
    shown = _run_status(first.address)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if second.address in line]
    assert rows and "alive" in rows[0] and " ms" in rows[0]
    assert "2 alive" in shown.stdout and "Digest agreement" in shown.stdout

    victim = second.name()
    second.stop(signal.SIGKILL)
    eventually(lambda: first.members().get(victim) in ("suspect", "dead"), message="the victim suspected")
    after = _run_status(first.address)
    assert after.returncode == 0, after.stderr
    row = next(line for line in after.stdout.splitlines() if second.address in line)
    assert "no ack to direct probes (no other member to probe through)" in row  # and, once dead, "not refuted …"


async def test_brackets_in_names_topic_and_reasons_are_printed_as_they_are() -> None:
    """Names and reasons come from peers: rich must not read them as markup (a traceback, or lost text)."""
    view = FakeView(node="n1[/]", topic="songs [live] vs [/studio]")
    now = time.time()
    view.member_list[0] = MemberView("n1[/]", "127.0.0.1:7001", "alive", 2, now)
    view.member_list.append(MemberView("evil[bold]", "127.0.0.1:7002", "dead", 1, now, reason="[/] declared dead"))
    async for address in _serve(create_app(view, WebUIConfig(tick_s=0.05))):
        result = await _status("--peer", address)
    assert result.exit_code == 0, result.output
    for text in ("n1[/]", "songs [live] vs [/studio]", "evil[bold]", "[/] declared dead"):
        assert text in result.stdout, text


def test_an_answer_that_is_not_http_is_one_clear_line_and_exit_2() -> None:
    """A port that speaks another protocol (here an SSH banner) is refused, not a traceback."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def banner() -> None:
            connection, _ = server.accept()
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        thread = threading.Thread(target=banner, daemon=True)
        thread.start()
        result = CliRunner().invoke(node_cli.main, ["status", "--peer", f"127.0.0.1:{port}", "--timeout", "5"], env=WIDE)
        thread.join(timeout=5)
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert result.stderr.startswith("Error: cannot read") and result.stderr.count("\n") == 1
