"""The wire format: round trips, limits, and hostile bytes that must fail only as ProtocolError."""

from __future__ import annotations

from dataclasses import replace

import msgpack  # only to craft hostile frames; the package itself packs in gossip.messages alone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.errors import DecodeError, ProtocolError
from gossip.messages import (
    MAC_BYTES,
    MAX_ADDRESS_CHARS,
    MAX_INCARNATION,
    MAX_MEMBERS_PER_PUSH_PULL,
    MAX_MESSAGE_BYTES,
    MAX_NAME_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOADS_PER_MESSAGE,
    MAX_UPDATES_PER_MESSAGE,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    Ack,
    Envelope,
    Frame,
    MemberState,
    MemberUpdate,
    Message,
    MessageType,
    Nack,
    Payloads,
    Ping,
    PingReq,
    PushPull,
    decode_envelope,
    decode_frame,
    decode_message,
    encode_envelope,
    encode_frame,
    encode_message,
    message_type,
)

UPDATE = MemberUpdate("n2", "10.0.0.2:7000", 3, MemberState.SUSPECT, source="n1")
EVERY_MESSAGE: list[Message] = [
    Ping(1, "n2", (UPDATE,)),
    Ping(2**64 - 1, ""),
    Ack(5, (UPDATE, MemberUpdate("n3", "[::1]:7000", 0, MemberState.LEFT))),
    Nack(6),
    PingReq(7, "n3", "10.0.0.3:7000", (UPDATE,)),
    PushPull((UPDATE,) * 3, join=True),
    PushPull(()),
    Payloads("records", (b"\x00\xff", b"", b"x" * 100)),
]


def _envelope(message: Message) -> Envelope:
    return Envelope(version=PROTOCOL_VERSION, cluster="c1", sender="n1", sender_address="10.0.0.1:7000",
                    timestamp_ms=1_700_000_000_000, nonce=b"n" * NONCE_BYTES, message=message)  # fmt: skip


def _raw_frame(body: object, *, kind: int = MessageType.PING, version: object = PROTOCOL_VERSION) -> bytes:
    frame = [version, "c1", "n1", "a:1", 1, b"n" * NONCE_BYTES, kind, msgpack.packb(body), b""]
    return bytes(msgpack.packb(frame))


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda message: type(message).__name__)
def test_every_message_type_round_trips_inside_an_envelope(message: Message) -> None:
    envelope = _envelope(message)
    assert decode_envelope(encode_envelope(envelope)) == envelope
    assert decode_message(message_type(message), encode_message(message)) == message


def test_message_types_are_the_protocol_numbers() -> None:
    assert [message_type(m) for m in (Ping(1, ""), Ack(1), Nack(1), PingReq(1, "", "a:1"), PushPull(()), Payloads("c", ()))] == [
        MessageType.PING, MessageType.ACK, MessageType.NACK, MessageType.PING_REQ, MessageType.PUSH_PULL, MessageType.PAYLOADS]  # fmt: skip
    with pytest.raises(TypeError, match="not a gossip message"):
        message_type("ping")  # type: ignore[arg-type]


def test_a_frame_carries_its_mac_and_the_mac_covers_every_other_field() -> None:
    frame = Frame(PROTOCOL_VERSION, "c1", "n1", "a:1", 5, b"n" * 16, MessageType.NACK, encode_message(Nack(1)), b"m" * 32)
    assert decode_frame(encode_frame(frame)) == frame
    signed = frame.signed_bytes()
    assert b"m" * 32 not in signed
    changed = [replace(frame, cluster="c2"), replace(frame, sender="n2"), replace(frame, sender_address="a:2"),
               replace(frame, timestamp_ms=6), replace(frame, nonce=b"o" * 16), replace(frame, type=MessageType.ACK),
               replace(frame, body=encode_message(Nack(2)))]  # fmt: skip
    assert all(other.signed_bytes() != signed for other in changed)
    assert replace(frame, mac=b"").signed_bytes() == signed


def test_another_protocol_version_is_refused_by_name_before_anything_else() -> None:
    other = PROTOCOL_VERSION + 1
    with pytest.raises(ProtocolError, match=f"protocol version {other} is not supported .*speaks version {PROTOCOL_VERSION}"):
        decode_envelope(msgpack.packb([other, "a totally", "different", "layout"]))


def test_an_unknown_message_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 99"):
        decode_envelope(_raw_frame([1, "t", []], kind=99))


def test_an_unknown_member_state_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown MemberState 9"):
        decode_envelope(_raw_frame([1, "t", [["n", "a:1", 1, 9, ""]]]))


@pytest.mark.parametrize(
    ("body", "kind", "match"),
    [
        ([1, "t", [["n", "a:1", 0, 0, ""]] * (MAX_UPDATES_PER_MESSAGE + 1)], MessageType.PING, "over the limit of 64"),
        ([[["n", "a:1", 0, 0, ""]] * (MAX_MEMBERS_PER_PUSH_PULL + 1), False], MessageType.PUSH_PULL, "over the limit"),
        (["c", [b""] * (MAX_PAYLOADS_PER_MESSAGE + 1)], MessageType.PAYLOADS, "over the limit"),
        (["c", [b"x" * (MAX_PAYLOAD_BYTES + 1)]], MessageType.PAYLOADS, "bytes, over the limit"),
        ([1, "t" * (MAX_NAME_CHARS + 1), []], MessageType.PING, "characters, over the limit"),
        ([1, "t", "a" * (MAX_ADDRESS_CHARS + 1), []], MessageType.PING_REQ, "characters, over the limit"),
        ([1, "t", [["", "a:1", 0, 0, ""]]], MessageType.PING, "member name: must not be empty"),
        ([True, "t", []], MessageType.PING, "expected an integer"),  # a bool is not a seq
        ([-1, "t", []], MessageType.PING, "expected an integer"),
        # One past the ceiling a member can persist and refute from (a forged rumour's favourite).
        ([1, "t", [["n", "a:1", MAX_INCARNATION + 1, 0, ""]]], MessageType.PING, "member incarnation"),
        ([1, "t"], MessageType.PING, "expected 3 fields"),
        ([[], 1], MessageType.PUSH_PULL, "expected a boolean"),
        ({"seq": 1}, MessageType.NACK, "expected an array"),
    ],
)
def test_decoding_enforces_types_counts_and_lengths(body: object, kind: MessageType, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_envelope(_raw_frame(body, kind=kind))


@pytest.mark.parametrize(
    "message",
    [
        Ping(1, "t", (UPDATE,) * (MAX_UPDATES_PER_MESSAGE + 1)),
        Payloads("c", (b"x" * (MAX_PAYLOAD_BYTES + 1),)),
        Ack(-1),
        Ping(1, "\udc80"),  # a lone surrogate cannot be UTF-8
        PushPull((MemberUpdate("n", "a:1", 1, 7),)),  # type: ignore[arg-type]
        Ack(1, (Nack(1),)),  # type: ignore[arg-type]
    ],
)
def test_encoding_refuses_what_every_peer_would_refuse(message: Message) -> None:
    with pytest.raises(ProtocolError):
        encode_envelope(_envelope(message))


def test_the_whole_envelope_is_bounded_by_max_message_bytes() -> None:
    big = Payloads("c", tuple(b"x" * MAX_PAYLOAD_BYTES for _ in range(MAX_MESSAGE_BYTES // MAX_PAYLOAD_BYTES + 1)))
    with pytest.raises(ProtocolError, match="over MAX_MESSAGE_BYTES"):
        encode_envelope(_envelope(big))
    with pytest.raises(ProtocolError, match="over MAX_MESSAGE_BYTES"):
        decode_envelope(b"\x00" * (MAX_MESSAGE_BYTES + 1))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (5, b"short", "nonce: 5 bytes"),
        (8, b"m" * 31, "MAC: 31 bytes"),
        (1, "", "cluster: must not be empty"),
        (4, 2**63, "timestamp"),
    ],
)
def test_header_fields_are_validated(field: int, value: object, match: str) -> None:
    raw = msgpack.unpackb(encode_envelope(_envelope(Nack(1))))
    raw[field] = value
    with pytest.raises(ProtocolError, match=match):
        decode_envelope(msgpack.packb(raw))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x93\x01",
        b"\xdd\xff\xff\xff\xff",
        b"\x91" * 100_000 + b"\x01",
        msgpack.packb([PROTOCOL_VERSION] + [1] * 8),  # our version, nine fields of nonsense
        msgpack.packb({"a": 1}),
        msgpack.packb(msgpack.ExtType(1, b"x")),
        b"\x92\x01\xa2\xff\xfe",
    ],
    ids=["empty", "reserved", "truncated", "huge-length", "deep", "nines", "map", "ext", "bad-utf8"],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_envelope(data)


_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    try:
        decode_envelope(data)
    except ProtocolError:
        pass


@settings(max_examples=400)
@given(st.sampled_from(EVERY_MESSAGE), st.data())
def test_mutated_valid_envelopes_never_raise_anything_but_protocol_error(message: Message, data: st.DataObject) -> None:
    wire = bytearray(encode_envelope(_envelope(message)))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    position = data.draw(st.integers(0, len(wire) - 1))
    if mutation == "flip":
        wire[position] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate":
        del wire[position:]
    else:
        wire[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        decode_envelope(bytes(wire))
    except ProtocolError:
        pass


@settings(max_examples=400)
@given(st.sampled_from(EVERY_MESSAGE), st.data())
def test_structurally_mutated_bodies_never_raise_anything_but_protocol_error(message: Message, data: st.DataObject) -> None:
    """Replace any one value anywhere in a valid body with an arbitrary msgpack value."""
    body = msgpack.unpackb(encode_message(message))
    paths = list(_paths(body))
    path = data.draw(st.sampled_from(paths))
    replacement = data.draw(_msgpack_values)
    if path:
        container = body
        for index in path[:-1]:
            container = container[index]
        container[path[-1]] = replacement
    else:
        body = replacement
    try:
        decode_envelope(_raw_frame(body, kind=message_type(message)))
    except ProtocolError:
        pass


def _paths(value: object, prefix: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    yield prefix
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


_updates = st.builds(
    MemberUpdate,
    name=st.text(min_size=1, max_size=20),
    address=st.text(min_size=1, max_size=30),
    incarnation=st.integers(0, MAX_INCARNATION),
    state=st.sampled_from(MemberState),
    source=st.text(max_size=20),
)
_messages = st.one_of(
    st.builds(Ping, st.integers(0, 2**64 - 1), st.text(max_size=20), st.lists(_updates, max_size=4).map(tuple)),
    st.builds(Ack, st.integers(0, 2**64 - 1), st.lists(_updates, max_size=4).map(tuple)),
    st.builds(Nack, st.integers(0, 2**64 - 1)),
    st.builds(
        PingReq,
        st.integers(0, 2**64 - 1),
        st.text(max_size=20),
        st.text(min_size=1, max_size=30),
        st.lists(_updates, max_size=4).map(tuple),
    ),
    st.builds(PushPull, st.lists(_updates, max_size=10).map(tuple), st.booleans()),
    st.builds(Payloads, st.text(min_size=1, max_size=20), st.lists(st.binary(max_size=50), max_size=10).map(tuple)),
)


@settings(max_examples=300)
@given(_messages, st.binary(min_size=MAC_BYTES, max_size=MAC_BYTES) | st.just(b""))
def test_any_valid_message_round_trips(message: Message, mac: bytes) -> None:
    envelope = _envelope(message)
    data = encode_envelope(envelope, mac=mac)
    assert decode_envelope(data) == envelope
    assert decode_frame(data).mac == mac
