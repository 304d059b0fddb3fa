"""What parsing one answer yields, and the tally that builds it item by item.

Every item the parser finds (a JSON string, list item, table row, line or part of a
sentence) is offered here with the format it came in: it is cleaned into a name
(``node.name_cleaning``) and kept, or counted as dropped when it is not a name or the answer
already gave ``MAX_ENTRIES_PER_ANSWER`` entries. The answer's format is the one that gave
most entries (else most items); a tie goes to the first of JSON, list, table, lines, prose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from node.name_cleaning import clean_name

__all__ = ["MAX_ENTRIES_PER_ANSWER", "AnswerFormat", "EntryTally", "ParseResult"]

MAX_ENTRIES_PER_ANSWER = 500  # entries kept per answer; the rest are counted as dropped


class AnswerFormat(StrEnum):
    """How an answer gave its entries (the format that gave most of them)."""

    JSON = "json"
    LIST = "list"  # numbered or bulleted lines
    TABLE = "table"  # a markdown table, first named column
    LINES = "lines"  # one bare name per line
    PROSE = "prose"  # names enumerated in a sentence
    EMPTY_LIST = "empty_list"  # an explicitly empty JSON list: the model says none remain
    EMPTY = "empty"  # a blank answer
    GARBAGE = "garbage"  # text with nothing recognisable as a list of names


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What one answer contained."""

    entries: tuple[str, ...]  # cleaned display names in answer order, repeats kept
    dropped: int  # items rejected: not a name, too long, partial, over the count bound
    format: AnswerFormat

    @property
    def failed(self) -> bool:
        """No entries, and not because the model answered an explicitly empty list."""
        return not self.entries and self.format is not AnswerFormat.EMPTY_LIST


_FORMAT_PRIORITY = (
    AnswerFormat.JSON,
    AnswerFormat.LIST,
    AnswerFormat.TABLE,
    AnswerFormat.LINES,
    AnswerFormat.PROSE,
)


class EntryTally:
    """The entries of one answer so far, the items dropped, and the formats they came in."""

    def __init__(self) -> None:
        self._entries: list[str] = []
        self._dropped = 0
        self._format_entries: Counter[AnswerFormat] = Counter()
        self._format_items: Counter[AnswerFormat] = Counter()
        self._emitted: list[str] = []  # entries kept since the last take_emitted()

    def __repr__(self) -> str:
        return f"<EntryTally entries={len(self._entries)} dropped={self._dropped}>"

    @property
    def entries(self) -> tuple[str, ...]:
        return tuple(self._entries)

    @property
    def entry_count(self) -> int:
        return len(self._entries)

    @property
    def dropped(self) -> int:
        return self._dropped

    def offer(self, text: str | None, fmt: AnswerFormat) -> None:
        """Keep ``text`` as an entry if it cleans into a name; None is an item to drop."""
        self._format_items[fmt] += 1
        name = None if text is None else clean_name(text, delimited=fmt is AnswerFormat.JSON)
        if name is None or len(self._entries) >= MAX_ENTRIES_PER_ANSWER:
            self._dropped += 1
            return
        self._entries.append(name)
        self._format_entries[fmt] += 1
        self._emitted.append(name)

    def drop(self) -> None:
        """Count an item rejected before it could be offered (a partial or over-long line)."""
        self._dropped += 1

    def take_emitted(self) -> list[str]:
        """The entries kept since the last call, in answer order."""
        emitted, self._emitted = self._emitted, []
        return emitted

    def format(self, *, saw_empty_list: bool, saw_text: bool) -> AnswerFormat:
        """The answer's format; without any item, what the answer was instead."""
        for counts in (self._format_entries, self._format_items):
            if counts:
                best = max(counts.values())
                return next(fmt for fmt in _FORMAT_PRIORITY if counts[fmt] == best)
        if saw_empty_list:
            return AnswerFormat.EMPTY_LIST
        return AnswerFormat.GARBAGE if saw_text else AnswerFormat.EMPTY
