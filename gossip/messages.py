"""The wire format: message types, one frozen dataclass per message, size limits, encoding.

``MessageType`` numbers are the protocol: append only, never renumber. msgpack appears only
in this module. Every message travels inside an ``Envelope`` that names the cluster, the
protocol version and the sender, and (with a cluster key) carries an HMAC-SHA256 over the
body, a timestamp and a nonce (see ``gossip.auth``).

SWIM runs over request/response (HTTP POST on real networks): a ``Ping`` is answered by an
``Ack``; a ``PingReq`` asks an intermediary to ping a target and answer ``Ack`` or ``Nack``;
``PushPull`` exchanges full membership state (join and periodic sync). Membership changes
(``MemberUpdate``) ride piggybacked on all of them, as in SWIM §4.

Anti-entropy (``gossip.anti_entropy``) runs over four more: an ``AntiEntropyDigest`` (a set's
count, digest and MinHash sketch) is answered by a digest (identical, or one side empty) or
by a ``CodedSymbols`` batch of a rateless IBLT; a ``CodedSymbolsRequest`` asks for more of
them; ``RecordTransfer`` carries records both ways and the keys still wanted.

Versions: an envelope whose version is not the one this node speaks is refused before
anything else is read (another version may lay the rest out differently) with
``VersionMismatch``, which names both versions and, where the frame still reads as ours, the
sender. ``PROTOCOL_VERSION`` is 3 (2 added the usage and budget records; 3 made observation
records counts-only, their detail an item of its own, node.codec); the environment variable ``SWARMLIST_PROTOCOL_VERSION``
overrides it, **for tests only** (see ``_protocol_version``).
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import msgpack

from gossip.errors import DecodeError, ProtocolError, VersionMismatch

__all__ = [
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSION_ENV",
    "MAX_MESSAGE_BYTES",
    "MAX_UPDATES_PER_MESSAGE",
    "MAX_INCARNATION",
    "MAX_MEMBERS_PER_PUSH_PULL",
    "MAX_NAME_CHARS",
    "MAX_ADDRESS_CHARS",
    "MAX_PAYLOADS_PER_MESSAGE",
    "MAX_PAYLOAD_BYTES",
    "KEY_BYTES",
    "SET_DIGEST_BYTES",
    "SYMBOL_BYTES",
    "MAX_SKETCH_BYTES",
    "MAX_PARTITIONS_PER_DIGEST",
    "MAX_SYMBOLS_PER_MESSAGE",
    "MAX_ESTIMATOR_COUNTS",
    "MAX_RECORDS_PER_TRANSFER",
    "MAX_WANTED_KEYS",
    "MessageType",
    "MemberState",
    "MemberUpdate",
    "Ping",
    "Ack",
    "Nack",
    "PingReq",
    "PushPull",
    "Payloads",
    "PartitionSummary",
    "AntiEntropyDigest",
    "CodedSymbols",
    "CodedSymbolsRequest",
    "RecordTransfer",
    "Message",
    "Envelope",
    "envelope_of",
    "NONCE_BYTES",
    "MAC_BYTES",
    "Frame",
    "message_type",
    "encode_message",
    "decode_message",
    "encode_frame",
    "decode_frame",
    "encode_envelope",
    "decode_envelope",
]

PROTOCOL_VERSION_ENV = "SWARMLIST_PROTOCOL_VERSION"  # test-only override, see _protocol_version
# 1: membership, dissemination, anti-entropy; records of kinds 1-5.
# 2: records of kinds 6 (usage) and 7 (budget), which a version-1 node refuses as unknown: a mixed
#    cluster could never reach equal digests, so the two refuse each other at the door instead.
# 3: observation records counts-only (entry ids as 16 raw bytes; new keys), their texts an item
#    of kind 8 beside them, pushed but never reconciled (node.codec, node.replication).
_RELEASED_PROTOCOL_VERSION = 3
_MAX_PROTOCOL_VERSION = 2**32 - 1


def _protocol_version() -> int:
    """The protocol version this process speaks: 3, unless ``SWARMLIST_PROTOCOL_VERSION`` says otherwise.

    The override is for tests only: it lets a test start a real ``gossip-node`` that claims
    another version, to check that nodes of incompatible versions refuse each other clearly
    and leave the cluster as it was. It changes the number stamped on and expected in
    envelopes, nothing of the format, so a node started with it can talk to no node of the
    real version. Read once, at import. A value that is not a positive integer stops the
    process at once rather than leaving it speaking a version nobody asked for.
    """
    raw = os.environ.get(PROTOCOL_VERSION_ENV, "").strip()
    if not raw:
        return _RELEASED_PROTOCOL_VERSION
    version = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else 0
    if not 1 <= version <= _MAX_PROTOCOL_VERSION:
        raise ValueError(f"{PROTOCOL_VERSION_ENV}={raw!r}: expected a protocol version from 1 to "
                         f"{_MAX_PROTOCOL_VERSION} (a test-only override; unset it to speak version "
                         f"{_RELEASED_PROTOCOL_VERSION})")  # fmt: skip
    return version


PROTOCOL_VERSION = _protocol_version()
MAX_MESSAGE_BYTES = 1024 * 1024  # a whole envelope; larger bodies are refused unread (413)
MAX_UPDATES_PER_MESSAGE = 64  # piggybacked membership updates
# A signed 64-bit integer, what a node can persist (SQLite) — and far beyond what restarts and
# refutations reach (one step each). A member never goes above it (``gossip.member_table``),
# so a forged rumour at the ceiling cannot push it past what the wire and its store carry.
MAX_INCARNATION = 2**63 - 1
MAX_MEMBERS_PER_PUSH_PULL = 4096
MAX_NAME_CHARS = 128
MAX_ADDRESS_CHARS = 300  # host:port, IPv6 in brackets included
MAX_PAYLOADS_PER_MESSAGE = 2048  # opaque records of the layers above (dissemination, anti-entropy)
MAX_PAYLOAD_BYTES = 64 * 1024
NONCE_BYTES = 16  # random per message; with the timestamp, what replay protection remembers
MAC_BYTES = 32  # HMAC-SHA256; an envelope of a keyless (open) cluster carries an empty MAC
# Anti-entropy. A record's key is BLAKE2b-128 of its bytes; a set digest is a 128-bit sum.
KEY_BYTES = 16
SET_DIGEST_BYTES = 16
SYMBOL_BYTES = 28  # one coded symbol: 16-byte XOR of keys, 8-byte XOR of checksums, uint32 count
MAX_SKETCH_BYTES = 1024
MAX_PARTITIONS_PER_DIGEST = 1024
MAX_SYMBOLS_PER_MESSAGE = 32 * 1024  # 896 KiB of symbols: under MAX_MESSAGE_BYTES with room to spare
MAX_ESTIMATOR_COUNTS = 4096  # one byte each: counts of the symbols after a batch, to estimate the difference
MAX_RECORDS_PER_TRANSFER = 32 * 1024  # records are small (~100 B); the byte limit binds first for large ones
MAX_WANTED_KEYS = 32 * 1024  # 576 KiB of keys at most


class MessageType(IntEnum):
    """Append only: these numbers are the protocol."""

    PING = 1
    ACK = 2
    NACK = 3
    PING_REQ = 4
    PUSH_PULL = 5
    PAYLOADS = 6  # opaque records pushed by the dissemination layer
    AE_DIGEST = 7  # anti-entropy: a set's digest and sketch (request, and the "identical" reply)
    AE_SYMBOLS = 8  # anti-entropy: coded symbols of a rateless IBLT (a reply)
    AE_SYMBOLS_REQUEST = 9  # anti-entropy: ask for more coded symbols
    AE_RECORDS = 10  # anti-entropy: records both ways, and the keys still wanted


class MemberState(IntEnum):
    """A member's state in the membership view (append only)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3  # left gracefully; like DEAD but not a failure


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    """A rumour about one member; a higher incarnation overrides, SWIM's precedence rules apply."""

    name: str
    address: str  # host:port peers use to reach it
    incarnation: int
    state: MemberState
    source: str = ""  # who asserts it (a suspicion's accuser: Lifeguard counts independent ones)


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str  # the name the sender believes it is pinging (a restarted node may differ)
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    """An intermediary reached no answer from the target (Lifeguard: a sign it is the target, not us)."""

    seq: int


@dataclass(frozen=True, slots=True)
class PingReq:
    seq: int
    target: str
    target_address: str
    updates: tuple[MemberUpdate, ...] = ()


@dataclass(frozen=True, slots=True)
class PushPull:
    """Full membership state; ``join`` marks the first exchange of a joining node."""

    members: tuple[MemberUpdate, ...]
    join: bool = False


@dataclass(frozen=True, slots=True)
class Payloads:
    """Opaque records of the layers above, keyed by channel (e.g. "records")."""

    channel: str
    items: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    """One partition of a record set: its size, digest and MinHash sketch (labels are opaque)."""

    label: str
    count: int
    digest: bytes  # SET_DIGEST_BYTES
    sketch: bytes = b""  # b-bit MinHash of the partition's keys; empty = not sent


@dataclass(frozen=True, slots=True)
class AntiEntropyDigest:
    """A record set's summary: a request opening a round, or the reply when no symbols are needed."""

    count: int
    digest: bytes  # SET_DIGEST_BYTES: order-independent digest of every key
    sketch: bytes = b""  # b-bit MinHash of the whole set; empty = not sent
    partitions: tuple[PartitionSummary, ...] = ()  # sent only when refreshing a peer's partition view
    want_partitions: bool = False  # asks the responder to include its partitions in the reply


@dataclass(frozen=True, slots=True)
class CodedSymbols:
    """Coded symbols ``start .. start + n`` of the sender's set, with the summary they were cut from."""

    count: int
    digest: bytes  # SET_DIGEST_BYTES
    sketch: bytes  # b-bit MinHash (empty in replies to CodedSymbolsRequest)
    start: int
    symbols: bytes  # n × SYMBOL_BYTES: all key sums, then all checksums, then all counts
    partitions: tuple[PartitionSummary, ...] = ()
    counts: bytes = b""  # the counts, mod 256, of the symbols after this batch (for estimating d only)


@dataclass(frozen=True, slots=True)
class CodedSymbolsRequest:
    """Ask for symbols ``start .. stop`` of a set expected to still have this count and digest."""

    start: int
    stop: int
    count: int
    digest: bytes  # SET_DIGEST_BYTES; if the set changed, the reply restarts from symbol 0


@dataclass(frozen=True, slots=True)
class RecordTransfer:
    """Records for the receiver and keys the sender wants; request and reply alike.

    ``served`` (replies) is how many of the request's ``want`` keys the reply answers, found or
    not. ``bulk`` asks for (request) or carries (reply) every record from position ``cursor``
    of the sender's key order on; a bulk reply's ``cursor`` is where to continue. ``count`` and
    ``digest`` are the sender's set after it merged the items it received.
    """

    items: tuple[bytes, ...]
    want: tuple[bytes, ...]  # KEY_BYTES each
    count: int
    digest: bytes  # SET_DIGEST_BYTES
    served: int = 0
    bulk: bool = False
    cursor: int = 0


Message = (Ping | Ack | Nack | PingReq | PushPull | Payloads | AntiEntropyDigest | CodedSymbols | CodedSymbolsRequest
           | RecordTransfer)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Envelope:
    """What actually crosses the wire around one message."""

    version: int
    cluster: str  # cluster id (derived from the topic by the node)
    sender: str  # sender's member name
    sender_address: str  # where the sender can be reached
    timestamp_ms: int  # sender's wall clock, for replay protection
    nonce: bytes  # 16 random bytes, for replay protection
    message: Message


# --- encoding ------------------------------------------------------------------------------
#
# On the wire an envelope is a *frame*, one msgpack array:
#
#     [version, cluster, sender, sender_address, timestamp_ms, nonce, type, body, mac]
#
# ``body`` is the message itself, packed on its own as a positional array (bytes inside the
# frame), so the MAC is checked before a single byte of an unauthenticated body is parsed.
# The MAC covers ``Frame.signed_bytes()``: the same array without ``mac``, packed canonically
# (msgpack's shortest encodings, which is what msgpack-python emits).
#
# Bodies, by type (MemberUpdate = [name, address, incarnation, state, source]):
#     PING       [seq, target, [update...]]
#     ACK        [seq, [update...]]
#     NACK       [seq]
#     PING_REQ   [seq, target, target_address, [update...]]
#     PUSH_PULL  [[update...], join]
#     PAYLOADS   [channel, [bytes...]]
# Anti-entropy (PartitionSummary = [label, count, digest, sketch]):
#     AE_DIGEST           [count, digest, sketch, [partition...], want_partitions]
#     AE_SYMBOLS          [count, digest, sketch, start, symbols, [partition...], counts]
#     AE_SYMBOLS_REQUEST  [start, stop, count, digest]
#     AE_RECORDS          [[bytes...], [key...], count, digest, served, bulk, cursor]

_UINT64_MAX = 2**64 - 1
_INT64_MAX = 2**63 - 1
_FRAME_FIELDS = 9
_E = TypeVar("_E", bound=IntEnum)
_T = TypeVar("_T")


def _make_describe() -> Callable[[object], str]:
    shortened = reprlib.Repr()  # error messages quote hostile values: keep them short
    shortened.maxstring = shortened.maxother = 40
    shortened.maxlist = 4
    shortened.maxlevel = 2
    return shortened.repr


_describe = _make_describe()


@dataclass(frozen=True, slots=True)
class Frame:
    """An envelope as it crosses the wire: header, message type, packed body and MAC."""

    version: int
    cluster: str
    sender: str
    sender_address: str
    timestamp_ms: int
    nonce: bytes
    type: MessageType
    body: bytes  # the message, packed by ``encode_message``
    mac: bytes = b""  # HMAC-SHA256 of ``signed_bytes()``; empty in a keyless cluster

    def signed_bytes(self) -> bytes:
        """The canonical bytes the MAC covers: every field of the frame but the MAC."""
        return _pack(self._header() + [self.body])

    def _header(self) -> list[Any]:
        return [self.version, self.cluster, self.sender, self.sender_address, self.timestamp_ms,
                self.nonce, int(self.type)]  # fmt: skip


def message_type(message: Message) -> MessageType:
    """The ``MessageType`` of a message object (``TypeError`` for anything else)."""
    kind = _TYPE_OF.get(type(message))
    if kind is None:
        raise TypeError(f"not a gossip message: {type(message).__name__}")
    return kind


def encode_message(message: Message) -> bytes:
    """A message's body bytes; raises ``ProtocolError`` if it breaks a limit or a type."""
    kind = message_type(message)
    try:
        raw = _UNPARSERS[kind](message)
    except (AttributeError, TypeError) as exc:  # e.g. something else where MemberUpdates belong
        raise ProtocolError(f"cannot encode {kind.name}: {exc}") from exc
    _PARSERS[kind](raw)  # one source of truth: a sender learns at once what every peer would refuse
    body = _pack(raw)
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{kind.name} body is {len(body)} bytes, over MAX_MESSAGE_BYTES ({MAX_MESSAGE_BYTES})")
    return body


def decode_message(kind: MessageType, body: bytes) -> Message:
    """The message of type ``kind`` in ``body``; raises only ``DecodeError``/``ProtocolError``."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{kind.name} body is {len(body)} bytes, over MAX_MESSAGE_BYTES ({MAX_MESSAGE_BYTES})")
    raw = _unpack(body, f"{kind.name} body")
    return _guarded(lambda: _PARSERS[kind](raw), f"{kind.name} body")


def encode_frame(frame: Frame) -> bytes:
    """A frame's wire bytes (of the version it names); raises ``ProtocolError`` if a header field breaks a limit."""
    raw = frame._header() + [frame.body, frame.mac]
    _parse_frame(raw, frame.version)
    data = _pack(raw)
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"envelope is {len(data)} bytes, over MAX_MESSAGE_BYTES ({MAX_MESSAGE_BYTES})")
    return data


def decode_frame(data: bytes, *, version: int = PROTOCOL_VERSION) -> Frame:
    """The frame in ``data`` (body not parsed, MAC not checked); raises only ``DecodeError``/``ProtocolError``.

    ``version`` is the protocol version the receiver speaks; a frame of another raises
    ``VersionMismatch`` (a ``ProtocolError``).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"envelope is {len(data)} bytes, over MAX_MESSAGE_BYTES ({MAX_MESSAGE_BYTES})")
    raw = _unpack(data, "envelope")
    return _guarded(lambda: _parse_frame(raw, version), "envelope")


def encode_envelope(envelope: Envelope, *, mac: bytes = b"") -> bytes:
    """An envelope's wire bytes (``gossip.auth.Wire.seal`` adds the MAC; this does not compute one)."""
    return encode_frame(_frame_of(envelope, mac))


def decode_envelope(data: bytes) -> Envelope:
    """The envelope in ``data``, fully validated but NOT authenticated (``Wire.open`` does that)."""
    frame = decode_frame(data)
    return envelope_of(frame, decode_message(frame.type, frame.body))


def envelope_of(frame: Frame, message: Message) -> Envelope:
    """The envelope a decoded frame and its decoded body make."""
    return Envelope(
        version=frame.version,
        cluster=frame.cluster,
        sender=frame.sender,
        sender_address=frame.sender_address,
        timestamp_ms=frame.timestamp_ms,
        nonce=frame.nonce,
        message=message,
    )


def _frame_of(envelope: Envelope, mac: bytes) -> Frame:
    return Frame(
        version=envelope.version,
        cluster=envelope.cluster,
        sender=envelope.sender,
        sender_address=envelope.sender_address,
        timestamp_ms=envelope.timestamp_ms,
        nonce=envelope.nonce,
        type=message_type(envelope.message),
        body=encode_message(envelope.message),
        mac=mac,
    )


def _pack(raw: object) -> bytes:
    try:
        return msgpack.packb(raw, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. a str with lone surrogates
        raise ProtocolError(f"cannot encode: {exc}") from exc


def _unpack(data: bytes, what: str) -> object:
    if type(data) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises ValueError subclasses, UnicodeDecodeError, TypeError…
        raise DecodeError(f"{what}: not msgpack ({type(exc).__name__}: {exc})") from exc


def _guarded(parse: Callable[[], _T], what: str) -> _T:
    # The parsers below raise only ProtocolError by construction; this net makes sure a bug in
    # them can never turn hostile bytes into an unexpected exception (a crash path).
    try:
        return parse()
    except ProtocolError:
        raise
    except Exception as exc:
        raise DecodeError(f"{what}: malformed ({type(exc).__name__}: {exc})") from exc


# --- validation of raw (unpacked) values ----------------------------------------------------


def _int(value: object, what: str, *, maximum: int = _UINT64_MAX) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise DecodeError(f"{what}: expected an integer in [0, {maximum}], got {_describe(value)}")
    return value


def _str(value: object, what: str, *, max_chars: int, allow_empty: bool = True) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what}: expected a string, got {_describe(value)}")
    if len(value) > max_chars:
        raise ProtocolError(f"{what}: {len(value)} characters, over the limit of {max_chars}")
    if not value and not allow_empty:
        raise ProtocolError(f"{what}: must not be empty")
    return value


def _bytes(value: object, what: str, *, max_bytes: int) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {_describe(value)}")
    if len(value) > max_bytes:
        raise ProtocolError(f"{what}: {len(value)} bytes, over the limit of {max_bytes}")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{what}: expected a boolean, got {_describe(value)}")
    return value


def _array(value: object, what: str, *, length: int | None = None, max_items: int | None = None) -> list[Any]:
    if type(value) is not list:
        raise DecodeError(f"{what}: expected an array, got {_describe(value)}")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(value)}")
    if max_items is not None and len(value) > max_items:
        raise ProtocolError(f"{what}: {len(value)} items, over the limit of {max_items}")
    return value


def _enum(enum: type[_E], value: object, what: str) -> _E:
    number = _int(value, what)
    try:
        return enum(number)
    except ValueError:
        raise ProtocolError(f"{what}: unknown {enum.__name__} {number}") from None


def _parse_frame(raw: object, expected_version: int) -> Frame:
    fields = _array(raw, "envelope")
    if not fields:
        raise DecodeError("envelope: empty array")
    # The version comes first and is checked first: another version may lay out the rest differently.
    version = _int(fields[0], "envelope version")
    if version != expected_version:
        raise VersionMismatch(
            f"protocol version {version} is not supported (this node speaks version {expected_version})"
            f"{_sent_by(fields)}",
            peer_version=version,
            own_version=expected_version,
        )
    _array(fields, "envelope", length=_FRAME_FIELDS)
    kind_number = _int(fields[6], "envelope message type")
    try:
        kind = MessageType(kind_number)
    except ValueError:
        raise ProtocolError(f"unknown message type {kind_number} (protocol version {version})") from None
    nonce = _bytes(fields[5], "envelope nonce", max_bytes=NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ProtocolError(f"envelope nonce: {len(nonce)} bytes, expected {NONCE_BYTES}")
    mac = _bytes(fields[8], "envelope MAC", max_bytes=MAC_BYTES)
    if len(mac) not in (0, MAC_BYTES):
        raise ProtocolError(f"envelope MAC: {len(mac)} bytes, expected 0 or {MAC_BYTES}")
    return Frame(
        version=version,
        cluster=_str(fields[1], "envelope cluster", max_chars=MAX_NAME_CHARS, allow_empty=False),
        sender=_str(fields[2], "envelope sender", max_chars=MAX_NAME_CHARS, allow_empty=False),
        sender_address=_str(fields[3], "envelope sender address", max_chars=MAX_ADDRESS_CHARS, allow_empty=False),
        timestamp_ms=_int(fields[4], "envelope timestamp", maximum=_INT64_MAX),
        nonce=nonce,
        type=kind,
        body=_bytes(fields[7], "envelope body", max_bytes=MAX_MESSAGE_BYTES),
        mac=mac,
    )


def _sent_by(fields: list[Any]) -> str:
    """"; sent by 'n5' at 10.0.0.5:7070" when a frame of another version still reads as ours there, else ""."""
    if len(fields) != _FRAME_FIELDS or not all(type(field) is str for field in fields[2:4]):
        return ""
    return f"; sent by {_describe(fields[2])} at {_describe(fields[3])}"  # shortened: the sender is unauthenticated


def _parse_update(raw: object) -> MemberUpdate:
    fields = _array(raw, "member update", length=5)
    return MemberUpdate(
        name=_str(fields[0], "member name", max_chars=MAX_NAME_CHARS, allow_empty=False),
        address=_str(fields[1], "member address", max_chars=MAX_ADDRESS_CHARS, allow_empty=False),
        incarnation=_int(fields[2], "member incarnation", maximum=MAX_INCARNATION),
        state=_enum(MemberState, fields[3], "member state"),
        source=_str(fields[4], "member update source", max_chars=MAX_NAME_CHARS),
    )


def _parse_updates(raw: object, *, max_items: int = MAX_UPDATES_PER_MESSAGE) -> tuple[MemberUpdate, ...]:
    return tuple(_parse_update(item) for item in _array(raw, "member updates", max_items=max_items))


def _unparse_update(update: MemberUpdate) -> list[Any]:
    return [update.name, update.address, update.incarnation, _int_of(update.state), update.source]


def _unparse_updates(updates: tuple[MemberUpdate, ...]) -> list[Any]:
    return [_unparse_update(update) for update in updates]


def _int_of(value: object) -> object:
    # IntEnum members pack as ints; anything else is left for the parser to refuse by name.
    return int(value) if isinstance(value, IntEnum) else value


def _parse_ping(raw: object) -> Ping:
    fields = _array(raw, "PING", length=3)
    return Ping(seq=_int(fields[0], "PING seq"), target=_str(fields[1], "PING target", max_chars=MAX_NAME_CHARS),
                updates=_parse_updates(fields[2]))  # fmt: skip


def _parse_ack(raw: object) -> Ack:
    fields = _array(raw, "ACK", length=2)
    return Ack(seq=_int(fields[0], "ACK seq"), updates=_parse_updates(fields[1]))


def _parse_nack(raw: object) -> Nack:
    fields = _array(raw, "NACK", length=1)
    return Nack(seq=_int(fields[0], "NACK seq"))


def _parse_ping_req(raw: object) -> PingReq:
    fields = _array(raw, "PING_REQ", length=4)
    return PingReq(
        seq=_int(fields[0], "PING_REQ seq"),
        target=_str(fields[1], "PING_REQ target", max_chars=MAX_NAME_CHARS),
        target_address=_str(fields[2], "PING_REQ target address", max_chars=MAX_ADDRESS_CHARS, allow_empty=False),
        updates=_parse_updates(fields[3]),
    )


def _parse_push_pull(raw: object) -> PushPull:
    fields = _array(raw, "PUSH_PULL", length=2)
    return PushPull(members=_parse_updates(fields[0], max_items=MAX_MEMBERS_PER_PUSH_PULL),
                    join=_bool(fields[1], "PUSH_PULL join"))  # fmt: skip


def _parse_payloads(raw: object) -> Payloads:
    fields = _array(raw, "PAYLOADS", length=2)
    items = _array(fields[1], "PAYLOADS items", max_items=MAX_PAYLOADS_PER_MESSAGE)
    return Payloads(
        channel=_str(fields[0], "PAYLOADS channel", max_chars=MAX_NAME_CHARS, allow_empty=False),
        items=tuple(_bytes(item, "PAYLOADS item", max_bytes=MAX_PAYLOAD_BYTES) for item in items),
    )


def _fixed_bytes(value: object, what: str, size: int) -> bytes:
    data = _bytes(value, what, max_bytes=size)
    if len(data) != size:
        raise ProtocolError(f"{what}: {len(data)} bytes, expected {size}")
    return data


def _parse_partition(raw: object) -> PartitionSummary:
    fields = _array(raw, "partition summary", length=4)
    return PartitionSummary(
        label=_str(fields[0], "partition label", max_chars=MAX_NAME_CHARS),
        count=_int(fields[1], "partition count"),
        digest=_fixed_bytes(fields[2], "partition digest", SET_DIGEST_BYTES),
        sketch=_bytes(fields[3], "partition sketch", max_bytes=MAX_SKETCH_BYTES),
    )


def _parse_partitions(raw: object) -> tuple[PartitionSummary, ...]:
    items = _array(raw, "partition summaries", max_items=MAX_PARTITIONS_PER_DIGEST)
    return tuple(_parse_partition(item) for item in items)


def _parse_ae_digest(raw: object) -> AntiEntropyDigest:
    fields = _array(raw, "AE_DIGEST", length=5)
    return AntiEntropyDigest(
        count=_int(fields[0], "AE_DIGEST count"),
        digest=_fixed_bytes(fields[1], "AE_DIGEST digest", SET_DIGEST_BYTES),
        sketch=_bytes(fields[2], "AE_DIGEST sketch", max_bytes=MAX_SKETCH_BYTES),
        partitions=_parse_partitions(fields[3]),
        want_partitions=_bool(fields[4], "AE_DIGEST want_partitions"),
    )


def _parse_ae_symbols(raw: object) -> CodedSymbols:
    fields = _array(raw, "AE_SYMBOLS", length=7)
    symbols = _bytes(fields[4], "AE_SYMBOLS symbols", max_bytes=MAX_SYMBOLS_PER_MESSAGE * SYMBOL_BYTES)
    if len(symbols) % SYMBOL_BYTES:
        raise ProtocolError(f"AE_SYMBOLS symbols: {len(symbols)} bytes, not a multiple of {SYMBOL_BYTES}")
    return CodedSymbols(
        count=_int(fields[0], "AE_SYMBOLS count"),
        digest=_fixed_bytes(fields[1], "AE_SYMBOLS digest", SET_DIGEST_BYTES),
        sketch=_bytes(fields[2], "AE_SYMBOLS sketch", max_bytes=MAX_SKETCH_BYTES),
        start=_int(fields[3], "AE_SYMBOLS start", maximum=_INT64_MAX),
        symbols=symbols,
        partitions=_parse_partitions(fields[5]),
        counts=_bytes(fields[6], "AE_SYMBOLS counts", max_bytes=MAX_ESTIMATOR_COUNTS),
    )


def _parse_ae_symbols_request(raw: object) -> CodedSymbolsRequest:
    fields = _array(raw, "AE_SYMBOLS_REQUEST", length=4)
    start = _int(fields[0], "AE_SYMBOLS_REQUEST start", maximum=_INT64_MAX)
    stop = _int(fields[1], "AE_SYMBOLS_REQUEST stop", maximum=_INT64_MAX)
    if stop < start:
        raise ProtocolError(f"AE_SYMBOLS_REQUEST: stop {stop} is before start {start}")
    return CodedSymbolsRequest(start=start, stop=stop, count=_int(fields[2], "AE_SYMBOLS_REQUEST count"),
                               digest=_fixed_bytes(fields[3], "AE_SYMBOLS_REQUEST digest", SET_DIGEST_BYTES))  # fmt: skip


def _parse_ae_records(raw: object) -> RecordTransfer:
    fields = _array(raw, "AE_RECORDS", length=7)
    items = _array(fields[0], "AE_RECORDS items", max_items=MAX_RECORDS_PER_TRANSFER)
    want = _array(fields[1], "AE_RECORDS want", max_items=MAX_WANTED_KEYS)
    return RecordTransfer(
        items=tuple(_bytes(item, "AE_RECORDS item", max_bytes=MAX_PAYLOAD_BYTES) for item in items),
        want=tuple(_fixed_bytes(key, "AE_RECORDS wanted key", KEY_BYTES) for key in want),
        count=_int(fields[2], "AE_RECORDS count"),
        digest=_fixed_bytes(fields[3], "AE_RECORDS digest", SET_DIGEST_BYTES),
        served=_int(fields[4], "AE_RECORDS served", maximum=MAX_WANTED_KEYS),
        bulk=_bool(fields[5], "AE_RECORDS bulk"),
        cursor=_int(fields[6], "AE_RECORDS cursor", maximum=_INT64_MAX),
    )


def _unparse_partitions(partitions: tuple[PartitionSummary, ...]) -> list[Any]:
    return [[partition.label, partition.count, partition.digest, partition.sketch] for partition in partitions]


def _unparse_ae_digest(message: Any) -> list[Any]:
    return [message.count, message.digest, message.sketch, _unparse_partitions(message.partitions),
            message.want_partitions]  # fmt: skip


def _unparse_ae_symbols(message: Any) -> list[Any]:
    return [message.count, message.digest, message.sketch, message.start, message.symbols,
            _unparse_partitions(message.partitions), message.counts]  # fmt: skip


def _unparse_ae_symbols_request(message: Any) -> list[Any]:
    return [message.start, message.stop, message.count, message.digest]


def _unparse_ae_records(message: Any) -> list[Any]:
    return [list(message.items), list(message.want), message.count, message.digest, message.served, message.bulk,
            message.cursor]  # fmt: skip


def _unparse_ping(message: Any) -> list[Any]:
    return [message.seq, message.target, _unparse_updates(message.updates)]


def _unparse_ack(message: Any) -> list[Any]:
    return [message.seq, _unparse_updates(message.updates)]


def _unparse_nack(message: Any) -> list[Any]:
    return [message.seq]


def _unparse_ping_req(message: Any) -> list[Any]:
    return [message.seq, message.target, message.target_address, _unparse_updates(message.updates)]


def _unparse_push_pull(message: Any) -> list[Any]:
    return [_unparse_updates(message.members), message.join]


def _unparse_payloads(message: Any) -> list[Any]:
    return [message.channel, list(message.items)]


_TYPE_OF: dict[type, MessageType] = {
    Ping: MessageType.PING,
    Ack: MessageType.ACK,
    Nack: MessageType.NACK,
    PingReq: MessageType.PING_REQ,
    PushPull: MessageType.PUSH_PULL,
    Payloads: MessageType.PAYLOADS,
    AntiEntropyDigest: MessageType.AE_DIGEST,
    CodedSymbols: MessageType.AE_SYMBOLS,
    CodedSymbolsRequest: MessageType.AE_SYMBOLS_REQUEST,
    RecordTransfer: MessageType.AE_RECORDS,
}
_PARSERS: dict[MessageType, Callable[[object], Message]] = {
    MessageType.PING: _parse_ping,
    MessageType.ACK: _parse_ack,
    MessageType.NACK: _parse_nack,
    MessageType.PING_REQ: _parse_ping_req,
    MessageType.PUSH_PULL: _parse_push_pull,
    MessageType.PAYLOADS: _parse_payloads,
    MessageType.AE_DIGEST: _parse_ae_digest,
    MessageType.AE_SYMBOLS: _parse_ae_symbols,
    MessageType.AE_SYMBOLS_REQUEST: _parse_ae_symbols_request,
    MessageType.AE_RECORDS: _parse_ae_records,
}
_UNPARSERS: dict[MessageType, Callable[[Any], list[Any]]] = {
    MessageType.PING: _unparse_ping,
    MessageType.ACK: _unparse_ack,
    MessageType.NACK: _unparse_nack,
    MessageType.PING_REQ: _unparse_ping_req,
    MessageType.PUSH_PULL: _unparse_push_pull,
    MessageType.PAYLOADS: _unparse_payloads,
    MessageType.AE_DIGEST: _unparse_ae_digest,
    MessageType.AE_SYMBOLS: _unparse_ae_symbols,
    MessageType.AE_SYMBOLS_REQUEST: _unparse_ae_symbols_request,
    MessageType.AE_RECORDS: _unparse_ae_records,
}
