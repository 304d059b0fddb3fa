"""Session-wide hooks: print the figures the suites recorded (``tests.suite_report``)."""

from __future__ import annotations

import pytest

from tests import suite_report


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
