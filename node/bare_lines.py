"""What a bare line holds: the model's commentary, one name, or names in a sentence.

A bare line is one that is neither JSON, a list item nor a table row. Lines that read as the
model's own commentary ("Here are...", "Let me know...", "I'm sorry...") and sub-headings
("**Art museums**") are skipped; a line mixing commentary and names keeps its other
sentences. A line is one name, or several when it reads as an enumeration ("Some cities are
Paris, Lyon, and Marseille.", "Here are some: Paris, Lyon, Nice"): its lead-in,
conjunctions and trailing clause are removed. Many answers are one name per line, with
commas inside names ("Washington, D.C."), so a line is split only when it reads as a
sentence; the only bare line of an answer is split more readily.
"""

from __future__ import annotations

import re
from enum import Enum, auto

from node.name_cleaning import is_abbreviation
from node.parse_result import AnswerFormat

__all__ = ["BareKind", "bare_kind", "bare_line_items", "without_commentary"]

_MAX_PROSE_ITEM_WORDS = 8  # an item of a comma-separated sentence is short

_EMPHASIS_ONLY = re.compile(r"(?:\*\*([^*]+)\*\*|__([^_]+)__|\*([^*]+)\*|_([^_]+)_)\s*(?::\s*)?$")
# Interjections (followed by punctuation) and phrases that open a model's own commentary.
_CHATTY = re.compile(
    r"(?:(?:sure|certainly|of course|absolutely|okay|ok|alright|great|yes|no problem|note)"
    r"\s*[!,.:—–-]"
    r"|(?:here(?:['’]s| is| are| you go| they are)|i(?:['’](?:m|ve|d|ll)|\s+(?:am|have|hope"
    r"|can|cannot|could|think|will|would|apologi[sz]e|found|do|did|was|believe"
    r"|(?:couldn|can|don|didn|wasn|won)['’]t))|you (?:can|could|might|may|should|will)"
    r"|let me|feel free|hope (?:this|that|you)|please (?:note|let)|if you|these (?:are|were)"
    r"|this (?:is|list)|would you|do you|as an ai|unfortunately|however|additionally"
    r"|alternatively|sorry|apologies|thank|enjoy|happy to|glad to|below (?:is|are)"
    r"|the following|in summary|in total)\b)",
    re.IGNORECASE,
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?]) +")
_PART_SEPARATOR = re.compile(r"[,;]")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)")
_CONJUNCTION = re.compile(r"(?:and|or|&)\s+", re.IGNORECASE)
# "Some cities are Paris": the names start after the last linking verb of the first part.
_LEAD_IN = re.compile(
    r"(?:.*\s)?(?:are|is|include|includes|including|such as|namely|like|e\.g\.)\s+"
)
_TRAILING_CLAUSE = re.compile(r"\s+(?:are|is|were|was|which|that|all|both)\s.*$")


class BareKind(Enum):
    """What a bare line (or one sentence of it) is."""

    SKIP = auto()  # structure or commentary
    COLON_LIST = auto()  # "Here are some cities: Paris, Lyon, and Nice."
    CANDIDATE = auto()  # a name, or an enumeration of names


def bare_kind(text: str) -> BareKind:
    """Whether ``text`` is skipped, lists names after a colon, or may name or enumerate."""
    if text.endswith(":") or _EMPHASIS_ONLY.match(text):
        return BareKind.SKIP  # a preamble ("Here are 20 more:") or a sub-heading ("**Art**")
    plain = text.lstrip("*_ ")
    colon = text.find(": ")
    if colon > 0:
        parts = _split_parts(text[colon + 2 :])
        if len(parts) >= 3 or (
            len(parts) == 2 and (_has_conjunction(parts) or _CHATTY.match(plain))
        ):
            return BareKind.COLON_LIST
    return BareKind.SKIP if _CHATTY.match(plain) else BareKind.CANDIDATE


def without_commentary(text: str) -> list[str]:
    """The sentences of a bare line that are not the model's commentary, when it has some.

    "Sure! Other cities include Nice, Lyon, and Metz. Let me know if you need more." gives
    the middle sentence. A line without commentary stays whole: "Louvre – the largest
    museum. Home of the Mona Lisa." is one entry with a description, not two items.
    """
    if ". " not in text and "! " not in text and "? " not in text:
        return [text]
    sentences = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        before = text[start : match.start()]
        if before.endswith(".") and is_abbreviation(before.rsplit(" ", 1)[-1]):
            continue  # "St. Louis", "Washington, D.C. and ..."
        sentences.append(before)
        start = match.end()
    sentences.append(text[start:])
    if len(sentences) == 1 or not any(_CHATTY.match(s.lstrip("*_ ")) for s in sentences):
        return [text]
    return [s for s in sentences if bare_kind(s) is not BareKind.SKIP]


def bare_line_items(
    text: str, kind: BareKind, *, sole: bool
) -> list[tuple[str | None, AnswerFormat]]:
    """The items of a bare line that is not commentary, each with the format it counts as.

    ``sole``: the line is the only bare text of an answer without a list, so it is split
    into names more readily. An item of an enumeration too long to be a name is None.
    """
    if kind is BareKind.COLON_LIST:
        parts: list[str] | None = _split_parts(_PARENTHETICAL.sub("", text[text.find(": ") + 2 :]))
    else:
        parts = _enumeration(text, sole=sole)
    if not parts:
        lead = _LEAD_IN.match(text) if sole and _ends_sentence(text) else None
        if lead is not None and lead.end() < len(text):  # "One more is Galdakao."
            return [(text[lead.end() :].rstrip(".!?"), AnswerFormat.PROSE)]
        return [(text, AnswerFormat.LINES)]
    return [
        (None if len(name.split()) > _MAX_PROSE_ITEM_WORDS else name, AnswerFormat.PROSE)
        for name in _enumerated_names(parts, loose=sole or kind is BareKind.COLON_LIST)
    ]


def _split_parts(text: str) -> list[str]:
    return [part for part in map(str.strip, _PART_SEPARATOR.split(text)) if part]


def _ends_sentence(text: str) -> bool:
    if text.endswith(("!", "?")):
        return True
    return text.endswith(".") and not is_abbreviation(text.rsplit(" ", 1)[-1])


def _has_conjunction(parts: list[str], *, loose: bool = False) -> bool:
    """Whether the last part is joined by "and"/"or": "..., and Nice", or "..., Lyon and Nice".

    The second form needs three parts unless ``loose``: "Sarajevo, Bosnia and Herzegovina"
    is one name on a line of its own.
    """
    last = parts[-1]
    if _CONJUNCTION.match(last):
        return True
    return len(parts) >= (2 if loose else 3) and (" and " in last or " or " in last)


def _enumeration(text: str, *, sole: bool) -> list[str] | None:
    """The parts of a bare line that enumerates names, or None if it names one thing.

    Many bare lines are one name each, so only a line that reads as a sentence is split;
    a line that is the whole answer is split from three comma-separated parts.
    """
    if "," not in text and ";" not in text:
        return None
    parts = _split_parts(_PARENTHETICAL.sub("", text))
    if len(parts) < 2:
        return None
    lead = _LEAD_IN.match(parts[0])
    if (
        _has_conjunction(parts, loose=sole)
        or (lead is not None and lead.end() < len(parts[0]))
        or _ends_sentence(text)
        or len(parts) >= (3 if sole else 4)
    ):
        return parts
    return None


def _enumerated_names(parts: list[str], *, loose: bool) -> list[str]:
    """The items of an enumeration, without its lead-in, conjunctions and trailing clause."""
    lead = _LEAD_IN.match(parts[0])
    if lead is not None and lead.end() < len(parts[0]):
        parts[0] = parts[0][lead.end() :]
    last = parts[-1]
    conjunction = _CONJUNCTION.match(last)
    if conjunction:
        parts[-1] = last[conjunction.end() :]
    elif len(parts) >= (2 if loose else 3):
        for word in (" and ", " or "):
            if word in last:
                parts[-1:] = last.split(word, 1)
                break
    last = _TRAILING_CLAUSE.sub("", parts[-1])
    parts[-1] = last.rstrip(".!?") if _ends_sentence(last) else last  # the sentence's full stop
    names = []
    for part in parts:
        part = _CONJUNCTION.sub("", part, count=1) if _CONJUNCTION.match(part) else part
        names.append(part.removeprefix("the "))
    return names
