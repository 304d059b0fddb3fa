"""Tests for node.verdicts: verification answers in any format, tied back to the asked items; garbage changes nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.verdicts import parse_verdicts

ITEMS = ["Oslo", "Bergenovo", "Tromsø", "Sankt Petersburg"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (json.dumps({"verdicts": [{"item": "Oslo", "real": True}, {"item": "Bergenovo", "real": False}]}),
         {0: True, 1: False}),
        # another order, another key, string booleans, a case/accents difference
        ('{"results": [{"name": "TROMSO", "valid": "yes"}, {"name": "oslo", "valid": "no"}]}', {2: True, 0: False}),
        ('```json\n[{"item": "Sankt Petersburg", "real": true}]\n```', {3: True}),
        ("[true, false, true]", {0: True, 1: False, 2: True}),  # bare booleans: in the order asked
        ("1. Oslo — yes\n2. Bergenovo — no, not a real city\n3. Tromsø – real\n", {0: True, 1: False, 2: True}),
        ("Oslo: real\nBergenovo: invented\n", {0: True, 1: False}),
        ("1. yes\n2. no\n4. yes", {0: True, 1: False, 3: True}),  # numbers only
        ("- **Bergenovo** - not a real place", {1: False}),
    ],
)  # fmt: skip
def test_verdicts_in_the_formats_models_use(answer: str, expected: dict[int, bool]) -> None:
    """JSON objects, fenced or bare lists, numbered and named lines all map to the asked items."""
    assert parse_verdicts(answer, ITEMS) == expected


@pytest.mark.parametrize(
    "answer",
    ["", "I'm sorry, I can't help with that.", '{"entries": ["Oslo", "Bergen"]}', "]]]]}}}:::: ,,,,",
     '{"verdicts": [{"item": "Paris", "real": true}]}', "1. Maybe\n2. Unsure", "\x00\x07{\"verd"],
)  # fmt: skip
def test_garbage_and_unasked_items_give_no_verdict(answer: str) -> None:
    """An answer that judges none of the asked items yields nothing (so it changes nothing)."""
    assert parse_verdicts(answer, ITEMS) == {}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_is_parsed_without_raising_and_only_to_asked_indices(answer: str) -> None:
    """Hostile text never raises and never yields an index outside the asked items."""
    found = parse_verdicts(answer, ITEMS)
    assert set(found) <= set(range(len(ITEMS))) and all(isinstance(v, bool) for v in found.values())
