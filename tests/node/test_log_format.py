"""``--log-format json`` and ``--log-level``: one JSON object per line, and the level honoured.

The formatter is checked on awkward records (quotes, newlines, a traceback, bytes that were not
UTF-8); a real one-shot ``gossip-node`` run then checks that every line it writes is JSON.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from node.log_format import JsonLogFormatter, configure_logging
from tests.node.processes import GOSSIP_NODE


def _record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        info = sys.exc_info() if exc_info else None
    return logging.LogRecord("node.test", logging.WARNING, __file__, 1, message, args, info)


@pytest.mark.parametrize(
    ("message", "args", "expected"),
    [
        ("plain", (), "plain"),
        ('quotes "and" \\backslashes\\ and \'single\'', (), 'quotes "and" \\backslashes\\ and \'single\''),
        ("a\nmulti-line\r\nmessage", (), "a\nmulti-line\r\nmessage"),
        ("entry %r from %s", ("Tromsø <b>", "n2"), "entry 'Tromsø <b>' from n2"),
        ("undecodable %s", ("caf\udce9",), "undecodable caf\udce9"),
    ],
)
def test_every_record_is_one_line_of_json_with_time_level_logger_message(
    message: str, args: tuple[object, ...], expected: str
) -> None:
    line = JsonLogFormatter().format(_record(message, *args))
    assert "\n" not in line
    fields = json.loads(line)
    assert set(fields) == {"time", "level", "logger", "message"}
    assert (fields["level"], fields["logger"], fields["message"]) == ("WARNING", "node.test", expected)
    assert datetime.fromisoformat(fields["time"]).utcoffset() is not None  # ISO 8601 with its zone
    line.encode("utf-8")  # writable as is: no raw surrogate in it


def test_a_traceback_stays_inside_its_record() -> None:
    line = JsonLogFormatter().format(_record("failed", exc_info=True))
    fields = json.loads(line)
    assert "\n" not in line and "ValueError: boom" in fields["exception"]


def test_configure_logging_sets_the_level_and_the_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("warning", "json", stream)
        logging.getLogger("node.x").info("hidden")
        logging.getLogger("node.x").warning("shown %d", 1)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown 1"]


def _one_shot(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GOSSIP_NODE, "--topic", "countries of the world", "--data-dir", str(tmp_path / "node"), "--port", "0",
         "--universe", "countries", "--sim-time-scale", "0", "--max-calls", "2", "--exit-when-done",
         "--no-partitioning", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_a_real_node_writes_only_json_lines_at_the_level_asked(tmp_path: Path) -> None:
    """--log-format json --log-level debug: every stderr line is a JSON record, DEBUG ones included,
    the URL and the final line too; --log-level warning then drops every INFO record."""
    run = _one_shot(tmp_path, "--log-format", "json", "--log-level", "debug")
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stderr.splitlines()]  # fails on any non-JSON line
    assert records and all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    levels = {r["level"] for r in records}
    assert {"DEBUG", "INFO"} <= levels
    messages = [r["message"] for r in records]
    assert any(m.startswith("node API: http://") for m in messages)
    assert any(m.startswith("stopped: ") for m in messages)
    assert any("gossip bound to" in m for m in messages)

    quiet = _one_shot(tmp_path, "--log-format", "json", "--log-level", "warning")
    assert quiet.returncode == 0, quiet.stderr
    quiet_levels = {json.loads(line)["level"] for line in quiet.stderr.splitlines()}
    assert quiet_levels <= {"WARNING", "ERROR", "CRITICAL"} and "WARNING" in quiet_levels  # the open-cluster one
