"""The suites' figures table: rows add up, columns align, JSON is written where asked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import suite_report


@pytest.fixture
def empty_report(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(suite_report, "_SECTIONS", {})
    yield


def test_a_row_recorded_twice_adds_its_numbers_and_keeps_the_latest_text(empty_report: None) -> None:
    suite_report.record("s", "web", tried=3, crashed=0, note="a")
    suite_report.record("s", "web", tried=4, crashed=1, note="b")
    assert suite_report.sections() == {"s": {"web": {"tried": 7, "crashed": 1, "note": "b"}}}


def test_render_prints_one_aligned_table_per_section(empty_report: None) -> None:
    suite_report.record("faults", "crash", injected=1200, lost=0)
    suite_report.record("faults", "partition", injected=3, reconverge_s=1.25)
    lines = suite_report.render()
    assert lines[0] == "faults"
    header, crash, partition = lines[1:4]
    assert header.split() == ["injected", "lost", "reconverge_s"]
    assert crash.split() == ["crash", "1,200", "0"] and partition.split() == ["partition", "3", "1.25"]
    right_edge = header.index("injected") + len("injected")  # numbers are right-aligned under their heading
    assert crash.index("1,200") + len("1,200") == right_edge == partition.index(" 3 ") + 2


def test_write_json_keeps_every_section(empty_report: None, tmp_path: Path) -> None:
    suite_report.record("a", "row", n=1)
    suite_report.write_json(tmp_path / "figures.json")
    assert json.loads((tmp_path / "figures.json").read_text()) == {"a": {"row": {"n": 1}}}
