"""Tests for node.runtime: a one-shot run writes the list; a restart resumes from the data dir."""

from __future__ import annotations

import json
from pathlib import Path

from node.config import LLMSettings, NodeConfig
from node.export import LIST_FILENAME
from node.producer import ProducerConfig
from node.runtime import Progress, run_node

TOPIC = "countries of the world"


def _config(data_dir: Path, **producer: int) -> NodeConfig:
    return NodeConfig(
        topic=TOPIC,
        data_dir=data_dir,
        llm=LLMSettings(kind="sim", universe="countries", time_scale=0.0, rng_seed=3),
        producer=ProducerConfig(**producer),
        exit_when_done=True,
        list_debounce_s=0.0,
        port=0,
    )


def _list_ids(data_dir: Path) -> list[str]:
    lines = (data_dir / LIST_FILENAME).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines]


async def test_one_shot_run_stops_when_exhausted_and_writes_the_list(tmp_path: Path) -> None:
    """--exit-when-done returns once the stop rule fires, with list.jsonl matching the list."""
    progress: list[Progress] = []
    result = await run_node(_config(tmp_path), on_progress=progress.append)
    assert result.reason.startswith("topic exhausted")
    ids = _list_ids(tmp_path)
    assert len(ids) == result.entries > 50
    assert len(set(ids)) == len(ids)
    final = progress[-1]
    assert final.done_reason == result.reason and final.entries == result.entries
    assert 0 < final.duplicate_share < 1 and final.estimate.estimate >= final.estimate.observed


async def test_restart_resumes_and_the_list_only_grows(tmp_path: Path) -> None:
    """A second run on the same data dir starts from what the first committed."""
    first = await run_node(_config(tmp_path, max_calls=4))
    before = set(_list_ids(tmp_path))
    second = await run_node(_config(tmp_path, max_calls=4))
    after = set(_list_ids(tmp_path))
    assert first.calls == second.calls == 4
    assert before <= after and len(after) > len(before)
