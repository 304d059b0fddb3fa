"""An exact, order-independent, incrementally maintained digest of a set of keys, overall and per partition.

A set's digest is its size and the sum, modulo 2^128, of a cryptographic hash of each key:

    digest(S) = (|S|, Σ_{k ∈ S} H(k) mod 2^128),   H = BLAKE2b-128 personalised for this use.

This is the *additive* incremental hash of Bellare and Micciancio ("A New Paradigm for
Collision-free Hashing: Incrementality at Reduced Cost", EUROCRYPT 1997, AdHash), used as a
multiset hash by Clarke et al. ("Incremental Multiset Hash Functions and Their Application to
Memory Integrity Checking", ASIACRYPT 2003, MSet-Add-Hash). Adding a key costs one hash and
one addition, the digest of a union of disjoint sets is the sum of their digests (so the
overall digest is the sum of the partitions'), and the order keys arrived in does not matter.
Sum rather than XOR: XOR cancels a key added twice, a sum counts it twice; with the count
beside it, two different sets collide only if their hash sums collide (probability ~2^-128
for sets that are not chosen adversarially).

The set is a grow-only set (G-Set) of record keys: the caller (``gossip.anti_entropy``) adds
each key once; nothing is ever removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gossip.messages import SET_DIGEST_BYTES

__all__ = ["SetDigest", "PartitionedDigest", "key_digest_term", "digest_of"]

_MODULUS = 1 << (8 * SET_DIGEST_BYTES)
_PERSON = b"swarmlist-set"  # domain separation: these hashes are not record keys, nor RIBLT checksums


def key_digest_term(key: bytes) -> int:
    """H(key): what one key adds to a digest's sum (BLAKE2b-128, personalised)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=SET_DIGEST_BYTES, person=_PERSON).digest(), "little")


@dataclass(frozen=True, slots=True)
class SetDigest:
    """(count, sum of H(key) mod 2^128) of a set; equal digests mean equal sets (up to ~2^-128)."""

    count: int = 0
    total: int = 0  # Σ H(key) mod 2^128

    @property
    def digest(self) -> bytes:
        """The 16-byte sum, as it travels on the wire."""
        return self.total.to_bytes(SET_DIGEST_BYTES, "little")

    @classmethod
    def from_wire(cls, count: int, digest: bytes) -> SetDigest:
        return cls(count, int.from_bytes(digest, "little"))

    def plus(self, other: SetDigest) -> SetDigest:
        """The digest of the union of two disjoint sets."""
        return SetDigest(self.count + other.count, (self.total + other.total) % _MODULUS)

    def with_key(self, key: bytes) -> SetDigest:
        """This digest with one more (new) key."""
        return SetDigest(self.count + 1, (self.total + key_digest_term(key)) % _MODULUS)

    def __repr__(self) -> str:
        return f"SetDigest(count={self.count}, digest={self.digest.hex()[:12]}…)"


def digest_of(keys: Iterable[bytes]) -> SetDigest:
    """The digest of a set, computed from scratch (duplicates in ``keys`` are counted once)."""
    unique = set(keys)
    return SetDigest(len(unique), sum(map(key_digest_term, unique)) % _MODULUS)


class PartitionedDigest:
    """The digest of a growing key set, overall and per partition label, O(1) per new key.

    The caller guarantees each key is added once (the anti-entropy key index does).
    """

    def __init__(self) -> None:
        self._partitions: dict[str, list[int]] = {}  # label -> [count, total], mutated in place
        self._count = 0
        self._total = 0

    def __repr__(self) -> str:
        return f"<PartitionedDigest count={self._count} partitions={len(self._partitions)}>"

    def add(self, key: bytes, partition: str) -> None:
        """Account for a key new to the set."""
        term = key_digest_term(key)
        entry = self._partitions.get(partition)
        if entry is None:
            entry = self._partitions[partition] = [0, 0]
        entry[0] += 1
        entry[1] = (entry[1] + term) % _MODULUS
        self._count += 1
        self._total = (self._total + term) % _MODULUS

    @property
    def overall(self) -> SetDigest:
        return SetDigest(self._count, self._total)

    def partition(self, label: str) -> SetDigest:
        """The digest of one partition (empty if the label is unknown)."""
        entry = self._partitions.get(label)
        return SetDigest(entry[0], entry[1]) if entry is not None else SetDigest()

    def partitions(self) -> Mapping[str, SetDigest]:
        """Every partition's digest, by label (a copy)."""
        return {label: SetDigest(count, total) for label, (count, total) in self._partitions.items()}

    def copy(self) -> PartitionedDigest:
        twin = PartitionedDigest()
        twin._partitions = {label: list(entry) for label, entry in self._partitions.items()}
        twin._count, twin._total = self._count, self._total
        return twin
