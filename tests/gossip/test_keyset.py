"""The key set: deduplication, insertion order, summaries kept current through buffered folds, symbols past the cache."""

from __future__ import annotations

import random

from gossip.digest import digest_of
from gossip.keyset import KeySet
from gossip.riblt import checksums, encode, key_halves
from gossip.sketch import PartitionSketches


def _keys(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(16) for _ in range(count)]


def test_keys_are_indexed_once_in_insertion_order_with_their_partition() -> None:
    keys = _keys(random.Random(1), 10)
    key_set = KeySet(cached_symbols=64)
    assert key_set.add_many((key, f"p{index % 2}") for index, key in enumerate(keys)) == 10
    assert key_set.add_many([(keys[0], "other")]) == 0
    assert len(key_set) == 10 and keys[3] in key_set and b"z" * 16 not in key_set
    assert key_set.keys_from(8, 5) == keys[8:]
    assert key_set.partition_of(keys[1]) == "p1" and key_set.partition_of(b"z" * 16) is None
    assert "keys=10" in repr(key_set)


def test_summaries_after_buffered_adds_equal_those_computed_from_scratch() -> None:
    """Digest, per-partition digests, sketch and symbols reflect every key added, folded lazily in batches."""
    rng = random.Random(2)
    keys = _keys(rng, 700)
    key_set = KeySet(cached_symbols=128)
    for start in (0, 1, 300, 301, 650):  # reads between adds force folds of uneven batches
        for key in keys[start : {0: 1, 1: 300, 300: 301, 301: 650, 650: 700}[start]]:
            key_set.add(key, "a" if key[0] < 128 else "b")
        key_set.sketch()
    assert key_set.digest == digest_of(keys)
    assert key_set.partition_digests()["a"] == digest_of(key for key in keys if key[0] < 128)
    whole = PartitionSketches()
    whole.add({"x": keys})
    assert key_set.sketch() == whole.overall()
    low, high = key_halves(keys)
    expected = encode(low, high, checksums(low, high), 0, 400)
    symbols = key_set.symbols(0, 400)  # 128 from the cache, the rest coded from the arrays
    assert symbols.counts.tolist() == expected.counts.tolist() and symbols.sums.tolist() == expected.sums.tolist()
    assert key_set.symbols(200, 300).low.tolist() == expected.low[200:300].tolist()
    assert key_set.symbol_job(0, 100).heavy is False and key_set.symbol_job(0, 200).heavy is True


def test_a_symbol_job_codes_the_set_as_it_was_when_made() -> None:
    """Keys added after the job was made (as while it runs in a thread) are not in its symbols."""
    rng = random.Random(3)
    before, after = _keys(rng, 100), _keys(rng, 100)
    key_set = KeySet(cached_symbols=8)
    key_set.add_many((key, "p") for key in before)
    job = key_set.symbol_job(0, 50)
    key_set.add_many((key, "p") for key in after)
    key_set.sketch()  # folds the new keys into the arrays
    low, high = key_halves(before)
    assert job().counts.tolist() == encode(low, high, checksums(low, high), 0, 50).counts.tolist()


def test_partition_summaries_and_copies() -> None:
    rng = random.Random(4)
    key_set = KeySet(cached_symbols=16)
    key_set.add_many((key, label) for key, label in zip(_keys(rng, 30), "ab" * 15, strict=True))
    summaries = key_set.partition_summaries()
    assert [summary.label for summary in summaries] == ["a", "b"]
    assert sum(summary.count for summary in summaries) == 30 and all(len(s.sketch) == 256 for s in summaries)
    twin = key_set.copy()
    twin.add(b"n" * 16, "c")
    assert len(twin) == 31 and len(key_set) == 30 and twin.digest != key_set.digest
    assert twin.symbols(0, 16).counts[0] == 31 and key_set.symbols(0, 16).counts[0] == 30
