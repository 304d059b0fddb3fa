"""Churn during production, on the virtual clock: nodes crash, restart and join every few seconds.

Ownership of partitions moves with every change (weighted rendezvous over each node's view);
the promises checked here are that no leaf stays orphaned — assigned, in some live node's
view, to a node that is not running — for longer than SWIM + Lifeguard's failure-detection
bound, that the cluster converges on one set once churn stops, and that no acknowledged
record is lost. The bound (``tests.node.churn.failure_detection_bound_s``, reasoning there):

    bound = (2·(N − 1) + 1)·probe_interval                       until a probe of the dead fails
          + suspicion_max_timeout_mult · suspicion_mult · max(1, log10 N) · probe_interval
          + retransmit_mult · ⌈log10(N + 1)⌉ · gossip_interval     the "dead" rumour's spread

With ``GossipConfig.local()`` and N = 8: 3.0 + 4.8 + 0.2 = 8.0 virtual seconds. Orphan times are
sampled every 0.1 s and counted as upper bounds (end − start + one interval).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from gossip.config import GossipConfig
from gossip.testing import run_virtual
from node.sim_report import committed_keys, set_digest
from node.simulation import SimConfig, Simulation

from tests import suite_report
from tests.node.churn import ChurnLog, ChurnPlan, OrphanAudit, failure_detection_bound_s

INITIAL_NODES = 6
MAX_NODES = 8
SAMPLE_S = 0.1  # the orphan audit's resolution (virtual seconds)


def _config(tmp_path: Path, seed: int) -> SimConfig:
    # llm_time_scale 3: calls take a few virtual seconds each, so production outlasts the churn
    # (virtual time is free: the cost is events, not seconds).
    return SimConfig(nodes=INITIAL_NODES, universe="countries", rng_seed=seed, max_calls=0, gossip_profile="local",
                     llm_time_scale=3.0, time_limit_s=400.0, data_dir=tmp_path)  # fmt: skip


def test_under_churn_no_leaf_stays_orphaned_past_the_failure_detection_bound_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """Crashes, restarts and joins every 3 s for 45 s of production: orphans end within the bound;
    once churn stops every node holds one set, the union of everything any node committed."""
    seed = 5
    bound_s = failure_detection_bound_s(GossipConfig.local(), MAX_NODES)
    acknowledged_at_crash: set[str] = set()

    def remember_acknowledged(name: str) -> None:
        acknowledged_at_crash.update(committed_keys(tmp_path / name))  # what the crashed node had committed

    plan = ChurnPlan(start_s=3.0, end_s=45.0, every_s=3.0, min_running=4, max_nodes=MAX_NODES, seed=seed,
                     after_crash=remember_acknowledged)  # fmt: skip
    simulation = Simulation(_config(tmp_path, seed))
    churn = ChurnLog()
    plan.schedule(simulation, churn)
    audit = OrphanAudit(interval_s=SAMPLE_S)
    audit.schedule(simulation, start_s=1.0, until_s=plan.end_s + plan.every_s + 2 * bound_s)
    started = time.perf_counter()
    report = run_virtual(simulation.run())
    real_s = time.perf_counter() - started

    digests = report.digests()
    every_committed = set().union(*(committed_keys(tmp_path / name) for name in simulation.names()))
    lost = acknowledged_at_crash - every_committed
    missing = {name: len(every_committed - set(committed_keys(tmp_path / name))) for name in digests}
    suite_report.record(
        "reliability: churn", f"{INITIAL_NODES}→{len(simulation.names())} nodes, a change every {plan.every_s:g} s",
        kills=churn.kills, restarts=churn.restarts, joins=churn.joins, owner_moves=audit.owners_moved,
        orphan_episodes=audit.episodes, longest_orphan_s=round(audit.longest_s, 2), bound_s=round(bound_s, 2),
        records=len(every_committed), lost=len(lost), converged_at_s=report.cluster["converged_at_s"],
        virtual_s=report.virtual_s, real_s=round(real_s, 1),
    )  # fmt: skip

    assert churn.kills >= 5 and churn.joins >= 1 and churn.restarts >= churn.kills, churn.events
    assert audit.episodes >= churn.kills // 2, "crashes orphaned leaves (else the audit saw nothing)"
    assert audit.longest_s <= bound_s, (audit.longest_s, audit.longest_leaf, bound_s, churn.events)
    assert max(audit.per_sample_longest_s) <= bound_s and audit.samples >= 400
    assert audit.open_episodes == 0, "a leaf was still orphaned when the audit ended"

    assert report.end_reason == "converged", report.end_reason
    assert report.cluster["last_new_entry_at_s"] > plan.end_s, "production went on through the churn"
    assert len(digests) == len(simulation.names()) and all(node["alive"] for node in report.nodes)
    assert not lost, "records a crashed node had committed are gone"
    assert set(missing.values()) == {0}, missing
    assert set(digests.values()) == {set_digest(sorted(every_committed))}, "the nodes' digests differ"


@pytest.mark.parametrize(
    ("config", "members", "expected_s"),
    [
        # (2·7 + 1)·0.2 + 6·4·1·0.2 + 4·⌈log10 9⌉·0.05
        (GossipConfig.local(), 8, 3.0 + 4.8 + 0.2),
        # (2·7 + 1)·1 + 6·4·1·1 + 4·1·0.2
        (GossipConfig.lan(), 8, 15.0 + 24.0 + 0.8),
        # (2·19 + 1)·1 + 6·4·log10(20)·1 + 4·⌈log10 21⌉·0.2
        (GossipConfig.lan(), 20, 39.0 + 24 * math.log10(20) + 1.6),
    ],
)
def test_failure_detection_bound_follows_the_gossip_config(config: GossipConfig, members: int, expected_s: float) -> None:
    """Probe rounds to reach the member, plus Lifeguard's longest suspicion, plus the rumour's spread."""
    assert failure_detection_bound_s(config, members) == pytest.approx(expected_s)
