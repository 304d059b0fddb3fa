"""The keys of the records a node holds, with the summaries anti-entropy exchanges about them.

A ``KeySet`` is a grow-only set of 16-byte record keys (BLAKE2b-128 of each record's bytes,
exactly the node's record key), each with an opaque partition label. It maintains, as keys
arrive: the exact digest overall and per partition (``gossip.digest``), a MinHash sketch per
partition (``gossip.sketch``) and the first coded symbols of the set's rateless IBLT
(``gossip.riblt``). The digest is updated at once (O(1) per key); the sketches and symbols
are numpy work that pays per call, not per key, so new keys wait in a buffer until something
reads them (the next anti-entropy request), and are then folded in as one batch.

Keys also keep their insertion order — a position per key that never changes, since nothing
is removed — which is what a bulk transfer to an empty peer pages through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from gossip.digest import PartitionedDigest, SetDigest
from gossip.messages import KEY_BYTES, MAX_NAME_CHARS, MAX_PARTITIONS_PER_DIGEST, PartitionSummary
from gossip.riblt import U64, CodedBlock, SymbolCache, checksums, encode, key_halves
from gossip.sketch import PartitionSketches

__all__ = ["KeySet", "DEFAULT_CACHED_SYMBOLS"]

DEFAULT_CACHED_SYMBOLS = 16384  # 512 KiB; enough to decode differences up to ~10,000 keys from the cache


class KeySet:
    """A node's record keys and their summaries. Not thread-safe: one event loop owns it."""

    def __init__(self, *, cached_symbols: int = DEFAULT_CACHED_SYMBOLS) -> None:
        self._positions: dict[bytes, int] = {}  # key -> insertion position
        self._keys: list[bytes] = []
        self._label_of: list[int] = []  # position -> index into _labels
        self._labels: list[str] = []
        self._label_ids: dict[str, int] = {}
        self._digest = PartitionedDigest()
        self._sketches = PartitionSketches()
        self._cache = SymbolCache(cached_symbols)
        self._low: U64 = np.zeros(1024, np.uint64)  # key halves and checksums of folded-in keys
        self._high: U64 = np.zeros(1024, np.uint64)
        self._sums: U64 = np.zeros(1024, np.uint64)
        self._folded = 0  # keys [0, _folded) are in the sketches, the cache and the arrays

    def __repr__(self) -> str:
        return f"<KeySet keys={len(self._keys)} partitions={len(self._labels)} pending={len(self._keys) - self._folded}>"

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    # ---------------------------------------------------------------- adding

    def add(self, key: bytes, partition: str) -> bool:
        """Add a record's key under a partition label; False if it was already there."""
        if type(key) is not bytes or len(key) != KEY_BYTES:
            raise ValueError(f"a record key is {KEY_BYTES} bytes (BLAKE2b-128 of the record), got {key!r}")
        if key in self._positions:
            return False
        label_id = self._label_ids.get(partition)
        if label_id is None:
            if not isinstance(partition, str) or len(partition) > MAX_NAME_CHARS:
                raise ValueError(f"a partition label is a string of at most {MAX_NAME_CHARS} characters")
            label_id = self._label_ids[partition] = len(self._labels)
            self._labels.append(partition)
        self._positions[key] = len(self._keys)
        self._keys.append(key)
        self._label_of.append(label_id)
        self._digest.add(key, partition)
        return True

    def add_many(self, entries: Iterable[tuple[bytes, str]]) -> int:
        """Add (key, partition) pairs; returns how many were new."""
        return sum(self.add(key, partition) for key, partition in entries)

    def _fold(self) -> None:
        """Fold buffered keys into the sketches, the symbol cache and the arrays (one numpy batch)."""
        start, stop = self._folded, len(self._keys)
        if start == stop:
            return
        keys = self._keys[start:stop]
        low, high = key_halves(keys)
        sums = checksums(low, high)
        if stop > len(self._low):
            capacity = max(stop, 2 * len(self._low))
            self._low, self._high, self._sums = (np.concatenate([array[:start], np.zeros(capacity - start, np.uint64)])
                                                 for array in (self._low, self._high, self._sums))  # fmt: skip
        self._low[start:stop], self._high[start:stop], self._sums[start:stop] = low, high, sums
        self._cache.add(low, high, sums)
        grouped: defaultdict[str, list[bytes]] = defaultdict(list)
        for key, label_id in zip(keys, self._label_of[start:stop], strict=True):
            grouped[self._labels[label_id]].append(key)
        self._sketches.add(grouped)
        self._folded = stop

    # ---------------------------------------------------------------- summaries

    @property
    def digest(self) -> SetDigest:
        return self._digest.overall

    def partition_digests(self) -> Mapping[str, SetDigest]:
        return self._digest.partitions()

    def sketch(self) -> bytes:
        """The b-bit MinHash of the whole set."""
        self._fold()
        return self._sketches.overall()

    def partition_summaries(self) -> tuple[PartitionSummary, ...]:
        """Count, digest and sketch of each partition (the first MAX_PARTITIONS_PER_DIGEST labels, sorted)."""
        self._fold()
        labels = sorted(self._labels)[:MAX_PARTITIONS_PER_DIGEST]
        return tuple(PartitionSummary(label, digest.count, digest.digest, self._sketches.partition(label))
                     for label in labels for digest in (self._digest.partition(label),))  # fmt: skip

    def partition_of(self, key: bytes) -> str | None:
        position = self._positions.get(key)
        return self._labels[self._label_of[position]] if position is not None else None

    def keys_from(self, position: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys in insertion order, from ``position`` on."""
        return self._keys[position : position + limit]

    # ---------------------------------------------------------------- coded symbols

    @property
    def cached_symbols(self) -> int:
        return self._cache.size

    def symbols(self, start: int, stop: int) -> CodedBlock:
        """Coded symbols ``start .. stop`` of the set as it is now (beyond the cache: O(n log stop))."""
        return self.symbol_job(start, stop)()

    def symbol_job(self, start: int, stop: int) -> _SymbolJob:
        """A callable computing symbols ``start .. stop`` of the set as it is *now*, safe to run in a thread.

        Anything within the cache is copied at once; the rest is coded from a snapshot of the
        key arrays (keys added later go to positions the snapshot does not cover).
        """
        self._fold()
        cached_stop = min(stop, self._cache.size)
        cached = self._cache.block(start, cached_stop) if start < cached_stop else None
        rest_start = max(start, self._cache.size)
        count = self._folded
        snapshot = (self._low[:count], self._high[:count], self._sums[:count])
        return _SymbolJob(start, cached, snapshot if rest_start < stop else None, rest_start, stop)

    def copy(self) -> KeySet:
        """An independent copy (benchmarks build one large set and derive variants from it)."""
        self._fold()
        twin = KeySet(cached_symbols=1)
        twin._positions = dict(self._positions)
        twin._keys = list(self._keys)
        twin._label_of = list(self._label_of)
        twin._labels = list(self._labels)
        twin._label_ids = dict(self._label_ids)
        twin._digest = self._digest.copy()
        twin._sketches = self._sketches.copy()
        twin._cache = self._cache.copy()
        twin._low, twin._high, twin._sums = self._low.copy(), self._high.copy(), self._sums.copy()
        twin._folded = self._folded
        return twin


class _SymbolJob:
    """Symbols of a snapshot of a key set; calling it does the (numpy) work."""

    def __init__(self, start: int, cached: CodedBlock | None, snapshot: tuple[U64, U64, U64] | None,
                 rest_start: int, stop: int) -> None:  # fmt: skip
        self._start = start
        self._cached = cached
        self._snapshot = snapshot
        self._rest_start = rest_start
        self._stop = stop

    @property
    def heavy(self) -> bool:
        """Whether it codes the whole set (worth a thread) rather than copying cached symbols."""
        return self._snapshot is not None

    def __call__(self) -> CodedBlock:
        if self._snapshot is None:
            return self._cached if self._cached is not None else CodedBlock.empty(self._start, 0)
        rest = encode(*self._snapshot, self._rest_start, self._stop)
        return self._cached.concat(rest) if self._cached is not None else rest

