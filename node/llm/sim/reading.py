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

PART_SEPARATORS = re.compile(r"\s*(?:>|›|»|/|→|::)\s*")

_TOPIC = re.compile(r"^\s*topic\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_PART = re.compile(r"^\s*(?:part|partition|category|sub-?topic)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_COUNT = re.compile(r"\b(?:list|give|name|generate|provide)\s+(?:me\s+)?(\d{1,4})\b", re.IGNORECASE)
_MAX_PARTS = re.compile(r"\bat most\s+(\d{1,3})\b", re.IGNORECASE)
_SPLIT_CUE = re.compile(r"\b(?:sub-?categor|divide|split|subdivide)", re.IGNORECASE)
_KNOWN_CUE = re.compile(r"(?:known|already|do not repeat|don't repeat|exclude|except)", re.IGNORECASE)
_WHOLE_TOPIC = re.compile(r"^\(?\s*(?:the\s+)?whole topic\s*\)?$", re.IGNORECASE)

DEFAULT_COUNT = 20
MAX_COUNT = 200
DEFAULT_MAX_PARTS = 8


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


def _first_json_array_after(text: str, start: int) -> list[str] | None:
    decoder = json.JSONDecoder()
    position = text.find("[", start)
    while position != -1:
        try:
            value, _ = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("[", position + 1)
            continue
        if isinstance(value, list):
            return [str(item) for item in value if isinstance(item, (str, int, float))]
        position = text.find("[", position + 1)
    return None


def _read_known(text: str) -> tuple[str, ...]:
    cue = _KNOWN_CUE.search(text)
    if cue is None:
        return ()
    found = _first_json_array_after(text, cue.start())
    if found is not None:
        return tuple(found)
    # A bulleted list after the cue: "- Paris\n- Lyon".
    tail = text[cue.end():]
    bullets = re.findall(r"^\s*[-*•]\s+(.+?)\s*$", tail, re.MULTILINE)
    return tuple(bullets)


def read_request(messages: Sequence[ChatMessage]) -> SimRequest:
    """Understand the last user message (system messages only add to the prompt size)."""
    prompt_chars = sum(len(message.content) for message in messages)
    user_texts = [message.content for message in messages if message.role == "user"]
    text = user_texts[-1] if user_texts else ""
    topic_match = _TOPIC.search(text)
    topic = topic_match.group(1) if topic_match else text.strip().splitlines()[0][:200] if text.strip() else ""
    part: tuple[str, ...] = ()
    part_match = _PART.search(text)
    if part_match and not _WHOLE_TOPIC.match(part_match.group(1)):
        part = tuple(label for label in PART_SEPARATORS.split(part_match.group(1)) if label)
    kind = TaskKind.SPLIT if _SPLIT_CUE.search(text) else TaskKind.ENUMERATE
    count_match = _COUNT.search(text)
    count = min(MAX_COUNT, max(1, int(count_match.group(1)))) if count_match else DEFAULT_COUNT
    parts_match = _MAX_PARTS.search(text)
    max_parts = min(50, max(2, int(parts_match.group(1)))) if parts_match else DEFAULT_MAX_PARTS
    known = _read_known(text) if kind is TaskKind.ENUMERATE else ()
    return SimRequest(kind, topic, part, known, count, max_parts, prompt_chars)
