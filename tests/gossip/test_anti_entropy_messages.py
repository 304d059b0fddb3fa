"""The anti-entropy wire messages: round trips, limits, and hostile bodies that fail only as ProtocolError."""

from __future__ import annotations

import msgpack  # only to craft hostile bodies
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.errors import ProtocolError
from gossip.messages import (
    KEY_BYTES,
    MAX_ESTIMATOR_COUNTS,
    MAX_NAME_CHARS,
    MAX_PARTITIONS_PER_DIGEST,
    MAX_SKETCH_BYTES,
    MAX_SYMBOLS_PER_MESSAGE,
    MAX_WANTED_KEYS,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    SET_DIGEST_BYTES,
    SYMBOL_BYTES,
    AntiEntropyDigest,
    CodedSymbols,
    CodedSymbolsRequest,
    Envelope,
    Message,
    MessageType,
    PartitionSummary,
    RecordTransfer,
    decode_envelope,
    decode_message,
    encode_envelope,
    encode_message,
    message_type,
)

DIGEST = b"d" * SET_DIGEST_BYTES
PARTITION = PartitionSummary("museums", 12, DIGEST, b"s" * 256)
MESSAGES: list[Message] = [
    AntiEntropyDigest(0, DIGEST),
    AntiEntropyDigest(2**64 - 1, DIGEST, b"s" * 256, (PARTITION, PartitionSummary("", 0, DIGEST)), True),
    CodedSymbols(5, DIGEST, b"s" * 256, 0, b"x" * SYMBOL_BYTES * 3, (PARTITION,), b"\x01\xff" * 128),
    CodedSymbols(5, DIGEST, b"", 100, b""),
    CodedSymbolsRequest(10, 20, 5, DIGEST),
    RecordTransfer((b"record", b""), (b"k" * KEY_BYTES,), 7, DIGEST),
    RecordTransfer((), (), 0, DIGEST, served=3, bulk=True, cursor=99),
]


def _envelope(message: Message) -> Envelope:
    return Envelope(version=PROTOCOL_VERSION, cluster="c1", sender="n1", sender_address="10.0.0.1:7000",
                    timestamp_ms=1_700_000_000_000, nonce=b"n" * NONCE_BYTES, message=message)  # fmt: skip


@pytest.mark.parametrize("message", MESSAGES, ids=lambda message: type(message).__name__)
def test_every_anti_entropy_message_round_trips(message: Message) -> None:
    assert decode_envelope(encode_envelope(_envelope(message))) == _envelope(message)


def test_types_are_appended_after_the_existing_ones() -> None:
    assert [message_type(message) for message in MESSAGES[::2]] == [
        MessageType.AE_DIGEST, MessageType.AE_SYMBOLS, MessageType.AE_SYMBOLS_REQUEST, MessageType.AE_RECORDS]
    assert (MessageType.PAYLOADS, MessageType.AE_DIGEST, MessageType.AE_RECORDS) == (6, 7, 10)


def test_an_identical_check_is_small() -> None:
    """A digest request with its 256-byte sketch is under 400 bytes in its envelope (with a 32-byte MAC)."""
    data = encode_envelope(_envelope(AntiEntropyDigest(10**6, DIGEST, b"s" * 256)), mac=b"m" * 32)
    assert len(data) < 400


@pytest.mark.parametrize(
    ("body", "kind", "match"),
    [
        ([1, b"short", b"", [], False], MessageType.AE_DIGEST, "expected 16"),
        ([1, DIGEST, b"s" * (MAX_SKETCH_BYTES + 1), [], False], MessageType.AE_DIGEST, "over the limit"),
        ([1, DIGEST, b"", [["p", 1, DIGEST, b""]] * (MAX_PARTITIONS_PER_DIGEST + 1), False], MessageType.AE_DIGEST,
         "over the limit"),
        ([1, DIGEST, b"", [["p" * (MAX_NAME_CHARS + 1), 1, DIGEST, b""]], False], MessageType.AE_DIGEST, "characters"),
        ([1, DIGEST, b"", [], 1], MessageType.AE_DIGEST, "expected a boolean"),
        ([1, DIGEST, b"", 0, b"x" * 27, [], b""], MessageType.AE_SYMBOLS, "not a multiple of 28"),
        ([1, DIGEST, b"", 0, b"x" * SYMBOL_BYTES * (MAX_SYMBOLS_PER_MESSAGE + 1), [], b""], MessageType.AE_SYMBOLS,
         "over the limit"),
        ([1, DIGEST, b"", -1, b"", [], b""], MessageType.AE_SYMBOLS, "expected an integer"),
        ([1, DIGEST, b"", 0, b"", [], b"c" * (MAX_ESTIMATOR_COUNTS + 1)], MessageType.AE_SYMBOLS, "over the limit"),
        ([1, DIGEST, b"", 0, b"", []], MessageType.AE_SYMBOLS, "expected 7 fields"),
        ([5, 4, 1, DIGEST], MessageType.AE_SYMBOLS_REQUEST, "before start"),
        ([[], [b"k" * 15], 0, DIGEST, 0, False, 0], MessageType.AE_RECORDS, "expected 16"),
        ([[], [b"k" * 16] * (MAX_WANTED_KEYS + 1), 0, DIGEST, 0, False, 0], MessageType.AE_RECORDS, "over the limit"),
        ([[], [], 0, DIGEST, 0, False], MessageType.AE_RECORDS, "expected 7 fields"),
        ([["text"], [], 0, DIGEST, 0, False, 0], MessageType.AE_RECORDS, "expected bytes"),
    ],
)
def test_decoding_enforces_shapes_sizes_and_counts(body: object, kind: MessageType, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(kind, msgpack.packb(body))


@pytest.mark.parametrize(
    "message",
    [
        AntiEntropyDigest(1, b"short"),
        CodedSymbols(1, DIGEST, b"", 0, b"x" * 5),
        CodedSymbolsRequest(3, 2, 0, DIGEST),
        RecordTransfer((), (b"k",), 0, DIGEST),
        AntiEntropyDigest(1, DIGEST, partitions=("not a summary",)),  # type: ignore[arg-type]
    ],
)
def test_encoding_refuses_what_every_peer_would_refuse(message: Message) -> None:
    with pytest.raises(ProtocolError):
        encode_message(message)


def _paths(value: object, prefix: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    yield prefix
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


_values = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=10) | st.lists(st.integers(0, 2**32), max_size=3)


@settings(max_examples=400)
@given(st.sampled_from(MESSAGES), st.data())
def test_any_value_replaced_anywhere_fails_only_as_protocol_error(message: Message, data: st.DataObject) -> None:
    body = msgpack.unpackb(encode_message(message))
    path = data.draw(st.sampled_from(list(_paths(body))))
    replacement = data.draw(_values)
    if path:
        container = body
        for index in path[:-1]:
            container = container[index]
        container[path[-1]] = replacement
    else:
        body = replacement
    try:
        decode_message(message_type(message), msgpack.packb(body))
    except ProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from([MessageType.AE_DIGEST, MessageType.AE_SYMBOLS,
                                                 MessageType.AE_SYMBOLS_REQUEST, MessageType.AE_RECORDS]))
def test_random_bytes_fail_only_as_protocol_error(data: bytes, kind: MessageType) -> None:
    try:
        decode_message(kind, data)
    except ProtocolError:
        pass
