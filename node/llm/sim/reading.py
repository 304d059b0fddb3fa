"""How the simulated model reads a prompt: task, topic, part, known entries, how many to give.

It sees only the chat messages, as a real model would, so it reads them the way the text
invites: "Topic:" and "Part:" lines, the first JSON array after a "known"/"do not repeat"
cue, "List N", "at most N sub-categories". Prompts it cannot read fall back to sensible
defaults (the whole topic, 20 items), as a model answers *something* to anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from node.llm.base import ChatMessage

__all__ = ["TaskKind", "SimRequest", "read_request", "PART_SEPARATORS"]

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

DEFAULT_COUNT = 20
MAX_COUNT = 200
DEFAULT_MAX_PARTS = 8
_MAX_ARRAY_TRIES = 8


class TaskKind(StrEnum):
    ENUMERATE = "enumerate"
    SPLIT = "split"


@dataclass(frozen=True, slots=True)
class SimRequest:
    """What the model understood from the messages."""

    kind: TaskKind
    topic: str
    part: tuple[str, ...]  # partition labels, outermost first; () = whole topic
    known: tuple[str, ...]  # the known entries, in prompt order
    count: int  # items asked for (enumerate)
    max_parts: int  # sub-categories allowed (split)
    prompt_chars: int  # total characters of all messages (for token usage)


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
