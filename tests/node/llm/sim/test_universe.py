"""Tests for node.llm.sim.universe: the shipped universes and the loader's helpers."""

from __future__ import annotations

from collections import Counter

import pytest

from node.errors import ConfigError
from node.llm.sim import (
    Universe,
    UniverseItem,
    UnknownUniverseError,
    available_universes,
    load_universe,
)
from node.normalize import entry_id, normal_form

EUROPEAN_SUBREGIONS = {"Northern Europe", "Western Europe", "Southern Europe", "Eastern Europe"}


@pytest.fixture(scope="module")
def countries() -> Universe:
    return load_universe("countries")


@pytest.fixture(scope="module")
def cities() -> Universe:
    return load_universe("european-cities")


def _item(universe: Universe, name: str) -> UniverseItem:
    matches = [item for item in universe.items if item.name == name]
    assert len(matches) == 1, f"{name!r}: {len(matches)} items"
    return matches[0]


def _all_name_forms(universe: Universe) -> set[str]:
    return {normal_form(n) for item in universe.items for n in (item.name, *item.alternate_names)}


def test_both_issue_universes_are_available() -> None:
    assert {"countries", "european-cities"} <= set(available_universes())


def test_countries_are_about_250_over_the_seven_continents(countries: Universe) -> None:
    assert 240 <= len(countries.items) <= 260
    assert countries.levels == ("continent",)
    continents = {path[0] for path in countries.groups("continent")}
    assert continents == {
        "Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America"
    }  # fmt: skip
    assert countries.topic == "countries of the world"


def test_france_is_in_europe(countries: Universe) -> None:
    assert _item(countries, "France").path == ("Europe",)
    assert _item(countries, "France") in countries.items_under(("Europe",))


def test_cote_divoire_is_also_called_ivory_coast(countries: Universe) -> None:
    assert "Ivory Coast" in _item(countries, "Côte d'Ivoire").alternate_names


@pytest.mark.parametrize(
    ("name", "alternate"),
    [("Czechia", "Czech Republic"), ("Myanmar", "Burma"), ("Eswatini", "Swaziland"),
     ("Timor-Leste", "East Timor"), ("North Macedonia", "Macedonia"), ("Turkey", "Türkiye"),
     ("Cabo Verde", "Cape Verde"), ("Vatican City", "Holy See"),
     ("South Korea", "Republic of Korea"), ("Russia", "Russian Federation")],
)  # fmt: skip
def test_countries_carry_the_synonyms_models_use(
    countries: Universe, name: str, alternate: str
) -> None:
    assert alternate in _item(countries, name).alternate_names


def test_country_names_map_to_one_country_each(countries: Universe) -> None:
    assert countries.truth_size == len(countries.items)
    index = countries.id_of_any_name()
    assert countries.items[index[entry_id("Burma")]].name == "Myanmar"
    assert countries.items[index[entry_id("the netherlands")]].name == "Netherlands"


def test_european_cities_are_about_8000_in_four_subregions(cities: Universe) -> None:
    assert 7_000 <= len(cities.items) <= 9_000
    assert cities.levels == ("subregion", "country")
    assert {path[0] for path in cities.groups("subregion")} == EUROPEAN_SUBREGIONS
    assert cities.topic == "cities of Europe"
    assert all(item.popularity >= 15_000 for item in cities.items)


def test_cities_are_grouped_by_m49_subregion_then_country(cities: Universe) -> None:
    countries_by_subregion = cities.groups("country")
    assert ("Western Europe", "France") in countries_by_subregion
    assert ("Northern Europe", "United Kingdom") in countries_by_subregion
    assert ("Eastern Europe", "Poland") in countries_by_subregion
    assert ("Southern Europe", "Kosovo") in countries_by_subregion  # M49 has no Kosovo row
    assert _item(cities, "Lyon").path == ("Western Europe", "France")
    assert all(item.path[1] == "Spain" for item in cities.items_under(("Southern Europe", "Spain")))


def test_cologne_and_munich_carry_their_other_names(cities: Universe) -> None:
    assert "Cologne" in _item(cities, "Köln").alternate_names
    munich = _item(cities, "Munich")  # GeoNames' main name; München is its alternate
    assert "München" in munich.alternate_names
    assert munich.path == ("Western Europe", "Germany")


@pytest.mark.parametrize(
    ("alternate", "name"),
    [("Cologne", "Köln"), ("München", "Munich"), ("Warszawa", "Warsaw"), ("Kiev", "Kyiv"),
     ("Kharkov", "Kharkiv"), ("Frankfurt", "Frankfurt am Main"), ("Wien", "Vienna")],
)  # fmt: skip
def test_alternate_names_map_to_their_item(cities: Universe, alternate: str, name: str) -> None:
    index = cities.id_of_any_name()
    assert cities.items[index[entry_id(alternate)]].name == name
    assert cities.items[index[entry_id(name)]].name == name


def test_russia_stops_at_60_degrees_east(cities: Universe) -> None:
    names = _all_name_forms(cities)
    for west_of_the_urals in ("Moscow", "Kazan", "Perm", "Ufa", "Orenburg"):
        assert normal_form(west_of_the_urals) in names
    for east in ("Yekaterinburg", "Chelyabinsk", "Novosibirsk", "Omsk", "Vladivostok"):
        assert normal_form(east) not in names


def test_numbered_city_districts_are_left_out(cities: Universe) -> None:
    assert not [item.name for item in cities.items if any(ch.isdigit() for ch in item.name)]


def test_homonyms_count_once_in_the_ground_truth(cities: Universe) -> None:
    repeats = Counter(normal_form(item.name) for item in cities.items)
    homonyms = {form for form, count in repeats.items() if count > 1}
    assert "brest" in homonyms  # France and Belarus
    assert {item.path[1] for item in cities.items if normal_form(item.name) == "brest"} == {
        "France", "Belarus"
    }  # fmt: skip
    assert cities.truth_size == len(repeats) < len(cities.items)
    assert cities.truth_ids() == frozenset(entry_id(item.name) for item in cities.items)


def test_a_homonym_maps_to_its_most_popular_item(cities: Universe) -> None:
    brest = cities.items[cities.id_of_any_name()[entry_id("Brest")]]
    assert brest.path[1] == "Belarus"  # 347,000 inhabitants against Brittany's 145,000


@pytest.mark.parametrize("name", ["countries", "european-cities"])
def test_alternates_are_distinct_names_owned_by_one_item(name: str) -> None:
    universe = load_universe(name)
    main_forms = {normal_form(item.name) for item in universe.items}
    owners: Counter[str] = Counter()
    for item in universe.items:
        forms = [normal_form(alternate) for alternate in item.alternate_names]
        assert normal_form(item.name) not in forms, item
        assert len(set(forms)) == len(forms), item
        assert not main_forms.intersection(forms), item
        owners.update(forms)
    assert max(owners.values()) == 1
    expected = len(main_forms) + sum(owners.values())
    assert len(universe.id_of_any_name()) == expected


def test_every_name_of_the_universe_has_an_id(cities: Universe) -> None:
    index = cities.id_of_any_name()
    for position, item in enumerate(cities.items):
        for alternate in item.alternate_names:
            assert index[entry_id(alternate)] == position


def test_items_under_an_empty_prefix_is_everything(countries: Universe) -> None:
    assert countries.items_under(()) == countries.items
    assert countries.items_under(("Atlantis",)) == ()


def test_groups_of_an_unknown_level_is_refused(countries: Universe) -> None:
    with pytest.raises(ValueError, match="continent"):
        countries.groups("country")


def test_unknown_universe_names_the_available_ones() -> None:
    with pytest.raises(UnknownUniverseError) as raised:
        load_universe("cities of mars")
    assert isinstance(raised.value, ConfigError)
    message = str(raised.value)
    assert "cities of mars" in message
    assert "countries" in message and "european-cities" in message


def test_loading_is_cached() -> None:
    assert load_universe("countries") is load_universe("countries")


def test_universes_carry_their_attribution(cities: Universe, countries: Universe) -> None:
    for universe in (cities, countries):
        assert "GeoNames" in universe.attribution
        assert "CC BY 4.0" in universe.attribution
    assert "pycountry" in countries.attribution


def test_repr_shows_size_and_truth(cities: Universe) -> None:
    assert repr(cities) == (
        f"<Universe european-cities items={len(cities.items)} truth={cities.truth_size} "
        "levels=subregion/country>"
    )


def test_an_item_path_must_have_one_group_per_level() -> None:
    with pytest.raises(ConfigError, match="one group per level"):
        Universe(
            name="tiny",
            topic="things",
            levels=("region", "country"),
            items=(UniverseItem("Paris", ("France",), 1.0),),
        )


def test_a_small_universe_built_in_code_answers_like_a_loaded_one() -> None:
    universe = Universe(
        name="tiny",
        topic="things",
        levels=("country",),
        items=(
            UniverseItem("Brest", ("France",), 145.0),
            UniverseItem("Brest", ("Belarus",), 347.0, ("Brest-Litovsk",)),
            UniverseItem("Köln", ("Germany",), 1_000.0, ("Cologne",)),
        ),
    )
    assert universe.truth_size == 2
    assert universe.groups("country") == (("Belarus",), ("France",), ("Germany",))
    index = universe.id_of_any_name()
    assert index[entry_id("BREST")] == 1
    assert index[entry_id("brest litovsk")] == 1
    assert index[entry_id("Koln")] == index[entry_id("Cologne")] == 2
