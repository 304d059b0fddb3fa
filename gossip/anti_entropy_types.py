"""Anti-entropy's value types: its configuration, the record store it reads and writes, and its reports.

``AntiEntropyConfig`` says how rounds run, ``RecordStore`` is the node's side of the protocol,
``RoundReport`` and ``Convergence`` say what rounds did and how alike the nodes are, and
``responder_estimate`` sizes a first batch of coded symbols. The protocol itself (Demers et
al., PODC 1987, with a rateless IBLT) is in ``gossip.anti_entropy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from gossip.broadcast import ENVELOPE_HEADROOM_BYTES, RecordDelegate
from gossip.config import ConfigError
from gossip.digest import SetDigest
from gossip.keyset import DEFAULT_CACHED_SYMBOLS
from gossip.messages import (
    MAX_ESTIMATOR_COUNTS,
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_SYMBOLS_PER_MESSAGE,
    SYMBOL_BYTES,
)
from gossip.sketch import SKETCH_BYTES, estimate_jaccard, estimated_difference

__all__ = ["AntiEntropyConfig", "Convergence", "RecordStore", "RoundReport", "responder_estimate"]

_BODY_OVERHEAD_BYTES = 256  # a records message's own fields, beside its items and keys


def _require(condition: bool, message: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"{message}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class AntiEntropyConfig:
    """How anti-entropy runs. ``lan()`` for real networks, ``local()`` for loopback and tests."""

    # One round every this often (plus immediate rounds on rejoin). Shorter repairs sooner; an
    # idle round costs one identical check (< 1 KB) per node per interval.
    interval_s: float = 2.0
    # Wait this long for each request; a records or symbols message may carry up to ~1 MB.
    request_timeout_s: float = 5.0
    # The first batch of symbols is ⌈symbol_overhead·d̂⌉ + symbol_slack. More decodes on the first
    # try more often (one round trip less) and sends more bytes when d̂ is right.
    symbol_overhead: float = 1.5
    symbol_slack: int = 16
    # With a first batch of at most 1,024 symbols, send the counts (one byte each) of this many
    # symbols after it: 256 cut the error of the estimate that sizes a second batch from ±35 %
    # to ±10 %, for 256 bytes. 0 sends none.
    estimator_counts: int = 256
    # Give up on a round past this many symbols (56 MB at 28 B each): a bound on hostile or absurd work.
    max_symbols: int = 1 << 21
    # Symbols kept up to date per key (32 B each): ranges within it are served without coding the set.
    cached_symbols: int = DEFAULT_CACHED_SYMBOLS
    # Body bytes of one symbols or records message, at most. Larger moves big differences in
    # fewer round trips; each message costs the receiver more at once.
    max_message_bytes: int = MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES
    # Exchange per-partition summaries (count, digest, sketch: ~300 B each) with a peer at most
    # this often; 0 never. They refine d̂ and which partitions' records go first.
    partition_refresh_s: float = 30.0
    # Share of rounds whose peer is drawn uniformly instead of by estimated difference.
    explore_probability: float = 0.25
    # Look for members that came (back) alive this often, to reconcile with them at once.
    membership_poll_s: float = 0.5
    # convergence() shows a peer's summary as unknown once it is older than this.
    summary_ttl_s: float = 60.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float | int) and not math.isfinite(value):
                raise ConfigError(f"{item.name} must be a finite number, got {value!r}")
        _require(self.interval_s > 0, "interval_s must be > 0", self.interval_s)
        _require(self.request_timeout_s > 0, "request_timeout_s must be > 0", self.request_timeout_s)
        _require(self.symbol_overhead >= 1.0, "symbol_overhead must be >= 1", self.symbol_overhead)
        _require(self.symbol_slack >= 1, "symbol_slack must be >= 1", self.symbol_slack)
        _require(0 <= self.estimator_counts <= MAX_ESTIMATOR_COUNTS,
                 f"estimator_counts must be in [0, {MAX_ESTIMATOR_COUNTS}]", self.estimator_counts)  # fmt: skip
        _require(self.max_symbols >= 1024, "max_symbols must be >= 1024", self.max_symbols)
        _require(self.cached_symbols >= 1, "cached_symbols must be >= 1", self.cached_symbols)
        _require(4 * MAX_PAYLOAD_BYTES <= self.max_message_bytes <= MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES,
                 f"max_message_bytes must be in [{4 * MAX_PAYLOAD_BYTES}, {MAX_MESSAGE_BYTES - ENVELOPE_HEADROOM_BYTES}]",
                 self.max_message_bytes)  # fmt: skip
        _require(self.partition_refresh_s >= 0, "partition_refresh_s must be >= 0 (0 = never)", self.partition_refresh_s)
        _require(0 <= self.explore_probability <= 1, "explore_probability must be in [0, 1]", self.explore_probability)
        _require(self.membership_poll_s > 0, "membership_poll_s must be > 0", self.membership_poll_s)
        _require(self.summary_ttl_s > 0, "summary_ttl_s must be > 0", self.summary_ttl_s)

    @classmethod
    def lan(cls) -> AntiEntropyConfig:
        """Rounds every 2 s, 5 s per request, partition summaries refreshed every 30 s."""
        return cls()

    @classmethod
    def local(cls) -> AntiEntropyConfig:
        """Loopback and tests: the same protocol, 4× quicker."""
        return cls(interval_s=0.5, request_timeout_s=2.0, partition_refresh_s=7.5, membership_poll_s=0.1,
                   summary_ttl_s=15.0)  # fmt: skip

    @property
    def symbols_per_message(self) -> int:
        return min(MAX_SYMBOLS_PER_MESSAGE, (self.max_message_bytes - _BODY_OVERHEAD_BYTES) // SYMBOL_BYTES)


class RecordStore(RecordDelegate, Protocol):
    """The node's records, as anti-entropy reads and writes them. Runs on the event loop; copy what you keep.

    ``merge`` (from ``RecordDelegate``) stores records received from a peer, by key, and must
    call ``AntiEntropy.add`` for each one it stored *before it returns* (so the digest sent
    back to the peer includes them).
    """

    async def fetch(self, keys: Sequence[bytes]) -> Sequence[bytes]:
        """The records held under ``keys`` (BLAKE2b-128 of each record's bytes), in any order; unknown keys left out."""
        ...


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one round did, from the initiator's side."""

    peer: str
    outcome: str  # identical | reconciled | bulk_pull | bulk_push | failed
    round_trips: int
    symbols: int = 0  # coded symbols received
    pushed: int = 0  # records sent to the peer
    pulled: int = 0  # records received from the peer
    difference: int = 0  # |A Δ B| as decoded (bulk: records moved)
    estimated_difference: float | None = None  # the MinHash/count estimate before decoding
    verified: bool = False  # both digests equal at the end
    duration_s: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Convergence:
    """The node × node matrix of estimated similarity, from the summaries this node holds."""

    names: tuple[str, ...]  # this node first
    similarity: tuple[tuple[float | None, ...], ...]  # estimated Jaccard; 1.0 exactly when digests are equal
    difference: tuple[tuple[float | None, ...], ...]  # estimated |A Δ B|; 0 exactly when digests are equal
    counts: tuple[int | None, ...]  # each node's record count as last heard
    age_s: tuple[float | None, ...]  # how old each summary is (0 for this node)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``GET /api/convergence``)."""
        return {"names": list(self.names), "similarity": [list(row) for row in self.similarity],
                "difference": [list(row) for row in self.difference], "counts": list(self.counts),
                "age_s": list(self.age_s)}  # fmt: skip



def responder_estimate(their: SetDigest, their_sketch: bytes | None, ours: SetDigest, our_sketch: bytes,
                       partition_estimate: float | None = None) -> float:  # fmt: skip
    """d̂ for unequal digests: the largest of the count difference, the MinHash estimate and the partitions' sum.

    MinHash's J discounts two mismatches (``estimate_jaccard(discount=2)``): this sizes the first
    batch of symbols, where an overestimate costs bytes and an underestimate one round trip
    (the second batch is sized from the first, to about ±10 %).
    At least 1 (the digests differ), and at least 2 when the counts are equal (a key on each side).
    """
    estimate = float(abs(their.count - ours.count))
    if their_sketch is not None and len(their_sketch) == SKETCH_BYTES:
        jaccard = estimate_jaccard(their_sketch, our_sketch, discount=2)
        estimate = max(estimate, estimated_difference(their.count, ours.count, jaccard))
    if partition_estimate is not None:
        estimate = max(estimate, partition_estimate)
    return max(estimate, 1.0 if their.count != ours.count else 2.0)

