"""Tests for node.llm.sim.scope: partition labels resolve to the universe's subtree, loosely."""

from __future__ import annotations

import pytest

from node.llm.sim.scope import Scope, initial_of, letter_range_label, resolve_scope
from node.llm.sim.universe import Universe
from node.normalize import normal_form


def _group_paths(universe: Universe) -> list[tuple[str, ...]]:
    return sorted({item.path[:depth] for item in universe.items for depth in range(1, len(item.path) + 1)})


@pytest.fixture(scope="module")
def city_groups(cities: Universe) -> list[tuple[str, ...]]:
    return _group_paths(cities)


@pytest.fixture(scope="module")
def country_groups(countries: Universe) -> list[tuple[str, ...]]:
    return _group_paths(countries)


@pytest.mark.parametrize(
    ("labels", "prefix"),
    [
        (["Western Europe", "France"], ("Western Europe", "France")),
        (["Cities in France"], ("Western Europe", "France")),
        (["France"], ("Western Europe", "France")),  # found below the next level
        (["western europe"], ("Western Europe",)),
        (["Northern Europe (subregion)"], ("Northern Europe",)),  # the model's own label noise
        (["The Western Europe"], ("Western Europe",)),
        (["Southern Europe", "Italy"], ("Southern Europe", "Italy")),
        (["Malta"], ("Southern Europe", "Malta")),
        (["Western Europe", "Cities of Germany"], ("Western Europe", "Germany")),
    ],
)
def test_labels_resolve_to_their_subtree(
    city_groups: list[tuple[str, ...]], labels: list[str], prefix: tuple[str, ...]
) -> None:
    """Exact, containing and deeper labels all find the group a reader would."""
    assert resolve_scope(labels, city_groups) == Scope(prefix)


def test_unknown_labels_are_ignored(city_groups: list[tuple[str, ...]]) -> None:
    """A label that names no group leaves the scope where it was (the broader topic)."""
    assert resolve_scope(["Atlantis"], city_groups) == Scope()
    assert resolve_scope(["Atlantis", "France"], city_groups) == Scope(("Western Europe", "France"))
    assert resolve_scope(["France", "Atlantis"], city_groups) == Scope(("Western Europe", "France"))


def test_label_naming_several_groups_narrows_to_none(
    city_groups: list[tuple[str, ...]], country_groups: list[tuple[str, ...]]
) -> None:
    """"Europe" is in every subregion's name and "America" in two continents': neither picks one."""
    assert resolve_scope(["Europe"], city_groups) == Scope()
    assert resolve_scope(["America"], country_groups) == Scope()


def test_label_inside_a_unique_group_name_finds_it(country_groups: list[tuple[str, ...]]) -> None:
    """A label that is a word-run of exactly one group's name finds that group."""
    assert resolve_scope(["Oceania"], country_groups) == Scope(("Oceania",))
    assert resolve_scope(["South"], country_groups) == Scope(("South America",))


def test_close_misspelling_resolves_and_distant_one_does_not(city_groups: list[tuple[str, ...]]) -> None:
    """String similarity catches a typo, not a different word."""
    assert resolve_scope(["Germnay"], city_groups) == Scope(("Western Europe", "Germany"))
    assert resolve_scope(["Frence"], city_groups) == Scope()


def test_countries_universe_resolves_continents(countries: Universe, country_groups: list[tuple[str, ...]]) -> None:
    """Every continent of the countries universe resolves from its name and a phrase naming it."""
    continents = {item.path[0] for item in countries.items}
    assert continents == {"Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America"}
    for continent in continents:
        assert resolve_scope([continent], country_groups) == Scope((continent,))
        assert resolve_scope([f"Countries of {continent}"], country_groups) == Scope((continent,))


@pytest.mark.parametrize(
    ("label", "letters"),
    [
        ("A–F", "abcdef"),
        ("A-F", "abcdef"),
        ("f—a", "abcdef"),  # reversed, em dash
        ("Cities M-P", "mnop"),
        ("K to M", "klm"),
        ("(X..Z)", "xyz"),
        ("C–C", "c"),
        ("starting with M", "m"),
        ("Cities beginning with the letter k", "k"),
    ],
)
def test_letter_range_labels(label: str, letters: str) -> None:
    """Letter ranges and "starting with" labels name their initials."""
    assert letter_range_label(label) == frozenset(letters)


@pytest.mark.parametrize("label", ["France", "Baden-Württemberg", "Guinea-Bissau", "Western Europe", "Top 10"])
def test_ordinary_labels_are_not_letter_ranges(label: str) -> None:
    """Hyphenated names and plain words are not read as letter ranges."""
    assert letter_range_label(label) is None


def test_letter_range_restricts_scope_and_intersects(city_groups: list[tuple[str, ...]]) -> None:
    """A letter range restricts the current subtree; two ranges intersect."""
    scope = resolve_scope(["Western Europe", "France", "A–F"], city_groups)
    assert scope == Scope(("Western Europe", "France"), frozenset("abcdef"))
    narrowed = resolve_scope(["France", "A–F", "C–K"], city_groups)
    assert narrowed == Scope(("Western Europe", "France"), frozenset("cdef"))


def test_scope_admits_by_path_prefix_and_initial() -> None:
    """admits() checks the path prefix and the normal form's initial."""
    scope = Scope(("Western Europe", "France"), frozenset("p"))
    assert scope.admits(("Western Europe", "France"), normal_form("Paris"))
    assert not scope.admits(("Western Europe", "France"), normal_form("Lyon"))
    assert not scope.admits(("Western Europe", "Belgium"), normal_form("Paris"))
    assert Scope().admits(("Asia",), normal_form("Japan"))


def test_initial_of_files_accented_and_non_latin_names() -> None:
    """Accents fold to their letter; digits and non-Latin starts file under "#"."""
    assert initial_of(normal_form("Évry")) == "e"
    assert initial_of(normal_form("Łódź")) == "l"
    assert initial_of(normal_form("42nd Street")) == "#"
    assert initial_of(normal_form("Москва")) == "#"
    assert initial_of("") == "#"


def test_every_city_item_is_admitted_by_some_letter_of_its_country(cities: Universe) -> None:
    """No city files under "#": letter-range partitions can reach every item."""
    assert all(initial_of(normal_form(item.name)) != "#" for item in cities.items)
