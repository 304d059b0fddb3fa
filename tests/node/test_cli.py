"""Real-process tests of ``gossip-node``: crash safety of list.jsonl, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from node import cli as node_cli
from node.export import LIST_FILENAME

GOSSIP_NODE = str(Path(sys.executable).parent / "gossip-node")
TOPIC = "cities of Europe"


def _start(data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    command = [GOSSIP_NODE, "--topic", TOPIC, "--data-dir", str(data_dir), "--llm", "sim",
               "--universe", "european-cities", "--sim-time-scale", "0.01", "--port", "0", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_list(path: Path) -> list[dict[str, object]]:
    """Every line must be a whole JSON object: a half-written line fails the test here."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "list.jsonl ends mid-line"
    return [json.loads(line) for line in text.splitlines()]


def _wait_for_entries(
    path: Path, at_least: int, process: subprocess.Popen[str], timeout_s: float = 60, *, required: bool = True
) -> list[dict[str, object]]:
    """Poll list.jsonl (checking every read is whole) until it has ``at_least`` entries."""
    deadline = time.monotonic() + timeout_s
    entries: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        if path.exists():
            entries = _read_list(path)
            if len(entries) >= at_least:
                return entries
        time.sleep(0.05)
    if required:
        raise AssertionError(f"fewer than {at_least} entries after {timeout_s}s")
    return entries


@pytest.mark.slow
def test_kill_9_loses_no_listed_entry_and_the_list_only_grows(tmp_path: Path) -> None:
    """SIGKILL mid-run, three times: every entry listed before a kill is listed after restart."""
    list_path = tmp_path / LIST_FILENAME
    seen: dict[str, object] = {}
    for cycle in range(3):
        process = _start(tmp_path, "--rng-seed", str(cycle))
        try:
            # Kill mid-production: the first cycle must reach 40 entries; later ones kill after
            # 10 more or after 20 s (an unpartitioned node can run dry: that is fine here).
            if cycle == 0:
                entries = _wait_for_entries(list_path, 40, process)
            else:
                entries = _wait_for_entries(list_path, len(seen) + 10, process, 20, required=False)
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate()
        ids = [entry["id"] for entry in entries]
        assert len(set(ids)) == len(ids), "an entry appears twice"
        assert set(seen) <= set(ids), "an entry listed before the kill is gone"
        seen = {str(entry["id"]): entry for entry in entries}
    # A final one-shot run on the same dir resumes and exits 0 with everything still there.
    final = subprocess.run(
        [GOSSIP_NODE, "--topic", TOPIC, "--data-dir", str(tmp_path), "--universe", "european-cities",
         "--sim-time-scale", "0", "--max-calls", "3", "--exit-when-done", "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    final_ids = [entry["id"] for entry in _read_list(list_path)]
    assert set(seen) <= set(final_ids) and len(set(final_ids)) == len(final_ids)


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_the_list_written(tmp_path: Path) -> None:
    """SIGTERM ends the node with exit 0 and a final list write."""
    process = _start(tmp_path)
    _wait_for_entries(tmp_path / LIST_FILENAME, 20, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped" in output
    assert len(_read_list(tmp_path / LIST_FILENAME)) >= 20


@pytest.mark.slow
def test_second_node_on_one_data_dir_and_another_topic_are_refused(tmp_path: Path) -> None:
    """A locked data dir and a topic mismatch exit 3 with a clear message, changing nothing."""
    process = _start(tmp_path)
    try:
        _wait_for_entries(tmp_path / LIST_FILENAME, 1, process)
        second = subprocess.run([GOSSIP_NODE, "--topic", TOPIC, "--data-dir", str(tmp_path), "--port", "0"],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 3 and "in use" in second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    other = subprocess.run([GOSSIP_NODE, "--topic", "rivers", "--data-dir", str(tmp_path), "--port", "0"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert other.returncode == 3 and "holds topic 'cities of Europe'" in other.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topic", "x", "--concurrency", "0"], "--concurrency"),
        (["--topic", "x", "--universe", "atlantis"], "atlantis"),
        (["--topic", "x", "--max-calls", "-2"], "--max-calls"),
        (["--data-dir", "d"], "--topic"),
        (["--topic", "   "], "--topic must be non-empty"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(args: list[str], message: str, tmp_path: Path) -> None:
    """Bad CLI options are refused before anything starts."""
    result = subprocess.run([GOSSIP_NODE, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "data").exists()


def test_config_file_and_env_follow_cli_precedence(tmp_path: Path) -> None:
    """CLI beats SWARMLIST_* env, which beats --config FILE.toml, which beats defaults."""
    config = tmp_path / "node.toml"
    config.write_text('topic = "from file"\nconcurrency = 3\nitems-per-call = 7\n', encoding="utf-8")
    env = {**os.environ, "SWARMLIST_CONCURRENCY": "5"}
    result = subprocess.run(
        [GOSSIP_NODE, "--config", str(config), "--items-per-call", "9", "--print-config"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "topic='from file'" in result.stdout
    assert "concurrency=5" in result.stdout and "items_per_call=9" in result.stdout
    assert "keys (masked): cluster_key=none (open cluster); llm_api_key=none" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n", encoding="utf-8")
    refused = subprocess.run([GOSSIP_NODE, "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "unknown option(s) colour" in refused.stderr


def test_print_config_says_which_secrets_are_set_and_shows_none_of_them(tmp_path: Path) -> None:
    """A key from the command line and one from a file are reported as set, masked; their text never appears."""
    key_file = tmp_path / "api.key"
    key_file.write_text("sk-from-a-file-0123456789\n", encoding="utf-8")
    result = subprocess.run(
        [GOSSIP_NODE, "--topic", "t", "--cluster-key", "cluster-secret-0123456789", "--llm-api-key-file", str(key_file),
         "--print-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "keys (masked): cluster_key=****** (25 bytes); llm_api_key=******" in result.stdout
    assert "cluster-secret" not in result.stdout and "sk-from-a-file" not in result.stdout


def test_observation_detail_retention_is_an_option_with_env_and_a_clear_error() -> None:
    """--observation-detail-days: 30 by default, from SWARMLIST_*, and a bad value exits 2 naming it."""
    default = CliRunner().invoke(node_cli.main, ["--topic", "x", "--print-config"])
    assert default.exit_code == 0 and "observation_detail_days=30.0" in default.output, default.output
    from_env = CliRunner().invoke(node_cli.main, ["--topic", "x", "--print-config"],
                                  env={"SWARMLIST_OBSERVATION_DETAIL_DAYS": "7"})  # fmt: skip
    assert from_env.exit_code == 0 and "observation_detail_days=7.0" in from_env.output, from_env.output
    for bad in ("-1", "nan", "inf", "soon", "1e305"):
        refused = CliRunner().invoke(node_cli.main, ["--topic", "x", "--print-config", "--observation-detail-days", bad])
        assert refused.exit_code == 2 and "observation-detail-days" in refused.output, (bad, refused.output)
