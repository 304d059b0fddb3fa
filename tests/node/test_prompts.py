"""Tests for node.prompts: rendering, the known-entry budget, template validation."""

from __future__ import annotations

import json
import re

import pytest

from node.errors import ConfigError
from node.prompts import (
    PromptTemplates,
    build_enumeration_prompt,
    build_split_prompt,
    estimate_tokens,
)


def _known_list(text: str) -> list[str]:
    match = re.search(r"do not repeat them\): (\[.*?\])\n", text)
    assert match, text
    parsed: list[str] = json.loads(match.group(1))
    return parsed


def test_enumeration_prompt_carries_topic_partition_count_and_known_entries() -> None:
    """The user message names the topic, the partition path and the known entries as JSON."""
    prompt = build_enumeration_prompt(
        PromptTemplates(),
        topic="museums in Paris",
        partition=["Art museums", "Impressionism"],
        known=["Musée d'Orsay", "Musée de l'Orangerie"],
        count=20,
        known_budget_tokens=1000,
    )
    system, user = prompt.messages
    assert system.role == "system" and user.role == "user"
    assert "Topic: museums in Paris" in user.content
    assert "Part: Art museums > Impressionism" in user.content
    assert "List 20 more items" in user.content
    assert _known_list(user.content) == ["Musée d'Orsay", "Musée de l'Orangerie"]
    assert prompt.known_included == 2 and prompt.known_omitted == 0


def test_whole_topic_partition_is_named_as_such() -> None:
    """An empty partition path renders as the whole topic."""
    prompt = build_enumeration_prompt(
        PromptTemplates(), topic="t", partition=[], known=[], count=5, known_budget_tokens=10
    )
    assert "Part: (the whole topic)" in prompt.messages[1].content
    assert _known_list(prompt.messages[1].content) == []


def test_known_entries_are_cut_at_the_token_budget_keeping_priority_order() -> None:
    """Entries are taken from the front of the list until the next one would pass the budget."""
    known = [f"City number {i:03d}" for i in range(100)]
    per_entry = estimate_tokens(known[0]) + 2
    prompt = build_enumeration_prompt(
        PromptTemplates(),
        topic="t",
        partition=["p"],
        known=known,
        count=5,
        known_budget_tokens=per_entry * 10 + per_entry // 2,
    )
    assert _known_list(prompt.messages[1].content) == known[:10]
    assert prompt.known_included == 10 and prompt.known_omitted == 90


def test_split_prompt_names_the_partition_and_bound() -> None:
    """The split prompt asks for at most max_parts sub-categories of the named partition."""
    system, user = build_split_prompt(
        PromptTemplates(), topic="cities of Europe", partition=["Western Europe"], max_parts=8
    )
    assert system.role == "system"
    assert "Part: Western Europe" in user.content and "at most 8" in user.content


def test_custom_templates_render_and_unknown_fields_are_refused() -> None:
    """A user template may use the documented fields only, and must use the essential ones."""
    custom = PromptTemplates(enumerate="Give {count} {topic} not in {known}.")
    prompt = build_enumeration_prompt(
        custom, topic="rivers", partition=[], known=["Nile"], count=3, known_budget_tokens=50
    )
    assert prompt.messages[1].content == 'Give 3 rivers not in ["Nile"].'
    with pytest.raises(ConfigError, match="unknown field"):
        PromptTemplates(enumerate="{topic} {known} {count} {colour}")
    with pytest.raises(ConfigError, match="must use"):
        PromptTemplates(enumerate="{topic} only")
    with pytest.raises(ConfigError, match="not a valid format string"):
        PromptTemplates(split="{topic {max_parts}")


def test_bad_counts_are_refused() -> None:
    """Asking for zero entries or fewer than two sub-categories is a programming error."""
    with pytest.raises(ValueError):
        build_enumeration_prompt(
            PromptTemplates(), topic="t", partition=[], known=[], count=0, known_budget_tokens=1
        )
    with pytest.raises(ValueError):
        build_split_prompt(PromptTemplates(), topic="t", partition=[], max_parts=1)


def test_a_zero_known_budget_sends_no_known_entries() -> None:
    """known_budget_tokens=0 (the "no known entries" ablation) renders an empty known list, all omitted."""
    prompt = build_enumeration_prompt(
        PromptTemplates(), topic="t", partition=["p"], known=["Paris", "Lyon"], count=5, known_budget_tokens=0
    )
    assert _known_list(prompt.messages[1].content) == []
    assert "Known items (0," in prompt.messages[1].content
    assert prompt.known_included == 0 and prompt.known_omitted == 2
