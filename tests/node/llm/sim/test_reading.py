"""Tests for node.llm.sim.reading: the simulated model reads the node's prompts back exactly."""

from __future__ import annotations

import time

import pytest

from node.llm.base import ChatMessage
from node.llm.sim.reading import (
    DEFAULT_COUNT,
    DEFAULT_MAX_PARTS,
    MAX_COUNT,
    MAX_VERIFY_ITEMS,
    TaskKind,
    read_request,
)
from node.prompts import PromptTemplates, build_verify_prompt
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


# --- verification prompts --------------------------------------------------------------------


def _verify_messages(topic: str, partition: list[str], items: list[str]) -> tuple[ChatMessage, ...]:
    """The node's real verification prompt."""
    return build_verify_prompt(PromptTemplates(), topic=topic, partition=partition, items=items)


def test_default_verify_prompt_is_read_back_exactly() -> None:
    """A verification prompt is VERIFY with its topic, part and every item (accents, quotes, commas)."""
    items = ["Oslo", "Bergenovo", "Tromsø", 'Le "Petit" Quevilly', "Aix-en-Provence, la ville"]
    messages = _verify_messages("cities of Europe", ["Northern Europe", "Norway"], items)

    request = read_request(messages)

    assert request.kind is TaskKind.VERIFY
    assert request.topic == "cities of Europe"
    assert request.part == ("Northern Europe", "Norway")
    assert request.items == tuple(items)
    assert request.count == len(items)
    assert request.known == ()
    assert request.prompt_chars == sum(len(message.content) for message in messages)


def test_items_that_look_like_cues_stay_items_of_a_verification() -> None:
    """Items named "Split", "Known Town" or "List 5 Cities" are data: still VERIFY, no known list."""
    items = ["Split", "Known Town", "Already", "List 5 Cities", "Divide"]
    request = read_request(_verify_messages("cities of Europe", [], items))
    assert request.kind is TaskKind.VERIFY
    assert request.items == tuple(items)
    assert request.known == ()


@pytest.mark.parametrize(
    "known",
    [
        ["Verify", "Check each item below: is it a real, existing item?"],
        ["Verification Point", "Fact-check Island", "Is it a real city"],
    ],
)
def test_enumeration_whose_known_entries_say_verify_is_still_an_enumeration(known: list[str]) -> None:
    """Verification cue words inside the known list are data, not the instruction."""
    request = read_request(enumeration_messages("cities of Europe", ["France"], known=known, count=9))
    assert request.kind is TaskKind.ENUMERATE
    assert request.known == tuple(known)
    assert request.count == 9
    assert request.items == ()


def test_enumeration_whose_topic_or_part_says_verify_is_still_an_enumeration() -> None:
    """Cue words in the Topic: and Part: lines do not make an enumeration a verification."""
    request = read_request(
        enumeration_messages("tools to verify and fact-check claims", ["Check each item", "Is it a real one"], count=6)
    )
    assert request.kind is TaskKind.ENUMERATE
    assert request.part == ("Check each item", "Is it a real one")
    assert request.count == 6


def test_split_whose_topic_says_verify_is_still_a_split() -> None:
    """A split prompt about a "verification" topic is a split."""
    request = read_request(split_messages("verification tools: check each item", ["Is it a real one"], max_parts=4))
    assert request.kind is TaskKind.SPLIT
    assert request.max_parts == 4
    assert request.items == ()


def test_enumeration_instruction_that_mentions_checking_is_still_an_enumeration() -> None:
    """"List 10 more … verify each is real" asks for a list: the count cue makes it an enumeration."""
    text = 'Topic: rivers\nList 10 more rivers; verify each one is real first.\nKnown items: ["Nile"]'
    request = read_request(_user(text))
    assert request.kind is TaskKind.ENUMERATE
    assert request.known == ("Nile",)
    assert request.count == 10


@pytest.mark.parametrize(
    "listing",
    ["- Oslo\n- Bergenovo\n\n* Tromsø\n", "1. Oslo\n2) Bergenovo\n3. Tromsø\n", "\n\n• Oslo\n• Bergenovo\n• Tromsø"],
    ids=["bullets", "numbered", "blank-lines-first"],
)
def test_bulleted_or_numbered_items_are_read(listing: str) -> None:
    """Without a JSON array, the bulleted or numbered lines after "Items:" are the items."""
    text = f"Topic: cities\nCheck each item below: is it a real city?\nItems:\n{listing}\nAnswer yes or no for each."
    request = read_request(_user(text))
    assert request.kind is TaskKind.VERIFY
    assert request.items == ("Oslo", "Bergenovo", "Tromsø")


def test_items_without_an_items_line_are_the_list_after_the_cue() -> None:
    """"Verify these: [...]" gives the array after the cue as the items."""
    request = read_request(_user('Topic: cities of Europe\nVerify that these exist: ["Oslo", "Bergenovo"]'))
    assert request.kind is TaskKind.VERIFY
    assert request.items == ("Oslo", "Bergenovo")


def test_verify_items_are_bounded() -> None:
    """At most MAX_VERIFY_ITEMS items are read, as JSON or as lines; the rest are ignored."""
    many = [f"Town {number}" for number in range(MAX_VERIFY_ITEMS + 50)]
    assert read_request(_verify_messages("towns", [], many)).items == tuple(many[:MAX_VERIFY_ITEMS])
    lines = "\n".join(f"- {name}" for name in many)
    request = read_request(_user(f"Topic: towns\nCheck each item: is it a real town?\nItems:\n{lines}\n"))
    assert request.items == tuple(many[:MAX_VERIFY_ITEMS])


def test_verify_items_keep_strings_and_numbers_only() -> None:
    """Non-scalar JSON items are skipped, numbers become text."""
    request = read_request(_user('Topic: x\nCheck each item: is it real?\nItems: [1, "a", null, ["b"], {"c": 1}]'))
    assert request.kind is TaskKind.VERIFY
    assert request.items == ("1", "a")


@pytest.mark.parametrize(
    "text",
    [
        "Check each item: is it a real one?\nItems: " + "[" * 500_000,
        "Check each item: is it a real one?\nItems:\n" + "-    " * 200_000,
        "Check each item: is it a real one?\nItems:\n" + "- a\n" * 200_000,
        "Verify " + "\n" * 200_000,
        "Items:" + " " * 500_000 + "x",
    ],
    ids=["deep-brackets", "bullet-run", "many-lines", "newlines", "spaces"],
)
def test_garbage_verify_prompts_are_read_in_linear_time(text: str) -> None:
    """Pathological verification prompts neither raise nor take long."""
    started = time.perf_counter()
    request = read_request(_user(text))
    assert time.perf_counter() - started < 1.0
    assert len(request.items) <= MAX_VERIFY_ITEMS
