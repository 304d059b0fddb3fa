"""Tests for node.llm.sim.synthetic: the generated universes for scale runs."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from click.testing import CliRunner

from node.dedup import Deduplicator
from node.errors import ConfigError
from node.fuzzy_match import fuzzy_key
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams, expected_distinct
from node.llm.sim.reading import read_request
from node.llm.sim.synthetic import (
    ALTERNATE_SHARE,
    DEFAULT_SYNTHETIC_SEED,
    MAX_NAME_CHARS,
    POPULATION_SOURCE,
    generate_universe,
    rank_size_law,
    synthetic_size,
)
from node.llm.sim.universe import (
    SYNTHETIC_UNIVERSES,
    Universe,
    UnknownUniverseError,
    available_universes,
    load_universe,
)
from node.normalize import entry_id, normal_form
from node.records import MatchKind
from node.sim_cli import main as sim_main
from tests.node.llm.sim.conftest import enumeration_messages, split_messages


@pytest.fixture(scope="module")
def synthetic() -> Universe:
    return load_universe("synthetic-20000")


@pytest.fixture(scope="module")
def indexed(synthetic: Universe) -> tuple[Deduplicator, list[tuple[str, str]]]:
    """The nodes' dedup with every main name added, and the near-duplicate pairs it verified on the way."""
    dedup = Deduplicator()
    pairs = [(item.name, other) for item in synthetic.items
             for other, _score in dedup.add(entry_id(item.name), item.name)]  # fmt: skip
    return dedup, pairs


@pytest.fixture(scope="module")
def model(synthetic: Universe) -> SimulatedModel:
    return SimulatedModel(synthetic, SimParams.fault_free())


def test_synthetic_20000_is_offered_beside_the_shipped_universes() -> None:
    assert "synthetic-20000" in SYNTHETIC_UNIVERSES
    assert available_universes()[-len(SYNTHETIC_UNIVERSES):] == tuple(sorted(SYNTHETIC_UNIVERSES))
    assert {"countries", "european-cities", "synthetic-20000"} <= set(available_universes())


def test_it_loads_through_the_same_api_once_per_process(synthetic: Universe) -> None:
    """load_universe generates it on first use and caches it like a shipped one."""
    assert load_universe("synthetic-20000") is synthetic
    assert synthetic.name == "synthetic-20000"
    assert synthetic.levels == ("region", "province")
    assert synthetic.topic and "Synthetic" in synthetic.attribution


def test_it_holds_exactly_the_named_number_of_items_with_distinct_normal_forms(synthetic: Universe) -> None:
    assert len(synthetic.items) == 20_000
    assert len({normal_form(item.name) for item in synthetic.items}) == 20_000
    assert synthetic.truth_size == 20_000


def test_every_name_maps_to_one_item(synthetic: Universe) -> None:
    """No name or alternate is another item's: alias leakage is measurable."""
    forms = [normal_form(name) for item in synthetic.items for name in (item.name, *item.alternate_names)]
    assert len(forms) == len(set(forms))
    assert len(synthetic.id_of_any_name()) == len(forms)


def test_generation_is_a_pure_function_of_size_and_seed() -> None:
    first, again = generate_universe(1_000, seed=7), generate_universe(1_000, seed=7)
    other = generate_universe(1_000, seed=8)
    assert first == again
    assert first.items != other.items
    assert generate_universe(300, seed=DEFAULT_SYNTHETIC_SEED) == load_universe("synthetic-300")


def test_the_real_dedup_finds_no_two_items_alike(
    synthetic: Universe, indexed: tuple[Deduplicator, list[tuple[str, str]]]
) -> None:
    """MinHash LSH + verification, as the nodes run it, verifies no pair of main names."""
    assert indexed[1] == []
    assert max(len(fuzzy_key(item.name)) for item in synthetic.items) <= MAX_NAME_CHARS
    assert all(fuzzy_key(item.name) == normal_form(item.name) for item in synthetic.items)


def test_alternate_names_give_dedup_work_both_ways(
    synthetic: Universe, indexed: tuple[Deduplicator, list[tuple[str, str]]]
) -> None:
    """Spelling variants resolve to their item by fuzzy match; exonyms are new (alias leakage)."""
    dedup = indexed[0]
    outcomes: Counter[str] = Counter()
    for item in synthetic.items:
        for alternate in item.alternate_names:
            resolution = dedup.resolve(alternate)
            if resolution.match is MatchKind.FUZZY:
                assert resolution.entry_id == entry_id(item.name), (alternate, item.name)
            outcomes[resolution.match.value] += 1
    with_alternates = sum(1 for item in synthetic.items if item.alternate_names)
    assert with_alternates == pytest.approx(ALTERNATE_SHARE * 20_000, rel=0.15)
    assert outcomes["fuzzy"] > 0.25 * with_alternates and outcomes["new"] > 0.25 * with_alternates
    assert outcomes["exact"] == 0


def test_provinces_are_unequal_and_regions_hold_several(synthetic: Universe) -> None:
    sizes = Counter(item.path for item in synthetic.items)
    assert len(synthetic.groups("region")) >= 5 and len(sizes) >= 50
    assert min(sizes.values()) >= 5 and max(sizes.values()) > 4 * min(sizes.values())
    group_names = [path[-1] for path in synthetic.groups("province")] + [path[0] for path in synthetic.groups("region")]
    assert len({normal_form(name) for name in group_names}) == len(group_names)


def test_popularity_follows_the_source_universes_rank_size_law(synthetic: Universe) -> None:
    largest, exponent = rank_size_law([item.popularity for item in load_universe(POPULATION_SOURCE).items])
    popularity = sorted((item.popularity for item in synthetic.items), reverse=True)
    assert popularity[0] == largest
    assert popularity[99] == round(largest * 100**-exponent)
    assert 0.5 < exponent < 1.2  # a city-size law (Zipf's has 1)
    top = Counter(item.path for item in synthetic.items if item.popularity >= popularity[199])
    assert len(top) > 30  # the famous ones are spread over the provinces, not piled in one


def test_the_simulated_model_solves_its_alpha_to_the_published_diversity(
    synthetic: Universe, model: SimulatedModel
) -> None:
    """The unchanged popularity model hits NoveltyBench's 3.5 distinct in 10 on it (no solver clamp)."""
    params = model.params
    assert 0 < model.popularity_alpha < 8
    popularity = [item.popularity for item in synthetic.items]
    assert math.isclose(expected_distinct(popularity, model.popularity_alpha), params.target_distinct_in_10, abs_tol=0.05)


def test_the_model_answers_a_province_prompt_from_that_province(synthetic: Universe, model: SimulatedModel) -> None:
    region, province = synthetic.groups("province")[3]
    messages = enumeration_messages(synthetic.topic, [region, province], count=20)
    answer = model.enumerate_items(read_request(messages), random.Random(1))
    ids = synthetic.id_of_any_name()
    inside = {entry_id(item.name) for item in synthetic.items_under((region, province))}
    real = [name for name in answer if entry_id(name) in ids]
    assert len(answer) >= 10
    assert sum(entry_id(name) in inside for name in answer) >= 0.6 * len(real)
    split = model.respond(split_messages(synthetic.topic, [region]), random.Random(2))
    provinces = {path[-1] for path in synthetic.groups("province") if path[0] == region}
    assert sum(name in split.text for name in provinces) >= min(3, len(provinces))


def test_bad_synthetic_names_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="100..200,000 items"):
        load_universe("synthetic-5")
    with pytest.raises(UnknownUniverseError, match="available"):
        load_universe("synthetic-lots")
    assert synthetic_size("synthetic-020000") is None
    assert synthetic_size("european-cities") is None
    assert synthetic_size("synthetic-300") == 300
    with pytest.raises(ConfigError):
        generate_universe(99)


def test_any_size_in_range_loads_by_name() -> None:
    universe = load_universe("synthetic-300")
    assert len(universe.items) == universe.truth_size == 300
    assert len(universe.groups("province")) >= 2


def test_gossip_sim_runs_a_cluster_on_it_to_identical_digests() -> None:
    """``gossip-sim --universe synthetic-20000``: two nodes, one call each, one digest at the end."""
    result = CliRunner().invoke(sim_main, ["--nodes", "2", "--universe", "synthetic-20000", "--max-calls", "1",
                                           "--rng-seed", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gossip-sim results: 2 nodes, synthetic-20000, seed 4" in result.stdout
    assert "converged" in result.stdout and "yes, at" in result.stdout
