"""Tests for node.view: keyset pages, cursors and filters over a real global list."""

from __future__ import annotations

import pytest

from node.normalize import entry_id, normal_form
from node.records import EntryRecord, ItemDetail, MatchKind, ObservationRecord, ObservedItem
from node.state import MAX_OBSERVATIONS_KEPT, NodeState
from node.view import StateView, decode_cursor, encode_cursor
from webui.view import ConvergenceView, DiscoveryPoint

NAMES = ["Zürich", "Aarhus", "Łódź", "Bern", "São Paulo", "Köln", "Cologne", "Lyon", "Málaga"]


def _view() -> StateView:
    state = NodeState()
    for hlc, name in enumerate(NAMES):
        partition = "Brazil" if name == "São Paulo" else "Europe"
        state.apply(EntryRecord(id=entry_id(name), text=name, partition=partition, origin="n1", hlc=hlc))
    return StateView(state, node_name="n1", topic="cities", members=list, metrics=dict)


def test_pages_follow_the_list_order_without_gaps_or_repeats() -> None:
    """Walking the cursor gives every line once, ordered by normal form."""
    view = _view()
    texts, cursor = [], None
    while True:
        page = view.entries(cursor=cursor, limit=4, query=None, partition=None)
        texts += [entry.text for entry in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert texts == sorted(texts, key=normal_form)
    assert len(texts) == len(set(texts)) == page.total == len(view._state.entries)


def test_search_ignores_case_and_accents_and_partition_filters() -> None:
    """q matches normal forms (lodz finds Łódź); partition is an exact filter."""
    view = _view()
    assert [e.text for e in view.entries(cursor=None, limit=10, query="LODZ", partition=None).entries] == ["Łódź"]
    page = view.entries(cursor=None, limit=10, query=None, partition="Brazil")
    assert [e.text for e in page.entries] == ["São Paulo"] and page.total == 1


def test_filtered_pages_continue_from_the_cursor() -> None:
    """A filtered walk with a small limit still sees each match once."""
    view = _view()
    first = view.entries(cursor=None, limit=2, query=None, partition="Europe")
    second = view.entries(cursor=first.next_cursor, limit=10, query=None, partition="Europe")
    assert first.total == second.total == len(view._state.entries) - 1  # all but São Paulo
    assert not {e.id for e in first.entries} & {e.id for e in second.entries}
    assert len(first.entries) + len(second.entries) == first.total


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", "WzFd", "eyJhIjoxfQ"])
def test_forged_cursors_are_refused(cursor: str) -> None:
    """A cursor this node did not issue raises ValueError (a 400 at the API)."""
    view = _view()
    with pytest.raises(ValueError, match="not one this node issued"):
        view.entries(cursor=cursor, limit=1, query=None, partition=None)


def test_cursor_round_trip() -> None:
    """encode/decode are inverse."""
    assert decode_cursor(encode_cursor(("sao paulo", "ab" * 16))) == ("sao paulo", "ab" * 16)


def _observe(state: NodeState, call: int, partition: str, items: list[tuple[str, str, MatchKind, float]]) -> None:
    state.apply(
        ObservationRecord(
            node="n1", call=call, partition=partition, hlc=1000 + call,
            items=tuple(ObservedItem(entry_id(target), match) for _, target, match, _ in items),
            detail=tuple(ItemDetail(text, score) for text, _, _, score in items),
        )
    )  # fmt: skip


def test_entry_observations_say_how_each_generated_item_resolved() -> None:
    """The line's detail lists the items resolved to it (new, exact, fuzzy with score) and a total."""
    view = _view()
    _observe(view._state, 1, "Europe", [("Köln", "Köln", MatchKind.NEW, 1.0), ("Bern", "Bern", MatchKind.NEW, 1.0)])
    _observe(view._state, 2, "Europe", [("KÖLN", "Köln", MatchKind.EXACT, 1.0), ("Koeln", "Köln", MatchKind.FUZZY, 0.83)])
    found = view.entry_observations(entry_id("Köln"))
    assert found is not None
    assert found.generated == 3 and found.entry.text in {"Köln", "Cologne"}
    assert [(o.text, o.match, o.score, o.call) for o in found.observations] == [
        ("Köln", "new", 1.0, 1), ("KÖLN", "exact", 1.0, 2), ("Koeln", "fuzzy", 0.83, 2)
    ]  # fmt: skip
    assert view.entry_observations("0" * 32) is None and view.entry("0" * 32) is None


def test_observations_kept_per_entry_are_bounded_but_counted() -> None:
    """Only the first MAX_OBSERVATIONS_KEPT items are kept per entry; `generated` counts them all."""
    view = _view()
    for call in range(MAX_OBSERVATIONS_KEPT + 10):
        _observe(view._state, call, "Europe", [("Lyon", "Lyon", MatchKind.EXACT, 1.0)])
    found = view.entry_observations(entry_id("Lyon"))
    assert found is not None and len(found.observations) == MAX_OBSERVATIONS_KEPT
    assert found.generated == MAX_OBSERVATIONS_KEPT + 10


def test_discovery_curve_is_cumulative_and_thinned_to_max_points() -> None:
    """Points start at the origin, end at the last call, and never exceed max_points."""
    view = _view()
    assert view.discovery(10) == [DiscoveryPoint(0, 0, 0)]
    for call in range(1, 101):
        _observe(view._state, call, "Europe", [("Bern", "Bern", MatchKind.EXACT, 1.0)] * 3)
    points = view.discovery(10)
    assert len(points) <= 10 and points[0] == DiscoveryPoint(0, 0, 0) and points[-1] == DiscoveryPoint(100, 300, 0)
    assert [p.calls for p in points] == sorted(p.calls for p in points)
    assert len(view.discovery(1000)) == 101


def test_partitions_and_metrics_tally_the_observed_calls() -> None:
    """Per-partition entries, calls, items and yield; cluster-wide item counters in metrics()."""
    view = _view()
    _observe(view._state, 1, "Europe", [("Bern", "Bern", MatchKind.EXACT, 1.0), ("Lyon", "Lyon", MatchKind.NEW, 1.0)])
    _observe(view._state, 2, "Brazil", [("São Paulo", "São Paulo", MatchKind.NEW, 1.0)])
    partitions = {p.path: p for p in view.partitions() or []}
    assert (partitions["Europe"].entries, partitions["Europe"].calls, partitions["Europe"].items,
            partitions["Europe"].new) == (len(NAMES) - 1, 1, 2, 1)  # fmt: skip
    assert partitions["Brazil"].owner is None and partitions["Brazil"].state is None
    metrics = view.metrics()
    assert (metrics["observed_calls"], metrics["generated_items"], metrics["new_items"]) == (2, 3, 2)


def test_status_filter_and_subscription() -> None:
    """Every entry is unconfirmed until verdicts exist; subscribers hear of new entries, then stop."""
    view = _view()
    assert view.entries(cursor=None, limit=50, query=None, partition=None, status="confirmed").total == 0
    assert view.entries(cursor=None, limit=50, query=None, partition=None, status="unconfirmed").total == len(
        view._state.entries
    )
    heard: list[str] = []
    unsubscribe = view.subscribe(heard.append)
    view._state.apply(EntryRecord(id=entry_id("Porto"), text="Porto", partition="Europe", origin="n2", hlc=99))
    unsubscribe()
    view._state.apply(EntryRecord(id=entry_id("Braga"), text="Braga", partition="Europe", origin="n2", hlc=100))
    assert heard == [entry_id("Porto")]


def test_a_failing_listener_does_not_break_apply() -> None:
    """An exception in an entry listener is logged, and the record is still applied."""
    state = NodeState()

    def broken(_entry: str) -> None:
        raise RuntimeError("page is gone")

    state.add_entry_listener(broken)
    assert state.apply(EntryRecord(id=entry_id("Porto"), text="Porto", partition="", origin="n2", hlc=1))
    assert state.entries.shown(entry_id("Porto")) is not None


def test_convergence_comes_from_the_injected_source() -> None:
    """None until a source is given; then whatever it reports."""
    state = NodeState()
    assert StateView(state, node_name="n1", topic="t", members=list, metrics=dict).convergence() is None
    matrix = ConvergenceView(("n1", "n2"), ((1.0, 0.9), (0.9, 1.0)))
    view = StateView(state, node_name="n1", topic="t", members=list, metrics=dict, convergence=lambda: matrix)
    assert view.convergence() == matrix


def test_search_sees_entries_that_arrive_after_the_first_search() -> None:
    """The search index, built on the first search, follows new entries and aliases."""
    view = _view()
    assert view.entries(cursor=None, limit=10, query="porto", partition=None).total == 0
    view._state.apply(EntryRecord(id=entry_id("Porto"), text="Porto", partition="Europe", origin="n2", hlc=50))
    assert [e.text for e in view.entries(cursor=None, limit=10, query="PORTO", partition=None).entries] == ["Porto"]


def test_charted_counters_survive_the_samplers_key_bound() -> None:
    """With a metrics map far over the sampler's 64-number bound, the discovery counters still land in the series."""
    from webui.events import EventHub
    from webui.sampler import Sampler

    state = NodeState()
    many = {f"group{g}": {f"counter{i}": i for i in range(20)} for g in range(5)}
    view = StateView(state, node_name="n1", topic="t", members=list, metrics=lambda: many)
    sampler = Sampler(view, EventHub(), clock=lambda: 1.0)
    sampler.tick()
    sample = sampler.series(10)[-1]
    assert {"generated_items", "new_items", "observed_calls"} <= set(sample)
