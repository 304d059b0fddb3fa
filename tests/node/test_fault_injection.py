"""SWARMLIST_FAULTS and DATA_DIR/faults.json: parsing, validation, run-time switching, the real node's wiring."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gossip.errors import RequestTimeout
from gossip.faults import Faults, FaultyTransport
from gossip.messages import Ack, Message, Ping
from gossip.testing import InMemoryNetwork, make_wire, run_virtual
from gossip.transport import Sender, Transport
from node.cli import main as gossip_node
from node.errors import ConfigError
from node.fault_injection import FAULTS_ENV, FAULTS_FILE, FaultInjector, FaultSpec, parse_faults

from tests.node.processes import NodeProcess, eventually


def write_faults(data_dir: Path, faults: dict[str, object]) -> None:
    """Replace DATA_DIR/faults.json atomically, as the module asks."""
    temporary = data_dir / f".{FAULTS_FILE}.tmp"
    temporary.write_text(json.dumps(faults), encoding="utf-8")
    temporary.replace(data_dir / FAULTS_FILE)


def test_a_full_spec_parses_into_faults_and_a_seed() -> None:
    text = json.dumps({"drop": 0.3, "delay_s": 0.05, "jitter_s": 0.01, "duplicate": 0.1, "reorder": 0.2,
                       "reorder_delay_s": 0.03, "cut": ["127.0.0.1:7071", "[::1]:7072"], "seed": 7})  # fmt: skip
    spec = parse_faults(text)
    faults = Faults(drop=0.3, delay_s=0.05, jitter_s=0.01, duplicate=0.1, reorder=0.2, reorder_delay_s=0.03,
                    cut=frozenset({"127.0.0.1:7071", "[::1]:7072"}))  # fmt: skip
    assert spec == FaultSpec(faults, 7)
    assert spec.describe() == ("drop=0.3 delay_s=0.05 jitter_s=0.01 duplicate=0.1 reorder=0.2 reorder_delay_s=0.03 "
                               "cut=[127.0.0.1:7071, [::1]:7072]")  # fmt: skip


def test_an_empty_object_means_no_faults_yet() -> None:
    assert parse_faults("{}") == FaultSpec(Faults(), 0)
    assert parse_faults(" {} ").describe() == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drop=0.3", "not valid JSON"),
        ("[0.3]", "expected a JSON object"),
        ('{"loss": 0.3}', "unknown key.*'loss'.*known: cut, delay_s"),
        ('{"drop": 1.5}', "drop must be a probability"),
        ('{"drop": -0.1}', "drop must be a probability"),
        ('{"drop": "0.3"}', "drop must be a probability"),
        ('{"duplicate": true}', "duplicate must be a probability"),
        ('{"reorder": NaN}', "reorder must be a probability"),
        ('{"delay_s": Infinity}', "delay_s must be seconds"),
        ('{"delay_s": 61}', r"delay_s must be seconds in \[0, 60\]"),
        ('{"jitter_s": -1}', "jitter_s must be seconds"),
        ('{"cut": "127.0.0.1:7071"}', "cut must be a list"),
        ('{"cut": [7071]}', "cut must hold host:port strings"),
        ('{"cut": ["127.0.0.1"]}', "invalid peer address"),
        ('{"cut": ["http://x:1/"]}', "invalid peer address"),
        ('{"seed": -1}', "seed must be an integer"),
        ('{"seed": 1.5}', "seed must be an integer"),
        ('{"seed": false}', "seed must be an integer"),
        ('{"drop": ' + "0" * 70_000 + "}", "longer than"),
    ],
)
def test_bad_values_are_refused_with_the_key_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^SWARMLIST_FAULTS: .*{message}"):
        parse_faults(text)


def test_the_file_cannot_change_the_seed() -> None:
    with pytest.raises(ConfigError, match="seed can only be set in SWARMLIST_FAULTS"):
        parse_faults('{"seed": 2}', source="faults.json", seed=1)
    assert parse_faults('{"drop": 0.5}', source="faults.json", seed=1) == FaultSpec(Faults(drop=0.5), 1)


def test_unset_or_empty_variable_means_no_injector_and_the_file_is_not_read(tmp_path: Path) -> None:
    (tmp_path / FAULTS_FILE).write_text("not json", encoding="utf-8")
    assert FaultInjector.from_environment({}, tmp_path) is None
    assert FaultInjector.from_environment({FAULTS_ENV: "  "}, tmp_path) is None


def test_a_faults_file_present_at_startup_overrides_the_variable_and_is_validated(tmp_path: Path) -> None:
    write_faults(tmp_path, {"drop": 0.1})
    injector = FaultInjector.from_environment({FAULTS_ENV: '{"drop": 0.3, "seed": 4}'}, tmp_path)
    assert injector is not None and injector.spec == FaultSpec(Faults(drop=0.1), 4)
    write_faults(tmp_path, {"drop": 7})
    with pytest.raises(ConfigError, match=f"{FAULTS_FILE}: drop must be a probability"):
        FaultInjector.from_environment({FAULTS_ENV: "{}"}, tmp_path)


class _Echo:
    """Acks every ping and counts them."""

    def __init__(self) -> None:
        self.pings = 0

    async def __call__(self, message: Message, sender: Sender) -> Message | None:
        assert isinstance(message, Ping)
        self.pings += 1
        return Ack(message.seq)


async def _wrapped(injector: FaultInjector) -> tuple[Transport, _Echo]:
    """a:1 built through the injector, b:1 plain and echoing, on one in-memory network."""
    network = InMemoryNetwork(seed=0)
    transport = injector.wrap(lambda wire: network.transport("a:1", wire))(make_wire("a:1"))
    await transport.start(_Echo())
    echo = _Echo()
    await network.transport("b:1", make_wire("b:1")).start(echo)
    return transport, echo


def test_the_wrapped_transport_meets_the_faults_and_follows_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut at startup; the file lifts the cut (reload = SIGUSR1); a bad file is ignored; removal restores the cut."""
    caplog.set_level(logging.WARNING, logger="node.fault_injection")
    injector = FaultInjector.from_environment({FAULTS_ENV: '{"cut": ["b:1"], "seed": 9}'}, tmp_path)
    assert injector is not None

    async def main() -> None:
        transport, echo = await _wrapped(injector)
        assert isinstance(transport, FaultyTransport)
        with pytest.raises(RequestTimeout):
            await transport.request("b:1", Ping(1, "b:1"), timeout_s=0.5)
        write_faults(tmp_path, {"delay_s": 0.25})
        injector.reload()
        assert transport.faults == Faults(delay_s=0.25)
        started = asyncio.get_running_loop().time()
        assert await transport.request("b:1", Ping(2, "b:1"), timeout_s=1) == Ack(2)
        assert asyncio.get_running_loop().time() - started >= 0.25
        (tmp_path / FAULTS_FILE).write_text('{"drop": 3}', encoding="utf-8")
        injector.reload()
        assert transport.faults == Faults(delay_s=0.25)  # kept
        (tmp_path / FAULTS_FILE).unlink()
        injector.reload()
        assert transport.faults == Faults(cut=frozenset({"b:1"}))
        assert echo.pings == 1
        metrics = injector.metrics()
        assert metrics["requests"] == 2 and metrics["cut"] == 1 and metrics["cut_peers"] == 1
        await transport.aclose()

    run_virtual(main)
    messages = [record.getMessage() for record in caplog.records]
    assert any("FAULT INJECTION CHANGED" in m and "delay_s=0.25" in m for m in messages)
    assert any("ignoring" in m and "drop must be a probability" in m for m in messages)
    assert any("removed: back to SWARMLIST_FAULTS" in m and "cut=[b:1]" in m for m in messages)


def test_the_file_is_polled_without_a_signal(tmp_path: Path) -> None:
    """start() polls faults.json every second (and installs SIGUSR1, removed by aclose)."""
    injector = FaultInjector(FaultSpec(), file=tmp_path / FAULTS_FILE, poll_interval_s=1.0)

    async def main() -> list[Faults]:
        transport, _ = await _wrapped(injector)
        assert isinstance(transport, FaultyTransport)
        injector.start()
        seen = [transport.faults]
        write_faults(tmp_path, {"drop": 0.2, "reorder": 0.5})
        await asyncio.sleep(1.5)
        seen.append(transport.faults)
        await injector.aclose()
        await injector.aclose()  # twice is safe
        await transport.aclose()
        return seen

    assert run_virtual(main) == [Faults(), Faults(drop=0.2, reorder=0.5)]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_gossip_node_refuses_a_bad_variable_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(gossip_node, ["--topic", "x", "--data-dir", str(tmp_path)],
                                env={FAULTS_ENV: '{"drop": 0.3, "delay": 1}'})  # fmt: skip
    assert result.exit_code == 2
    assert "Error: SWARMLIST_FAULTS: unknown key(s) 'delay'" in result.output
    assert not list(tmp_path.iterdir())  # refused before anything was opened


def test_the_variable_stays_out_of_help() -> None:
    result = CliRunner().invoke(gossip_node, ["--help"])
    assert result.exit_code == 0
    assert "SWARMLIST_FAULTS" not in result.output and "injection" not in result.output.lower()


@pytest.mark.slow
def test_a_real_node_logs_active_injection_switches_on_sigusr1_and_reports_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gossip-node with SWARMLIST_FAULTS: a loud warning, /api/metrics "faults", a file switch applied on SIGUSR1."""
    monkeypatch.setenv(FAULTS_ENV, '{"drop": 0.3, "seed": 5}')
    data_dir = tmp_path / "a"
    node = NodeProcess(data_dir, "--cluster-key", "0123456789abcdef-test-key", "--max-calls", "1")
    try:
        node.wait_started()
        assert "FAULT INJECTION ACTIVE (SWARMLIST_FAULTS, test only): drop=0.3; seed 5" in node.output
        assert node.get("/api/metrics")["faults"]["drop"] == 0.3
        write_faults(data_dir, {"cut": ["127.0.0.1:9"], "delay_s": 0.01})
        os.kill(node.process.pid, signal.SIGUSR1)
        eventually(lambda: "FAULT INJECTION CHANGED" in node.output, timeout_s=10, message="the switch is logged")
        assert "delay_s=0.01 cut=[127.0.0.1:9]" in node.output

        def switched() -> bool:  # /api/metrics is sampled once a tick
            faults = node.get("/api/metrics")["faults"]
            return bool(faults["drop"] == 0 and faults["delay_s"] == 0.01 and faults["cut_peers"] == 1)

        eventually(switched, timeout_s=10, message="/api/metrics shows the new faults")
    finally:
        assert node.stop() == 0
