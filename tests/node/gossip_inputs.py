"""Hostile gossip inputs (issue #14): envelopes sealed as a peer would, then broken.

An ``Attempt`` is bytes POSTed to a gossip path, the statuses they may get, and the record
keys they add if answered (the oracle: ``accepted_keys`` applies the node's own validation).
``attempts()`` draws every kind in ``KINDS`` with hypothesis, starting from real envelopes
sealed by ``gossip.auth.Wire`` (``Sealer``): byte mutations, truncations, a valid MAC over
garbage, wrong types, huge msgpack counts, deep nesting, the wrong key, no MAC, stale and
replayed stamps, another cluster or version, the wrong path, oversized bodies; and
well-formed but hostile records and rumours (maximal timestamps and incarnations, long
partition paths, rumours about the target itself).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgpack
from hypothesis import strategies as st

from gossip.auth import Wire
from gossip.errors import ProtocolError
from gossip.messages import (
    KEY_BYTES,
    MAX_INCARNATION,
    MAX_MESSAGE_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    SET_DIGEST_BYTES,
    SYMBOL_BYTES,
    Ack,
    AntiEntropyDigest,
    CodedSymbols,
    CodedSymbolsRequest,
    Frame,
    MemberState,
    MemberUpdate,
    Message,
    MessageType,
    Nack,
    PartitionSummary,
    Payloads,
    Ping,
    PingReq,
    PushPull,
    RecordTransfer,
    decode_frame,
    decode_message,
    encode_frame,
)
from gossip.sketch import SKETCH_BYTES
from node.cluster import cluster_id
from node.codec import RecordDecodeError, decode_record, encode_detail, encode_record, record_key
from node.normalize import entry_id
from node.records import (
    CapacityRecord,
    EntryRecord,
    ItemDetail,
    MatchKind,
    ObservationDetail,
    ObservationRecord,
    ObservedItem,
    PlanAction,
    PlanRecord,
    Record,
    VerdictRecord,
)
from tests.node.fuzz_target import CLUSTER, KEY, TARGET_NAME

PEER = "fuzz-peer"
PEER_ADDRESS = "127.0.0.1:9"  # the discard port: nothing listens, a probe fails at once
UINT64_MAX = 2**64 - 1

# ---------------------------------------------------------------------------- sealing


class Sealer:
    """Seals messages as a peer of the target's cluster would — or with one thing wrong."""

    def __init__(self, *, key: bytes | None = KEY, cluster: str = CLUSTER, name: str = PEER,
                 clock_offset_s: float = 0.0) -> None:  # fmt: skip
        self._wire = Wire(cluster, key=key, name=name, address=PEER_ADDRESS,
                          clock=lambda: time.time() + clock_offset_s)  # fmt: skip
        self._key = key
        self._cluster = cluster
        self._name = name
        self._offset_s = clock_offset_s

    def seal(self, message: Message) -> bytes:
        return self._wire.seal(message)

    def seal_body(self, kind: MessageType, body: bytes, *, version: int = PROTOCOL_VERSION) -> bytes:
        """An envelope around arbitrary body bytes, with a valid MAC (when keyed): only the body is wrong."""
        frame = Frame(version=version, cluster=self._cluster, sender=self._name, sender_address=PEER_ADDRESS,
                      timestamp_ms=int((time.time() + self._offset_s) * 1000), nonce=_nonce(), type=kind,
                      body=body)  # fmt: skip
        if self._key is not None:
            frame = replace(frame, mac=hmac.new(self._key, frame.signed_bytes(), hashlib.sha256).digest())
        if version == PROTOCOL_VERSION:
            return encode_frame(frame)
        return msgpack.packb(frame._header() + [frame.body, frame.mac], use_bin_type=True)  # type: ignore[no-any-return]


_nonce_counter = iter(range(1, 2**62))


def _nonce() -> bytes:
    # Distinct per envelope (hypothesis may draw equal values): the replay cache must not see a repeat by accident.
    return next(_nonce_counter).to_bytes(NONCE_BYTES, "big")


def accepted_keys(items: Sequence[bytes]) -> frozenset[str]:
    """The record keys a node stores from these items: the ones that decode and whose entry id
    matches its text (``node.replication``), keyed by their canonical encoding (``node.store``)."""
    keys = set()
    for item in items:
        try:
            record = decode_record(item)
        except RecordDecodeError:
            continue
        if isinstance(record, EntryRecord) and entry_id(record.text) != record.id:
            continue
        keys.add(record_key(encode_record(record)))
    return frozenset(keys)


# ---------------------------------------------------------------------------- attempts

ANSWERED = frozenset({200, 204})
REFUSED_INVALID = frozenset({400})
# What an authenticated, well-formed message may get: an answer, or 400 when the layer it is
# addressed to does not serve it as a request (an ACK, a NACK, coded symbols, another channel).
VALID = ANSWERED | REFUSED_INVALID


@dataclass(frozen=True, slots=True)
class Attempt:
    """One hostile input: ``body`` POSTed to ``path``; ``allowed`` statuses; the record keys it
    adds if answered; ``replay`` sends it twice (the second must be refused 401)."""

    kind: str
    path: str
    body: bytes
    allowed: frozenset[int]
    adds: frozenset[str] = frozenset()
    replay: bool = False


def path_of(kind: MessageType) -> str:
    return f"/gossip/{kind.name.lower()}"


def _message_attempt(kind: str, message: Message, allowed: frozenset[int], sealer: Sealer | None = None,
                     *, replay: bool = False) -> Attempt:  # fmt: skip
    data = (sealer or Sealer()).seal(message)
    return Attempt(kind, path_of(_type_of(data)), data, allowed, accepted_keys(_record_items(message)), replay)


def _type_of(data: bytes) -> MessageType:
    return decode_frame(data).type


# ---------------------------------------------------------------------------- strategies

names = st.sampled_from([TARGET_NAME, "n1", "n2", PEER, "ünïcødé-名前", "a" * 128])
addresses = st.sampled_from(["127.0.0.1:9", "127.0.0.1:1", "[::1]:9", "localhost:9"])
small_or_huge = st.one_of(st.integers(0, 1000), st.integers(0, UINT64_MAX), st.just(UINT64_MAX))
hlcs = st.one_of(st.integers(0, UINT64_MAX), st.just(UINT64_MAX), st.integers(0, 2**48))
incarnations = st.one_of(st.integers(0, 1000), st.integers(0, MAX_INCARNATION), st.just(MAX_INCARNATION))
member_updates = st.builds(MemberUpdate, name=names, address=addresses, incarnation=incarnations,
                           state=st.sampled_from(MemberState), source=st.sampled_from(["", "n1", PEER]))  # fmt: skip
updates = st.lists(member_updates, max_size=6).map(tuple)
texts = st.text(min_size=1, max_size=200)
# Short paths, and long ones past a gossip label's 128 characters (a deep plan's, or a forger's).
labels = st.one_of(st.text(max_size=24), st.text(min_size=100, max_size=400))
node_names = st.text(min_size=1, max_size=200)
hex_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
digests = st.binary(min_size=SET_DIGEST_BYTES, max_size=SET_DIGEST_BYTES)
sketches = st.one_of(st.just(b""), st.binary(min_size=SKETCH_BYTES, max_size=SKETCH_BYTES), st.binary(max_size=1024))


@st.composite
def entry_records(draw: st.DrawFn) -> EntryRecord:
    text = draw(texts)
    return EntryRecord(id=entry_id(text), text=text, partition=draw(labels), origin=draw(node_names), hlc=draw(hlcs))


observation_records = st.builds(
    ObservationRecord, node=node_names, call=small_or_huge, partition=labels, hlc=hlcs,
    items=st.lists(st.builds(ObservedItem, entry_id=hex_ids, match=st.sampled_from(MatchKind)), max_size=5).map(tuple),
)  # fmt: skip
# An observation's detail travels beside its record: accepted into the detail table, never the set.
observation_details = st.builds(
    ObservationDetail, node=node_names, call=small_or_huge, hlc=hlcs,
    items=st.lists(st.builds(ItemDetail, text=texts, score=st.floats(0.0, 1.0)), max_size=5).map(tuple),
)  # fmt: skip
plan_records = st.one_of(
    st.builds(PlanRecord, action=st.just(PlanAction.SPLIT), partition=labels,
              children=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=6).map(tuple),
              node=node_names, hlc=hlcs, reason=st.text(max_size=200)),
    st.builds(PlanRecord, action=st.just(PlanAction.RETIRE), partition=labels, children=st.just(()),
              node=node_names, hlc=hlcs, reason=st.text(max_size=200)),
)  # fmt: skip
capacity_records = st.builds(CapacityRecord, node=node_names, concurrency=st.integers(1, 256), hlc=hlcs)
verdict_records = st.builds(VerdictRecord, entry=hex_ids, real=st.booleans(), node=node_names, call=small_or_huge,
                            partition=labels, hlc=hlcs)  # fmt: skip
records: st.SearchStrategy[Record] = st.one_of(
    entry_records(), observation_records, plan_records, capacity_records, verdict_records
)
record_bytes = st.one_of(records.map(encode_record), observation_details.map(encode_detail))

# Any msgpack value: what a hostile peer can put wherever a field is expected.
msgpack_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), UINT64_MAX), st.floats(), st.text(max_size=40),
              st.binary(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip


def valid_messages(record_items: st.SearchStrategy[bytes]) -> st.SearchStrategy[Message]:
    """Well-formed messages of every type, within the protocol's limits, carrying ``record_items``."""
    seqs = st.integers(0, UINT64_MAX)
    partitions = st.lists(st.builds(PartitionSummary, label=st.text(max_size=20), count=small_or_huge,
                                    digest=digests, sketch=sketches), max_size=3).map(tuple)  # fmt: skip
    items = st.lists(record_items, max_size=6).map(tuple)
    return st.one_of(
        st.builds(Ping, seq=seqs, target=st.one_of(names, st.just("")), updates=updates),
        st.builds(Ack, seq=seqs, updates=updates),
        st.builds(Nack, seq=seqs),
        st.builds(PingReq, seq=seqs, target=names, target_address=addresses, updates=updates),
        st.builds(PushPull, members=updates, join=st.booleans()),
        st.builds(Payloads, channel=st.sampled_from(["records", "records", "other"]), items=items),
        st.builds(AntiEntropyDigest, count=small_or_huge, digest=digests, sketch=sketches, partitions=partitions,
                  want_partitions=st.booleans()),
        st.builds(CodedSymbols, count=small_or_huge, digest=digests, sketch=sketches, start=st.integers(0, 2**63 - 1),
                  symbols=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=n * SYMBOL_BYTES,
                                                                          max_size=n * SYMBOL_BYTES))),
        st.integers(0, 2**63 - 1).flatmap(lambda start: st.builds(
            CodedSymbolsRequest, start=st.just(start), stop=st.integers(start, 2**63 - 1), count=small_or_huge,
            digest=digests)),
        st.builds(RecordTransfer, items=items, want=st.lists(st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES),
                                                             max_size=6).map(tuple),
                  count=small_or_huge, digest=digests, served=st.integers(0, 32 * 1024), bulk=st.booleans(),
                  cursor=st.integers(0, 2**63 - 1)),
    )  # fmt: skip


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """One to four byte-level edits of ``data``: flip, overwrite, insert, delete, duplicate a slice."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(out) - 1)))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate"]))
        if op == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[at] = draw(st.sampled_from([0x00, 0xFF, 0xC0, 0xC1, 0xDC, 0xDD, 0xDE, 0xDF, 0xDB, 0xC6, 0xCF, 0x7F]))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[at : at + draw(st.integers(1, 8))]
        else:
            out[at:at] = out[at : at + draw(st.integers(1, 64))]
    return bytes(out)


# Big msgpack heads with (almost) nothing after them: a decoder that trusts the count allocates it.
HUGE_HEADS = (
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 billion
    b"\xdf\xff\xff\xff\xff",  # map32
    b"\xdb\xff\xff\xff\xff",  # str32
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\xdc\xff\xff",  # array16
    b"\x99\xdd\xff\xff\xff\xff",  # an envelope-sized fixarray holding a huge one
)


@st.composite
def attempts(draw: st.DrawFn, real_records: Sequence[bytes] = ()) -> Attempt:
    """Every kind of hostile gossip input (``real_records``: the target's own records, to mutate)."""
    real = st.sampled_from(list(real_records)) if real_records else record_bytes
    kind = draw(st.sampled_from(KINDS))
    if kind == "valid message":
        return _message_attempt(kind, draw(valid_messages(record_bytes)), VALID)
    if kind == "valid records":
        return _message_attempt(kind, Payloads("records", tuple(draw(st.lists(record_bytes, min_size=1, max_size=8)))),
                                ANSWERED)  # fmt: skip
    if kind == "mutated records":
        items = tuple(_mutate(draw(real), draw) for _ in range(draw(st.integers(1, 4))))
        sealer = Sealer()
        if draw(st.booleans()):
            return _message_attempt(kind, Payloads("records", items), ANSWERED, sealer)
        transfer = RecordTransfer(items=items, want=(), count=0, digest=bytes(SET_DIGEST_BYTES))
        return _message_attempt(kind, transfer, ANSWERED, sealer)
    if kind == "mutated envelope":
        data = Sealer().seal(draw(valid_messages(real)))
        # A mutation may leave the decoded frame equal (msgpack has longer encodings of one value):
        # that is a valid message, so an answer is allowed too — the state oracle still judges it.
        mutated = _mutate(data, draw)
        return Attempt(kind, path_of(_type_of(data)), mutated, VALID | {401, 403}, _adds_if_same(data, mutated))
    if kind == "truncated":
        data = Sealer().seal(draw(valid_messages(real)))
        return Attempt(kind, path_of(_type_of(data)), data[: draw(st.integers(0, len(data) - 1))], REFUSED_INVALID)
    if kind == "valid MAC, garbage body":
        message_kind = draw(st.sampled_from(MessageType))
        body = draw(st.one_of(st.binary(max_size=200), msgpack_values.map(_packb), _wrong_typed_body(message_kind)))
        return _sealed_body_attempt(kind, message_kind, body)
    if kind == "valid MAC, huge counts":
        message_kind = draw(st.sampled_from(MessageType))
        head = draw(st.sampled_from(HUGE_HEADS))
        body = draw(st.sampled_from([head, b"\x92" + head, b"\x93\x01" + head + b"\x00", head * 3]))
        return _sealed_body_attempt(kind, message_kind, body)
    if kind == "huge counts":
        return Attempt(kind, path_of(draw(st.sampled_from(MessageType))), draw(st.sampled_from(HUGE_HEADS)),
                       REFUSED_INVALID)  # fmt: skip
    if kind == "deep nesting":
        depth = draw(st.sampled_from([64, 512, 1024, 5000, 100_000]))
        nested = b"\x91" * depth + b"\xc0"
        message_kind = draw(st.sampled_from(MessageType))
        if draw(st.booleans()):
            return Attempt(kind, path_of(message_kind), nested, REFUSED_INVALID)
        return _sealed_body_attempt(kind, message_kind, nested)
    if kind == "wrong types":
        return _wrong_typed_frame(draw)
    if kind == "wrong key":
        return _message_attempt(kind, draw(valid_messages(real)), frozenset({401}), Sealer(key=b"another-key" * 3))
    if kind == "no MAC":
        return _message_attempt(kind, draw(valid_messages(real)), frozenset({401}), Sealer(key=None))
    if kind == "stale or future":
        offset = draw(st.one_of(st.floats(61, 1e6), st.floats(-1e6, -61)))
        return _message_attempt(kind, draw(valid_messages(real)), frozenset({401}), Sealer(clock_offset_s=offset))
    if kind == "replayed":
        message = draw(valid_messages(real))
        return _message_attempt(kind, message, VALID, replay=True)
    if kind == "other cluster":
        other = draw(st.one_of(st.just(cluster_id("cities of europe")), st.text(min_size=1, max_size=128)))
        return _message_attempt(kind, draw(valid_messages(real)), frozenset({403}), Sealer(cluster=other))
    if kind == "other version":
        version = draw(st.one_of(st.just(0), st.integers(2, UINT64_MAX)))
        message_kind = draw(st.sampled_from(MessageType))
        return Attempt(kind, path_of(message_kind), Sealer().seal_body(message_kind, b"\x90", version=version),
                       REFUSED_INVALID)  # fmt: skip
    if kind == "wrong path":
        data = Sealer().seal(draw(valid_messages(real)))
        actual = _type_of(data)
        other = draw(st.sampled_from([each.name.lower() for each in MessageType if each is not actual]
                                     + ["unknown", "PING", "ping%00", "ping.json", "99"]))  # fmt: skip
        return Attempt(kind, f"/gossip/{other}", data, REFUSED_INVALID | {404})
    assert kind == "oversized"
    size = draw(st.integers(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES + 70_000))
    return Attempt(kind, path_of(draw(st.sampled_from(MessageType))), b"\x00" * size, frozenset({413}))


KINDS = (
    "valid message", "valid records", "mutated records", "mutated envelope", "truncated", "valid MAC, garbage body",
    "valid MAC, huge counts", "huge counts", "deep nesting", "wrong types", "wrong key", "no MAC", "stale or future",
    "replayed", "other cluster", "other version", "wrong path", "oversized",
)  # fmt: skip


def _sealed_body_attempt(kind: str, message_kind: MessageType, body: bytes) -> Attempt:
    """A validly sealed envelope around ``body``: refused as invalid — unless the garbage happens
    to be a well-formed message, which is then judged as one."""
    data = Sealer().seal_body(message_kind, body)
    try:
        message = decode_message(message_kind, body)
    except ProtocolError:
        return Attempt(kind, path_of(message_kind), data, REFUSED_INVALID)
    items = _record_items(message)
    return Attempt(kind, path_of(message_kind), data, VALID, accepted_keys(items))


def _record_items(message: Message) -> tuple[bytes, ...]:
    """The records a message hands the node to merge."""
    if isinstance(message, Payloads) and message.channel == "records" or isinstance(message, RecordTransfer):
        return message.items
    return ()


def _packb(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _adds_if_same(original: bytes, mutated: bytes) -> frozenset[str]:
    """The records a mutated envelope adds if it still decodes to the original frame (else none)."""
    try:
        frame = decode_frame(mutated)
    except ProtocolError:
        return frozenset()
    source = decode_frame(original)
    if frame != source:
        return frozenset()
    return accepted_keys(_record_items(decode_message(source.type, source.body)))


# A well-formed body of each type, as raw fields, to break one field at a time.
_TEMPLATES: dict[MessageType, list[Any]] = {
    MessageType.PING: [1, "n1", [["n1", "127.0.0.1:9", 1, 0, ""]]],
    MessageType.ACK: [1, []],
    MessageType.NACK: [1],
    MessageType.PING_REQ: [1, "n1", "127.0.0.1:9", []],
    MessageType.PUSH_PULL: [[["n1", "127.0.0.1:9", 1, 0, ""]], False],
    MessageType.PAYLOADS: ["records", [b"\x91\x01"]],
    MessageType.AE_DIGEST: [1, bytes(16), b"", [["p", 1, bytes(16), b""]], False],
    MessageType.AE_SYMBOLS: [1, bytes(16), b"", 0, bytes(SYMBOL_BYTES), [], b""],
    MessageType.AE_SYMBOLS_REQUEST: [0, 10, 1, bytes(16)],
    MessageType.AE_RECORDS: [[], [bytes(16)], 1, bytes(16), 0, False, 0],
}


def _wrong_typed_body(kind: MessageType) -> st.SearchStrategy[bytes]:
    """The template body of ``kind`` with one field (or one field of a nested item) replaced."""
    template = _TEMPLATES[kind]

    @st.composite
    def body(draw: st.DrawFn) -> bytes:
        fields = [list(value) if isinstance(value, list) else value for value in template]
        at = draw(st.integers(0, len(fields) - 1))
        value = draw(msgpack_values)
        if isinstance(fields[at], list) and fields[at] and draw(st.booleans()):
            fields[at][0] = value  # inside a list: an update, an item, a partition
        elif draw(st.integers(0, 9)) == 0:
            fields = fields[:at] if draw(st.booleans()) else fields + [value]  # a field short or one too many
        else:
            fields[at] = value
        return _packb(fields)

    return body()


def _wrong_typed_frame(draw: st.DrawFn) -> Attempt:
    """An envelope with one header field of another type (or a field missing, or one too many)."""
    sealer = Sealer()
    data = sealer.seal(Ping(1, "n1"))
    fields: list[Any] = msgpack.unpackb(data, raw=False)
    at = draw(st.integers(0, len(fields) - 1))
    value = draw(msgpack_values)
    choice = draw(st.integers(0, 9))
    if choice == 0:
        del fields[at]
    elif choice == 1:
        fields.append(value)
    else:
        fields[at] = value
    allowed = REFUSED_INVALID | {401, 403}  # a replaced cluster id or a still-decodable MAC field gets there
    if fields == msgpack.unpackb(data, raw=False):
        allowed |= ANSWERED
    return Attempt("wrong types", path_of(MessageType.PING), _packb(fields), allowed)


