"""Kill -9 at random moments, many times, against real SQLite files: nothing acknowledged is lost.

issue #13: a record is acknowledged once its commit returned (``node.store``); a node killed
with SIGKILL at any moment — producing, merging records a peer gossiped, rewriting
``list.jsonl``, starting — restarts on its data dir with every record it acknowledged, and
its ``list.jsonl`` is always whole and never loses a line. The node runs in processes forked
from a zygote (``tests.node.crash_harness``), so a cycle costs a fraction of a second.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from node.assembly import Node
from node.config import LLMSettings, NodeConfig
from node.export import LIST_FILENAME, ListFileWriter, iter_jsonl
from node.global_list import GlobalList
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe
from node.store import DB_FILENAME
from gossip.testing import InMemoryNetwork

from tests import suite_report
from tests.node.crash_harness import (
    TOPIC,
    UNIVERSE,
    ChildPlan,
    ChildRun,
    Phase,
    Zygote,
    listed_ids,
    read_list,
    stored,
    temp_list_files,
)

SECTION = "reliability: crashes"
CYCLES = 30
SEED = 1313
KILL_PHASES = (Phase.PRODUCING, Phase.MERGING, Phase.REWRITING)


def _wait_ready(zygote: Zygote, run: ChildRun) -> None:
    zygote.follow(run, 60, until=lambda run: run.ready is not None or run.exit_status is not None)
    assert run.ready is not None, f"the node did not start (exit {run.exit_status}); see {zygote.log_path}"


def _poll(zygote: Zygote, run: ChildRun, condition: Callable[[], bool], timeout_s: float) -> bool:
    """Read reports and check ``condition()`` every ~0.2 ms (a rewrite's window is milliseconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        zygote.follow(run, 0.0)
        if condition():
            return True
        time.sleep(0.0002)
    return False


def _aim(zygote: Zygote, run: ChildRun, target: Phase, data_dir: Path, rng: random.Random, merge_ms: list[float],
         ready_s: float) -> None:  # fmt: skip
    """Bring the child to a moment of ``target`` (where the kill is meant to land); the kill follows."""
    if target is Phase.STARTING:
        zygote.follow(run, rng.uniform(0, ready_s))
        return
    _wait_ready(zygote, run)
    zygote.follow(run, rng.uniform(0.03, 0.25))  # let it produce, merge and write for a while
    if target is Phase.PRODUCING:
        _poll(zygote, run, lambda: run.open_merge is None and not temp_list_files(data_dir), 2.0)
    elif target is Phase.MERGING:
        if _poll(zygote, run, lambda: run.open_merge is not None, 2.0):
            zygote.follow(run, rng.uniform(0, 0.8 * statistics.median(merge_ms)) / 1000)
    elif _poll(zygote, run, lambda: bool(temp_list_files(data_dir)), 3.0):
        time.sleep(rng.uniform(0, 0.0005))


def _landed(run: ChildRun, data_dir: Path, fresh: bool) -> Phase:
    """Where the kill landed: from what the child reported and what it left on disk."""
    if run.ready is None:
        return Phase.CREATING if fresh else Phase.STARTING
    if any(f".{run.pid}." in path.name for path in temp_list_files(data_dir)):
        return Phase.REWRITING
    if run.open_merge is not None:
        return Phase.MERGING
    return Phase.PRODUCING


def _target(cycle: int, landed: Counter[Phase], rng: random.Random) -> Phase:
    """Every tenth cycle kills a start; the rest go to the phase with the fewest kills so far."""
    if cycle % 10 == 9:
        return Phase.STARTING
    fewest = min(landed[phase] for phase in KILL_PHASES)
    return rng.choice([phase for phase in KILL_PHASES if landed[phase] == fewest])


async def _clean_restart(data_dir: Path) -> tuple[str, str]:
    """Open the node on ``data_dir`` as a restart does, write its list, close: (file, expected)."""
    config = NodeConfig(topic=TOPIC, data_dir=data_dir, llm=LLMSettings(universe=UNIVERSE, time_scale=0))
    model = SimulatedModel(load_universe(UNIVERSE), SimParams.fault_free(), knowledge_seed=0)
    network = InMemoryNetwork(0)
    node = await Node.open(config, backend=lambda: SimulatedBackend(model), address="127.0.0.1:1",
                           transport=lambda wire: network.transport("127.0.0.1:1", wire))  # fmt: skip
    try:
        assert node.writer is not None
        node.writer.start()
        node.writer.changed()
        await node.flush_list()
        expected = "".join(iter_jsonl(node.state.entries, lambda line: node.state.status(line).value))
    finally:
        await node.aclose()
    return (data_dir / LIST_FILENAME).read_text(encoding="utf-8"), expected


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """30 SIGKILLs while producing, merging and rewriting list.jsonl: every acknowledged record
    survives, the store only grows, list.jsonl is always whole and never loses a line."""
    rng = random.Random(SEED)
    data_dir = tmp_path / "node"
    landed: Counter[Phase] = Counter()
    acknowledged: set[str] = set()
    listed: set[str] = set()
    count = 0
    peer_from = 0
    merge_ms = [5.0]
    ready_s = [0.3]
    started = time.monotonic()
    with Zygote(tmp_path / "zygote.log") as zygote:
        for cycle in range(CYCLES):
            target = _target(cycle, landed, rng)
            fresh = not (data_dir / DB_FILENAME).exists()
            run = zygote.fork(ChildPlan(str(data_dir), seed=rng.getrandbits(32), peer_from=peer_from))
            _aim(zygote, run, target, data_dir, rng, merge_ms, statistics.median(ready_s))
            zygote.kill_and_reap(run)
            assert run.exit_status == -9, f"the node ended on its own ({run.exit_status}); see {zygote.log_path}"
            phase = _landed(run, data_dir, fresh)
            landed[phase] += 1
            merge_ms.extend(run.merge_ms)

            held = stored(data_dir)  # the restart's open: a stale lock or a torn file must not refuse it
            acknowledged |= run.acknowledged
            lost = acknowledged - held.keys
            assert not lost, f"cycle {cycle} ({phase}): {len(lost)} acknowledged records lost"
            assert run.ready in (None, count), "a restart replayed another number of records than were stored"
            assert len(held.keys) >= count, f"cycle {cycle} ({phase}): the store shrank from {count} to {len(held.keys)}"
            count = len(held.keys)
            if run.ready_s is not None:
                ready_s.append(run.ready_s)
            lines = read_list(data_dir / LIST_FILENAME)  # whole lines, no entry twice
            now_listed = listed_ids(lines)
            assert listed <= now_listed, f"cycle {cycle} ({phase}): list.jsonl lost {len(listed - now_listed)} lines"
            assert now_listed <= held.entries, "list.jsonl shows an entry that was never committed"
            listed = now_listed
            if run.merged_batches:  # the peer re-sends from the first batch not acknowledged, sometimes one earlier
                peer_from = max(run.merged_batches) + 1 - rng.choice((0, 0, 1))

    written, expected = asyncio.run(_clean_restart(data_dir))
    assert written == expected, "after a clean restart list.jsonl is exactly the stored set's list"
    assert listed <= listed_ids(read_list(data_dir / LIST_FILENAME))
    assert stored(data_dir).entries <= listed_ids(read_list(data_dir / LIST_FILENAME)), "a stored entry is not listed"
    assert temp_list_files(data_dir) == [], "temp files of rewrites cut short by kills are left behind"
    elapsed = time.monotonic() - started
    suite_report.record(
        SECTION, "kill -9 cycles, one node (forked)", cycles=CYCLES,
        **{f"kills {phase.value}": landed[phase] for phase in (*KILL_PHASES, Phase.STARTING)},
        acknowledged=len(acknowledged), lost=0, records=count, seconds=round(elapsed, 1),
    )  # fmt: skip
    for phase in KILL_PHASES:
        assert landed[phase] >= 3, f"too few kills landed {phase}: {dict(landed)}"


@pytest.mark.slow
def test_kill_9_during_the_first_start_never_bricks_the_data_dir(tmp_path: Path) -> None:
    """Killed while creating its database, a node's data dir still opens: nothing was acknowledged yet."""
    rng = random.Random(SEED)
    kills = 0
    with Zygote(tmp_path / "zygote.log") as zygote:
        for attempt in range(8):
            data_dir = tmp_path / f"node-{attempt}"
            run = zygote.fork(ChildPlan(str(data_dir), seed=attempt, peer_from=0))
            # The database file appears as the store opens; its schema commits a few ms later.
            assert _poll(zygote, run, lambda: (data_dir / DB_FILENAME).exists(), 30.0), "no database created"
            time.sleep(rng.uniform(0, 0.004))
            zygote.kill_and_reap(run)
            kills += run.ready is None
            assert run.acknowledged <= stored(data_dir).keys  # opens, or raises here
    suite_report.record(SECTION, "kill -9 during the first start", kills=8, **{"before the node ran": kills},
                        refused=0)  # fmt: skip


async def test_a_list_rewrite_cut_short_leaves_no_temp_file_once_the_node_restarts(tmp_path: Path) -> None:
    """Regression (issue #13): each kill during a rewrite left a ``.list.jsonl.<pid>.tmp`` behind
    for good; the next writer on the data dir removes them before its first write."""
    (tmp_path / ".list.jsonl.4242.tmp").write_text('{"id": "half a li', encoding="utf-8")
    unrelated = tmp_path / ".list.jsonl.backup.tmp"  # not a writer's temp name: not ours to delete
    unrelated.write_text("kept", encoding="utf-8")
    writer = ListFileWriter(GlobalList(), tmp_path, debounce_s=0)
    await writer.flush()
    await writer.aclose()
    assert temp_list_files(tmp_path) == [unrelated]
    assert read_list(tmp_path / LIST_FILENAME) == []
