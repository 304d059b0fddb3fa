"""Canonical binary encoding of replicated records, and their keys.

A record encodes to msgpack of a positional list tagged with its kind — about a third smaller
than maps (environment.md: ~67 vs ~96 B per entry) and canonical: one record, one byte
string. Its key is BLAKE2b-128 of that encoding, so a key names one content and a peer cannot
send two contents under one key. Decoding treats the bytes as hostile: every field is
type-checked and bounded, and anything else raises ``RecordDecodeError``.

An observation's detail (``ObservationDetail``: the texts the model wrote) encodes on its own
(``encode_detail``): it travels beside the record but is no part of it, so its key and the
set's digest never depend on whether a node still keeps the detail. ``decode_item`` reads
either, for the gossip path that carries both.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgpack

from node.errors import NodeError
from node.records import (
    BudgetRecord,
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
    UsageRecord,
    VerdictRecord,
)

__all__ = [
    "RecordDecodeError",
    "encode_record",
    "decode_record",
    "encode_detail",
    "decode_detail",
    "decode_item",
    "record_key",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_ITEMS_PER_OBSERVATION",
    "MAX_PARTITION_CHARS",
    "MAX_SPLIT_CHILDREN",
    "MAX_LABEL_CHARS",
    "MAX_CALL_TOKENS",
    "MAX_BUDGET",
]

MAX_RECORD_BYTES = 256 * 1024
MAX_TEXT_CHARS = 200  # an entry's display text; matches the answer parser's bound
MAX_NAME_CHARS = 200  # node names
MAX_PARTITION_CHARS = 400  # a partition's path of labels
MAX_LABEL_CHARS = 80  # one label of a partition path
MAX_SPLIT_CHILDREN = 32  # children of one split
MAX_REASON_CHARS = 200  # a plan event's reason
MAX_ITEMS_PER_OBSERVATION = 500  # matches the parser's per-answer bound
_MAX_HLC = (1 << 64) - 1

_ENTRY = 1
_OBSERVATION = 2
_PLAN = 3
_CAPACITY = 4
_VERDICT = 5
_USAGE = 6
_BUDGET = 7
_DETAIL = 8  # an observation's detail: not a record of the set
MAX_CALL_TOKENS = 1 << 32  # tokens of one call, per kind: far past any context window
MAX_BUDGET = 1 << 62  # a budget's calls or tokens: well inside msgpack's signed 64-bit integers
MAX_CONCURRENCY = 256  # matches ProducerConfig's bound
_PLAN_CODES = {PlanAction.SPLIT: 0, PlanAction.RETIRE: 1}
_PLAN_BY_CODE = {code: action for action, code in _PLAN_CODES.items()}
_MATCH_CODES = {MatchKind.NEW: 0, MatchKind.EXACT: 1, MatchKind.FUZZY: 2}
_MATCH_BY_CODE = {code: kind for kind, code in _MATCH_CODES.items()}


class RecordDecodeError(NodeError):
    """Bytes that are not a valid record; the message says what is wrong."""


def encode_record(record: Record) -> bytes:
    """The canonical bytes of ``record``."""
    if isinstance(record, EntryRecord):
        body: list[Any] = [_ENTRY, record.id, record.text, record.partition, record.origin, record.hlc]
    elif isinstance(record, ObservationRecord):
        # ids as their 16 raw bytes, not 32 hex digits: observations are kept for ever and are the
        # bulk of the set (20 items: ~460 B instead of ~780 B)
        items = [[bytes.fromhex(item.entry_id), _MATCH_CODES[item.match]] for item in record.items]
        body = [_OBSERVATION, record.node, record.call, record.partition, record.hlc, items]
    elif isinstance(record, CapacityRecord):
        body = [_CAPACITY, record.node, record.concurrency, record.hlc]
    elif isinstance(record, UsageRecord):
        body = [_USAGE, record.node, record.call, record.prompt_tokens, record.completion_tokens, record.hlc]
    elif isinstance(record, BudgetRecord):
        body = [_BUDGET, record.node, record.calls, record.tokens, record.hlc]
    elif isinstance(record, VerdictRecord):
        body = [_VERDICT, record.entry, record.real, record.node, record.call, record.partition, record.hlc]
    else:
        body = [
            _PLAN, _PLAN_CODES[record.action], record.partition, list(record.children), record.node, record.hlc,
            record.reason,
        ]  # fmt: skip
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def encode_detail(detail: ObservationDetail) -> bytes:
    """The bytes of an observation's detail (kind 8), as stored and gossiped beside its record."""
    items = [[item.text, item.score] for item in detail.items]
    packed: bytes = msgpack.packb([_DETAIL, detail.node, detail.call, detail.hlc, items], use_bin_type=True)
    return packed


def record_key(encoded: bytes) -> str:
    """The key of an encoded record: 32 hex digits."""
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def _text(value: Any, field: str, limit: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RecordDecodeError(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise RecordDecodeError(f"{field} is {len(value)} characters, over the limit of {limit}")
    if not value and not allow_empty:
        raise RecordDecodeError(f"{field} is empty")
    return value


_ENTRY_ID = re.compile(r"[0-9a-f]{32}")


def _entry_id(value: Any, field: str) -> str:
    text = _text(value, field, 32)
    if not _ENTRY_ID.fullmatch(text):  # a regex: this runs for every record a peer sends
        raise RecordDecodeError(f"{field} must be 32 lowercase hex digits")
    return text


def _uint(value: Any, field: str, limit: int = _MAX_HLC) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise RecordDecodeError(f"{field} must be an integer in [0, {limit}]")
    return value


def _items(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS_PER_OBSERVATION:
        raise RecordDecodeError(f"{field} must be an array of at most {MAX_ITEMS_PER_OBSERVATION}")
    return value


def decode_item(data: bytes) -> Record | ObservationDetail:
    """A record or an observation's detail, whichever ``data`` holds; ``RecordDecodeError`` otherwise."""
    body = _unpack(data)
    if body[0] == _DETAIL:
        return _detail_of(body)
    return _record_of(body)


def decode_detail(data: bytes) -> ObservationDetail:
    """Parse and validate an observation's detail; ``RecordDecodeError`` on anything else."""
    body = _unpack(data)
    if body[0] != _DETAIL:
        raise RecordDecodeError(f"not an observation detail: kind {body[0]!r}")
    return _detail_of(body)


def _detail_of(body: list[Any]) -> ObservationDetail:
    if len(body) != 5:
        raise RecordDecodeError(f"observation detail must have 5 fields, got {len(body)}")
    items = []
    for number, raw in enumerate(_items(body[4], "detail.items")):
        if not isinstance(raw, list) or len(raw) != 2:
            raise RecordDecodeError(f"detail.items[{number}] must be a 2-element array")
        score = raw[1]
        if not isinstance(score, float) or not 0.0 <= score <= 1.0:
            raise RecordDecodeError(f"detail.items[{number}] has a bad score")
        items.append(ItemDetail(text=_text(raw[0], f"detail.items[{number}].text", MAX_TEXT_CHARS), score=score))
    return ObservationDetail(
        node=_text(body[1], "detail.node", MAX_NAME_CHARS),
        call=_uint(body[2], "detail.call"),
        hlc=_uint(body[3], "detail.hlc"),
        items=tuple(items),
    )


def _unpack(data: bytes) -> list[Any]:
    if len(data) > MAX_RECORD_BYTES:
        raise RecordDecodeError(f"record is {len(data)} bytes, over the limit of {MAX_RECORD_BYTES}")
    try:
        body = msgpack.unpackb(
            data, raw=False, strict_map_key=True, max_array_len=MAX_ITEMS_PER_OBSERVATION + 8
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise RecordDecodeError(f"not msgpack: {exc}") from exc
    if not isinstance(body, list) or not body:
        raise RecordDecodeError("record must be a non-empty array")
    return body


def decode_record(data: bytes) -> Record:
    """Parse and validate one record of the set; raises ``RecordDecodeError`` on anything malformed
    (an observation's detail included: it is not a record)."""
    return _record_of(_unpack(data))


def _record_of(body: list[Any]) -> Record:
    kind = body[0]
    if kind == _DETAIL:
        raise RecordDecodeError("an observation's detail is not a record of the set")
    if kind == _ENTRY and len(body) == 6:
        return EntryRecord(
            id=_entry_id(body[1], "entry.id"),
            text=_text(body[2], "entry.text", MAX_TEXT_CHARS),
            partition=_text(body[3], "entry.partition", MAX_PARTITION_CHARS, allow_empty=True),
            origin=_text(body[4], "entry.origin", MAX_NAME_CHARS),
            hlc=_uint(body[5], "entry.hlc"),
        )
    if kind == _OBSERVATION and len(body) == 6:
        raw_items = _items(body[5], "observation.items")
        items = []
        for number, raw in enumerate(raw_items):
            if not isinstance(raw, list) or len(raw) != 2:
                raise RecordDecodeError(f"observation.items[{number}] must be a 2-element array")
            match = _MATCH_BY_CODE.get(raw[1]) if isinstance(raw[1], int) and not isinstance(raw[1], bool) else None
            if match is None:
                raise RecordDecodeError(f"observation.items[{number}] has a bad match kind")
            if not isinstance(raw[0], bytes) or len(raw[0]) != 16:
                raise RecordDecodeError(f"observation.items[{number}].entry_id must be 16 bytes")
            items.append(ObservedItem(entry_id=raw[0].hex(), match=match))
        return ObservationRecord(
            node=_text(body[1], "observation.node", MAX_NAME_CHARS),
            call=_uint(body[2], "observation.call"),
            partition=_text(body[3], "observation.partition", MAX_PARTITION_CHARS, allow_empty=True),
            hlc=_uint(body[4], "observation.hlc"),
            items=tuple(items),
        )
    if kind == _PLAN and len(body) == 7:
        return _decode_plan(body)
    if kind == _VERDICT and len(body) == 7:
        if not isinstance(body[2], bool):
            raise RecordDecodeError("verdict.real must be a boolean")
        return VerdictRecord(
            entry=_entry_id(body[1], "verdict.entry"),
            real=body[2],
            node=_text(body[3], "verdict.node", MAX_NAME_CHARS),
            call=_uint(body[4], "verdict.call"),
            partition=_text(body[5], "verdict.partition", MAX_PARTITION_CHARS, allow_empty=True),
            hlc=_uint(body[6], "verdict.hlc"),
        )
    if kind == _CAPACITY and len(body) == 4:
        concurrency = _uint(body[2], "capacity.concurrency", MAX_CONCURRENCY)
        if concurrency < 1:
            raise RecordDecodeError("capacity.concurrency must be at least 1")
        return CapacityRecord(
            node=_text(body[1], "capacity.node", MAX_NAME_CHARS), concurrency=concurrency, hlc=_uint(body[3], "capacity.hlc")
        )
    if kind == _USAGE and len(body) == 6:
        return UsageRecord(
            node=_text(body[1], "usage.node", MAX_NAME_CHARS),
            call=_uint(body[2], "usage.call"),
            prompt_tokens=_uint(body[3], "usage.prompt_tokens", MAX_CALL_TOKENS),
            completion_tokens=_uint(body[4], "usage.completion_tokens", MAX_CALL_TOKENS),
            hlc=_uint(body[5], "usage.hlc"),
        )
    if kind == _BUDGET and len(body) == 5:
        return BudgetRecord(
            node=_text(body[1], "budget.node", MAX_NAME_CHARS),
            calls=_uint(body[2], "budget.calls", MAX_BUDGET),
            tokens=_uint(body[3], "budget.tokens", MAX_BUDGET),
            hlc=_uint(body[4], "budget.hlc"),
        )
    raise RecordDecodeError(f"unknown record kind {kind!r} with {len(body)} fields")


def _decode_plan(body: list[Any]) -> PlanRecord:
    action = _PLAN_BY_CODE.get(body[1]) if isinstance(body[1], int) and not isinstance(body[1], bool) else None
    if action is None:
        raise RecordDecodeError(f"plan.action must be one of {sorted(_PLAN_BY_CODE)}")
    raw_children = body[3]
    if not isinstance(raw_children, list) or len(raw_children) > MAX_SPLIT_CHILDREN:
        raise RecordDecodeError(f"plan.children must be an array of at most {MAX_SPLIT_CHILDREN}")
    children = tuple(_text(child, f"plan.children[{n}]", MAX_LABEL_CHARS) for n, child in enumerate(raw_children))
    if (action is PlanAction.SPLIT) != bool(children):
        raise RecordDecodeError("a split must name its children and a retire must name none")
    return PlanRecord(
        action=action,
        partition=_text(body[2], "plan.partition", MAX_PARTITION_CHARS, allow_empty=True),
        children=children,
        node=_text(body[4], "plan.node", MAX_NAME_CHARS),
        hlc=_uint(body[5], "plan.hlc"),
        reason=_text(body[6], "plan.reason", MAX_REASON_CHARS, allow_empty=True),
    )
