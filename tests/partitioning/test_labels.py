"""Tests for partitioning.labels: split answers cleaned into child labels, and letter ranges."""

from __future__ import annotations

import itertools
import json
from string import ascii_lowercase

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.normalize import normal_form
from partitioning.labels import (
    MAX_LABEL_CHARS,
    DropReason,
    SplitLabels,
    clean_split_labels,
    initial_of,
    label_admits,
    letter_ranges,
    letter_set,
)


def _json_answer(*labels: str) -> str:
    return json.dumps({"categories": list(labels)}, ensure_ascii=False)


def _reasons(result: SplitLabels) -> dict[str, DropReason]:
    return dict(result.dropped)


# --- realistic answers ----------------------------------------------------------------------

NOISY_ANSWERS = [
    pytest.param(
        '{"categories": ["Northern Europe", "Southern Europe", "Eastern Europe"]}',
        ("Northern Europe", "Southern Europe", "Eastern Europe"),
        id="json",
    ),
    pytest.param(
        'Sure! Here is a split:\n```json\n{\n  "categories": ["France (country)", "**Belgium**",'
        ' "\'Spain\'", "Italy."]\n}\n```\nLet me know if you need more.',
        ("France", "Belgium", "Spain", "Italy"),
        id="fenced-json-with-qualifiers-and-markup",
    ),
    pytest.param(
        "Here is one way to divide it:\n\n1. France – the west\n2. Germany: the centre\n"
        "3. Poland (east)\n4. **Benelux** – the small ones\n",
        ("France", "Germany", "Poland", "Benelux"),
        id="numbered-list-with-descriptions",
    ),
    pytest.param(
        "- Northern Europe\n- Southern Europe\n* Eastern Europe\n",
        ("Northern Europe", "Southern Europe", "Eastern Europe"),
        id="bullets",
    ),
    pytest.param(
        "Northern Europe\nSouthern Europe\nEastern Europe\nWestern Europe\n",
        ("Northern Europe", "Southern Europe", "Eastern Europe", "Western Europe"),
        id="bare-lines",
    ),
    pytest.param(
        "The sub-categories are Northern Europe, Southern Europe, and Eastern Europe.",
        ("Northern Europe", "Southern Europe", "Eastern Europe"),
        id="prose-enumeration",
    ),
    pytest.param(
        # The simulated LLM's own noise: qualifiers, "The", shouting, a named remainder.
        _json_answer("Northern Europe (subregion)", "The Western Europe", "UK",
                     "Other Southern Europe groups"),  # fmt: skip
        ("Northern Europe", "The Western Europe", "UK", "Other Southern Europe groups"),
        id="sim-style-json",
    ),
]


@pytest.mark.parametrize(("answer", "labels"), NOISY_ANSWERS)
def test_noisy_answers_give_clean_labels(answer: str, labels: tuple[str, ...]) -> None:
    """Every answer format the models use gives the labels a reader would pick out."""
    result = clean_split_labels(answer, max_parts=8)
    assert result.labels == labels
    assert result.usable


def test_prose_opening_as_commentary_yields_nothing() -> None:
    """ "You could divide it into Northern, Southern and Eastern Europe." reads as the model's
    commentary to the parser (and its "Northern" alone would be no label): unusable."""
    result = clean_split_labels(
        "You could divide it into Northern, Southern and Eastern Europe.", max_parts=4
    )
    assert result == SplitLabels((), ())
    assert not result.usable


@pytest.mark.parametrize(
    ("item", "label"),
    [
        ("France (country)", "France"),
        ("Provence (region).", "Provence"),
        ("**Belgium**", "Belgium"),
        ("'Spain'", "Spain"),
        ("“Portugal”", "Portugal"),
        ("Italy.", "Italy"),
        ("Bosnia/Herzegovina", "Bosnia-Herzegovina"),
        ("Coast > Inland", "Coast-Inland"),
        ("North » South", "North-South"),
        ("NORTHERN EUROPE", "Northern Europe"),
        ("BOSNIA AND HERZEGOVINA", "Bosnia and Herzegovina"),
        ("SAINT-ÉTIENNE AREA", "Saint-Étienne Area"),
        ("UK", "UK"),
        ("The Netherlands", "The Netherlands"),  # the model's article stays; dedup ignores it
        ("Cities (A–F)", "Cities (A–F)"),  # a parenthetical letter range is the label's point
        ("Guinea-Bissau", "Guinea-Bissau"),
    ],
)
def test_label_cleaning(item: str, label: str) -> None:
    """Quotes, markup, qualifiers and separators go; the name and a letter range stay."""
    result = clean_split_labels(_json_answer(item, "Filler"), max_parts=4)
    assert result.labels == (label, "Filler")


# --- each drop reason -----------------------------------------------------------------------


def test_label_without_letters_is_dropped() -> None:
    """A label that is only digits once its qualifier is gone names nothing."""
    result = clean_split_labels(_json_answer("123 (numbers)", "North", "South"), max_parts=4)
    assert result.labels == ("North", "South")
    assert result.dropped == (("123 (numbers)", DropReason.NO_LETTERS),)


def test_over_long_label_is_dropped_not_truncated() -> None:
    """A label longer than MAX_LABEL_CHARS is a description; it is dropped whole."""
    long_label = "Cities and towns of the northern coastal provinces including their many suburbs"
    longer = long_label + " too"
    assert len(long_label) <= MAX_LABEL_CHARS < len(longer)
    result = clean_split_labels(_json_answer(long_label, longer, "South"), max_parts=4)
    assert result.labels == (long_label, "South")
    assert result.dropped == ((longer, DropReason.TOO_LONG),)


@pytest.mark.parametrize(
    "vague",
    ["Other", "Others", "Misc.", "Miscellaneous", "Various", "Major ones", "Smaller ones",
     "Minor ones", "The rest", "Rest", "Everything else", "All others", "Other categories",
     "Others/Misc", "OTHER"],
)  # fmt: skip
def test_vague_buckets_are_dropped(vague: str) -> None:
    """A bucket made only of generic words overlaps its siblings: dropped."""
    result = clean_split_labels(_json_answer("France", vague, "Spain"), max_parts=4)
    assert result.labels == ("France", "Spain")
    assert [reason for _, reason in result.dropped] == [DropReason.VAGUE]


@pytest.mark.parametrize(
    "remainder",
    ["Other countries", "Other Southern Europe groups", "Major cities", "Smaller towns"],
)
def test_buckets_naming_what_they_hold_are_kept(remainder: str) -> None:
    """A remainder that names its items covers what the model did not list: kept."""
    result = clean_split_labels(_json_answer("France", "Spain", remainder), max_parts=4)
    assert result.labels == ("France", "Spain", remainder)
    assert result.dropped == ()


@pytest.mark.parametrize(
    "parent_echo", ["France", "FRANCE", "France (country)", "Western Europe > France", "Europe"]
)
def test_label_naming_the_parent_is_dropped(parent_echo: str) -> None:
    """A child named like its parent, its whole path or an ancestor is no sub-category."""
    result = clean_split_labels(
        _json_answer(parent_echo, "Paris region", "Provence"),
        max_parts=4,
        parent_labels=["Europe", "Western Europe", "France"],
    )
    assert result.labels == ("Paris region", "Provence")
    assert result.dropped == ((parent_echo, DropReason.PARENT),)


def test_duplicates_by_normal_form_keep_the_first() -> None:
    """"The Netherlands", "Netherlands", "NETHERLANDS" and "Netherlands (country)" are one."""
    answer = _json_answer("The Netherlands", "Belgium", "Netherlands", "NETHERLANDS",
                          "Netherlands (country)", "belgium")  # fmt: skip
    result = clean_split_labels(answer, max_parts=4)
    assert result.labels == ("The Netherlands", "Belgium")
    assert result.dropped == (
        ("Netherlands", DropReason.DUPLICATE),
        ("NETHERLANDS", DropReason.DUPLICATE),
        ("Netherlands (country)", DropReason.DUPLICATE),
        ("belgium", DropReason.DUPLICATE),
    )


def test_max_parts_keeps_the_first_clean_labels() -> None:
    """Only the first max_parts labels are kept; dropped ones do not use a slot."""
    answer = _json_answer("Other", "North", "South", "North", "East", "West", "Centre")
    result = clean_split_labels(answer, max_parts=3)
    assert result.labels == ("North", "South", "East")
    assert result.dropped == (
        ("Other", DropReason.VAGUE),
        ("North", DropReason.DUPLICATE),
        ("West", DropReason.OVER_LIMIT),
        ("Centre", DropReason.OVER_LIMIT),
    )


def test_huge_answer_is_bounded_by_max_parts() -> None:
    """A 500-label answer gives max_parts labels, quickly."""
    pairs = ("".join(pair) for pair in itertools.product(ascii_lowercase, repeat=2))
    answer = _json_answer(*(f"Region {pair}" for pair in itertools.islice(pairs, 500)))
    result = clean_split_labels(answer, max_parts=5)
    assert len(result.labels) == 5
    assert len(result.dropped) == 495


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("I'm sorry, but I can't help with that request.", id="refusal"),
        pytest.param("As an AI language model, I don't have access to a complete list.", id="ai"),
        pytest.param("]]]]}}}}:::: ,,,, ---", id="symbols"),
        pytest.param('\x00\x07{"entr', id="cut-off"),
        pytest.param("ʬʭ˂˃ƀƁ#$%ÿĀāĂ&'()*+,-./0123ƾƿǀǁǂ", id="random-chars"),
        pytest.param('{"categories": ["Europe"]}', id="one-label"),
        pytest.param('{"categories": []}', id="empty-list"),
        pytest.param("", id="empty"),
        pytest.param('{"categories": ["Major ones", "Smaller ones", "Other"]}', id="all-vague"),
        pytest.param('{"categories": ["France", "France (country)"]}', id="one-after-dedup"),
    ],
)
def test_unusable_answers(answer: str) -> None:
    """Refusals, garbage, an empty list and a single label are no split."""
    assert not clean_split_labels(answer, max_parts=4).usable


def test_max_parts_below_two_is_refused() -> None:
    """A split into fewer than two parts is a caller's bug."""
    with pytest.raises(ValueError, match="max_parts"):
        clean_split_labels(_json_answer("A", "B"), max_parts=1)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.text(max_size=120), max_size=12), max_parts=st.integers(2, 6))
def test_any_answer_gives_safe_labels(items: list[str], max_parts: int) -> None:
    """Any answer gives labels with letters, short, distinct, bounded and separator-free."""
    result = clean_split_labels(_json_answer(*items), max_parts=max_parts, parent_labels=["Europe"])
    assert len(result.labels) <= max_parts
    forms = [normal_form(label) for label in result.labels]
    assert len(set(forms)) == len(forms)
    assert "europe" not in forms
    for label in result.labels:
        assert ">" not in label and "/" not in label
        assert any(char.isalpha() for char in label)
        assert len(label) <= MAX_LABEL_CHARS


# --- letter ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "letters"),
    [
        ("A–F", "abcdef#"),  # "#" (digits, non-Latin) files under the range holding "a"
        ("A-F", "abcdef#"),
        ("A to F", "abcdef#"),
        ("Cities A–F", "abcdef#"),
        ("M–P", "mnop"),
        ("m - p", "mnop"),
        ("P–M", "mnop"),
        ("(X..Z)", "xyz"),
        ("Cities: G through K", "ghijk"),
        ("starting with K", "k"),
        ("Cities beginning with the letter k", "k"),
        ("K", "k"),
        ("Letter Q", "q"),
        ("A", "a#"),
        ("Cities (A–F)", "abcdef#"),
    ],
)
def test_letter_set_reads_range_labels(label: str, letters: str) -> None:
    """Ranges, "starting with" and lone letters name their initials."""
    assert letter_set(label) == frozenset(letters)


@pytest.mark.parametrize(
    "label",
    ["France", "Baden-Württemberg", "Guinea-Bissau", "Western Europe", "Top 10", "U-Boats",
     "X-Men", "Type A", "Other countries", "", "#"],
)  # fmt: skip
def test_semantic_labels_are_not_letter_ranges(label: str) -> None:
    """Hyphenated names, single letters inside names and plain words are no letter range."""
    assert letter_set(label) is None


@pytest.mark.parametrize(
    ("name", "initial"),
    [("Évry", "e"), ("Łódź", "l"), ("The Hague", "h"), ("42nd Street", "#"),
     ("Москва", "#"), ("", "#")],
)  # fmt: skip
def test_initial_of_a_normal_form(name: str, initial: str) -> None:
    """Accents fold to their letter; digits, other scripts and nothing file under "#"."""
    assert initial_of(normal_form(name)) == initial


@pytest.mark.parametrize(
    ("label", "name", "admits"),
    [
        ("A–F", "Évry", True),
        ("A–F", "Paris", False),
        ("A–F", "42nd Street", True),
        ("G–M", "42nd Street", False),
        ("starting with P", "Paris", True),
        ("France", "Paris", None),
        ("Other countries", "Paris", None),
    ],
)
def test_label_admits(label: str, name: str, admits: bool | None) -> None:
    """A letter range says yes or no; a semantic label cannot tell."""
    assert label_admits(label, normal_form(name)) is admits


def test_letter_ranges_without_counts_split_the_alphabet_evenly() -> None:
    """With no known entries, ranges are balanced by width."""
    assert letter_ranges({}, 2) == ["A–M", "N–Z"]
    assert letter_ranges({}, 26) == [f"Starting with {letter.upper()}" for letter in ascii_lowercase]
    assert letter_ranges({}, 40) == [f"Starting with {letter.upper()}" for letter in ascii_lowercase]


def test_letter_ranges_follow_the_counts() -> None:
    """Heavy initials get ranges of their own as parts allow; light letters share one."""
    counts = {letter: 1 for letter in ascii_lowercase} | {"b": 50, "s": 50}
    assert letter_ranges(counts, 5) == ["Starting with A", "Starting with B", "C–R", "Starting with S", "T–Z"]
    assert letter_ranges(counts, 4) == ["A–B", "C–R", "Starting with S", "T–Z"]
    assert letter_ranges(counts, 2) == ["A–M", "N–Z"]


def test_non_latin_initials_weigh_on_the_range_holding_a() -> None:
    """The "#" count weighs on "a", pulling the first cut forward."""
    within = frozenset("abcdef")
    counts = {"c": 10, "d": 10, "e": 10}
    assert letter_ranges(counts, 2, within=within) == ["A–C", "D–F"]
    assert letter_ranges({**counts, "#": 30}, 2, within=within) == ["A–B", "C–F"]


def test_letter_ranges_within_a_parent_range() -> None:
    """Nested ranges stay inside the parent's letters; "#" from letter_set is accepted."""
    assert letter_ranges({}, 3, within=letter_set("M–R")) == ["M–N", "O–P", "Q–R"]
    assert letter_ranges({}, 5, within=letter_set("K–L")) == ["Starting with K", "Starting with L"]
    assert letter_ranges({}, 4, within=letter_set("A–F")) == ["Starting with A", "Starting with B", "C–D", "E–F"]


@pytest.mark.parametrize("parent", ["K", "starting with K", "A"])
def test_one_letter_parent_cannot_split(parent: str) -> None:
    """A partition of one initial has nothing to cut: no ranges."""
    assert letter_ranges({"k": 100, "a": 100, "#": 9}, 4, within=letter_set(parent)) == []
    assert letter_ranges({}, 4, within=frozenset()) == []


def test_letter_ranges_refuse_bad_input() -> None:
    """Fewer than two parts, non-letters in within or negative counts are caller bugs."""
    with pytest.raises(ValueError, match="parts"):
        letter_ranges({}, 1)
    with pytest.raises(ValueError, match="within"):
        letter_ranges({}, 2, within=frozenset({"a", "é"}))
    with pytest.raises(ValueError, match="counts"):
        letter_ranges({"a": -1}, 2)


def test_fallback_ranges_survive_cleaning() -> None:
    """Letter ranges given back as a split answer come through clean_split_labels unchanged."""
    ranges = letter_ranges({"b": 3, "p": 7}, 5)
    result = clean_split_labels(_json_answer(*ranges), max_parts=5, parent_labels=["France"])
    assert result.labels == tuple(ranges)


_counts = st.dictionaries(st.sampled_from([*ascii_lowercase, "#"]), st.integers(0, 200))
_contiguous = st.tuples(st.integers(0, 25), st.integers(0, 25)).map(
    lambda bounds: frozenset(ascii_lowercase[min(bounds) : max(bounds) + 1])
)
_within = st.none() | _contiguous | st.frozensets(st.sampled_from(ascii_lowercase))


@settings(max_examples=300, deadline=None)
@given(counts=_counts, parts=st.integers(2, 30), within=_within)
def test_letter_ranges_cover_every_letter_once_in_order(
    counts: dict[str, int], parts: int, within: frozenset[str] | None
) -> None:
    """Each available letter is in one range; ranges are contiguous, ordered and read back."""
    available = sorted(within if within is not None else ascii_lowercase)
    ranges = letter_ranges(counts, parts, within=within)
    if len(available) < 2:
        assert ranges == []
        return
    assert 2 <= len(ranges) <= parts
    gapless = within is None or within == _contiguous_of(within)
    groups = []
    for label in ranges:
        letters = letter_set(label)
        assert letters is not None
        assert ("#" in letters) == ("a" in letters)
        groups.append(sorted(letters & set(available)))
        if gapless:
            assert letters - {"#"} == set(groups[-1])  # exact round trip without gaps
    assert [letter for group in groups for letter in group] == available
    assert all(groups)


def _contiguous_of(letters: frozenset[str]) -> frozenset[str]:
    ordered = sorted(letters)
    return frozenset(ascii_lowercase[ord(ordered[0]) - 97 : ord(ordered[-1]) - 96])


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 50), min_size=2, max_size=8),
    parts=st.integers(2, 8),
)
def test_letter_ranges_minimise_the_heaviest_range(counts: list[int], parts: int) -> None:
    """The heaviest range is as light as any cut into that many ranges can make it."""
    letters = ascii_lowercase[: len(counts)]
    weight = dict(zip(letters, counts, strict=True))
    ranges = letter_ranges(weight, parts, within=frozenset(letters))
    heaviest = max(sum(weight[letter] for letter in letter_set(label) or ()
                       if letter != "#") for label in ranges)  # fmt: skip
    runs = min(parts, len(counts))
    best = min(
        max(sum(counts[start:end]) for start, end in itertools.pairwise((0, *cuts, len(counts))))
        for cuts in itertools.combinations(range(1, len(counts)), runs - 1)
    )
    assert len(ranges) == runs
    assert heaviest == best
