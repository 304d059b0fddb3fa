"""How the simulated model reads a prompt: task, topic, part, known entries, how many to give.

It sees only the chat messages, as a real model would, so it reads them the way the text
invites: "Topic:" and "Part:" lines, the first JSON array after a "known"/"do not repeat"
cue, "List N", "at most N sub-categories", and for a verification ("Check each item below: is
it a real …?") the list after an "Items:" line. Prompts it cannot read fall back to sensible
defaults (the whole topic, 20 items), as a model answers *something* to anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from node.llm.base import ChatMessage

__all__ = ["TaskKind", "SimRequest", "read_request", "PART_SEPARATORS", "MAX_VERIFY_ITEMS"]

PART_SEPARATORS = re.compile(r"(?:>|›|»|/|→|::)")  # labels are stripped after the split

# Horizontal whitespace only around line anchors, and greedy captures stripped afterwards: a
# "\s*" after "^" can run across lines, which makes a body of blank lines quadratic to scan
# (20,000 newlines took 10 s), freezing the server's event loop.
_TOPIC = re.compile(r"^[ \t]*topic[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_PART = re.compile(r"^[ \t]*(?:part|partition|category|sub-?topic)[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+(.*)$", re.MULTILINE)
_COUNT = re.compile(r"\b(?:list|give|name|generate|provide)\s+(?:me\s+)?(\d{1,4})\b", re.IGNORECASE)
_MAX_PARTS = re.compile(r"\bat most\s+(\d{1,3})\b", re.IGNORECASE)
_SPLIT_CUE = re.compile(r"\b(?:sub-?categor|divide|split|subdivide)", re.IGNORECASE)
_KNOWN_CUE = re.compile(r"(?:known|already|do not repeat|don't repeat|exclude|except)", re.IGNORECASE)
_WHOLE_TOPIC = re.compile(r"^\(?\s*(?:the\s+)?whole topic\s*\)?$", re.IGNORECASE)
# A verification instruction. Deliberately specific: "Prefer items you are sure exist" in the
# enumeration prompt is not one, nor is a bare "real" or "exist".
_VERIFY_CUE = re.compile(
    r"\b(?:verify|verification|fact[- ]?check|check (?:each|every|whether|if|that|the following)"
    r"|is (?:it|each|this)(?: one| item| entry| name)? (?:a |an )?real\b|real,? existing"
    r"|(?:really|actually) exists?)",
    re.IGNORECASE,
)
# The line that introduces the items to verify: "Items (2): [...]", "Entries to check:".
_ITEMS_CUE = re.compile(r"^[ \t]*(?:items?|entries|names|candidates)\b[^:\n]{0,40}:", re.IGNORECASE | re.MULTILINE)
# One line of a bulleted or numbered list; the greedy tail is stripped afterwards (see above).
_BLANKS = re.compile(r"[ \t\r\n]*")
_LIST_LINE = re.compile(r"^[ \t]*(?:[-*•]|\d{1,3}[.)])[ \t]+(.*)$")

DEFAULT_COUNT = 20
MAX_COUNT = 200
DEFAULT_MAX_PARTS = 8
MAX_VERIFY_ITEMS = 200  # items of one verification prompt the model reads; the rest it ignores
_MAX_ARRAY_TRIES = 8


class TaskKind(StrEnum):
    ENUMERATE = "enumerate"
    SPLIT = "split"
    VERIFY = "verify"


@dataclass(frozen=True, slots=True)
class SimRequest:
    """What the model understood from the messages."""

    kind: TaskKind
    topic: str
    part: tuple[str, ...]  # partition labels, outermost first; () = whole topic
    known: tuple[str, ...]  # the known entries, in prompt order
    count: int  # items asked for (enumerate); items to check (verify)
    max_parts: int  # sub-categories allowed (split)
    prompt_chars: int  # total characters of all messages (for token usage)
    items: tuple[str, ...] = ()  # the items to check, in prompt order (verify)


def _first_json_array_after(text: str, start: int) -> tuple[list[str], int, int] | None:
    """The first JSON array at or after ``start``, with its span; None if there is none."""
    decoder = json.JSONDecoder()
    position = text.find("[", start)
    # A bounded number of tries: each failed one may scan to the end of a garbage prompt.
    for _ in range(_MAX_ARRAY_TRIES):
        if position == -1:
            return None
        try:
            value, end = decoder.raw_decode(text, position)
        except RecursionError:
            return None  # brackets nested past the decoder's depth: noise, not a list
        except ValueError:
            position = text.find("[", position + 1)
            continue
        if isinstance(value, list):
            return [str(item) for item in value if isinstance(item, (str, int, float))], position, end
        position = text.find("[", position + 1)
    return None


def _read_known(text: str) -> tuple[tuple[str, ...], str]:
    """The known entries after a "known"/"do not repeat" cue, and the text without them."""
    cue = _KNOWN_CUE.search(text)
    if cue is None:
        return (), text
    found = _first_json_array_after(text, cue.start())
    if found is not None:
        entries, start, end = found
        return tuple(entries), text[:start] + text[end:]
    # A bulleted list after the cue: "- Paris\n- Lyon".
    head, tail = text[: cue.end()], text[cue.end() :]
    bullets = (match.group(1).strip() for match in _BULLET.finditer(tail))
    return tuple(bullet for bullet in bullets if bullet), head + _BULLET.sub("", tail)


def _scalars(values: list[object]) -> list[str]:
    return [str(value) for value in values if isinstance(value, (str, int, float))]


def _list_lines(text: str, start: int) -> tuple[list[str], int]:
    """The bulleted or numbered lines from ``start`` on (blank lines skipped), and where they end.

    The first other line ends the list; past ``MAX_VERIFY_ITEMS`` lines are skipped, not read.
    Lines are taken one at a time, never by a regex over the rest of the text, so a huge
    prompt costs one pass.
    """
    items: list[str] = []
    position = end = start
    while position <= len(text):
        newline = text.find("\n", position)
        line_end = len(text) if newline == -1 else newline
        line = text[position:line_end]
        match = _LIST_LINE.match(line)
        if match:
            item = match.group(1).strip()
            if item and len(items) < MAX_VERIFY_ITEMS:
                items.append(item)
            end = line_end
        elif line.strip():
            break
        position = line_end + 1
    return items, end


def _list_at(text: str, start: int) -> tuple[list[str], int] | None:
    """The list after a cue that ends at ``start``: a JSON array, else list lines; and its end."""
    blanks = _BLANKS.match(text, start)
    position = blanks.end() if blanks else start
    if position < len(text) and text[position] == "[":
        try:
            value, end = json.JSONDecoder().raw_decode(text, position)
        except (ValueError, RecursionError):
            return None
        return (_scalars(value)[:MAX_VERIFY_ITEMS], end) if isinstance(value, list) else None
    newline = text.find("\n", start)  # the list starts on the line after the cue
    items, end = _list_lines(text, len(text) if newline == -1 else newline + 1)
    return (items, end) if items else None


def _read_verify_items(text: str) -> tuple[str, ...] | None:
    """The items to check if ``text`` (without its Topic/Part lines) asks for a verification.

    The cue is read in the instruction only: the items, and any known list, are removed first,
    so an entry or topic called "Verify" is data. An instruction that also asks to list N items
    or to divide the part is an enumeration or a split that mentions checking, not a check.
    """
    rest = text
    items: list[str] | None = None
    items_cue = _ITEMS_CUE.search(text)
    if items_cue is not None:
        found = _list_at(text, items_cue.end())
        if found is not None:
            items, end = found
            rest = text[: items_cue.start()] + text[end:]
    _, instruction = _read_known(rest)
    if _VERIFY_CUE.search(instruction) is None:
        return None
    if _COUNT.search(instruction) or _SPLIT_CUE.search(instruction):
        return None
    if items is None:
        # No "Items:" line: the first list after the cue ("Verify these: [...]").
        cue = _VERIFY_CUE.search(rest)
        start = cue.end() if cue is not None else 0
        array = _first_json_array_after(rest, start)
        if array is not None and array[0]:
            items = array[0][:MAX_VERIFY_ITEMS]
        else:
            newline = rest.find("\n", start)
            items = _list_lines(rest, len(rest) if newline == -1 else newline + 1)[0]
    return tuple(items)


def read_request(messages: Sequence[ChatMessage]) -> SimRequest:
    """Understand the last user message (system messages only add to the prompt size)."""
    prompt_chars = sum(len(message.content) for message in messages)
    user_texts = [message.content for message in messages if message.role == "user"]
    text = user_texts[-1] if user_texts else ""
    topic_match = _TOPIC.search(text)
    topic = topic_match.group(1).strip() if topic_match else ""
    if not topic and text.strip():
        topic = text.strip().splitlines()[0][:200]
    part: tuple[str, ...] = ()
    part_match = _PART.search(text)
    part_text = part_match.group(1).strip() if part_match else ""
    if part_text and not _WHOLE_TOPIC.match(part_text):
        labels = (label.strip() for label in PART_SEPARATORS.split(part_text))
        part = tuple(label for label in labels if label)
    verify_items = _read_verify_items(_PART.sub("", _TOPIC.sub("", text)))
    if verify_items is not None:
        return SimRequest(
            TaskKind.VERIFY, topic, part, (), len(verify_items), DEFAULT_MAX_PARTS, prompt_chars, verify_items
        )
    known, rest = _read_known(text)
    # The cues are read in the instruction, not in the data it quotes: a topic, part or known
    # entry that says "Split" (the Croatian city) must not turn an enumeration into a split.
    instruction = _PART.sub("", _TOPIC.sub("", rest))
    kind = TaskKind.SPLIT if _SPLIT_CUE.search(instruction) else TaskKind.ENUMERATE
    count_match = _COUNT.search(instruction)
    count = min(MAX_COUNT, max(1, int(count_match.group(1)))) if count_match else DEFAULT_COUNT
    parts_match = _MAX_PARTS.search(instruction)
    max_parts = min(50, max(2, int(parts_match.group(1)))) if parts_match else DEFAULT_MAX_PARTS
    if kind is TaskKind.SPLIT:
        known = ()
    return SimRequest(kind, topic, part, known, count, max_parts, prompt_chars)
