"""Tests for scripts/bench/single_node.py: a real ``gossip-node --exit-when-done`` run, replayed
from its data dir, agrees with the list the node itself wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.llm.sim.universe import load_universe
from node.normalize import entry_id
from scripts.bench.single_node import POINTS, measure_run

pytestmark = pytest.mark.slow


def test_a_real_one_shot_run_replayed_from_its_data_dir_matches_the_list_it_wrote(tmp_path: Path) -> None:
    """Points at 25/50/75% of the calls and at the end only grow; the last one is the node's
    list.jsonl, and the "later" columns are what the list gained after each point."""
    run = measure_run("countries", 3, tmp_path, extra=("--sim-time-scale", "0", "--max-calls", "16"))
    points = run.points
    assert run.exit_code == 0 and [point.share for point in points] == list(POINTS)
    for field in ("calls", "llm_calls", "tokens", "lines", "real_covered", "elapsed_s"):
        values = [getattr(point, field) for point in points]
        assert values == sorted(values), field
    total = points[-1].calls
    assert 0 < total <= 16  # --max-calls caps enumeration calls
    assert [point.calls for point in points[:-1]] == [round(total * share / 100) for share in POINTS[:-1]]
    assert all(point.llm_calls >= point.calls for point in points)  # split and failed calls on top

    written = [json.loads(line) for line in (tmp_path / "node" / "list.jsonl").read_text().splitlines()]
    truth = load_universe("countries").id_of_any_name()
    ids = {entry_id(text) for line in written for text in (line["text"], *line["aliases"])}
    final = points[-1]
    assert final.lines == len(written)
    assert final.real_covered == len({truth[i] for i in ids if i in truth}) > 0
    assert final.coverage == pytest.approx(final.real_covered / run.universe_size)
    assert [point.found_later for point in points] == [final.real_covered - point.real_covered for point in points]
    assert [point.lines_later for point in points] == [final.lines - point.lines for point in points]
    assert final.found_later == final.lines_later == 0 and points[0].found_later > 0
    centre, low, high = points[0].remaining
    assert 0 <= low <= centre <= high
