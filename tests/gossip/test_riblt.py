"""Rateless IBLT: the mapping's density, encoding, decoding tables, the prefix estimator and the sizing formulas."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.riblt import (
    CodedBlock,
    DifferenceEstimate,
    SymbolCache,
    checksum,
    checksums,
    count_differences,
    count_residues,
    decode,
    encode,
    estimate_difference,
    initial_symbol_count,
    key_halves,
    mapping,
    next_symbol_count,
    symbol_probability,
)


def _keys(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(16) for _ in range(count)]


def _block(keys: list[bytes], stop: int, start: int = 0) -> CodedBlock:
    low, high = key_halves(keys)
    return encode(low, high, checksums(low, high), start, stop)


def _difference(remote: list[bytes], local: list[bytes], symbols: int) -> CodedBlock:
    return _block(remote, symbols).minus(_block(local, symbols))


def test_numpy_encoding_and_scalar_mapping_agree_bit_for_bit() -> None:
    """Encoding (numpy) and decoding (plain Python) must walk the same indices with the same checksums."""
    keys = _keys(random.Random(1), 3000)
    low, high = key_halves(keys)
    sums = checksums(low, high)
    assert sums.tolist() == [checksum(int.from_bytes(key, "little")) for key in keys]
    counts = [0] * 500
    for key_sum in sums.tolist():
        for index in mapping(key_sum, 500):
            counts[index] += 1
    assert _block(keys, 500).counts.tolist() == counts


def test_symbol_i_covers_a_key_with_probability_one_over_one_plus_i_over_2() -> None:
    keys = _keys(random.Random(2), 20_000)
    counts = _block(keys, 1001).counts
    assert counts[0] == 20_000
    for index in (1, 2, 10, 100, 1000):
        assert counts[index] / 20_000 == pytest.approx(symbol_probability(index), rel=0.15)


def test_a_range_is_the_slice_of_the_prefix_and_the_cache_matches_encoding() -> None:
    rng = random.Random(3)
    keys = _keys(rng, 400)
    whole = _block(keys, 300)
    part = _block(keys, 300, start=100)
    assert part.counts.tolist() == whole.counts[100:].tolist() and part.low.tolist() == whole.low[100:].tolist()
    cache = SymbolCache(300)
    low, high = key_halves(keys[:150])
    cache.add(low, high, checksums(low, high))
    low, high = key_halves(keys[150:])
    cache.add(low, high, checksums(low, high))
    cached = cache.block(0, 300)
    assert cached.counts.tolist() == whole.counts.tolist() and cached.sums.tolist() == whole.sums.tolist()
    assert cache.block(10, 20).start == 10
    with pytest.raises(ValueError, match="not all in a cache"):
        cache.block(0, 301)


def test_blocks_round_trip_through_the_wire_form_and_refuse_misuse() -> None:
    block = _block(_keys(random.Random(4), 50), 40)
    again = CodedBlock.from_bytes(0, block.to_bytes())
    assert len(block.to_bytes()) == 40 * 28
    assert again.low.tolist() == block.low.tolist() and again.counts.tolist() == block.counts.tolist()
    with pytest.raises(ValueError, match="whole number"):
        CodedBlock.from_bytes(0, b"x" * 29)
    with pytest.raises(ValueError, match="counts must be"):
        _block([], 40).minus(block).to_bytes()  # a difference's counts can be negative: it never travels
    with pytest.raises(ValueError, match="different ranges"):
        block.minus(_block([], 39))
    with pytest.raises(ValueError, match="does not follow"):
        block.concat(_block([], 10, start=5))


@pytest.mark.parametrize(
    ("only_remote", "only_local", "symbols"),
    [(0, 0, 1), (1, 0, 1), (0, 1, 1), (3, 0, 12), (0, 7, 20), (5, 5, 60), (50, 50, 300), (400, 600, 2000)],
)
def test_decoding_recovers_both_sides_exactly(only_remote: int, only_local: int, symbols: int) -> None:
    """Common keys cancel; each difference comes out on its side."""
    rng = random.Random(only_remote * 1000 + only_local)
    common, remote, local = _keys(rng, 300), _keys(rng, only_remote), _keys(rng, only_local)
    result = decode(_difference(common + remote, common + local, symbols))
    assert result.complete and result.symbols == symbols
    assert set(result.remote_only) == set(remote) and set(result.local_only) == set(local)
    assert result.size == only_remote + only_local


def test_too_few_symbols_do_not_decode_and_say_so() -> None:
    rng = random.Random(5)
    result = decode(_difference(_keys(rng, 100), _keys(rng, 100), 20))
    assert not result.complete


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 2**32))
def test_any_prefix_decodes_only_true_differences_and_a_longer_one_decodes_them_all(
    only_remote: int, only_local: int, seed: int
) -> None:
    """Rateless: 3·d + 30 symbols decode almost always, and whatever a prefix decodes is on the
    right side and exact when it says complete; when it does not, a longer prefix does (small
    stopping sets — two keys sharing every symbol of a prefix — happen about 3 times in 10,000)."""
    rng = random.Random(seed)
    common, remote, local = _keys(rng, 50), _keys(rng, only_remote), _keys(rng, only_local)
    symbols = 3 * (only_remote + only_local) + 30
    result = decode(_difference(common + remote, common + local, symbols))
    assert set(result.remote_only) <= set(remote) and set(result.local_only) <= set(local)
    while not result.complete:
        symbols *= 2
        assert symbols <= 64 * (only_remote + only_local + 30), "a difference that never decodes"
        result = decode(_difference(common + remote, common + local, symbols))
    assert sorted(result.remote_only) == sorted(remote) and sorted(result.local_only) == sorted(local)


def test_three_d_plus_30_symbols_fail_to_decode_in_under_one_in_a_thousand_differences() -> None:
    """Measured on 20,000 seeded random differences (d = 1..40): 3e-4 (6 of 20,000) at the time of
    writing; a mapping or peeling bug shows up as a rate far above that."""
    failures = 0
    trials = 4000
    for trial in range(trials):
        rng = random.Random(trial)
        d = rng.randint(1, 40)
        common, local = _keys(rng, 50), _keys(rng, d)
        failures += not decode(_difference(common, common + local, 3 * d + 30)).complete
    assert failures / trials < 1e-3, f"{failures} of {trials} did not decode"


def test_decoding_needs_about_1_35_d_symbols_for_large_d() -> None:
    """At d = 2,000, 1.5·d symbols decode and 1.2·d do not (the paper's asymptote is ≈ 1.35)."""
    rng = random.Random(6)
    remote, local = _keys(rng, 1000), _keys(rng, 1000)
    assert decode(_difference(remote, local, 3000)).complete
    assert not decode(_difference(remote, local, 2400)).complete


def test_the_prefix_estimator_is_unbiased_within_its_stated_error() -> None:
    """From 32 symbols, d̂ is within about its relative error of d, at d far above 32."""
    rng = random.Random(7)
    for true_d in (200, 2000):
        estimates = [estimate_difference(_difference(_keys(rng, true_d // 2), _keys(rng, true_d - true_d // 2), 32))
                     for _ in range(20)]
        values = np.array([estimate.value for estimate in estimates])
        assert abs(values.mean() - true_d) / true_d < 0.2
        assert 0.2 < estimates[0].relative_error < 0.4
        assert values.std() / true_d < 2 * estimates[0].relative_error


def test_counts_mod_256_of_the_next_symbols_recover_the_count_differences_and_sharpen_the_estimate() -> None:
    """19 symbols plus 256 one-byte counts: the differences come back exact, and d̂ is within ~10 % (was ~35 %)."""
    rng = random.Random(9)
    common = _keys(rng, 2000)
    errors, plain_errors = [], []
    for true_d in (10, 100, 1000):
        for _ in range(10):
            remote = common + _keys(rng, true_d // 2 + true_d % 2)
            local = common + _keys(rng, true_d // 2)
            prefix = _block(remote, 19).minus(_block(local, 19))
            after_remote, after_local = _block(remote, 275, start=19), _block(local, 275, start=19)
            extra = count_differences(count_residues(after_remote.counts), after_local.counts, 19, int(prefix.counts[0]))
            assert extra.tolist() == (after_remote.counts - after_local.counts).tolist()
            sharp = estimate_difference(prefix, extra)
            assert sharp.relative_error < 0.2
            errors.append(abs(sharp.value - true_d) / true_d)
            plain_errors.append(abs(estimate_difference(prefix).value - true_d) / true_d)
    assert np.mean(errors) < 0.12 and np.mean(errors) < np.mean(plain_errors) / 2


def test_the_estimator_is_exact_on_one_symbol_and_never_below_the_count_difference() -> None:
    rng = random.Random(8)
    block = _difference(_keys(rng, 30), [], 1)
    assert estimate_difference(block) == DifferenceEstimate(30.0, 1.0)
    assert estimate_difference(_difference(_keys(rng, 30), [], 16)).value >= 30
    with pytest.raises(ValueError, match="non-empty prefix"):
        estimate_difference(_block([], 5, start=1))


@pytest.mark.parametrize(
    ("estimate", "expected"),
    [(0.0, 16), (2.0, 19), (10.0, 31), (1000.0, 1516), (1e9, 32768)],
)
def test_initial_symbol_count_table(estimate: float, expected: int) -> None:
    assert initial_symbol_count(estimate, overhead=1.5, slack=16, maximum=32768) == expected


@pytest.mark.parametrize(
    ("received", "estimate", "ceiling", "expected"),
    [
        (19, DifferenceEstimate(800.0, 0.28), None, 2224),  # ⌈1.5 · 800 · (1 + 3 · 0.28)⌉ + 16
        (19, DifferenceEstimate(800.0, 0.28), 1000.0, 1516),  # MinHash's upper bound caps the margin
        (19, DifferenceEstimate(800.0, 0.28), 100.0, 1216),  # ...but never below the estimate itself
        (100, DifferenceEstimate(10.0, 0.3), None, 200),  # a useless estimate still doubles
        (1000, DifferenceEstimate(1e9, 0.1), None, 5000),  # capped by the maximum
        (5000, DifferenceEstimate(1e9, 0.1), None, 5001),  # at the maximum: one more, the caller gives up
    ],
)
def test_next_symbol_count_table(received: int, estimate: DifferenceEstimate, ceiling: float | None,
                                 expected: int) -> None:
    assert next_symbol_count(received, estimate, overhead=1.5, slack=16, maximum=5000, ceiling=ceiling) == expected


def test_keys_must_be_16_bytes_and_ranges_valid() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        key_halves([b"x" * 16, b"y" * 8])
    with pytest.raises(ValueError, match="bad symbol range"):
        _block([], 1, start=2)
    with pytest.raises(ValueError, match="size must be"):
        SymbolCache(0)
    with pytest.raises(ValueError, match="starts at symbol 0"):
        decode(_block([], 5, start=1))
