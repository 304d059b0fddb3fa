"""Tests for node.llm.sim.model: the simulated LLM behaves as its parameters say.

Statistical checks draw a few hundred to a few thousand items with fixed seeds, so they are
deterministic; their tolerances are several standard deviations wide, so they test the
behaviour, not the seeds.
"""

from __future__ import annotations

import functools
import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence

import pytest
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from node.errors import ConfigError
from node.llm.base import ChatMessage
from node.llm.sim.model import Fault, SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.reading import SimRequest, TaskKind, read_request
from node.llm.sim.scope import letter_range_label, resolve_scope
from node.llm.sim.universe import Universe, UniverseItem
from node.normalize import entry_id, normal_form
from node.parser import AnswerFormat, parse_answer
from node.prompts import PromptTemplates, build_verify_prompt
from node.verdicts import parse_verdicts
from tests.node.llm.sim.conftest import enumeration_messages, split_messages

WORLD = "countries of the world"
EUROPE = "cities of Europe"
FRANCE = ("Western Europe", "France")


def _request(messages: Sequence[ChatMessage]) -> SimRequest:
    return read_request(messages)


def _item_index(universe: Universe, name: str) -> int | None:
    """The universe item a generated name denotes, by main or alternate name (None if none)."""
    return universe.id_of_any_name().get(entry_id(name))


def _names(model: SimulatedModel, request: SimRequest, calls: int, *, seed: str = "") -> list[str]:
    return [name for call in range(calls) for name in model.enumerate_items(request, random.Random(f"{seed}{call}"))]


def _by_popularity(items: Sequence[UniverseItem]) -> list[UniverseItem]:
    return sorted(items, key=lambda item: -item.popularity)


def _real_forms(universe: Universe) -> frozenset[str]:
    return frozenset(normal_form(name) for item in universe.items for name in (item.name, *item.alternate_names))


# --- answers and their size -----------------------------------------------------------------


@pytest.mark.parametrize("count", [5, 20, 60])
def test_answers_parse_into_about_the_asked_count(cities_model: SimulatedModel, count: int) -> None:
    """Every answer parses, and holds the asked count within the ±20% jitter."""
    messages = enumeration_messages(EUROPE, FRANCE, count=count)
    sizes = []
    for seed in range(60):
        answer = cities_model.respond(messages, random.Random(seed))
        assert answer.fault is Fault.NONE and answer.finish_reason == "stop"
        parsed = parse_answer(answer.text)
        assert not parsed.failed, answer.text
        sizes.append(len(parsed.entries))
    assert min(sizes) >= round(count * 0.8) and max(sizes) <= round(count * 1.2)
    assert abs(statistics.mean(sizes) - count) <= max(1.0, count * 0.05)


@pytest.mark.parametrize("style", range(5))
def test_every_answer_format_parses_back_to_real_names(cities: Universe, style: int) -> None:
    """JSON, fenced JSON, numbered, bullets with descriptions and prose all give the names back."""
    weights = tuple(1.0 if index == style else 0.0 for index in range(5))
    model = SimulatedModel(cities, SimParams.fault_free().replace(format_weights=weights))
    messages = enumeration_messages(EUROPE, FRANCE, count=20)
    entries = [
        entry for seed in range(20) for entry in parse_answer(model.respond(messages, random.Random(seed)).text).entries
    ]
    real = sum(_item_index(cities, entry) is not None for entry in entries)
    assert len(entries) >= 20 * 16
    # What is not real is the invented names and typo variants (~2% + ~3%), not parse debris.
    assert real / len(entries) > 0.9


def test_usage_and_latency_follow_the_text(cities: Universe) -> None:
    """Prompt tokens are the prompt's characters / 4; latency is TTFT + tokens / throughput."""
    model = SimulatedModel(cities, SimParams.fault_free().replace(time_scale=2.0))
    messages = enumeration_messages(EUROPE, FRANCE, count=20)
    answer = model.respond(messages, random.Random(1))
    params = model.params
    assert answer.usage.prompt_tokens == sum(len(m.content) for m in messages) // 4
    assert answer.usage.completion_tokens == len(answer.text) // 4
    expected = (params.first_token_s + answer.usage.completion_tokens / params.tokens_per_s) * 2.0
    assert answer.latency_s == pytest.approx(expected)


def test_same_seed_same_answer_and_different_seeds_differ(cities_model: SimulatedModel) -> None:
    """All randomness comes from the rng passed in."""
    messages = enumeration_messages(EUROPE, FRANCE, count=20)
    first = cities_model.respond(messages, random.Random("seed-a"))
    again = cities_model.respond(messages, random.Random("seed-a"))
    assert first == again
    others = {cities_model.respond(messages, random.Random(f"seed-{n}")).text for n in range(5)}
    assert len(others) == 5


def test_knowledge_seed_decides_which_tail_items_the_model_knows(countries: Universe) -> None:
    """Two knowledge seeds know about as much, but not the same long-tail items."""
    params = SimParams.ideal().replace(tail_recall=0.3)
    one, other = SimulatedModel(countries, params, knowledge_seed=1), SimulatedModel(countries, params, knowledge_seed=2)
    assert one.known_share() < 0.95 and abs(one.known_share() - other.known_share()) < 0.06
    # Everything known to the ideal model is in its answers once the head is on the known list.
    head = [item.name for item in _by_popularity(countries.items)[:125]]
    request = _request(enumeration_messages(WORLD, [], known=head, count=200))
    produced_one = set(one.enumerate_items(request, random.Random(0)))
    produced_other = set(other.enumerate_items(request, random.Random(0)))
    assert len(produced_one) == round(countries.truth_size * one.known_share()) - 125
    assert produced_one != produced_other


# --- where items come from --------------------------------------------------------------------


def test_items_come_from_the_asked_scope_except_strays(cities: Universe, cities_model: SimulatedModel) -> None:
    """Items outside the asked country are its neighbours, at about stray_rate."""
    france_forms = {
        normal_form(name) for item in cities.items_under(FRANCE) for name in (item.name, *item.alternate_names)
    }
    names = _names(cities_model, _request(enumeration_messages(EUROPE, FRANCE, count=20)), 200)
    strays = [name for name in names if normal_form(name) not in france_forms and _item_index(cities, name) is not None]
    share = len(strays) / len(names)
    # stray_rate 0.04, less the strays written as a variant; ~4,000 items: sd ≈ 0.003.
    assert 0.025 < share < 0.05
    # Strays come from the sibling countries of Western Europe, not from elsewhere.
    assert all(cities.items[_item_index(cities, name)].path[0] == "Western Europe" for name in strays)  # type: ignore[index]


def test_ideal_model_never_strays(cities: Universe, ideal_cities_model: SimulatedModel) -> None:
    """With ideal() params every item belongs to the asked part."""
    france_forms = {normal_form(item.name) for item in cities.items_under(FRANCE)}
    names = _names(ideal_cities_model, _request(enumeration_messages(EUROPE, FRANCE, count=30)), 50)
    assert {normal_form(name) for name in names} <= france_forms


def test_letter_range_part_gives_only_those_initials(ideal_cities_model: SimulatedModel) -> None:
    """"France > A–C" yields French cities filed under A, B or C."""
    names = _names(ideal_cities_model, _request(enumeration_messages(EUROPE, [*FRANCE, "A–C"], count=30)), 20)
    assert names and {normal_form(name)[0] for name in names} <= set("abc")


def test_popular_items_dominate_first_answers(countries: Universe, countries_model: SimulatedModel) -> None:
    """Without a known list, answers collapse onto the most populous countries."""
    request = _request(enumeration_messages(WORLD, [], count=10))
    by_rank = {countries.items.index(item): rank for rank, item in enumerate(_by_popularity(countries.items))}
    answers = [countries_model.enumerate_items(request, random.Random(seed)) for seed in range(200)]
    appearances: Counter[str] = Counter()
    ranks: list[int] = []
    for names in answers:
        indices = {_item_index(countries, name) for name in names} - {None}
        appearances.update(countries.items[index].name for index in indices)  # type: ignore[index]
        ranks.extend(by_rank[index] for index in indices)  # type: ignore[index]
    assert appearances["China"] > 180 and appearances["India"] > 180
    assert statistics.median(ranks) < 15
    assert sum(rank >= len(countries.items) // 2 for rank in ranks) / len(ranks) < 0.01


def test_ten_one_item_samples_give_the_calibrated_number_of_distinct_items(
    countries: Universe, countries_model: SimulatedModel
) -> None:
    """10 one-item answers to "a country" name 2.8-3.9 distinct countries, as NoveltyBench found."""
    request = _request(enumeration_messages(WORLD, [], count=1))
    distinct = []
    for trial in range(200):
        names = [countries_model.enumerate_items(request, random.Random(f"{trial}:{k}"))[0] for k in range(10)]
        distinct.append(len({_item_index(countries, name) for name in names} - {None}))  # real items only
    assert 2.8 < statistics.mean(distinct) < 3.9


# --- obedience to the known list ---------------------------------------------------------------


def test_ideal_model_with_whole_known_list_answers_empty(countries: Universe, ideal_countries_model: SimulatedModel) -> None:
    """A perfectly obedient model that knows nothing new says so: an empty list, no repeats."""
    oceania = [item.name for item in countries.items_under(("Oceania",))]
    messages = enumeration_messages(WORLD, ["Oceania"], known=oceania, count=10)
    for seed in range(20):
        parsed = parse_answer(ideal_countries_model.respond(messages, random.Random(seed)).text)
        assert parsed.entries == () and parsed.format is AnswerFormat.EMPTY_LIST


def test_ideal_model_finds_the_unpopular_items_left(countries: Universe, ideal_countries_model: SimulatedModel) -> None:
    """With all but the three least popular items known, the ideal model gives exactly those three."""
    oceania = _by_popularity(countries.items_under(("Oceania",)))
    known, left = [item.name for item in oceania[:-3]], {item.name for item in oceania[-3:]}
    request = _request(enumeration_messages(WORLD, ["Oceania"], known=known, count=10))
    for seed in range(10):
        names = ideal_countries_model.enumerate_items(request, random.Random(seed))
        assert sorted(names) == sorted(left)


def test_ideal_model_never_repeats_a_known_item(cities: Universe, ideal_cities_model: SimulatedModel) -> None:
    """With half of France known, no answer repeats a known city or itself."""
    france = _by_popularity(cities.items_under(FRANCE))
    known = [item.name for item in france[: len(france) // 2]]
    known_forms = {normal_form(name) for name in known}
    request = _request(enumeration_messages(EUROPE, FRANCE, known=known, count=40))
    for seed in range(20):
        names = ideal_cities_model.enumerate_items(request, random.Random(seed))
        assert len(names) >= 32
        assert not known_forms & {normal_form(name) for name in names}
        assert len({normal_form(name) for name in names}) == len(names)


def _china_repeat_share(countries: Universe, model: SimulatedModel, known: list[str], calls: int) -> float:
    """Share of one-item answers that name China (by any of its names)."""
    request = _request(enumeration_messages(WORLD, [], known=known, count=1))
    china = _item_index(countries, "China")
    answers = (model.enumerate_items(request, random.Random(seed)) for seed in range(calls))
    return sum(_item_index(countries, names[0]) == china for names in answers) / calls


def test_repeat_share_grows_with_the_known_list_length(countries: Universe, countries_model: SimulatedModel) -> None:
    """With the same known mass (China), a longer known list makes the model repeat China more.

    China's share of one-item answers is M with no known list, and M(1-p) / (M(1-p) + 1 - M)
    with China on a list of L entries, p = obey_max / (1 + L / obey_half_list). The filler
    entries are the least populous countries, which weigh nothing.
    """
    params = countries_model.params
    tail = [item.name for item in sorted(countries.items, key=lambda item: item.popularity)]
    unlisted = _china_repeat_share(countries, countries_model, [], 600)
    short = _china_repeat_share(countries, countries_model, ["China", *tail[:4]], 600)
    long = _china_repeat_share(countries, countries_model, ["China", *tail[:149]], 600)

    def expected(list_length: int) -> float:
        kept = unlisted * (1 - params.obey_max / (1 + list_length / params.obey_half_list))
        return kept / (kept + 1 - unlisted)

    assert 0.2 < unlisted < 0.7  # China is the single most likely answer
    assert short == pytest.approx(expected(5), abs=0.035)
    assert long == pytest.approx(expected(150), abs=0.05)
    assert long > 2 * short


def test_known_entries_past_the_context_limit_are_not_seen(countries: Universe) -> None:
    """An entry beyond context_known_limit is repeated as if it were not on the list."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(context_known_limit=10))
    tail = [item.name for item in sorted(countries.items, key=lambda item: item.popularity)]
    unlisted = _china_repeat_share(countries, model, [], 300)
    seen = _china_repeat_share(countries, model, ["China", *tail[:20]], 300)
    unseen = _china_repeat_share(countries, model, [*tail[:20], "China"], 300)
    assert seen < unlisted / 2
    assert unseen == pytest.approx(unlisted, abs=0.08)


def test_known_list_matches_alternate_names(countries: Universe, ideal_countries_model: SimulatedModel) -> None:
    """A known entry written as an alternate name ("People's Republic of China") still counts."""
    china = countries.items[[item.name for item in countries.items].index("China")]
    assert china.alternate_names
    request = _request(enumeration_messages(WORLD, [], known=[china.alternate_names[0]], count=20))
    names = _names(ideal_countries_model, request, 30)
    assert all(_item_index(countries, name) != countries.items.index(china) for name in names)


def test_realistic_model_run_dry_invents_at_the_exhausted_rate(countries: Universe, countries_model: SimulatedModel) -> None:
    """With every item of the part known, about invented_rate_exhausted of the answer is invented."""
    oceania = [item.name for item in countries.items_under(("Oceania",))]
    request = _request(enumeration_messages(WORLD, ["Oceania"], known=oceania, count=20))
    real_forms = _real_forms(countries)
    invented = repeats = 0
    for seed in range(60):
        names = countries_model.enumerate_items(request, random.Random(seed))
        real = [name for name in names if _item_index(countries, name) is not None]
        invented += sum(normal_form(name) not in real_forms for name in names)
        repeats += len(real)
        # Repeats are of different items: a model that runs dry does not loop on one name.
        in_scope = [_item_index(countries, name) for name in real if name in oceania]
        assert len(in_scope) == len(set(in_scope))
    share = invented / (invented + repeats)
    # invented_rate_exhausted 0.25 (+ invented_rate 0.02, + typo variants); ~1,200 items.
    assert 0.18 < share < 0.36


# --- long tail, variants, inventions ------------------------------------------------------------


def test_long_tail_recall(cities: Universe, cities_model: SimulatedModel, ideal_cities_model: SimulatedModel) -> None:
    """The realistic model can never produce part of the tail; the ideal model knows everything."""
    # Head half known, tail known with probability falling from 1 to 0.55: 0.5 + 0.5·0.775.
    assert cities_model.known_share() == pytest.approx(0.8875, abs=0.02)
    assert ideal_cities_model.known_share() == 1.0


def test_alternate_names_appear_at_about_their_rate(countries: Universe) -> None:
    """Items that have another name are written with it at alternate_name_rate; others never."""
    params = SimParams.fault_free().replace(
        stray_rate=0.0, invented_rate=0.0, surface_variant_rate=0.0, alternate_name_rate=0.3
    )
    model = SimulatedModel(countries, params)
    names = _names(model, _request(enumeration_messages(WORLD, [], count=50)), 100)
    with_alternates = without_alternates = alternates = 0
    for name in names:
        item = countries.items[_item_index(countries, name)]  # type: ignore[index]
        if item.alternate_names:
            with_alternates += 1
            alternates += name in item.alternate_names
        else:
            without_alternates += 1
            assert name == item.name  # no alternate to use: the plain name, not a variant
    assert without_alternates > 100
    assert alternates / with_alternates == pytest.approx(0.3, abs=0.04)


def test_realistic_variants_rate(countries: Universe, countries_model: SimulatedModel) -> None:
    """With the realistic params, about 6% of names are alternate names."""
    names = _names(countries_model, _request(enumeration_messages(WORLD, [], count=50)), 100)
    alternates = 0
    eligible = 0
    for name in names:
        index = _item_index(countries, name)
        if index is None or not countries.items[index].alternate_names:
            continue
        eligible += 1
        alternates += name in countries.items[index].alternate_names
    assert alternates / eligible == pytest.approx(0.06, abs=0.02)


def test_surface_variants_are_spellings_of_the_name(cities: Universe) -> None:
    """A surface variant is the main name abbreviated, unaccented, recased or with one typo."""
    model = SimulatedModel(cities, SimParams.ideal().replace(surface_variant_rate=1.0))
    request = _request(enumeration_messages(EUROPE, FRANCE, count=50))
    france = {item.name for item in cities.items_under(FRANCE)}
    france_forms = {normal_form(name) for name in france}
    france_folded = [name.casefold() for name in france]
    names = _names(model, request, 5)
    assert sum(name not in france for name in names) > len(names) * 0.6
    for name in names:
        if name.startswith(("St. ", "Ste. ", "S. ")) or normal_form(name) in france_forms:
            continue  # abbreviated, or only accents and case changed
        closest = process.extractOne(name.casefold(), france_folded, scorer=Levenshtein.distance)
        assert closest is not None and closest[1] == 1, name  # one letter doubled or dropped


def test_invented_names_are_not_in_the_universe(countries: Universe) -> None:
    """Invented names look like names but are none of the universe's names or alternates."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(invented_rate=1.0))
    names = _names(model, _request(enumeration_messages(WORLD, ["Europe"], count=20)), 20)
    assert len(names) >= 20 * 16
    real = _real_forms(countries)
    for name in names:
        assert normal_form(name) not in real, name
        assert len(name) >= 3
    assert len(set(names)) > len(names) * 0.3  # varied, not one name over and over


# --- splitting ----------------------------------------------------------------------------------


@functools.cache
def _group_paths(universe: Universe) -> list[tuple[str, ...]]:
    return sorted({item.path[:depth] for item in universe.items for depth in range(1, len(item.path) + 1)})


def _resolve_label(model: SimulatedModel, parent: Sequence[str], label: str) -> tuple[str, ...]:
    return resolve_scope([*parent, label], _group_paths(model.universe)).prefix


def test_split_of_european_cities_top_level_gives_the_four_subregions(cities_model: SimulatedModel) -> None:
    """The top level divides into the universe's four subregions (label noise aside)."""
    request = _request(split_messages(EUROPE, [], max_parts=8))
    expected = {("Eastern Europe",), ("Northern Europe",), ("Southern Europe",), ("Western Europe",)}
    for seed in range(20):
        labels = cities_model.split_labels(request, random.Random(seed))
        resolved = {_resolve_label(cities_model, [], label) for label in labels}
        assert expected <= resolved
        assert len(labels) <= 5  # now and then one vague extra ("Major ones")


def test_split_of_countries_gives_the_continents(countries_model: SimulatedModel) -> None:
    """The countries universe divides into its seven continents."""
    request = _request(split_messages(WORLD, [], max_parts=8))
    labels = countries_model.split_labels(request, random.Random(0))
    resolved = {_resolve_label(countries_model, [], label) for label in labels}
    assert {("Africa",), ("Antarctica",), ("Asia",), ("Europe",), ("North America",), ("Oceania",),
            ("South America",)} <= resolved  # fmt: skip


def test_split_answer_parses_as_a_list_of_labels(cities_model: SimulatedModel) -> None:
    """The split answer text (JSON or numbered list) parses back to its labels."""
    messages = split_messages(EUROPE, [], max_parts=8)
    for seed in range(10):
        answer = cities_model.respond(messages, random.Random(seed))
        entries = parse_answer(answer.text).entries
        assert 4 <= len(entries) <= 5, answer.text


def test_split_with_more_children_than_allowed_has_an_other_bucket(cities_model: SimulatedModel) -> None:
    """Western Europe's eight countries in at most four parts: three named, and "Other …"."""
    request = _request(split_messages(EUROPE, ["Western Europe"], max_parts=4))
    labels = cities_model.split_labels(request, random.Random(1))
    assert len(labels) == 4
    assert labels[-1] == "Other country groups"
    named = {_resolve_label(cities_model, ["Western Europe"], label) for label in labels[:-1]}
    assert ("Western Europe", "Germany") in named and ("Western Europe", "France") in named


def test_split_at_a_country_gives_disjoint_letter_ranges_covering_it(cities: Universe, cities_model: SimulatedModel) -> None:
    """A leaf divides into at most max_parts disjoint letter ranges covering every initial."""
    request = _request(split_messages(EUROPE, FRANCE, max_parts=6))
    labels = cities_model.split_labels(request, random.Random(0))
    assert 2 <= len(labels) <= 6
    ranges = [letter_range_label(label) for label in labels]
    assert all(letters is not None for letters in ranges)
    covered: set[str] = set()
    for letters in ranges:
        assert not covered & letters  # type: ignore[operator]
        covered |= letters  # type: ignore[arg-type]
    assert {normal_form(item.name)[0] for item in cities.items_under(FRANCE)} <= covered


def test_split_of_a_continent_of_countries_gives_letter_ranges(countries_model: SimulatedModel) -> None:
    """The countries universe has one level: below a continent come letter ranges."""
    labels = countries_model.split_labels(_request(split_messages(WORLD, ["Africa"], max_parts=4)), random.Random(0))
    assert len(labels) == 4 and all(letter_range_label(label) for label in labels)


# --- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "fault"),
    [
        ({"rate_limit_rate": 1.0}, Fault.RATE_LIMIT),
        ({"server_error_rate": 1.0}, Fault.SERVER_ERROR),
        ({"hang_rate": 1.0}, Fault.HANG),
    ],
)
def test_transport_faults_give_no_text(countries: Universe, rates: dict[str, float], fault: Fault) -> None:
    """A 429, a 500 or a hang answers nothing but still counts the prompt's tokens."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(**rates))
    messages = enumeration_messages(WORLD, [], count=10)
    answer = model.respond(messages, random.Random(0))
    assert answer.fault is fault
    assert answer.text == "" and answer.usage.completion_tokens == 0
    assert answer.usage.prompt_tokens > 0


def test_truncated_answer_is_a_prefix_with_finish_reason_length(countries: Universe) -> None:
    """A truncated answer is the start of the answer the model would have given, cut."""
    truncating = SimulatedModel(countries, SimParams.fault_free().replace(truncate_rate=1.0))
    messages = enumeration_messages(WORLD, [], count=20)
    for seed in range(20):
        cut = truncating.respond(messages, random.Random(seed))
        whole = SimulatedModel(countries, SimParams.fault_free()).respond(messages, random.Random(seed))
        assert cut.fault is Fault.TRUNCATED and cut.finish_reason == "length"
        assert whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)
        assert len(parse_answer(cut.text).entries) < len(parse_answer(whole.text).entries)


def test_garbled_answers_parse_into_almost_nothing(countries: Universe) -> None:
    """Garbled text yields at most one (nonsense) entry, and is not a list."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(garble_rate=1.0))
    messages = enumeration_messages(WORLD, [], count=20)
    results = [parse_answer(model.respond(messages, random.Random(seed)).text) for seed in range(100)]
    assert all(len(result.entries) <= 1 for result in results)
    assert sum(result.failed for result in results) > 90


def test_fault_mix_follows_the_rates(countries: Universe) -> None:
    """Each fault kind appears at about its per-call rate."""
    params = SimParams(rate_limit_rate=0.1, server_error_rate=0.1, hang_rate=0.1, truncate_rate=0.1,
                       garble_rate=0.1, time_scale=0.0)  # fmt: skip
    model = SimulatedModel(countries, params)
    messages = enumeration_messages(WORLD, [], count=3)
    faults = Counter(model.respond(messages, random.Random(seed)).fault for seed in range(1000))
    for fault in Fault:
        assert faults[fault] == pytest.approx(500 if fault is Fault.NONE else 100, abs=40), faults


def test_fault_rng_decides_the_fault_and_rng_the_content(countries: Universe) -> None:
    """With fault_rng, the same content rng gives the same text whatever the fault draw."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(rate_limit_rate=0.5))
    messages = enumeration_messages(WORLD, [], count=10)
    answers = [model.respond(messages, random.Random("content"), fault_rng=random.Random(n)) for n in range(12)]
    assert {answer.fault for answer in answers} == {Fault.NONE, Fault.RATE_LIMIT}
    assert len({answer.text for answer in answers if answer.fault is Fault.NONE}) == 1


# --- verification ---------------------------------------------------------------------------

NORWAY = ("Northern Europe", "Norway")
VERIFY_BATCH = 40


def _verify_messages(items: Sequence[str], partition: Sequence[str] = NORWAY) -> tuple[ChatMessage, ...]:
    """The node's real verification prompt."""
    return build_verify_prompt(PromptTemplates(), topic=EUROPE, partition=partition, items=items)


def _verdicts(model: SimulatedModel, names: Sequence[str], *, seed: str) -> list[tuple[str, bool]]:
    """The verdicts on ``names``, asked in batches of VERIFY_BATCH, one seeded call per batch."""
    verdicts: list[tuple[str, bool]] = []
    for start in range(0, len(names), VERIFY_BATCH):
        request = _request(_verify_messages(names[start : start + VERIFY_BATCH]))
        verdicts.extend(model.verify_items(request, random.Random(f"{seed}:{start}")))
    return verdicts


def _assert_binomial(hits: int, trials: int, p: float) -> None:
    """``hits`` of ``trials`` is within 4.5 standard deviations of the rate ``p``."""
    sd = math.sqrt(max(p * (1 - p), 1e-9) / trials)
    assert abs(hits / trials - p) < 4.5 * sd + 1e-9, (hits, trials, p)


def _known_names(cities: Universe, model: SimulatedModel, count: int) -> list[str]:
    known = sorted(model.known_items())
    return [cities.items[index].name for index in random.Random("known").sample(known, count)]


def _unknown_real_names(cities: Universe, model: SimulatedModel, count: int) -> list[str]:
    """Real items the model does not know, and whose names no known item shares (homonyms)."""
    known = model.known_items()
    names = [
        item.name
        for index, item in enumerate(cities.items)
        if index not in known and not set(model.real_indices_of(item.name)) & known
    ]
    return random.Random("unknown").sample(names, min(count, len(names)))


@functools.cache
def _inventions(cities: Universe) -> tuple[str, ...]:
    """Names the realistic model invents (halves of two real names spliced), 2,000 or so."""
    inventing = SimulatedModel(cities, SimParams.fault_free().replace(invented_rate=1.0))
    request = _request(enumeration_messages(EUROPE, [], count=50))
    return tuple(name for seed in range(40) for name in inventing.enumerate_items(request, random.Random(seed)))


def test_verify_confirms_known_items_at_one_minus_the_false_reject_rate(
    cities: Universe, cities_model: SimulatedModel
) -> None:
    """Items the model knows are called real with probability 1 - p_false_reject_known."""
    verdicts = _verdicts(cities_model, _known_names(cities, cities_model, 2000), seed="known")
    _assert_binomial(sum(real for _, real in verdicts), len(verdicts), 1 - cities_model.params.p_false_reject_known)


def test_verify_rejects_real_items_the_model_does_not_know_at_their_rate(
    cities: Universe, cities_model: SimulatedModel
) -> None:
    """Long-tail items outside the model's knowledge are called not real at p_reject_unknown_real."""
    names = _unknown_real_names(cities, cities_model, 2000)
    assert len(names) >= 500  # tail_recall 0.55: the model does not know a good share of the tail
    verdicts = _verdicts(cities_model, names, seed="unknown")
    rejected = sum(not real for _, real in verdicts)
    _assert_binomial(rejected, len(verdicts), cities_model.params.p_reject_unknown_real)


def test_verify_rejects_invented_names_at_their_rate(cities: Universe, cities_model: SimulatedModel) -> None:
    """The model's own inventions are called not real at p_reject_invented; few read as real names."""
    inventions = _inventions(cities)
    unresolved = [name for name in inventions if not cities_model.real_indices_of(name)]
    # A splice one letter off a real name reads as that name (the model would take it so too).
    assert len(unresolved) / len(inventions) > 0.97
    verdicts = _verdicts(cities_model, unresolved, seed="invented")
    rejected = sum(not real for _, real in verdicts)
    _assert_binomial(rejected, len(verdicts), cities_model.params.p_reject_invented)


def test_verify_skips_items_at_the_skip_rate_and_keeps_the_asked_order(
    cities: Universe, cities_model: SimulatedModel
) -> None:
    """Now and then an item is left out; the answered ones keep the order they were asked in."""
    asked = _known_names(cities, cities_model, 4000)
    verdicts = _verdicts(cities_model, asked, seed="skips")
    _assert_binomial(len(asked) - len(verdicts), len(asked), cities_model.params.verify_skip_rate)
    answered = iter(asked)
    assert all(any(item == name for name in answered) for item, _ in verdicts)  # a subsequence


def test_verify_resolves_surface_variants_and_alternate_names(cities: Universe, cities_model: SimulatedModel) -> None:
    """"St." for Saint, lost accents, case, one letter doubled or dropped, alternate names: the real item."""
    index_of = {item.name: index for index, item in enumerate(cities.items)}
    for variant, name in [
        ("St. Petersburg", "Saint Petersburg"),
        ("S. Severo", "San Severo"),
        ("Marseile", "Marseille"),
        ("Marsseille", "Marseille"),
        ("MARSEILLE", "Marseille"),
        ("Tromso", "Tromsø"),
    ]:
        assert index_of[name] in cities_model.real_indices_of(variant), variant
    with_alternates = [(index, item) for index, item in enumerate(cities.items) if item.alternate_names][:200]
    assert all(index in cities_model.real_indices_of(item.alternate_names[0]) for index, item in with_alternates)
    assert cities_model.real_indices_of("Bergenovo") == ()
    assert cities_model.real_indices_of("!!!") == ()


def test_model_recognises_its_own_surface_variants_of_longer_names(cities: Universe) -> None:
    """Every variant the model writes of a name of six letters or more resolves to a real item."""
    writing_variants = SimulatedModel(cities, SimParams.ideal().replace(surface_variant_rate=1.0))
    request = _request(enumeration_messages(EUROPE, [], count=50))
    variants = [name for seed in range(20) for name in writing_variants.enumerate_items(request, random.Random(seed))]
    longer = [name for name in variants if len(normal_form(name)) >= 6]
    assert len(longer) > 500
    assert all(writing_variants.real_indices_of(name) for name in longer)


def test_ideal_verifier_is_never_wrong_and_answers_every_item(
    cities: Universe, ideal_cities_model: SimulatedModel
) -> None:
    """With ideal() params: every real item (any part, any variant) is real, every invention not."""
    real = [item.name for item in random.Random("ideal").sample(cities.items, 300)] + ["St. Petersburg", "Paris"]
    invented = [name for name in _inventions(cities) if not ideal_cities_model.real_indices_of(name)][:300]
    asked = real + invented
    random.Random("shuffle").shuffle(asked)
    truth = {name: name not in invented for name in asked}
    for start in range(0, len(asked), VERIFY_BATCH):
        batch = asked[start : start + VERIFY_BATCH]
        verdicts = ideal_cities_model.verify_items(_request(_verify_messages(batch)), random.Random(start))
        assert verdicts == [(name, truth[name]) for name in batch]


def test_real_items_outside_the_asked_part_are_still_real(ideal_cities_model: SimulatedModel) -> None:
    """Asked about Norway, the ideal verifier still calls Paris and Lyon real: the topic is what is asked."""
    request = _request(_verify_messages(["Paris", "Lyon", "Oslo", "Bergenovo"], NORWAY))
    verdicts = ideal_cities_model.verify_items(request, random.Random(0))
    assert verdicts == [("Paris", True), ("Lyon", True), ("Oslo", True), ("Bergenovo", False)]


def test_every_verify_format_parses_back_to_the_verdicts(ideal_cities_model: SimulatedModel) -> None:
    """JSON, fenced JSON and numbered lines ("1. Oslo — yes") all occur and give the verdicts back."""
    items = ["Oslo", "Bergenovo", "St. Petersburg", "Tromsø", "Osloviko", 'Le "Petit" Quevilly']
    truth = {0: True, 1: False, 2: True, 3: True, 4: False, 5: True}  # Le Petit-Quevilly is real
    formats: Counter[str] = Counter()
    for seed in range(100):
        answer = ideal_cities_model.respond(_verify_messages(items), random.Random(seed))
        assert answer.fault is Fault.NONE and answer.request.kind is TaskKind.VERIFY
        assert parse_verdicts(answer.text, items) == truth, answer.text
        formats["json" if answer.text.startswith("{") else "fenced" if "```json" in answer.text else "lines"] += 1
    assert set(formats) == {"json", "fenced", "lines"}


def test_verify_answers_are_mostly_the_json_asked_for(cities: Universe, cities_model: SimulatedModel) -> None:
    """About 70% of answers are bare JSON; every answer judges nearly every item."""
    items = _known_names(cities, cities_model, VERIFY_BATCH)
    messages = _verify_messages(items)
    json_answers = 0
    judged = 0
    for seed in range(300):
        text = cities_model.respond(messages, random.Random(seed)).text
        try:
            json_answers += isinstance(json.loads(text).get("verdicts"), list)
        except ValueError:
            pass
        judged += len(parse_verdicts(text, items))
    _assert_binomial(json_answers, 300, cities_model.params.verify_format_weights[0])
    assert judged / (300 * len(items)) > 0.95  # skip rate 0.02


def test_verify_is_deterministic_per_seed(cities: Universe, cities_model: SimulatedModel) -> None:
    """The same seed gives the same answer; different seeds give different ones."""
    messages = _verify_messages(_known_names(cities, cities_model, 30) + list(_inventions(cities)[:10]))
    assert cities_model.respond(messages, random.Random("a")) == cities_model.respond(messages, random.Random("a"))
    assert len({cities_model.respond(messages, random.Random(f"s{n}")).text for n in range(8)}) == 8


def test_verify_usage_counts_prompt_and_answer_tokens(cities_model: SimulatedModel) -> None:
    """Tokens as for other calls: prompt characters / 4 and answer characters / 4."""
    messages = _verify_messages(["Oslo", "Bergen", "Bergenovo"])
    answer = cities_model.respond(messages, random.Random(3))
    assert answer.usage.prompt_tokens == sum(len(message.content) for message in messages) // 4
    assert answer.usage.completion_tokens == max(1, len(answer.text) // 4)


def test_verify_of_no_items_answers_an_empty_verdict_list(cities_model: SimulatedModel) -> None:
    """A verification prompt whose list is empty gets the empty JSON answer."""
    messages = [ChatMessage("user", "Topic: cities of Europe\nCheck each item below: is it a real city?\nItems (0): []")]
    answer = cities_model.respond(messages, random.Random(0))
    assert answer.request.kind is TaskKind.VERIFY
    assert json.loads(answer.text) == {"verdicts": []}


@pytest.mark.parametrize(
    ("rates", "fault"),
    [({"rate_limit_rate": 1.0}, Fault.RATE_LIMIT), ({"server_error_rate": 1.0}, Fault.SERVER_ERROR),
     ({"hang_rate": 1.0}, Fault.HANG)],
)  # fmt: skip
def test_transport_faults_apply_to_verification(countries: Universe, rates: dict[str, float], fault: Fault) -> None:
    """A verification call fails like any other: no text, the prompt's tokens counted."""
    model = SimulatedModel(countries, SimParams.fault_free().replace(**rates))
    answer = model.respond(_verify_messages(["Norway", "Norvania"]), random.Random(0))
    assert answer.fault is fault and answer.text == "" and answer.usage.prompt_tokens > 0


def test_truncated_and_garbled_verification_answers(countries: Universe, countries_model: SimulatedModel) -> None:
    """A truncated answer is a cut prefix ("length"); a garbled one judges (almost) nothing."""
    items = [item.name for item in countries.items[:20]]
    messages = _verify_messages(items)
    truncating = SimulatedModel(countries, SimParams.fault_free().replace(truncate_rate=1.0))
    garbling = SimulatedModel(countries, SimParams.fault_free().replace(garble_rate=1.0))
    for seed in range(20):
        cut = truncating.respond(messages, random.Random(seed))
        whole = countries_model.respond(messages, random.Random(seed))
        assert cut.fault is Fault.TRUNCATED and cut.finish_reason == "length"
        assert whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)
        assert len(parse_verdicts(garbling.respond(messages, random.Random(seed)).text, items)) <= 1


@pytest.mark.parametrize(
    "change",
    [
        {"p_false_reject_known": -0.1},
        {"p_reject_unknown_real": 1.5},
        {"p_reject_invented": 2.0},
        {"verify_skip_rate": -0.01},
        {"verify_format_weights": (0.0, 0.0, 0.0)},
        {"verify_format_weights": (1.0, 1.0)},
    ],
)
def test_verifier_parameters_are_validated(change: dict[str, object]) -> None:
    """Verifier rates outside [0, 1] and malformed format weights are refused."""
    with pytest.raises(ConfigError):
        SimParams().replace(**change)
