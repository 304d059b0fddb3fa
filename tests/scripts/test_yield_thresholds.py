"""Tests for scripts/bench/yield_thresholds.py: calls to each coverage level, and where runs ended."""

from __future__ import annotations

from typing import Any

from scripts.bench.yield_thresholds import CANDIDATES, DEFAULT, rows, summarise


def _run(seed: int, curve: list[tuple[float, int, int, int, int]], **ends: float) -> dict[str, Any]:
    return {"lever": "c", "seed": seed, "curve": curve, "universe": {"truth_size": 100},
            "coverage": 0.5, "calls": curve[-1][1], "split_calls": 3, "precision": 0.9, **ends}  # fmt: skip


def test_calls_to_a_level_are_the_first_point_at_or_past_it_and_unreached_if_any_run_missed_it() -> None:
    first = _run(1, [(0.0, 5, 0, 0, 9), (1.0, 10, 0, 0, 10), (2.0, 30, 0, 0, 45)])
    second = _run(2, [(0.0, 20, 0, 0, 20), (1.0, 50, 0, 0, 40)], coverage=0.7)
    summary = summarise([first, second], ["c", "absent"])
    assert list(summary) == ["c"]
    assert summary["c"]["calls_to"]["10%"] == (15.0, 7.0710678118654755)  # 10 and 20 calls
    assert summary["c"]["calls_to"]["40%"] == (40.0, 14.142135623730951)  # 30 and 50
    assert summary["c"]["calls_to"]["60%"] is None  # neither got there
    assert summary["c"]["coverage"] == (0.6, 0.14142135623730948)
    assert rows(summary)[0][3] == "40 ± 14" and rows(summary)[0][4] == "not reached"


def test_exactly_one_candidate_is_the_shipped_default() -> None:
    assert [candidate.name for candidate in CANDIDATES if candidate.changes["partitioning"] == DEFAULT] == [
        name for name in (candidate.name for candidate in CANDIDATES) if name.endswith("(default)")
    ]
    assert sum(candidate.changes["partitioning"] == DEFAULT for candidate in CANDIDATES) == 1
