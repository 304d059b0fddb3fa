"""MinHash sketches: the Jaccard and difference estimators, b-bit correction, per-partition maintenance."""

from __future__ import annotations

import random
import statistics

import pytest

from gossip.sketch import (
    SKETCH_BYTES,
    PartitionSketches,
    difference_upper_bound,
    empty_sketch,
    estimate_jaccard,
    estimated_difference,
)


def _keys(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(16) for _ in range(count)]


@pytest.mark.parametrize(
    ("size_a", "size_b", "jaccard", "expected"),
    [
        (100, 100, 1.0, 0.0),  # identical
        (100, 0, 0.0, 100.0),  # one side empty: everything differs
        (100, 100, 0.0, 200.0),  # disjoint
        (150, 150, 0.5, 100.0),  # |A∩B| = 100, |A∪B| = 200
        (1000, 900, 0.9, 100.0),  # B ⊂ A: (0.1 / 1.9) · 1900 = 100
        (1000, 900, 1.0, 100.0),  # MinHash blind: the count difference is exact and wins
    ],
)
def test_estimated_difference_table(size_a: int, size_b: int, jaccard: float, expected: float) -> None:
    assert estimated_difference(size_a, size_b, jaccard) == pytest.approx(expected)


def test_estimated_difference_refuses_a_jaccard_outside_0_1() -> None:
    with pytest.raises(ValueError, match="jaccard"):
        estimated_difference(1, 1, 1.5)


def test_jaccard_estimates_match_the_truth_within_minhash_error() -> None:
    """Over 20 pairs at each J, the mean estimate is within 2 standard errors √(J(1−J)/P) of J."""
    rng = random.Random(1)
    for true_jaccard in (0.2, 0.5, 0.9):
        estimates = []
        for _ in range(20):
            common = _keys(rng, int(1000 * true_jaccard))
            rest = 1000 - len(common)
            a, b = PartitionSketches(), PartitionSketches()
            a.add({"p": common + _keys(rng, rest // 2)})
            b.add({"p": common + _keys(rng, rest - rest // 2)})
            estimates.append(estimate_jaccard(a.overall(), b.overall()))
        error = (true_jaccard * (1 - true_jaccard) / 256 / 20) ** 0.5
        assert abs(statistics.mean(estimates) - true_jaccard) < 3 * error + 0.01


def test_b_bit_correction_identical_and_disjoint() -> None:
    """Identical sets estimate 1; disjoint ones about 0 (accidental 8-bit matches are subtracted)."""
    rng = random.Random(2)
    keys = _keys(rng, 500)
    a, b, c = PartitionSketches(), PartitionSketches(), PartitionSketches()
    a.add({"p": keys})
    b.add({"q": list(reversed(keys))})
    c.add({"p": _keys(rng, 500)})
    assert estimate_jaccard(a.overall(), b.overall()) == 1.0
    assert estimate_jaccard(a.overall(), c.overall()) < 0.03
    assert len(a.overall()) == SKETCH_BYTES


def test_the_whole_set_sketch_is_the_minimum_over_partitions() -> None:
    """Keys spread over partitions sketch the same as all keys in one; a partition's sketch is its own."""
    rng = random.Random(3)
    keys = _keys(rng, 300)
    split, whole = PartitionSketches(), PartitionSketches()
    split.add({"a": keys[:100], "b": keys[100:]})
    split.add({"a": []})
    whole.add({"x": keys})
    assert split.overall() == whole.overall()
    only_a = PartitionSketches()
    only_a.add({"a": keys[:100]})
    assert split.partition("a") == only_a.overall()
    assert split.partition("missing") == empty_sketch() == PartitionSketches().overall()
    assert sorted(split.labels()) == ["a", "b"]
    twin = split.copy()
    twin.add({"c": _keys(rng, 50)})
    assert twin.overall() != split.overall()


def test_sketches_are_the_same_on_every_node() -> None:
    """Fixed permutations: two independently built sketches of one set are byte-identical (a protocol property)."""
    keys = _keys(random.Random(4), 50)
    first, second = PartitionSketches(), PartitionSketches()
    first.add({"p": keys})
    second.add({"p": keys})
    assert first.overall() == second.overall()


def test_estimate_jaccard_refuses_a_wrong_size() -> None:
    with pytest.raises(ValueError, match="256 bytes"):
        estimate_jaccard(b"x", empty_sketch())


def test_a_discounted_mismatch_keeps_a_tiny_difference_from_looking_large() -> None:
    """One mismatch in 256 estimates ~(|A| + |B|)/512 keys; discounting it gives J = 1, and two mismatches count as one."""
    base = bytes(SKETCH_BYTES)
    one = b"\x01" + base[1:]
    two = b"\x01\x01" + base[2:]
    assert estimate_jaccard(base, one) < 1.0
    assert estimate_jaccard(base, one, discount=1) == 1.0
    assert estimate_jaccard(base, two, discount=1) == estimate_jaccard(base, one)


def test_the_upper_bound_covers_the_true_difference_even_when_minhash_is_blind() -> None:
    """Over 30 random pairs the bound is above the true d every time, and within ~20x of it near the blind spot."""
    rng = random.Random(5)
    common = _keys(rng, 20_000)
    base = PartitionSketches()
    base.add({"p": common})
    for true_d in (2, 100, 600):
        for _ in range(10):
            a, b = base.copy(), base.copy()
            a.add({"p": _keys(rng, true_d // 2)})
            b.add({"p": _keys(rng, true_d - true_d // 2)})
            bound = difference_upper_bound(20_000 + true_d // 2, 20_000 + true_d - true_d // 2, a.overall(), b.overall())
            assert true_d <= bound < max(20 * true_d, 700)
    with pytest.raises(ValueError, match="256 bytes"):
        difference_upper_bound(1, 1, b"", b"")
