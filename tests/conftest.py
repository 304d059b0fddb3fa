"""Session-wide hooks and fixtures: the figures the suites recorded (``tests.suite_report``), and
the ``nodes`` list of real ``gossip-node`` processes a test starts (every one stopped at the end)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests import suite_report
from tests.node.processes import NodeProcess


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run, one table per section of measured figures (fuzz counts, fault figures)."""
    lines = suite_report.render()
    if lines:
        terminalreporter.section("figures measured by the suites")
        for line in lines:
            terminalreporter.write_line(line)
    path = suite_report.report_path()
    if path is not None and suite_report.sections():
        suite_report.write_json(path)
        terminalreporter.write_line(f"figures written to {path}")


@pytest.fixture
def nodes() -> Iterator[list[NodeProcess]]:
    """The real node processes a test starts (it appends them); all killed at the end, even on failure.

    SIGKILL, not SIGTERM: a graceful stop here checks nothing, yet each one waits for its leave to
    be gossiped to peers that are stopping too (up to 2 s a node). A test that promises a clean
    stop sends SIGTERM itself and asserts the exit code.
    """
    started: list[NodeProcess] = []
    try:
        yield started
    finally:
        for node in started:
            node.stop(signal.SIGKILL)
