"""Tests for scripts/bench/scale.py: the growth fits, the run plan, and one tiny measured run."""

from __future__ import annotations

import math

import pytest

from gossip.messages import MessageType
from gossip.testing import Leg, TrafficCount
from scripts.bench.scale import (
    LAYERS,
    RunSpec,
    TrafficSample,
    busy_window,
    plan_runs,
    run_one,
)
from scripts.bench.scale_report import (
    SAME_PER_NODE,
    SAME_TOTAL,
    growth_exponent,
    least_squares,
    memory_model,
    predict_memory,
    series_exponents,
)


def test_the_growth_exponent_of_a_power_law_is_its_power() -> None:
    sizes = [10, 50, 100]
    assert growth_exponent(sizes, [3 * n**1.5 for n in sizes]) == pytest.approx(1.5)
    assert growth_exponent(sizes, [7.0, 7.0, 7.0]) == pytest.approx(0.0)
    assert growth_exponent(sizes, [math.log(n) for n in sizes]) == pytest.approx(0.30, abs=0.01)  # log N: slow growth


def test_points_that_cannot_be_logged_are_left_out_and_too_few_give_none() -> None:
    assert growth_exponent([10, 50, 100], [None, 0.0, 4.0]) is None
    assert growth_exponent([10, 50, 100], [2.0, None, 20.0]) == pytest.approx(1.0)


def test_least_squares_recovers_a_plane_and_refuses_too_few_points() -> None:
    rows = [[1, 100, 30], [1, 1_000, 700], [1, 3_000, 1_000], [1, 2_000, 100]]
    fit = least_squares(rows, [2 + 0.004 * x + 0.001 * y for _, x, y in rows])
    assert fit == pytest.approx([2, 0.004, 0.001])
    assert least_squares([[1, 5, 1], [1, 5, 1], [1, 5, 1]], [1, 2, 3]) is None  # rank 1
    assert least_squares([[1, 5, 1]], [1]) is None


def test_the_two_series_meet_once_at_the_largest_cluster() -> None:
    """Per node 6 calls and 600 in all coincide at N = 100: that run is made once."""
    specs = plan_runs([10, 50, 100], per_node_calls=6, total_calls=600, seed=3)
    assert [(s.series, s.nodes, s.calls_per_node) for s in specs] == [
        (SAME_PER_NODE, 10, 6), (SAME_TOTAL, 10, 60), (SAME_PER_NODE, 50, 6), (SAME_TOTAL, 50, 12),
        (SAME_PER_NODE, 100, 6),
    ]  # fmt: skip
    assert {s.seed for s in specs} == {3}


def test_the_busy_phase_ends_when_fewer_than_half_still_produce() -> None:
    zero = {layer: {"messages": 0, "bytes": 0} for layer in LAYERS}
    samples = [TrafficSample(t, producing, zero) for t, producing in ((0.2, 10, ), (1.2, 9), (2.2, 5), (3.2, 4), (9.2, 1))]
    window = busy_window(samples, nodes=10)
    assert window is not None and (window[0].t_s, window[1].t_s) == (0.2, 3.2)
    assert busy_window(samples[:2], nodes=10) == (samples[0], samples[1])  # never fell below half: up to the last
    assert busy_window(samples[:1], nodes=10) is None


def test_every_message_type_belongs_to_exactly_one_layer() -> None:
    """The traffic split never drops or double-counts a protocol message."""
    owners = [layer for kind in MessageType for layer, kinds in LAYERS.items() if kind in kinds]
    assert len(owners) == len(MessageType)
    assert TrafficCount().plus(3).bytes == 3 and Leg.REPLY  # the counters this script reads


def test_memory_model_recovers_the_per_record_costs_and_extrapolates() -> None:
    """Memory = 0.5 MiB + 4 KiB per entry + 1 KiB per other record is recovered and extrapolated."""
    held = ((10, 6, 400, 150), (10, 60, 5_000, 1_300), (50, 6, 1_200, 750), (50, 12, 3_500, 1_400), (100, 6, 2_000, 1_500))
    runs = [{"nodes": n, "calls_per_node": k, "entry_records_held": e, "records_held": e + o,
             "memory_per_node_mib": 0.5 + (4 * e + o) / 1024} for n, k, e, o in held]  # fmt: skip
    model = memory_model(runs, largest=100, universe_size=20_000)
    assert model["fit_all"]["kib_per_entry_record"] == pytest.approx(4.0)
    assert model["fit_all"]["kib_per_other_record"] == pytest.approx(1.0)
    assert model["full_universe"]["per_node_mib"] == pytest.approx(0.5 + 4 * 20_000 / 1024)
    assert model["full_universe"]["gib"] == pytest.approx(100 * (0.5 + 4 * 20_000 / 1024) / 1024)


def test_a_tiny_run_is_measured_and_converges() -> None:
    """Three nodes, one call each, on synthetic-20000: counted traffic, memory, one digest."""
    run = run_one(RunSpec(SAME_PER_NODE, nodes=3, calls_per_node=1, seed=2))
    assert run["all_identical"] and run["distinct_digests"] == 1 and run["end_reason"] == "converged"
    assert run["records_held"] > run["entry_records_held"] > 0 and run["list_lines"] > 0
    assert run["messages"] > 0 and run["bytes_per_node_s"] > 0
    layers = run["layers_per_node_s"]
    assert layers["push"]["bytes"] > 0 and layers["membership"]["messages"] > 0
    assert sum(layer["messages"] for layer in layers.values()) == pytest.approx(run["messages_per_node_s"])
    assert 0 <= run["busy_from_s"] < run["busy_until_s"] <= run["virtual_s"]
    assert run["whole_run"]["messages_per_node_s"] * 3 * run["virtual_s"] == pytest.approx(run["messages"])
    # A run this small may fit in heap the process already holds (RSS does not grow): the
    # measurement is read (peak ≥ baseline > 0), its growth fit comes from the real runs.
    assert run["peak_rss_mib"] >= run["baseline_rss_mib"] > 0 and run["memory_per_node_mib"] >= 0
    assert run["disk_per_node_mib"] > 0
    assert run["convergence_s"] is not None and run["convergence_s"] >= 0
    exponents = series_exponents([run, dict(run, nodes=6, messages_per_node_s=2 * run["messages_per_node_s"])])
    assert exponents[SAME_PER_NODE]["messages_per_node_s"] == pytest.approx(1.0)


def test_the_largest_run_is_predicted_from_the_smaller_ones_of_its_series() -> None:
    """Records grow by a power law in N within the per-node series; memory follows the model."""
    held = ((10, 6, 400, 150), (10, 60, 4_000, 1_300), (50, 6, 2_000, 600), (50, 12, 3_000, 1_100))
    runs = [{"nodes": n, "calls_per_node": k, "entry_records_held": e, "records_held": e + o,
             "memory_per_node_mib": 0.5 + (4 * e + o) / 1024} for n, k, e, o in held]  # fmt: skip
    prediction = predict_memory(runs, nodes=100, calls_per_node=6)
    assert prediction is not None
    records = 550 * 10 ** (math.log(2_600 / 550) / math.log(5))  # 550 at N = 10, 2,600 at 50: a power law
    assert prediction["records_held"] == pytest.approx(records)
    assert prediction["entry_records_held"] == pytest.approx(4_000)  # 400 × (N/10)¹
    assert prediction["per_node_mib"] == pytest.approx(0.5 + (4 * 4_000 + records - 4_000) / 1024)
    assert prediction["total_gib"] == pytest.approx(prediction["per_node_mib"] * 100 / 1024)
    assert predict_memory(runs[:1], nodes=100, calls_per_node=6) is None
