"""Addresses: bind vs advertise, IPv6, DNS seeds looked up on every join attempt, peers telling a
node they cannot reach it, the page on its own --web-port, and the startup line stating it all.

The address functions are checked directly; the rest with real ``gossip-node`` processes on
loopback (IPv4 and ``::1``). The DNS test gives one node a private ``/etc/hosts`` (a bind mount
in a mount namespace of its own, made with ``unshare``) and adds the seed's name to it while
the node is already retrying its join.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gossip.errors import TransportError
from node.addresses import advertised_address, is_unspecified, resolve_seed, startup_line
from node.errors import ConfigError
from tests import suite_report
from tests.node.processes import GOSSIP_NODE, NodeProcess, eventually

KEY_ARGS = ("--cluster-key", "0123456789abcdef-test-key")
SECTION = "addresses and operations (issue #16): real processes on loopback"
# Run "$@" with the file "$0" bind-mounted over /etc/hosts, in a mount namespace of its own.
_OWN_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'
_STARTUP = re.compile(r"gossip bound to (\S+), advertised as (\S+); page and API at (\S+) \(([^)]*)\); (.*)")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("0.0.0.0", True), ("::", True), ("", True), ("[::]", True), ("127.0.0.1", False), ("::1", False),
     ("localhost", False), ("node-a.example", False)],
)  # fmt: skip
def test_only_wildcard_binds_are_unspecified(host: str, expected: bool) -> None:
    assert is_unspecified(host) is expected


def test_the_advertised_address_is_the_option_the_bound_one_or_the_route_to_the_first_seed() -> None:
    assert advertised_address("0.0.0.0", 7070, "10.1.2.3:7000", ["127.0.0.1:7071"]) == "10.1.2.3:7000"
    assert advertised_address("127.0.0.1", 7070, None, []) == "127.0.0.1:7070"
    assert advertised_address("::1", 7070, None, []) == "[::1]:7070"
    # Bound to every interface: the local end of the route towards the seed, never 0.0.0.0.
    assert advertised_address("0.0.0.0", 7070, None, ["127.0.0.1:7071"]) == "127.0.0.1:7070"
    assert advertised_address("::", 7070, None, ["[::1]:7071"]) == "[::1]:7070"


def test_a_wildcard_bind_with_nothing_to_advertise_is_refused_with_the_fix(tmp_path: Path) -> None:
    """No seed to route to, and a host name that resolves to loopback only (its own /etc/hosts)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
    script = ("from node.addresses import advertised_address\n"
              "try:\n    advertised_address('0.0.0.0', 7070, None, [])\n"
              "except Exception as exc:\n    print(type(exc).__name__, exc)\n")  # fmt: skip
    python = str(Path(GOSSIP_NODE).with_name("python"))
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", _OWN_HOSTS, str(hosts),
                             python, "-c", script], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(ConfigError.__name__) and "pass --advertise HOST:PORT" in result.stdout


async def test_seeds_resolve_by_name_and_literal_addresses_pass_through() -> None:
    assert "127.0.0.1:7070" in await resolve_seed("localhost:7070")
    assert await resolve_seed("[::1]:7071") == ["[::1]:7071"]
    assert await resolve_seed("10.0.0.1:7072") == ["10.0.0.1:7072"]
    with pytest.raises(TransportError, match="cannot resolve no-such-host.invalid"):
        await resolve_seed("no-such-host.invalid:7070")


def test_the_startup_line_names_bind_advertise_web_and_seeds() -> None:
    line = startup_line(name="n1", cluster="swarmlist-ab", bind="0.0.0.0:7070", advertise="10.0.0.5:7070",
                        web_url="http://127.0.0.1:8080/", web_separate=True, seeds=["a:7070", "b:7070"])  # fmt: skip
    assert line == ("node n1 in cluster swarmlist-ab: gossip bound to 0.0.0.0:7070, advertised as 10.0.0.5:7070; "
                    "page and API at http://127.0.0.1:8080/ (own listener); seeds a:7070, b:7070")  # fmt: skip


# ---------------------------------------------------------------------------------- processes


def _start(nodes: list[NodeProcess], data_dir: Path, *args: str) -> NodeProcess:
    node = NodeProcess(data_dir, "--sim-time-scale", "0.5", *args)
    nodes.append(node)
    node.wait_started()
    return node


def _startup(node: NodeProcess) -> re.Match[str]:
    eventually(lambda: _STARTUP.search(node.output) is not None, timeout_s=30, message="the startup line")
    found = _STARTUP.search(node.output)
    assert found is not None
    return found


@pytest.mark.slow
def test_two_nodes_on_ipv6_loopback_join_through_a_bracketed_seed(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """--host ::1 binds the IPv6 loopback; --seed [::1]:PORT parses and joins; addresses stay bracketed."""
    first = _start(nodes, tmp_path / "a", "--host", "::1")
    assert first.address.startswith("[::1]:")
    second = _start(nodes, tmp_path / "b", "--host", "::1", "--seed", first.address)
    names = {first.name(), second.name()}
    for node in (first, second):
        eventually(lambda node=node: node.members() == dict.fromkeys(names, "alive"), message="both alive on ::1")
    addresses = {m["address"] for m in second.get("/api/members")["members"]}
    assert addresses == {first.address, second.address}
    assert _startup(second).group(2) == second.address  # advertised as bound: [::1]:PORT


class _UnderOwnHosts(NodeProcess):
    """A node in a mount namespace of its own, where ``hosts`` is bind-mounted over /etc/hosts."""

    def __init__(self, hosts: Path, data_dir: Path, *args: str) -> None:
        node = [GOSSIP_NODE, "--topic", "countries of the world", "--data-dir", str(data_dir), "--port", "0",
                "--gossip-profile", "local", "--universe", "countries", "--sim-time-scale", "0.5", *args]  # fmt: skip
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _OWN_HOSTS, str(hosts), *node]
        self.data_dir = data_dir
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""


@pytest.mark.slow
def test_a_seed_name_is_looked_up_again_on_every_join_attempt(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """The seed's name is not in DNS when the node starts; added while it retries, the node joins."""
    first = _start(nodes, tmp_path / "a")
    name = f"swarmlist-seed-{os.getpid()}.test"
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
    port = first.address.rsplit(":", 1)[1]
    second = _UnderOwnHosts(hosts, tmp_path / "b", "--seed", f"{name}:{port}", "--log-level", "debug")
    nodes.append(second)
    second.wait_started()
    eventually(lambda: "no seed answered; retrying" in second.output, timeout_s=30, message="a failed attempt")
    assert "joined cluster" not in second.output
    with hosts.open("a") as appended:  # in place: the bind mount shows this very file
        appended.write(f"127.0.0.1 {name}\n")
    added_at = time.monotonic()
    eventually(lambda: "joined cluster" in second.output, timeout_s=30, message="joined once the name resolves")
    suite_report.record(SECTION, "DNS seed added while retrying", joined_after_s=round(time.monotonic() - added_at, 2),
                        failed_attempts=second.output.count("no seed answered; retrying"))  # fmt: skip
    names = {first.name(), second.name()}
    eventually(lambda: first.members() == dict.fromkeys(names, "alive"), message="the seed sees the newcomer")
    assert _startup(second).group(5) == f"seeds {name}:{port}"


@pytest.mark.slow
def test_peers_tell_a_node_they_cannot_reach_it_at_its_advertised_address(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    """--advertise 127.0.0.1:1 while listening elsewhere: after the join, one clear error line."""
    first = _start(nodes, tmp_path / "a")
    second = _start(nodes, tmp_path / "b", "--advertise", "127.0.0.1:1", "--seed", first.address)
    eventually(lambda: "peers cannot reach this node at 127.0.0.1:1" in second.output, timeout_s=60,
               message="the unreachable-address error")  # fmt: skip
    line = next(line for line in second.lines if "peers cannot reach this node" in line)
    assert "ERROR" in line and first.name() in line and "--advertise" in line
    errors = [line for line in second.lines if "peers cannot reach this node" in line]
    suite_report.record(SECTION, "unreachable --advertise", error_lines=len(errors))


@pytest.mark.slow
def test_the_page_and_api_on_their_own_port_while_gossip_listens_on_another(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    """--web-port: the API answers there, the gossip port serves no page, and peers join via gossip."""
    first = _start(nodes, tmp_path / "a", "--web-port", "0")
    startup = _startup(first)
    gossip, web = startup.group(1), startup.group(3)
    assert startup.group(4) == "own listener" and web == first.url + "/" and gossip != first.address
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{gossip}/api/members", timeout=10)
    refused.value.close()
    assert refused.value.code == 404  # nothing but gossip on the gossip port
    second = _start(nodes, tmp_path / "b", "--web-port", "0", "--seed", gossip)
    names = {first.name(), second.name()}
    eventually(lambda: first.members() == dict.fromkeys(names, "alive"), message="joined via the gossip port")
    assert {m["address"] for m in first.get("/api/members")["members"]} == {gossip, _startup(second).group(2)}


@pytest.mark.slow
def test_a_wildcard_bind_advertises_the_route_to_its_seed(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    """--host 0.0.0.0 (keyed): the node advertises 127.0.0.1:PORT, the address its seed can dial."""
    first = _start(nodes, tmp_path / "a", *KEY_ARGS)
    second = NodeProcess(tmp_path / "b", "--sim-time-scale", "0.5", *KEY_ARGS, "--host", "0.0.0.0",
                         "--seed", first.address)  # fmt: skip
    nodes.append(second)
    startup = _startup(second)
    bound, advertised = startup.group(1), startup.group(2)
    assert bound.startswith("0.0.0.0:") and advertised == "127.0.0.1:" + bound.rsplit(":", 1)[1]
    eventually(lambda: first.members().get(_name_in(second.output)) == "alive", message="reached at 127.0.0.1")
    assert second.stop(signal.SIGTERM) == 0


def _name_in(output: str) -> str:
    found = re.search(r"node (\S+) in cluster", output)
    return found.group(1) if found else "?"
