"""Tests for node.cli_options: the budget options of ``gossip-node`` and ``gossip-sim``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from node import cli, sim_cli


def test_gossip_node_print_config_shows_the_budget_from_options_env_and_file(tmp_path: Path) -> None:
    """CLI > env > file, as for every option; the result shows in --print-config."""
    config = tmp_path / "node.toml"
    config.write_text('budget-calls = 100\nbudget_tokens = 5000\nmax-calls-per-minute = 12\n', encoding="utf-8")
    result = CliRunner().invoke(
        cli.main, ["--config", str(config), "--topic", "x", "--budget-calls", "200", "--print-config"],
        env={"SWARMLIST_BUDGET_TOKENS": "7000"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "budget=BudgetConfig(calls=200, tokens=7000, max_calls_per_minute=12.0)" in result.output


def test_without_budget_options_there_is_no_limit() -> None:
    result = CliRunner().invoke(cli.main, ["--topic", "x", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "budget=BudgetConfig(calls=0, tokens=0, max_calls_per_minute=0.0)" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--budget-calls", "-1"], "--budget-calls"),
        (["--budget-tokens", "lots"], "--budget-tokens"),
        (["--max-calls-per-minute", "nan"], "--max-calls-per-minute"),
        (["--max-calls-per-minute", "inf"], "--max-calls-per-minute"),
    ],
)
def test_bad_budget_options_exit_2_naming_the_option(arguments: list[str], message: str) -> None:
    for command, base in ((cli.main, ["--topic", "x", "--print-config"]), (sim_cli.main, ["--nodes", "1"])):
        result = CliRunner().invoke(command, [*base, *arguments])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_gossip_sim_stops_its_nodes_at_the_budget(tmp_path: Path) -> None:
    """Two nodes, budget 6 calls: the report says every node stopped for it and spent about that."""
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(sim_cli.main, ["--nodes", "2", "--universe", "countries", "--rng-seed", "2",
                                               "--budget-calls", "6", "--report", str(report_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["config"]["budget"] == {"calls": 6, "tokens": 0, "max_calls_per_minute": 0.0}
    assert all(str(node["stop_reason"]).startswith("network budget of 6 LLM calls reached") for node in report["nodes"])
    assert 6 <= report["cluster"]["calls"] <= 6 + 4  # + the other node's 2 in flight + a few not yet gossiped
