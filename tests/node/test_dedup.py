"""Tests for node.dedup: the resolver, its MinHash signature and its verification rule."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

import node.dedup as dedup_module
from node.dedup import (
    DEFAULT_PARAMS,
    FUZZY_SEED,
    Deduplicator,
    FuzzyParams,
    MinHasher,
    Resolution,
    extension_head,
    fuzzy_key,
    kgram_hash,
    kgrams,
    near_duplicate_score,
    verified_pairs,
)
from node.errors import ConfigError
from node.normalize import entry_id
from node.records import ItemDetail, MatchKind, ObservedItem
from tests.node.dedup_cases import (
    CAUGHT_BY_DEFAULTS,
    CLUSTER_POOL,
    FALSE_FRIENDS,
    FALSE_FRIENDS_MERGED_BY_DEFAULTS,
    LSH_MISSES,
    VARIANT_PAIRS,
)

ROOT = Path(__file__).resolve().parents[2]

KEYS = ["niger", "saint petersburg", "a", "ab", "koln", "москва", "東京", "x" * 300]


def _indexed(*names: str, params: FuzzyParams | None = None) -> Deduplicator:
    dedup = Deduplicator(params)
    for name in names:
        dedup.add(entry_id(name), name)
    return dedup


# ---------------------------------------------------------------- the signature


@pytest.mark.parametrize("k, bands, rows", [(2, 24, 6), (3, 32, 4), (4, 5, 3)])
@pytest.mark.parametrize("key", KEYS)
def test_signature_equals_datasketch_minhash(key, k, bands, rows):
    """Our vectorised signature is datasketch's MinHash of the same k-grams, value for value."""
    params = FuzzyParams(shingle_chars=k, bands=bands, rows=rows)
    reference = MinHash(num_perm=bands * rows, seed=FUZZY_SEED, hashfunc=kgram_hash)
    reference.update_batch(kgrams(key, k))
    assert np.array_equal(MinHasher(params).signature(key), reference.hashvalues)


def test_signature_is_the_same_past_the_kgram_cache_bound(monkeypatch):
    """With the k-gram cache full, signatures are still exact and the cache stops growing."""
    monkeypatch.setattr(dedup_module, "_MAX_CACHED_KGRAMS", 5)
    hasher = MinHasher()
    for key in KEYS:
        reference = MinHash(num_perm=DEFAULT_PARAMS.num_perm, seed=FUZZY_SEED, hashfunc=kgram_hash)
        reference.update_batch(kgrams(key, DEFAULT_PARAMS.shingle_chars))
        assert np.array_equal(hasher.signature(key), reference.hashvalues)
    assert len(hasher._mixed) == 5


def test_kgram_hash_separates_kgrams_differing_in_their_last_character():
    """Neighbouring code points in the last position do not share a hash (a past bug)."""
    hashes = {kgram_hash("ab" + chr(c)) for c in range(ord("a"), ord("z") + 1)}
    assert len(hashes) == 26


@pytest.mark.parametrize("rows", [4, 6, 3])
def test_band_keys_are_equal_exactly_where_the_band_rows_are(rows):
    """Two signatures share a band key in band b if and only if their rows in band b are equal."""
    params = FuzzyParams(bands=8, rows=rows)
    hasher = MinHasher(params)
    rng = np.random.RandomState(3)
    first = rng.randint(0, 2**32, params.num_perm, dtype=np.uint64).astype(np.uint32)
    second = first.copy()
    changed = {1, 4, 7}
    for band in changed:
        second[band * rows] ^= 1
    keys_a, keys_b = hasher.band_keys_of(first), hasher.band_keys_of(second)
    assert [a == b for a, b in zip(keys_a, keys_b)] == [b not in changed for b in range(8)]
    assert len(set(keys_a)) == 8  # equal rows in two bands still give two keys
    assert all(0 <= key < 2**60 for key in keys_a)


# ---------------------------------------------------------------- fuzzy key and rule


@pytest.mark.parametrize(
    "text, key",
    [
        ("St. Gallen", "saint galen"),
        ("Sankt Gallen", "saint galen"),
        ("Mt. Athos", "mount athos"),
        ("Buerstadt", "burstadt"),
        ("Bürstadt", "burstadt"),
        ("Alekseyevka", "aleksevka"),
        ("Alekseevka", "aleksevka"),
        ("Zhukovskiy", "zhukovski"),
        ("Zhukovsky", "zhukovski"),
        ("Tallinn", "talin"),
        ("Louis XIII", "louis xiii"),  # numerals are not folded
        ("Budapest III. kerület", "budapest iii kerulet"),
    ],
)
def test_fuzzy_key_expands_abbreviations_and_folds_transliterations(text, key):
    """The fuzzy key folds systematic variation and leaves Roman numerals alone."""
    assert fuzzy_key(text) == key


def test_extension_head_finds_the_name_before_a_connector():
    """'X <connector> Y' has head X; a key without connector, or ending in one, has none."""
    assert extension_head("klagenfurt am worthersee") == "klagenfurt"
    assert extension_head("stratford upon avon") == "stratford"
    assert extension_head("bergen op zoom") == "bergen"
    assert extension_head("palma") is None
    assert extension_head("la palma") is None
    assert extension_head("rio de") is None


@pytest.mark.parametrize("name, variant, kind", VARIANT_PAIRS)
def test_real_variant_pairs_resolve_as_measured(name, variant, kind):
    """Caught variants resolve to their place; the others are the measured leaks (exonyms…)."""
    resolution = _indexed(name).resolve(variant)
    if (name, variant) in CAUGHT_BY_DEFAULTS:
        assert resolution.match in (MatchKind.FUZZY, MatchKind.EXACT), kind
        assert resolution.entry_id == entry_id(name)
    else:
        assert resolution.match is MatchKind.NEW, f"{kind} now caught: update the table"


@pytest.mark.parametrize("first, second", FALSE_FRIENDS)
def test_real_false_friends_stay_apart(first, second):
    """Distinct places with close names are not merged (except the measured extension cost)."""
    merged = (first, second) in FALSE_FRIENDS_MERGED_BY_DEFAULTS
    for known, generated in ((first, second), (second, first)):
        resolution = _indexed(known).resolve(generated)
        assert (resolution.match is MatchKind.FUZZY) == merged, (known, generated)


@pytest.mark.parametrize("first, second", sorted(LSH_MISSES))
def test_lsh_misses_a_pair_the_rule_accepts(first, second):
    """MinHash is probabilistic: the rule accepts this pair, the bands never put it together."""
    assert near_duplicate_score(fuzzy_key(first), fuzzy_key(second)) > 0
    assert _indexed(first).resolve(second).match is MatchKind.NEW


def test_qualifier_guard_keeps_numbered_and_qualified_names_apart():
    """Names differing in a number, numeral or qualifier word are never near-duplicates."""
    for a, b in [("louis xiv", "louis xv"), ("terminal 1", "terminal 2"), ("sudan", "south sudan")]:
        assert near_duplicate_score(a, b) == 0.0
        assert near_duplicate_score(a, b, FuzzyParams(guard_qualifiers=False, min_score=0.5)) > 0


def test_same_initial_guard_rejects_look_alikes_with_another_first_letter():
    """Feltham and Eltham are two places; without the guard they would verify."""
    assert near_duplicate_score("feltham", "eltham") == 0.0
    assert near_duplicate_score("feltham", "eltham", FuzzyParams(same_initial=False)) > 0


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CLUSTER_POOL + [v for _n, v, _k in VARIANT_PAIRS]),
    st.sampled_from(CLUSTER_POOL),
)
def test_rule_is_symmetric(a, b):
    """near_duplicate_score(a, b) == near_duplicate_score(b, a)."""
    assert near_duplicate_score(fuzzy_key(a), fuzzy_key(b)) == near_duplicate_score(
        fuzzy_key(b), fuzzy_key(a)
    )


def test_index_verification_is_the_pure_rule():
    """Every pair the index verifies is accepted by near_duplicate_score, with the same score."""
    dedup = _indexed(*CLUSTER_POOL)
    for name in CLUSTER_POOL:
        for other_id, score in dedup.near_duplicates(name):
            other = dedup.text_of(other_id)
            assert other is not None
            assert score == near_duplicate_score(fuzzy_key(name), fuzzy_key(other)) > 0


def test_verified_pairs_do_not_depend_on_insertion_order():
    """The near-duplicate relation found at insertion is the same set in any order."""
    reference = {
        frozenset((CLUSTER_POOL[i], CLUSTER_POOL[j])) for i, j in verified_pairs(CLUSTER_POOL)
    }
    assert len(reference) >= 10
    rng = random.Random(5)
    for _ in range(5):
        names = CLUSTER_POOL[:]
        rng.shuffle(names)
        assert {frozenset((names[i], names[j])) for i, j in verified_pairs(names)} == reference


# ---------------------------------------------------------------- the resolver


def test_resolve_new_then_exact_after_add():
    """An unknown item is NEW and not indexed; once added, any spelling of it is EXACT."""
    dedup = Deduplicator()
    first = dedup.resolve("Saint-Étienne")
    assert first == Resolution(MatchKind.NEW, entry_id("Saint-Étienne"), None)
    assert len(dedup) == 0
    assert dedup.add(first.entry_id, "Saint-Étienne") == []
    again = dedup.resolve("SAINT ETIENNE")
    assert again == Resolution(MatchKind.EXACT, first.entry_id, "Saint-Étienne")
    assert first.entry_id in dedup and len(dedup) == 1


def test_resolve_fuzzy_reports_the_matched_entry_and_score():
    """A variant resolves FUZZY to the indexed entry, with its text and score."""
    dedup = _indexed("Trieste")
    resolution = dedup.resolve("Triest")
    assert resolution.match is MatchKind.FUZZY
    assert resolution.entry_id == entry_id("Trieste")
    assert resolution.matched_text == "Trieste"
    assert resolution.score == pytest.approx(12 / 13)


def test_resolve_prefers_the_best_score():
    """Of several verified entries the closest wins."""
    dedup = _indexed("Rotenburg an der Fulda", "Rottenburg")
    assert [score for _id, score in dedup.near_duplicates("Rotenburg")] != []
    resolution = dedup.resolve("Rotenburg")
    assert (resolution.entry_id, resolution.score) == (entry_id("Rottenburg"), 1.0)


def test_resolution_becomes_an_observation():
    """Resolution.observed records what matched what, for the 'why was this dropped' view."""
    dedup = _indexed("Sankt Gallen")
    resolution = dedup.resolve("St. Gallen")
    assert resolution.observed() == ObservedItem(entry_id("Sankt Gallen"), MatchKind.FUZZY)
    assert resolution.detail("St. Gallen") == ItemDetail("St. Gallen", 1.0)


def test_add_returns_verified_neighbours_and_is_idempotent():
    """add() reports the indexed near-duplicates of the new entry; adding it again does nothing."""
    dedup = _indexed("Hannover", "Hanau")
    neighbours = dedup.add(entry_id("Hanover"), "Hanover")
    assert neighbours == [(entry_id("Hannover"), 1.0)]
    assert dedup.add(entry_id("Hanover"), "Hanover") == []
    assert len(dedup) == 3


def test_add_after_resolve_reuses_the_resolution():
    """resolve() then add() of the same item verifies once (the count of checks says so)."""
    dedup = _indexed("Rotenburg an der Fulda", "Rottenburg")
    dedup.resolve("Rotenburg")
    checks = dedup.fuzzy_checks
    dedup.add(entry_id("Rotenburg"), "Rotenburg")
    assert dedup.fuzzy_checks == checks


def test_near_duplicates_excludes_the_entry_itself():
    """Querying an indexed name lists the others, not itself."""
    dedup = _indexed("Tallinn", "Tallin", "Tulln")
    assert dedup.near_duplicates("Tallinn") == [(entry_id("Tallin"), 1.0)]


def test_resolve_refuses_text_without_letters():
    """Punctuation alone is not an entry."""
    with pytest.raises(ValueError, match="not an entry"):
        Deduplicator().resolve(" -- ! ")


def test_lookup_work_is_proportional_to_candidates_not_to_the_index():
    """Resolving against 5,000 entries verifies a handful of candidates, not the list."""
    rng = random.Random(11)
    letters = "abcdefghijklmnoprstuvz"
    names = {
        "".join(rng.choice(letters) for _ in range(rng.randint(6, 12))).title() for _ in range(5000)
    }
    dedup = _indexed(*names)
    before = dedup.fuzzy_checks
    for name in list(names)[:100]:
        dedup.resolve(name + "x")
    assert dedup.fuzzy_checks - before < 300


@pytest.mark.parametrize(
    "change, message",
    [
        ({"shingle_chars": 1}, "shingle_chars"),
        ({"bands": 0}, "bands"),
        ({"min_score": 0.0}, "min_score"),
        ({"scorer": "cosine"}, "unknown scorer"),
    ],
)
def test_invalid_params_raise_config_error(change, message):
    """FuzzyParams names the offending option."""
    with pytest.raises(ConfigError, match=message):
        FuzzyParams(**change)


def test_repr_shows_state():
    """The repr says how big the index is and which parameters it runs."""
    assert (
        repr(_indexed("Tallinn")) == "<Deduplicator entries=1 buckets=33 k=2 lsh=32x6 indel>=0.92>"
    )


@given(st.text(min_size=1, max_size=40))
def test_internal_id_is_entry_id(text):
    """The resolver's id of a normal form is node.normalize.entry_id of the text."""
    from node.normalize import normal_form

    assert dedup_module._id_of_normal(normal_form(text)) == entry_id(text)


# ---------------------------------------------------------------- the benchmark script


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_dedup", ROOT / "scripts" / "bench" / "dedup.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dedup"] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_on_a_small_stream():
    """The benchmark script measures the three pipelines on 1,500 items and renders its section."""
    bench = _bench()
    report = bench.run(1500, 1, sweep=False, repeats=1, memory_entries=300, log=lambda _line: None)
    assert report["stream"]["new"] + report["stream"]["exact"] + report["stream"]["fuzzy"] == 1500
    names = [p["name"] for p in report["pipelines"]]
    assert names == ["(a) datasketch", "(a') datasketch, shared permutations", "(b) ours"]
    for pipeline in report["pipelines"]:
        assert pipeline["fuzzy_recall"] > 0.5 and pipeline["index_bytes_per_entry"] > 0
    assert report["ratios"]["memory_b_over_a"] < 1
    section = bench.render_markdown(report)
    assert section.startswith("## Dedup\n") and "(b) ours" in section


def test_benchmark_replaces_only_its_own_section():
    """Rewriting docs/benchmarks.md keeps the other engineers' sections."""
    bench = _bench()
    document = "# Benchmarks\n\n## Gossip\nfast\n\n## Dedup\nold\n\n## Store\nsql\n"
    assert bench.replace_section(document, "## Dedup\nnew\n") == (
        "# Benchmarks\n\n## Gossip\nfast\n\n## Dedup\nnew\n\n## Store\nsql\n"
    )
    assert (
        bench.replace_section("# Benchmarks\n", "## Dedup\nnew\n")
        == "# Benchmarks\n\n## Dedup\nnew\n"
    )


# ---------------------------------------------------------------- exact only (the ablation)


def test_exact_only_dedup_matches_normal_forms_and_never_a_variant():
    """Deduplicator(fuzzy=False): a respelling of an indexed entry is EXACT, a variant is NEW, nobody has neighbours."""
    dedup = Deduplicator(fuzzy=False)
    assert not dedup.fuzzy and Deduplicator().fuzzy
    assert dedup.add(entry_id("Trieste"), "Trieste") == []
    assert dedup.resolve("TRIESTE") == Resolution(MatchKind.EXACT, entry_id("Trieste"), "Trieste")
    assert dedup.resolve("Triest") == Resolution(MatchKind.NEW, entry_id("Triest"), None)
    assert dedup.add(entry_id("Triest"), "Triest") == []
    assert dedup.near_duplicates("Trieste") == []
    assert _indexed("Trieste").resolve("Triest").match is MatchKind.FUZZY  # the default would have matched
    assert len(dedup) == 2 and dedup.text_of(entry_id("Triest")) == "Triest"
    assert repr(dedup) == "<Deduplicator entries=2 exact only>"
