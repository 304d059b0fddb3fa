"""MinHash sketches of key sets, per partition: how similar two nodes' sets are, and how far apart.

MinHash (Broder, "On the resemblance and containment of documents", 1997): under a random
permutation π of the key space, P[min π(A) = min π(B)] = J(A, B) = |A ∩ B| / |A ∪ B|, so the
share of agreeing minima over P permutations estimates the Jaccard similarity with standard
error √(J(1 − J)/P). The sketch of a union is the element-wise minimum of the sketches, so a
partition's sketch is updated key by key and the whole set's is the minimum over partitions.

On the wire each minimum keeps only its lowest b bits (b-bit minwise hashing, Li and König,
"b-Bit Minwise Hashing", WWW 2010): two different minima then agree by accident with
probability 2^-b, which the estimator removes: J = (E − 2^-b) / (1 − 2^-b), E being the share of
equal b-bit values (the sets being tiny next to the 2^64 hash space). With b = 8 a sketch of
256 permutations is 256 bytes — four times the permutations of a 32-bit MinHash of that size,
and the accuracy near J = 1, where anti-entropy lives, is set by the number of permutations.

From J and the two sizes, the symmetric difference is d = (1 − J)/(1 + J)·(|A| + |B|)
(|A| + |B| = |A ∪ B| + |A ∩ B|). MinHash cannot see a difference much smaller than
(|A| + |B|)/P — 10 keys in 100,000 leave J ≈ 1 — so ``gossip.anti_entropy`` uses the estimate
only to choose peers and to size its first batch of coded symbols, never for correctness.

Sketches are datasketch's ``MinHash`` (scheme ``affine64``) over the first 8 bytes of each key:
keys are BLAKE2b hashes already, so hashing them again (datasketch's default SHA-1) would only
cost time. The permutations come from a fixed seed here rather than datasketch's generator, so
that every node computes the same permutations whatever its datasketch version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from datasketch import MinHash

__all__ = [
    "SKETCH_BITS",
    "SKETCH_BYTES",
    "SKETCH_PERMUTATIONS",
    "PartitionSketches",
    "difference_upper_bound",
    "empty_sketch",
    "estimate_jaccard",
    "estimated_difference",
]

SKETCH_PERMUTATIONS = 256
SKETCH_BITS = 8
SKETCH_BYTES = SKETCH_PERMUTATIONS * SKETCH_BITS // 8
_PERMUTATION_SEED = 0x5EED_A11E  # every node must use the same permutations: part of the protocol
_BATCH_KEYS = 4096  # keys per datasketch batch: bounds its (keys × permutations) temporary array
_ACCIDENT = 2.0**-SKETCH_BITS


def _permutations() -> np.ndarray:
    generator = np.random.Generator(np.random.PCG64(_PERMUTATION_SEED))
    multipliers = generator.integers(0, 2**63, SKETCH_PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    offsets = generator.integers(0, 2**64 - 1, SKETCH_PERMUTATIONS, dtype=np.uint64, endpoint=True)
    return np.array([multipliers, offsets])


def _key_prefix(key: bytes) -> int:
    return int.from_bytes(key[:8], "little")


_PERMUTATIONS = _permutations()


def _new_minhash() -> MinHash:
    return MinHash(num_perm=SKETCH_PERMUTATIONS, hashfunc=_key_prefix, permutations=_PERMUTATIONS, scheme="affine64")


def _b_bits(hashvalues: np.ndarray) -> bytes:
    return bytes((hashvalues & np.uint64(0xFF)).astype(np.uint8))


def empty_sketch() -> bytes:
    """The b-bit sketch of the empty set."""
    return _b_bits(_new_minhash().hashvalues)


def estimate_jaccard(a: bytes, b: bytes, *, discount: int = 0) -> float:
    """J(A, B) from two b-bit sketches, corrected for accidental b-bit matches, within [0, 1].

    ``discount`` mismatches are counted as matches: a conservative J for sizing. One mismatch
    in 256 moves d̂ by about (|A| + |B|)/512 — 40 keys at 10,000 — yet a 10-key difference at
    that size produces two or more mismatches 2.7 % of the time; discounting them keeps a tiny
    difference from being priced as a large one.
    """
    if len(a) != SKETCH_BYTES or len(b) != SKETCH_BYTES:
        raise ValueError(f"sketches are {SKETCH_BYTES} bytes, got {len(a)} and {len(b)}")
    equal = int(np.count_nonzero(np.frombuffer(a, np.uint8) == np.frombuffer(b, np.uint8)))
    share = min(SKETCH_PERMUTATIONS, equal + discount) / SKETCH_PERMUTATIONS
    return min(1.0, max(0.0, (share - _ACCIDENT) / (1.0 - _ACCIDENT)))


def estimated_difference(size_a: int, size_b: int, jaccard: float) -> float:
    """|A Δ B| ≈ (1 − J)/(1 + J)·(|A| + |B|), and never less than ||A| − |B|| (which is exact)."""
    if not 0.0 <= jaccard <= 1.0:
        raise ValueError(f"jaccard must be in [0, 1], got {jaccard!r}")
    return max(float(abs(size_a - size_b)), (1.0 - jaccard) / (1.0 + jaccard) * (size_a + size_b))


def difference_upper_bound(size_a: int, size_b: int, a: bytes, b: bytes) -> float:
    """An upper confidence bound (≈ 97 %) on |A Δ B|: the mismatch count k raised to k + 2√(k + 1) + 2.

    Mismatching minima are about Poisson with mean P·(1 − J); two standard deviations plus 2
    covers small counts (k = 0 still allows ~4 expected mismatches, i.e. J ≥ 1 − 4/P). Accidental
    b-bit matches hide a share 2^-b of the mismatches, which the division below restores.
    """
    if len(a) != SKETCH_BYTES or len(b) != SKETCH_BYTES:
        raise ValueError(f"sketches are {SKETCH_BYTES} bytes, got {len(a)} and {len(b)}")
    mismatches = int(np.count_nonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8)))
    raised = mismatches + 2.0 * (mismatches + 1) ** 0.5 + 2.0
    jaccard = max(0.0, 1.0 - raised / (SKETCH_PERMUTATIONS * (1.0 - _ACCIDENT)))
    return estimated_difference(size_a, size_b, jaccard)


class PartitionSketches:
    """A MinHash per partition label, updated as keys arrive; the whole set's is derived."""

    def __init__(self) -> None:
        self._sketches: dict[str, MinHash] = {}
        self._overall: bytes | None = None  # cached b-bit sketch of the whole set

    def __repr__(self) -> str:
        return f"<PartitionSketches partitions={len(self._sketches)}>"

    def add(self, keys_by_partition: Mapping[str, Sequence[bytes]]) -> None:
        """Add new keys, grouped by partition label."""
        for label, keys in keys_by_partition.items():
            if not keys:
                continue
            sketch = self._sketches.get(label)
            if sketch is None:
                sketch = self._sketches[label] = _new_minhash()
            for start in range(0, len(keys), _BATCH_KEYS):
                sketch.update_batch(keys[start : start + _BATCH_KEYS])
            self._overall = None

    def labels(self) -> Iterable[str]:
        return self._sketches.keys()

    def partition(self, label: str) -> bytes:
        """The b-bit sketch of one partition (of the empty set if the label is unknown)."""
        sketch = self._sketches.get(label)
        return _b_bits(sketch.hashvalues) if sketch is not None else empty_sketch()

    def overall(self) -> bytes:
        """The b-bit sketch of the whole set: the element-wise minimum over partitions."""
        if self._overall is None:
            minimum = _new_minhash().hashvalues
            for sketch in self._sketches.values():
                minimum = np.minimum(minimum, sketch.hashvalues)
            self._overall = _b_bits(minimum)
        return self._overall

    def copy(self) -> PartitionSketches:
        twin = PartitionSketches()
        twin._sketches = {label: sketch.copy() for label, sketch in self._sketches.items()}
        twin._overall = self._overall
        return twin
