"""Tests for ``gossip-sim`` (node.sim_cli): options to a run, the results table, the JSON report, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.sim_cli import EXIT_CONFIG, EXIT_OK, main

GOSSIP_SIM = str(Path(sys.executable).parent / "gossip-sim")
SMALL_RUN = ["--nodes", "3", "--universe", "countries", "--rng-seed", "3", "--max-calls", "2"]


def test_a_run_prints_the_results_and_writes_the_report(tmp_path: Path) -> None:
    """A small run: per-node results and the cluster summary on stdout, samples on stderr, JSON report."""
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(main, [*SMALL_RUN, "--topic", "countries of the world", "--kill", "3@4",
                                       "--report", str(report_path)])  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert "gossip-sim results: 3 nodes, countries, seed 3" in result.stdout
    assert "coverage (union / worst node)" in result.stdout and "virtual in" in result.stdout
    assert "t=0.1s live=3/3" in result.stderr  # plain sample lines when not on a terminal
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["config"]["topic"] == "countries of the world" and report["config"]["kills"] == ["node3@4"]
    assert [node["name"] for node in report["nodes"]] == ["node1", "node2", "node3"]
    assert [node["alive"] for node in report["nodes"]] == [True, True, False]
    assert report["seeds"]["rng_seed"] == 3 and report["sim_params"]["version"] and report["popularity_alpha"] > 0
    assert {"coverage", "precision_min", "alias_leakage_max", "duplicate_share", "converged"} <= set(report["cluster"])
    assert report["series"] and all("coverage_union" in sample for sample in report["series"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--kill", "node2"], "expected NODE@SECONDS"),
        (["--kill", "node7@5"], "no such node"),
        (["--restart", "node2@5"], "not down"),
        (["--heal-at", "5"], "needs --partition-at"),
        (["--loss", "2"], "--loss"),
        (["--universe", "planets"], "planets"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(arguments: list[str], message: str) -> None:
    """Impossible faults and malformed NODE@T are usage errors, before anything runs."""
    result = CliRunner().invoke(main, [*SMALL_RUN, *arguments])
    assert result.exit_code == EXIT_CONFIG
    assert message in result.output


def test_an_unwritable_report_is_refused_before_the_run(tmp_path: Path) -> None:
    """A report path in a missing directory is a usage error, not a lost run."""
    result = CliRunner().invoke(main, [*SMALL_RUN, "--report", str(tmp_path / "missing" / "report.json")])
    assert result.exit_code == EXIT_CONFIG and "does not exist" in result.output


@pytest.mark.slow
def test_the_installed_command_is_reproducible_across_processes(tmp_path: Path) -> None:
    """Two processes (different hash seeds), one seed: identical reports but for the real time."""
    reports = []
    for hash_seed in ("1", "2"):
        path = tmp_path / f"report-{hash_seed}.json"
        completed = subprocess.run([GOSSIP_SIM, *SMALL_RUN, "--loss", "0.05", "--report", str(path)],
                                   check=False, capture_output=True, text=True, timeout=120,
                                   env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"})  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        report = json.loads(path.read_text(encoding="utf-8"))
        report.pop("real_s")
        reports.append(report)
    assert reports[0] == reports[1]


def test_partitioning_and_verification_options_reach_the_run(tmp_path: Path) -> None:
    """--no-partitioning runs the whole-topic baseline (no plan); --verify-share makes verification calls."""
    report_file = tmp_path / "report.json"
    result = CliRunner().invoke(main, [*SMALL_RUN, "--no-partitioning", "--verify-share", "0.5",
                                       "--report", str(report_file)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_file.read_text())
    assert report["plan"] is None and report["config"]["partitioning"]["enabled"] is False
    assert report["config"]["verification"]["call_share"] == 0.5
    assert "partition plan" not in result.output and "verification calls" in result.output
    result = CliRunner().invoke(main, [*SMALL_RUN, "--max-split-parts", "1"])
    assert result.exit_code == 2 and "--max-split-parts" in result.output
