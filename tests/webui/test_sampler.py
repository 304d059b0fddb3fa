"""Tests for webui.sampler: flattening, JSON safety, pacing, history and entry batching."""

from __future__ import annotations

import math

import pytest

from tests.webui.fake_view import FakeView
from webui.events import EventHub
from webui.sampler import (
    MAX_LOAD_FACTOR,
    MAX_PENDING_ENTRIES,
    Sampler,
    flatten_numbers,
    json_safe,
    next_tick_delay,
)


def test_flatten_keeps_finite_numbers_by_dotted_path() -> None:
    """Nested numbers become dotted keys; text, None, booleans and infinities are left out."""
    metrics = {"entries": 3, "node": "n1", "ok": True, "estimate": {"total": 9.5, "high": math.inf, "low": None},
               "gossip": {"bytes_in": 10}}  # fmt: skip
    assert flatten_numbers(metrics) == {"entries": 3.0, "estimate.total": 9.5, "gossip.bytes_in": 10.0}


def test_json_safe_turns_non_finite_floats_into_null() -> None:
    """JSON has no infinity: such values become None, everywhere in the structure."""
    assert json_safe({"a": math.inf, "b": [1.0, math.nan], "c": {"d": -math.inf, "e": "x"}}) == {
        "a": None, "b": [1.0, None], "c": {"d": None, "e": "x"}
    }  # fmt: skip


@pytest.mark.parametrize(
    ("tick_s", "cost_s", "expected"),
    [(1.0, 0.0, 1.0), (1.0, 0.05, 1.0), (1.0, 0.2, 0.2 * MAX_LOAD_FACTOR), (0.5, 1.0, 1.0 * MAX_LOAD_FACTOR)],
)
def test_sampling_slows_down_when_metrics_are_expensive(tick_s: float, cost_s: float, expected: float) -> None:
    """The next sample waits tick_s, or MAX_LOAD_FACTOR times the last sample's cost if longer."""
    assert next_tick_delay(tick_s, cost_s) == pytest.approx(expected)


def test_the_history_is_bounded_and_downsampled_with_the_newest_kept() -> None:
    """The ring keeps `history` samples; series() thins them evenly and always ends on the newest."""
    view = FakeView()
    clock = iter(range(1000))
    sampler = Sampler(view, EventHub(), history=50, clock=lambda: float(next(clock)))
    for calls in range(120):
        view.metric_values["calls"] = calls
        sampler.tick()
    samples = sampler.series(10)
    assert len(sampler.series(1000)) == 50
    assert len(samples) == 10 and samples[-1]["calls"] == 119 and samples[0]["calls"] == 70
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)


def test_entries_are_batched_only_for_listeners_and_bounded() -> None:
    """Without clients nothing is buffered; with one, a burst keeps MAX_PENDING_ENTRIES and flags more."""
    view, hub = FakeView(), EventHub()
    sampler = Sampler(view, hub)
    view.subscribe(sampler.on_entry)
    view.add("Alone")
    assert "pending=0" in repr(sampler)
    subscription = hub.open()
    assert subscription is not None
    for n in range(MAX_PENDING_ENTRIES + 5):
        view.add(f"Place {n}")
    sampler.flush_entries()
    chunk = subscription.queue.get_nowait()
    assert chunk is not None and b'"more":true' in chunk and chunk.count(b'"id":') == MAX_PENDING_ENTRIES
    sampler.flush_entries()
    assert subscription.queue.empty()  # nothing new: nothing sent
