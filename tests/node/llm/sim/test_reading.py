"""Tests for node.llm.sim.reading: the simulated model reads the node's prompts back exactly."""

from __future__ import annotations

import time

import pytest

from node.llm.base import ChatMessage
from node.llm.sim.reading import DEFAULT_COUNT, DEFAULT_MAX_PARTS, MAX_COUNT, TaskKind, read_request
from tests.node.llm.sim.conftest import enumeration_messages, split_messages


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


def test_default_enumeration_prompt_is_read_back_exactly() -> None:
    """Topic, part labels, every known entry (accents, quotes, commas), count and kind."""
    known = ["Paris", "Saint-Étienne", 'Le "Petit" Quevilly', "Aix-en-Provence, la ville", "Zürich"]
    messages = enumeration_messages("cities of Europe", ["Western Europe", "France"], known=known, count=25)

    request = read_request(messages)

    assert request.kind is TaskKind.ENUMERATE
    assert request.topic == "cities of Europe"
    assert request.part == ("Western Europe", "France")
    assert request.known == tuple(known)
    assert request.count == 25
    assert request.prompt_chars == sum(len(message.content) for message in messages)


def test_default_enumeration_prompt_of_whole_topic_has_no_part_and_no_known() -> None:
    """"(the whole topic)" is no partition, and an empty known list is no known entries."""
    request = read_request(enumeration_messages("countries of the world", [], count=7))
    assert request.part == ()
    assert request.known == ()
    assert request.count == 7
    assert request.kind is TaskKind.ENUMERATE


def test_default_split_prompt_is_read_back_exactly() -> None:
    """A split prompt is a split, with its part and its "at most N" bound."""
    request = read_request(split_messages("cities of Europe", ["Western Europe", "Germany"], max_parts=5))
    assert request.kind is TaskKind.SPLIT
    assert request.topic == "cities of Europe"
    assert request.part == ("Western Europe", "Germany")
    assert request.max_parts == 5
    assert request.known == ()


def test_known_entry_named_split_does_not_turn_enumeration_into_split() -> None:
    """The Croatian city "Split" on the known list is data, not the instruction "split"."""
    messages = enumeration_messages(
        "cities of Europe", ["Southern Europe", "Croatia"], known=["Zagreb", "Split", "Divide"]
    )
    request = read_request(messages)
    assert request.kind is TaskKind.ENUMERATE
    assert request.known == ("Zagreb", "Split", "Divide")


def test_topic_or_part_naming_a_split_does_not_turn_enumeration_into_split() -> None:
    """Cue words inside the Topic: and Part: lines are not instructions either."""
    request = read_request(enumeration_messages("banana splits", ["Split", "Subcategories"], count=4))
    assert request.kind is TaskKind.ENUMERATE
    assert request.part == ("Split", "Subcategories")
    assert request.count == 4


def test_count_in_known_entries_is_not_the_asked_count() -> None:
    """"List 99" inside a known entry does not change how many items are asked for."""
    request = read_request(enumeration_messages("songs", [], known=["List 99 Problems"], count=12))
    assert request.count == 12


def test_bulleted_known_list_is_read() -> None:
    """A prompt that lists known entries as bullets after the cue gives them as known."""
    text = "Topic: cities of Europe\nPart: France\nList 10 more. Already known:\n- Paris\n* Lyon\n• Nice\n"
    request = read_request(_user(text))
    assert request.known == ("Paris", "Lyon", "Nice")
    assert request.count == 10
    assert request.part == ("France",)


@pytest.mark.parametrize(
    ("part_line", "labels"),
    [
        ("Part: Western Europe › France", ("Western Europe", "France")),
        ("Part: Western Europe / France / A–F", ("Western Europe", "France", "A–F")),
        ("Partition:   Western Europe :: France  ", ("Western Europe", "France")),
        ("part: The whole topic", ()),
        ("Part:   ", ()),
    ],
)
def test_part_separators_and_whole_topic(part_line: str, labels: tuple[str, ...]) -> None:
    """Several path separators are understood; "the whole topic" and a blank part are no part."""
    assert read_request(_user(f"Topic: t\n{part_line}\nList 3")).part == labels


@pytest.mark.parametrize(
    "text",
    ["", "hello", "Tell me something.", "\n\n\n", "Topic:\n"],
)
def test_odd_prompt_falls_back_to_defaults(text: str) -> None:
    """A prompt without the expected cues is an enumeration of the whole topic, 20 items."""
    request = read_request(_user(text))
    assert request.kind is TaskKind.ENUMERATE
    assert request.part == ()
    assert request.known == ()
    assert request.count == DEFAULT_COUNT
    assert request.max_parts == DEFAULT_MAX_PARTS


def test_topic_falls_back_to_first_line_without_topic_cue() -> None:
    """Without "Topic:", the first line is what the prompt is about."""
    assert read_request(_user("Name 5 rivers of Africa\nplease")).topic == "Name 5 rivers of Africa"


def test_no_user_message_reads_as_empty_enumeration_but_counts_prompt_size() -> None:
    """System messages only add to the prompt size."""
    request = read_request([ChatMessage("system", "Topic: ignored\nList 3")])
    assert request.topic == ""
    assert request.count == DEFAULT_COUNT
    assert request.prompt_chars == len("Topic: ignored\nList 3")


def test_last_user_message_is_the_one_read() -> None:
    """In a conversation, the model answers the latest user turn."""
    messages = [
        ChatMessage("user", "Topic: first\nList 3"),
        ChatMessage("assistant", '{"entries": []}'),
        ChatMessage("user", "Topic: second\nList 4"),
    ]
    request = read_request(messages)
    assert (request.topic, request.count) == ("second", 4)


def test_counts_are_clamped() -> None:
    """Absurd counts are bounded: at least 1 item, at most MAX_COUNT, at least 2 parts."""
    assert read_request(_user("List 0 things")).count == 1
    assert read_request(_user("List 9999 things")).count == MAX_COUNT
    assert read_request(_user("Divide into at most 1 sub-categories")).max_parts == 2


def test_known_list_keeps_strings_and_numbers_only() -> None:
    """Non-scalar JSON items of the known list are skipped, numbers become text."""
    request = read_request(_user('Topic: x\nDo not repeat these: [1, "a", null, ["b"], {"c": 1}]'))
    assert request.known == ("1", "a")


@pytest.mark.parametrize(
    "text",
    [
        "\n" * 200_000,
        " \n" * 200_000,
        "known " + "[" * 500_000,
        "known " + "[" * 900 + "1," * 200_000,
        "Part: a" + " " * 500_000 + "b",
        "known:\n" + "-    " * 200_000,
    ],
    ids=["newlines", "blank-lines", "deep-brackets", "nested-long", "spaces-in-part", "bullets"],
)
def test_garbage_prompts_are_read_in_linear_time(text: str) -> None:
    """Pathological prompts neither raise nor take long (the server reads them on its loop)."""
    started = time.perf_counter()
    request = read_request(_user(text))
    assert time.perf_counter() - started < 1.0
    assert request.kind is TaskKind.ENUMERATE
