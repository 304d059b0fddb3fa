"""Tests for node.codec: canonical round trips, content keys, and hostile bytes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.codec import MAX_TEXT_CHARS, RecordDecodeError, decode_record, encode_record, record_key
from node.normalize import entry_id
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem

ENTRY = EntryRecord(id=entry_id("Köln"), text="Köln", partition="Western Europe > Germany", origin="n1", hlc=2**40)
OBSERVATION = ObservationRecord(
    node="n2", call=7, partition="p", hlc=5,
    items=(
        ObservedItem("Cologne", entry_id("Köln"), MatchKind.FUZZY, 0.91),
        ObservedItem("Bonn", entry_id("Bonn"), MatchKind.NEW, 1.0),
    ),
)  # fmt: skip


@pytest.mark.parametrize("record", [ENTRY, OBSERVATION])
def test_records_round_trip_and_encode_canonically(record: object) -> None:
    """decode(encode(r)) == r, and encoding twice gives the same bytes and key."""
    encoded = encode_record(record)  # type: ignore[arg-type]
    assert decode_record(encoded) == record
    assert encode_record(record) == encoded  # type: ignore[arg-type]
    assert record_key(encoded) == record_key(encode_record(record))  # type: ignore[arg-type]


def test_different_content_has_different_keys() -> None:
    """Changing any field changes the key."""
    other = EntryRecord(id=ENTRY.id, text="Koeln", partition=ENTRY.partition, origin="n1", hlc=ENTRY.hlc)
    assert record_key(encode_record(ENTRY)) != record_key(encode_record(other))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, "zz", "x", "p", "n", 1], "hex"),
        ([1, ENTRY.id, "x" * (MAX_TEXT_CHARS + 1), "p", "n", 1], "over the limit"),
        ([1, ENTRY.id, "", "p", "n", 1], "empty"),
        ([1, ENTRY.id, "x", "p", "n", -1], "integer"),
        ([1, ENTRY.id, "x", "p", "n", True], "integer"),
        ([2, "n", 1, "p", 1, [["a", ENTRY.id, 9, 1.0]]], "match kind"),
        ([2, "n", 1, "p", 1, "items"], "array"),
        ([7, 1, 2], "unknown record kind"),
        ({"kind": 1}, "non-empty array"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(body: object, message: str) -> None:
    """Wrong types, bad ids, oversized text and unknown kinds raise RecordDecodeError."""
    with pytest.raises(RecordDecodeError, match=message):
        decode_record(msgpack.packb(body))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(data: bytes) -> None:
    """Random bytes either decode to a valid record or raise RecordDecodeError."""
    try:
        decode_record(data)
    except RecordDecodeError:
        pass
