"""Tests for node.codec: canonical round trips, content keys, and hostile bytes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.codec import (
    MAX_LABEL_CHARS,
    MAX_PARTITION_CHARS,
    MAX_SPLIT_CHILDREN,
    MAX_TEXT_CHARS,
    RecordDecodeError,
    decode_detail,
    decode_item,
    decode_record,
    encode_detail,
    encode_record,
    record_key,
)
from node.normalize import entry_id
from node.records import (
    CapacityRecord, EntryRecord, ItemDetail, MatchKind, ObservationDetail, ObservationRecord, ObservedItem, PlanAction,
    PlanRecord,
)  # fmt: skip

ENTRY = EntryRecord(id=entry_id("Köln"), text="Köln", partition="Western Europe > Germany", origin="n1", hlc=2**40)
OBSERVATION = ObservationRecord(
    node="n2", call=7, partition="p", hlc=5,
    items=(ObservedItem(entry_id("Köln"), MatchKind.FUZZY), ObservedItem(entry_id("Bonn"), MatchKind.NEW)),
    detail=(ItemDetail("Cologne", 0.91), ItemDetail("Bonn")),
)  # fmt: skip


def test_an_observations_key_ignores_its_detail() -> None:
    """The detail is no part of the record: with or without it, one encoding and one key."""
    bare = OBSERVATION.without_detail()
    assert bare == OBSERVATION and bare.detail is None
    assert encode_record(bare) == encode_record(OBSERVATION)
    assert decode_record(encode_record(OBSERVATION)).detail is None  # type: ignore[union-attr]


def test_an_observations_detail_round_trips_on_its_own() -> None:
    """encode_detail/decode_detail/decode_item: the texts and scores come back, linked by (node, call, hlc)."""
    detail = ObservationDetail.of(OBSERVATION)
    assert detail is not None and detail.call_id == OBSERVATION.call_id == ("n2", 7, 5)
    encoded = encode_detail(detail)
    assert decode_detail(encoded) == detail == decode_item(encoded)
    assert decode_item(encode_record(OBSERVATION)) == OBSERVATION


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([8, "n", 1, 2], "5 fields"),
        ([8, "n", 1, 2, [["Oslo", 1.5]]], "bad score"),
        ([8, "n", 1, 2, [["Oslo", 1]]], "bad score"),
        ([8, "n", 1, 2, [["", 1.0]]], "empty"),
        ([8, "n", 1, 2, [["x" * 201, 1.0]]], "over the limit"),
        ([8, "n", -1, 2, []], "detail.call"),
        ([8, "n", 1, 2, "items"], "array of at most"),
    ],
)
def test_a_malformed_detail_is_refused(body: list[object], message: str) -> None:
    """Detail from a peer is hostile input like a record: bounded and type-checked."""
    with pytest.raises(RecordDecodeError, match=message):
        decode_item(msgpack.packb(body))


def test_a_detail_is_not_a_record_of_the_set() -> None:
    """decode_record refuses a detail (it must never be stored or indexed as a record)."""
    detail = ObservationDetail.of(OBSERVATION)
    assert detail is not None
    with pytest.raises(RecordDecodeError, match="not a record of the set"):
        decode_record(encode_detail(detail))
    with pytest.raises(RecordDecodeError, match="not an observation detail"):
        decode_detail(encode_record(OBSERVATION))


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
        ([2, "n", 1, "p", 1, [[bytes.fromhex(ENTRY.id), 9]]], "match kind"),
        ([2, "n", 1, "p", 1, [[ENTRY.id, 0]]], "16 bytes"),
        ([2, "n", 1, "p", 1, [[b"short", 0]]], "16 bytes"),
        ([2, "n", 1, "p", 1, [["a", ENTRY.id, 0, 1.0]]], "2-element"),  # the inline texts of protocol 2
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


# --- plan records (kind 3) ------------------------------------------------------------------

SPLIT = PlanRecord(
    action=PlanAction.SPLIT, partition="Europe", children=("Northern Europe", "Southern Europe"), node="n3",
    hlc=2**41, reason="its 120 known entries pass the prompt share",
)  # fmt: skip
RETIRE = PlanRecord(action=PlanAction.RETIRE, partition="", children=(), node="n1", hlc=0, reason="")


@pytest.mark.parametrize("record", [SPLIT, RETIRE], ids=["split", "retire"])
def test_plan_records_round_trip(record: PlanRecord) -> None:
    """A split and a retire (root partition, empty reason) decode to the record that was encoded."""
    decoded = decode_record(encode_record(record))
    assert decoded == record
    assert isinstance(decoded, PlanRecord) and decoded.action is record.action


def test_plan_record_encoding_is_canonical() -> None:
    """A plan record is the msgpack of [3, action code, partition, children, node, hlc, reason]."""
    expected = msgpack.packb(
        [3, 0, "Europe", ["Northern Europe", "Southern Europe"], "n3", 2**41, SPLIT.reason], use_bin_type=True
    )
    assert encode_record(SPLIT) == expected
    assert encode_record(RETIRE) == msgpack.packb([3, 1, "", [], "n1", 0, ""], use_bin_type=True)
    assert record_key(encode_record(SPLIT)) == record_key(expected)


def test_plan_records_differing_in_any_field_have_different_keys() -> None:
    """Children order, reason, node and hlc are all part of a plan record's content."""
    variants = [
        SPLIT,
        PlanRecord(SPLIT.action, SPLIT.partition, SPLIT.children[::-1], SPLIT.node, SPLIT.hlc, SPLIT.reason),
        PlanRecord(SPLIT.action, SPLIT.partition, SPLIT.children, SPLIT.node, SPLIT.hlc, "low yield"),
        PlanRecord(SPLIT.action, SPLIT.partition, SPLIT.children, "n4", SPLIT.hlc, SPLIT.reason),
        PlanRecord(SPLIT.action, SPLIT.partition, SPLIT.children, SPLIT.node, SPLIT.hlc + 1, SPLIT.reason),
        PlanRecord(SPLIT.action, "Asia", SPLIT.children, SPLIT.node, SPLIT.hlc, SPLIT.reason),
    ]
    assert len({record_key(encode_record(record)) for record in variants}) == len(variants)


_labels = st.text(min_size=1, max_size=MAX_LABEL_CHARS)


@given(
    action=st.sampled_from(PlanAction),
    partition=st.text(max_size=MAX_PARTITION_CHARS),
    children=st.lists(_labels, min_size=1, max_size=MAX_SPLIT_CHILDREN).map(tuple),
    node=st.text(min_size=1, max_size=40),
    hlc=st.integers(0, 2**64 - 1),
    reason=st.text(max_size=200),
)
def test_any_bounded_plan_record_round_trips(
    action: PlanAction, partition: str, children: tuple[str, ...], node: str, hlc: int, reason: str
) -> None:
    """Every plan record within the bounds survives encode/decode unchanged."""
    record = PlanRecord(action, partition, children if action is PlanAction.SPLIT else (), node, hlc, reason)
    assert decode_record(encode_record(record)) == record


def _plan_body(**changes: object) -> list[object]:
    """The fields of a valid split record, some replaced."""
    fields: dict[str, object] = {
        "kind": 3, "action": 0, "partition": "Europe", "children": ["North", "South"], "node": "n1", "hlc": 5,
        "reason": "why",
    }  # fmt: skip
    fields.update(changes)
    return list(fields.values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(_plan_body(action=2), "plan.action", id="unknown-action-code"),
        pytest.param(_plan_body(action=-1), "plan.action", id="negative-action-code"),
        pytest.param(_plan_body(action=True), "plan.action", id="bool-true-as-action"),
        pytest.param(_plan_body(action=False), "plan.action", id="bool-false-as-action"),
        pytest.param(_plan_body(action="split"), "plan.action", id="string-action"),
        pytest.param(_plan_body(action=0.0), "plan.action", id="float-action"),
        pytest.param(_plan_body(children=[]), "a split must name its children", id="split-without-children"),
        pytest.param(
            _plan_body(action=1, children=["North", "South"]), "a retire must name none", id="retire-with-children"
        ),
        pytest.param(
            _plan_body(children=[f"c{n}" for n in range(MAX_SPLIT_CHILDREN + 1)]), "at most 32", id="33-children"
        ),
        pytest.param(_plan_body(children="North"), "plan.children must be an array", id="children-not-array"),
        pytest.param(_plan_body(children=["North", 5]), r"plan.children\[1\] must be a string", id="non-string-child"),
        pytest.param(_plan_body(children=["North", None]), r"plan.children\[1\] must be a string", id="nil-child"),
        pytest.param(_plan_body(children=["North", ["S"]]), r"plan.children\[1\] must be a string", id="nested-child"),
        pytest.param(_plan_body(children=["North", ""]), r"plan.children\[1\] is empty", id="empty-label"),
        pytest.param(
            _plan_body(children=["North", "x" * (MAX_LABEL_CHARS + 1)]), r"plan.children\[1\] is 81 characters",
            id="over-long-label",
        ),
        pytest.param(
            _plan_body(partition="p" * (MAX_PARTITION_CHARS + 1)), "plan.partition is 401", id="over-long-partition"
        ),
        pytest.param(_plan_body(partition=7), "plan.partition must be a string", id="non-string-partition"),
        pytest.param(_plan_body(reason="r" * 201), "plan.reason is 201", id="over-long-reason"),
        pytest.param(_plan_body(reason=None), "plan.reason must be a string", id="nil-reason"),
        pytest.param(_plan_body(node=""), "plan.node is empty", id="empty-node"),
        pytest.param(_plan_body(node="n" * 201), "plan.node is 201", id="over-long-node"),
        pytest.param(_plan_body(hlc=-1), "plan.hlc", id="negative-hlc"),
        pytest.param(_plan_body(hlc=True), "plan.hlc", id="bool-hlc"),
        pytest.param(_plan_body(hlc=1.5), "plan.hlc", id="float-hlc"),
        pytest.param(_plan_body()[:6], "unknown record kind 3 with 6 fields", id="six-fields"),
        pytest.param([*_plan_body(), "extra"], "unknown record kind 3 with 8 fields", id="eight-fields"),
        pytest.param([3], "unknown record kind 3 with 1 fields", id="kind-only"),
    ],
)
def test_malformed_plan_records_are_rejected_with_a_reason(body: list[object], message: str) -> None:
    """Hostile plan records raise RecordDecodeError naming the bad field."""
    with pytest.raises(RecordDecodeError, match=message):
        decode_record(msgpack.packb(body, use_bin_type=True))


def test_plan_record_at_every_bound_decodes() -> None:
    """32 children of 80 characters, a 400-character partition and a 200-character reason are accepted."""
    children = [f"{n:02d}" + "x" * (MAX_LABEL_CHARS - 2) for n in range(MAX_SPLIT_CHILDREN)]
    body = _plan_body(children=children, partition="p" * MAX_PARTITION_CHARS, reason="r" * 200, hlc=2**64 - 1)
    record = decode_record(msgpack.packb(body, use_bin_type=True))
    assert isinstance(record, PlanRecord) and len(record.children) == MAX_SPLIT_CHILDREN


def test_capacity_records_round_trip_and_reject_bad_concurrency() -> None:
    """A node's capacity encodes canonically; zero, negative, oversized or non-integer concurrency is refused."""
    record = CapacityRecord(node="n1", concurrency=4, hlc=99)
    assert decode_record(encode_record(record)) == record
    assert encode_record(record) == encode_record(CapacityRecord("n1", 4, 99))
    for concurrency in (0, -1, 257, 2.0, True, "4"):
        with pytest.raises(RecordDecodeError):
            decode_record(msgpack.packb([4, "n1", concurrency, 99]))
    with pytest.raises(RecordDecodeError):
        decode_record(msgpack.packb([4, "", 4, 99]))  # no node name
