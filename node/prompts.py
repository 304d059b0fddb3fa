"""The prompts a node sends: enumerate new entries of a partition, split a partition, verify entries.

Both are plain ``str.format`` templates that a user may override from the config. The
enumeration prompt carries the shared-state lever: the known entries of the partition, as
many as fit the token budget, so the model spends its answer on entries nobody has yet.
Which known entries to send (and in what order) is the caller's choice; this module only
renders and bounds them. Prompts ask for a JSON object (``{"entries": [...]}``) because that
is what OpenAI's ``response_format={"type": "json_object"}`` accepts, but the answer parser
handles whatever the model actually returns.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass

from node.errors import ConfigError
from node.llm.base import ChatMessage

__all__ = [
    "PromptTemplates",
    "EnumerationPrompt",
    "build_enumeration_prompt",
    "build_split_prompt",
    "build_verify_prompt",
    "estimate_tokens",
    "PARTITION_SEPARATOR",
]

PARTITION_SEPARATOR = " > "
"""Joins the labels of a partition path when shown to a model: "Western Europe > France"."""

_DEFAULT_SYSTEM = (
    "You are a meticulous researcher who enumerates every item of a topic exactly once. "
    "You answer only with JSON."
)
_DEFAULT_ENUMERATE = (
    "Topic: {topic}\n"
    "Part: {partition}\n"
    "List {count} more items of this topic that belong to this part and are NOT in the "
    "known list below. Give each item's common name only, no descriptions. Prefer items "
    "you are sure exist; if no more remain, answer with an empty list.\n"
    "Known items ({known_count}, do not repeat them): {known}\n"
    'Answer as JSON: {{"entries": ["name", ...]}}'
)
_DEFAULT_SPLIT = (
    "Topic: {topic}\n"
    "Part: {partition}\n"
    "Divide this part of the topic into at most {max_parts} non-overlapping sub-categories "
    "that together cover all of it. Give each sub-category a short label.\n"
    'Answer as JSON: {{"categories": ["label", ...]}}'
)

_DEFAULT_VERIFY = (
    "Topic: {topic}\n"
    "Part: {partition}\n"
    "Check each item below: is it a real, existing item of this topic? Some may be misspelled, "
    "invented or off-topic. Answer for every item, in the same order.\n"
    "Items ({count}): {items}\n"
    'Answer as JSON: {{"verdicts": [{{"item": "name", "real": true}}, ...]}}'
)

_ENUMERATE_FIELDS = frozenset({"topic", "partition", "count", "known", "known_count"})
_SPLIT_FIELDS = frozenset({"topic", "partition", "max_parts"})
_VERIFY_FIELDS = frozenset({"topic", "partition", "items", "count"})


def _fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_template(label: str, template: str, allowed: frozenset[str], required: set[str]) -> None:
    try:
        used = _fields_of(template)
    except ValueError as exc:
        raise ConfigError(f"prompt template {label!r} is not a valid format string: {exc}") from exc
    unknown = used - allowed
    if unknown:
        raise ConfigError(
            f"prompt template {label!r} uses unknown field(s) {sorted(unknown)}; "
            f"allowed: {sorted(allowed)}"
        )
    missing = required - used
    if missing:
        raise ConfigError(f"prompt template {label!r} must use {sorted(missing)}")


@dataclass(frozen=True, kw_only=True)
class PromptTemplates:
    """The prompt texts; override any of them from the config."""

    system: str = _DEFAULT_SYSTEM  # system message of every call
    # enumeration prompt; fields {topic} {partition} {count} {known} {known_count}
    enumerate: str = _DEFAULT_ENUMERATE
    # split prompt; fields {topic} {partition} {max_parts}
    split: str = _DEFAULT_SPLIT
    # verification prompt; fields {topic} {partition} {items} {count}
    verify: str = _DEFAULT_VERIFY

    def __post_init__(self) -> None:
        _check_template("system", self.system, frozenset(), set())
        _check_template(
            "enumerate", self.enumerate, _ENUMERATE_FIELDS, {"topic", "known", "count"}
        )
        _check_template("split", self.split, _SPLIT_FIELDS, {"topic", "max_parts"})
        _check_template("verify", self.verify, _VERIFY_FIELDS, {"topic", "items"})


@dataclass(frozen=True, slots=True)
class EnumerationPrompt:
    """Rendered enumeration messages and how many known entries made it into the budget."""

    messages: tuple[ChatMessage, ...]
    known_included: int
    known_omitted: int


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text`` (≈4 characters per token for English BPE vocabularies)."""
    return (len(text) + 3) // 4


def _render_partition(partition: Sequence[str]) -> str:
    return PARTITION_SEPARATOR.join(partition) if partition else "(the whole topic)"


def build_enumeration_prompt(
    templates: PromptTemplates,
    *,
    topic: str,
    partition: Sequence[str],
    known: Sequence[str],
    count: int,
    known_budget_tokens: int,
) -> EnumerationPrompt:
    """Render the enumeration prompt with the leading ``known`` entries that fit the budget.

    ``known`` is in priority order (the caller decides: most often generated first, say);
    entries are taken from its front until the next would pass ``known_budget_tokens``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    included: list[str] = []
    spent = 0
    for entry in known:
        cost = estimate_tokens(entry) + 2  # quotes, comma and space in the JSON array
        if spent + cost > known_budget_tokens:
            break
        included.append(entry)
        spent += cost
    user = templates.enumerate.format(
        topic=topic,
        partition=_render_partition(partition),
        count=count,
        known=json.dumps(included, ensure_ascii=False),
        known_count=len(included),
    )
    messages = (ChatMessage("system", templates.system), ChatMessage("user", user))
    return EnumerationPrompt(messages, len(included), len(known) - len(included))


def build_split_prompt(
    templates: PromptTemplates, *, topic: str, partition: Sequence[str], max_parts: int
) -> tuple[ChatMessage, ...]:
    """Render the prompt asking the model to divide ``partition`` into sub-categories."""
    if max_parts < 2:
        raise ValueError(f"max_parts must be >= 2, got {max_parts}")
    user = templates.split.format(
        topic=topic, partition=_render_partition(partition), max_parts=max_parts
    )
    return (ChatMessage("system", templates.system), ChatMessage("user", user))


def build_verify_prompt(
    templates: PromptTemplates, *, topic: str, partition: Sequence[str], items: Sequence[str]
) -> tuple[ChatMessage, ...]:
    """Render the prompt asking the model whether each of ``items`` is a real item of the topic."""
    if not items:
        raise ValueError("a verification prompt needs at least one item")
    user = templates.verify.format(
        topic=topic,
        partition=_render_partition(partition),
        items=json.dumps(list(items), ensure_ascii=False),
        count=len(items),
    )
    return (ChatMessage("system", templates.system), ChatMessage("user", user))
