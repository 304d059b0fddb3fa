"""Figures the suites measure, gathered over one pytest session and printed at its end.

The fuzz and fault suites assert their promises (0 crashed, 0 records lost); the counts behind
those assertions — inputs tried, faults injected, time to reconverge — are what a reader of the
test output wants to see even when everything passes. A test calls ``record(section, row,
**figures)``; ``tests/conftest.py`` prints every section as a table in pytest's terminal summary,
and writes them as JSON to ``$SWARMLIST_SUITE_REPORT`` when that variable names a file (the
figures quoted in docs/reliability.md come from such a run).

Rows of one section are summed column by column when the same row is recorded twice, so a
parametrised test adds up to one row per surface.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

__all__ = ["record", "record_tally", "sections", "render", "write_json", "report_path", "REPORT_ENV", "HOSTILE_INPUT", "FUZZ_COLUMNS"]

REPORT_ENV = "SWARMLIST_SUITE_REPORT"
HOSTILE_INPUT = "hostile input (issue #14): counts per surface"
FUZZ_COLUMNS = ("tried", "answered", "rejected", "crashed", "state_changed")

Figure = int | float | str

_SECTIONS: dict[str, dict[str, dict[str, Figure]]] = {}


class _Tally(Protocol):
    def total(self, column: str) -> int: ...


def record(section: str, row: str, **figures: Figure) -> None:
    """Add one row of figures to ``section``; numbers add up onto a row recorded before."""
    rows = _SECTIONS.setdefault(section, {})
    kept = rows.setdefault(row, {})
    for name, value in figures.items():
        previous = kept.get(name)
        if isinstance(value, int | float) and isinstance(previous, int | float) and not isinstance(value, bool):
            kept[name] = previous + value
        else:
            kept[name] = value


def record_tally(section: str, row: str, tally: _Tally, columns: tuple[str, ...]) -> None:
    """Record a fuzz tally's totals of ``columns`` as one row."""
    record(section, row, **{column: tally.total(column) for column in columns})


def sections() -> Mapping[str, Mapping[str, Mapping[str, Figure]]]:
    return _SECTIONS


def _cell(value: Figure) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def render() -> list[str]:
    """Every section as a plain-text table: a heading, one line per row, columns aligned."""
    lines: list[str] = []
    for section, rows in _SECTIONS.items():
        columns = list(dict.fromkeys(name for figures in rows.values() for name in figures))
        table = [["", *columns]] + [[row, *(_cell(figures.get(c, "")) for c in columns)] for row, figures in rows.items()]
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        lines.append(section)
        for line in table:
            cells = [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append("")
    return lines


def write_json(path: Path) -> None:
    path.write_text(json.dumps(_SECTIONS, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def report_path() -> Path | None:
    value = os.environ.get(REPORT_ENV)
    return Path(value) if value else None
