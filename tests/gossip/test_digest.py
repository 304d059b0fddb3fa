"""The set digest: exact, order-independent, incremental, and the sum of its partitions."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.digest import PartitionedDigest, SetDigest, digest_of, key_digest_term

_keys = st.lists(st.binary(min_size=16, max_size=16), max_size=60, unique=True)


@settings(max_examples=200)
@given(_keys, st.randoms(use_true_random=False))
def test_incremental_digest_equals_the_recomputed_one_in_any_order(keys: list[bytes], rng: random.Random) -> None:
    """Adding keys one by one, in any order and partitioning, gives the from-scratch digest; partitions sum to it."""
    incremental = PartitionedDigest()
    shuffled = keys[:]
    rng.shuffle(shuffled)
    labels = {}
    for key in shuffled:
        labels[key] = rng.choice("abc")
        incremental.add(key, labels[key])
    assert incremental.overall == digest_of(keys)
    total = SetDigest()
    for label, digest in incremental.partitions().items():
        assert digest == digest_of(key for key in keys if labels[key] == label)
        total = total.plus(digest)
    assert total == incremental.overall


@settings(max_examples=200)
@given(_keys, _keys)
def test_different_sets_have_different_digests(a: list[bytes], b: list[bytes]) -> None:
    assert (digest_of(a) == digest_of(b)) == (set(a) == set(b))


def test_the_digest_is_a_sum_mod_2_128_of_personalised_blake2b() -> None:
    """H(k) is BLAKE2b-128 with its own personalisation; the wire form is the sum in 16 little-endian bytes."""
    key = b"k" * 16
    expected = int.from_bytes(hashlib.blake2b(key, digest_size=16, person=b"swarmlist-set").digest(), "little")
    assert key_digest_term(key) == expected
    assert key_digest_term(key) != int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
    digest = SetDigest().with_key(key).with_key(b"j" * 16)
    assert digest.count == 2
    assert digest.total == (expected + key_digest_term(b"j" * 16)) % 2**128
    assert SetDigest.from_wire(digest.count, digest.digest) == digest
    assert len(digest.digest) == 16


def test_a_sum_does_not_cancel_as_xor_would() -> None:
    """Two keys with the same hash term would cancel under XOR; under a sum the total changes."""
    term = key_digest_term(b"x" * 16)
    assert SetDigest(2, (2 * term) % 2**128) != SetDigest(2, 0)


def test_unknown_partition_is_empty_and_copies_are_independent() -> None:
    digest = PartitionedDigest()
    digest.add(b"a" * 16, "p")
    twin = digest.copy()
    twin.add(b"b" * 16, "p")
    assert digest.partition("q") == SetDigest()
    assert digest.overall.count == 1 and twin.overall.count == 2
    assert "count=1" in repr(digest)
