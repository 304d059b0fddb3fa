"""Tests for node.view: keyset pages, cursors and filters over a real global list."""

from __future__ import annotations

import pytest

from node.normalize import entry_id, normal_form
from node.records import EntryRecord
from node.state import NodeState
from node.view import StateView, decode_cursor, encode_cursor

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
