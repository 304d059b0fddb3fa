"""Reading an answer line by line: structure, list items, table rows and bare lines.

Fences, headings, rules and table separators are structure; a list marker (``1.``, ``1)``,
``-``, ``*``, ``•``...) makes a list item, a ``|`` row a table row, and any other line is
bare. A list item is one entry; a table row is one entry, its first cell with a letter (a
table's first row is its header). A nested list item under an entry is a detail of it when
it reads as one ("Location: 1st arrondissement"); under a heading item ("- **Art
museums:**") an entry.

The layout decides which lines hold the entries. Once an answer has a list or a table, its
bare lines are commentary (preamble, sub-headings, closing offer) and are skipped. Otherwise
bare lines are the entries (``node.bare_lines`` reads each); they are held until two lines
and 80 characters have arrived (or the answer ends), because a lone line may be a sentence
enumerating several names while many lines are one name each ("Washington, D.C." keeps its
comma), and because bare text that reads as random (long tokens, letter/digit soup,
mojibake, three scripts in a word) makes the answer garbage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum, auto

from node.bare_lines import BareKind, bare_kind, bare_line_items, without_commentary
from node.name_cleaning import has_letter, noise_chars, reads_as_sentence
from node.parse_result import AnswerFormat

__all__ = ["Layout", "LineReader"]

_MAX_NOISE_SHARE = 0.3  # bare lines with more than this share of noise tokens are garbage
_MIN_LINES_EVIDENCE_CHARS = 80  # bare text read before bare lines are trusted as entries

_FENCE = re.compile(r"(?:```|~~~)")
_RULE = re.compile(r"([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
_HEADING = re.compile(r"#{1,6}(?:\s|$)")
_LIST_MARKER = re.compile(
    r"([ \t]*)"  # indentation
    r"(?:\d{1,4}[.)]|\(\d{1,4}\)|[-*+•·‣◦▪▫●○■□–—►▸▹▶➤➢→✓✔✅])[ \t\u00a0]+"  # 1. 1) (1) - * •
    r"(?:\[[ xX]\][ \t]+)?"  # a task list's checkbox
)
_MARKER_FIRST = "(-*+•·‣◦▪▫●○■□–—►▸▹▶➤➢→✓✔✅"
_LABEL_VALUE = re.compile(r"[*_]{0,2}[^:*_]{1,40}(?:[*_]{0,2}:|:[*_]{0,2})\s")
_TABLE_SEPARATOR_CELL = re.compile(r"\s*:?-{1,}:?\s*")


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(4))


class Layout(Enum):
    """Which lines of an answer hold its entries."""

    UNDECIDED = auto()  # no list, table or second bare line yet
    LINES = auto()  # bare lines are the entries
    LIST = auto()  # list items / table rows are the entries; bare lines are commentary
    GARBAGE = auto()  # bare lines read as random text


class LineReader:
    """Reads the lines of one answer and offers each item in them with its format.

    ``offer`` receives an item's text, or None for an item that is dropped. Not
    thread-safe; one reader per answer.
    """

    def __init__(self, offer: Callable[[str | None, AnswerFormat], None]) -> None:
        self._offer = offer
        self._layout = Layout.UNDECIDED
        self._pending: list[tuple[str, BareKind]] = []  # bare lines held until the layout is known
        self._bare_chars = 0
        self._bare_noise = 0
        self._prev_table_row = False
        self._entry_item_indent: int | None = None  # indent of the last list item taken

    def __repr__(self) -> str:
        return (
            f"<LineReader layout={self._layout.name.lower()} pending={len(self._pending)} "
            f"bare_chars={self._bare_chars}>"
        )

    @property
    def layout(self) -> Layout:
        return self._layout

    def read(self, line: str) -> None:
        """Take one line of the answer (not JSON, and before any JSON list)."""
        stripped = line.strip()
        while stripped.startswith(">"):  # a blockquote
            stripped = stripped[1:].lstrip()
        table_row = stripped.startswith("|")
        if not table_row:
            self._prev_table_row = False
        if not stripped:
            return
        first = stripped[0]  # cheap dispatch before the regular expressions
        if first in "`~" and _FENCE.match(stripped):
            return
        if (first in "-*_=" and _RULE.match(stripped)) or (
            first == "#" and _HEADING.match(stripped)
        ):
            self._entry_item_indent = None
            return
        if table_row:
            self._table_row(stripped)
            return
        marker = _LIST_MARKER.match(line) if first in _MARKER_FIRST or first.isdigit() else None
        if marker is not None:
            self._list_item(line[marker.end() :].strip(), _indent_width(marker.group(1)))
        elif self._layout is not Layout.LIST:
            self._bare_line(stripped)

    def end_table(self) -> None:
        """A blank line or a JSON value came: the next table row starts a new table."""
        self._prev_table_row = False

    def discard_pending(self) -> None:
        """The bare lines held so far were a preamble (to a JSON value): forget them."""
        self._pending.clear()

    def finish(self) -> None:
        """The answer ended: offer the bare lines still held, unless they read as noise."""
        if self._pending:
            pending, self._pending = self._pending, []
            if self.is_noisy():
                self._layout = Layout.GARBAGE
            else:
                for held, held_kind in pending:
                    self._emit_bare(held, held_kind, sole=len(pending) == 1)

    def is_noisy(self, more: str = "") -> bool:
        """Whether the bare text so far (and ``more``) reads as random text."""
        noise = self._bare_noise + (noise_chars(more) if more else 0)
        return noise > _MAX_NOISE_SHARE * (self._bare_chars + len(more))

    def _list_item(self, text: str, indent: int) -> None:
        self._layout = Layout.LIST
        self._pending.clear()  # bare lines before a list were its preamble
        parent = self._entry_item_indent
        nested = parent is not None and indent > parent
        if nested and (_LABEL_VALUE.match(text) or reads_as_sentence(text or ".")):
            return  # a detail of the entry above ("Location: 1st arrondissement")
        if not text or text.rstrip("*_ ").endswith(":"):
            self._entry_item_indent = None  # a heading item: its sub-items are the entries
            return
        if not nested:
            self._entry_item_indent = indent
        self._offer(text, AnswerFormat.LIST)

    def _table_row(self, row: str) -> None:
        first_row = not self._prev_table_row
        self._prev_table_row = True
        self._layout = Layout.LIST
        self._pending.clear()
        if first_row:
            return  # a markdown table's first row is its header
        cells = row.strip("|").split("|")
        if all(_TABLE_SEPARATOR_CELL.fullmatch(cell) for cell in cells):
            return
        named = next((cell for cell in cells if has_letter(cell)), None)
        self._offer(named, AnswerFormat.TABLE)

    def _bare_line(self, text: str) -> None:
        if self._layout is Layout.GARBAGE:
            return
        # One space between words: the patterns below then never backtrack over a long run.
        text = " ".join(text.split())
        self._bare_chars += len(text)
        self._bare_noise += noise_chars(text)
        for piece in without_commentary(text):
            self._bare_piece(piece)

    def _bare_piece(self, text: str) -> None:
        kind = bare_kind(text)
        if kind is BareKind.SKIP:
            return
        if self._layout is Layout.UNDECIDED:
            self._pending.append((text, kind))
            if len(self._pending) < 2 or self._bare_chars < _MIN_LINES_EVIDENCE_CHARS:
                return
            self._layout = Layout.LINES
            pending, self._pending = self._pending, []
            if self.is_noisy():
                self._layout = Layout.GARBAGE
                return
            for held, held_kind in pending:
                self._emit_bare(held, held_kind, sole=False)
            return
        if self.is_noisy():
            self._layout = Layout.GARBAGE
            return
        self._emit_bare(text, kind, sole=False)

    def _emit_bare(self, text: str, kind: BareKind, *, sole: bool) -> None:
        for item, fmt in bare_line_items(text, kind, sole=sole):
            self._offer(item, fmt)
