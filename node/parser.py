"""Answer parsing: the entry names in whatever a model answered, and nothing else.

The prompt asks for JSON, but models answer as they like: a JSON array or an object wrapping
a list (of strings, or of objects with a ``name``), fenced or not, after a preamble; a
numbered or bulleted list with descriptions after dashes, colons or parentheses, in markdown
bold or links, under sub-headings; a markdown table; bare lines; a comma-separated sentence;
with closing offers after all of these, and sometimes cut off mid-answer. The answer is
untrusted text: nothing here raises on it, and every bound is a named constant.

This module drives one pass over the text as it streams in, in three steps:

1. **Format detection** (here). A ``[`` or ``{`` followed by a string, bracket or brace
   opens a JSON value, anywhere in a line (after a preamble, inside a code fence), unless
   the text before it on the line reads as noise. Everything else is read line by line;
   everything after a JSON list is commentary and skipped.
2. **Extraction.** ``node.json_scan`` reads a JSON value: a tolerant, incremental scanner
   of its string literals. ``node.line_reader`` reads lines: list items, table rows and
   bare lines, and which of them hold the entries; ``node.bare_lines`` tells a bare line's
   commentary from its names, and splits a sentence enumerating several.
3. **Cleaning.** ``node.name_cleaning`` turns each item into a display name or rejects
   it (markup, descriptions, edges, bounds, is-this-a-name heuristics);
   ``node.parse_result`` keeps the entries, counts the drops and names the format.

Streaming: ``StreamingParser.feed`` returns each entry as soon as its line, JSON string or
object completes; ``parse_answer`` is that parser fed the whole text at once, and every
decision depends only on the text, never on where chunks split, so any chunking gives the
same result. Work is linear in the input: scans resume where they stopped, lookahead is
bounded, bare lines are whitespace-collapsed before any pattern that could backtrack.

Limits (all re-exported here): at most ``MAX_ANSWER_CHARS`` of input are read (a line cut
there is dropped), ``MAX_ENTRIES_PER_ANSWER`` entries kept (the rest counted as dropped),
items longer than ``MAX_ENTRY_CHARS``, lines beyond ``MAX_LINE_CHARS`` and JSON strings
beyond ``MAX_JSON_STRING_CHARS`` dropped, JSON nesting beyond ``MAX_JSON_DEPTH`` ignored.
Known blind spots, all heuristics: a sub-heading written as a plain list item ("1. **Art
museums**" over an indented list) is taken as an entry; in a plain list item or line, ": ",
" - " and " (" always start a description ("Frankfurt (Oder)" gives "Frankfurt", "Star
Wars: A New Hope" gives "Star Wars"); a list item is never split at commas, while a
sentence is split at every comma ("Bonaire, Saint Eustatius and Saba" gives two); JSON
objects used as maps (``{"Louvre": "..."}``) yield nothing; a last line cut mid-word by the
model ("3. Chemn") is kept, as nothing tells it is partial.
"""

from __future__ import annotations

import logging
import re
from enum import Enum, auto

from node.json_scan import MAX_JSON_DEPTH, MAX_JSON_STRING_CHARS, JsonScanner
from node.line_reader import LineReader
from node.name_cleaning import MAX_ENTRY_CHARS, sanitize
from node.parse_result import MAX_ENTRIES_PER_ANSWER, AnswerFormat, EntryTally, ParseResult

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_ENTRIES_PER_ANSWER",
    "MAX_ENTRY_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_STRING_CHARS",
    "MAX_LINE_CHARS",
    "AnswerFormat",
    "ParseResult",
    "StreamingParser",
    "parse_answer",
]

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 1_000_000  # input characters read; the rest of the answer is ignored
MAX_LINE_CHARS = 20_000  # a longer line is dropped whole (a 500-name sentence still fits)

_OPENER_LOOKAHEAD = 256  # characters after "[" or "{" inspected to recognise JSON


def parse_answer(text: str) -> ParseResult:
    """The entries of a whole answer; never raises on any text."""
    parser = StreamingParser()
    parser.feed(text)
    parser.close()
    return parser.result()


# --- format detection --------------------------------------------------------------------

_ARRAY_OPEN = re.compile(r"\[\s*(?:\[\s*)*[\"'{\]]")
_ARRAY_OPEN_PREFIX = re.compile(r"\[[\s\[]*")
_EMPTY_ARRAY = re.compile(r"\[\s*\]")
_CHECKBOX_PREFIX = re.compile(r"[ \t]*(?:[-*+•]|\d{1,4}[.)])[ \t]+$")
_OBJECT_OPEN = re.compile(r"\{\s*[\"'}]")
_OBJECT_OPEN_PREFIX = re.compile(r"\{\s*")
_OPENING_BRACKET = re.compile(r"[\[{]")
_BLANK_LINES = re.compile(r"(?:[ \t]*\n)+")


class _Mode(Enum):
    LINES = auto()  # reading lines
    JSON = auto()  # inside a JSON value
    SKIP_LINE = auto()  # discarding the rest of an over-long line


class StreamingParser:
    """Parses an answer as it streams: ``feed`` chunks, then ``close``, then ``result``.

    ``feed`` and ``close`` return the entries their text completed, in answer order; all
    of them together are ``result().entries``. Not thread-safe; one parser per answer.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0  # start of the unconsumed text in _buf
        self._scan = 0  # in LINES mode: where the search for a line end or JSON resumes
        self._mode = _Mode.LINES
        self._tally = EntryTally()
        self._lines = LineReader(self._tally.offer)
        self._json: JsonScanner | None = None
        self._after_json = False  # a JSON list was read: later lines are commentary
        self._saw_empty_list = False
        self._line_refuses_json = False  # the current line's first JSON opener followed noise
        self._received = 0
        self._input_cut = False  # the answer was longer than MAX_ANSWER_CHARS
        self._saw_text = False
        self._closed = False
        self._broken = False  # an internal error stopped parsing (logged; never raised)

    def __repr__(self) -> str:
        return (
            f"<StreamingParser {self._mode.name.lower()} layout={self._lines.layout.name.lower()} "
            f"entries={self._tally.entry_count} dropped={self._tally.dropped}"
            f"{' closed' if self._closed else ''}>"
        )

    def feed(self, chunk: str) -> list[str]:
        """Take the next piece of the answer; the entries it completed."""
        if self._closed:
            raise RuntimeError("StreamingParser.feed() after close()")
        room = MAX_ANSWER_CHARS - self._received
        if len(chunk) > room:
            if not self._input_cut:
                log.warning(
                    "answer longer than %d characters: the rest is ignored", MAX_ANSWER_CHARS
                )
            self._input_cut = True
            chunk = chunk[: max(room, 0)]
        self._received += len(chunk)
        if not chunk or self._broken:
            return []
        text = sanitize(chunk)
        if not self._saw_text and not text.isspace():
            self._saw_text = bool(text)
        self._buf = self._buf[self._pos :] + text
        self._scan -= self._pos
        self._pos = 0
        return self._run(final=False)

    def close(self) -> list[str]:
        """The answer is complete: the entries still held (a last line, a pending line)."""
        if self._closed:
            return []
        self._closed = True
        out = self._run(final=True)
        log.debug(
            "answer parsed: %d entries, %d dropped, format %s",
            self._tally.entry_count,
            self._tally.dropped,
            self._format(),
        )
        return out

    def result(self) -> ParseResult:
        """What the answer contained (so far, if called before ``close``)."""
        return ParseResult(self._tally.entries, self._tally.dropped, self._format())

    # -- driving ------------------------------------------------------------------------

    def _run(self, *, final: bool) -> list[str]:
        if self._broken:
            return []
        try:
            self._advance(final=final)
            if final:
                self._finish()
        except Exception:  # the producer must never die on an answer: log the bug, stop
            log.exception("answer parser failed; ignoring the rest of this answer")
            self._broken = True
        return self._tally.take_emitted()

    def _advance(self, *, final: bool) -> None:
        while self._pos < len(self._buf):
            if self._mode is _Mode.JSON:
                assert self._json is not None
                self._pos, closed = self._json.scan(self._buf, self._pos)
                if not closed:
                    return
                self._end_json()
            elif self._mode is _Mode.SKIP_LINE:
                newline = self._buf.find("\n", self._pos)
                if newline < 0:
                    self._pos = len(self._buf)
                    return
                self._next_line(newline + 1)
                self._mode = _Mode.LINES
            elif not self._line_step(final=final):
                return

    def _finish(self) -> None:
        if self._mode is _Mode.JSON:
            assert self._json is not None
            self._json.finish()
            self._end_json()
        self._lines.finish()

    def _line_step(self, *, final: bool) -> bool:
        """Handle the next line or JSON opener; False when more input is needed."""
        buf, start = self._buf, self._pos
        if buf[start] in " \t\n":
            blank = _BLANK_LINES.match(buf, start)
            if blank:  # a run of blank lines in one step: they only end a table
                self._next_line(blank.end())
                self._lines.end_table()
                return True
        newline = buf.find("\n", self._scan)
        line_end = newline if newline >= 0 else len(buf)
        region_end = min(line_end, start + MAX_LINE_CHARS)
        cursor = self._scan
        while True:
            match = _OPENING_BRACKET.search(buf, cursor, region_end)
            if match is None:
                break
            at = match.start()
            window = buf[at : at + _OPENER_LOOKAHEAD]
            is_array = window[0] == "["
            if is_array and _EMPTY_ARRAY.match(window) and _CHECKBOX_PREFIX.match(buf, start, at):
                cursor = at + 1  # "- [ ] Bern": a task list's checkbox, not an empty array
                continue
            if (_ARRAY_OPEN if is_array else _OBJECT_OPEN).match(window):
                # Random text holds '["' too: not JSON after noise. Once a line's first
                # opener is refused, so are the others (and the noise is measured once).
                if not self._line_refuses_json:
                    self._line_refuses_json = self._lines.is_noisy(buf[start:at])
                if not self._line_refuses_json:
                    self._start_json(at)
                    return True
                cursor = at + 1
                continue
            prefix = _ARRAY_OPEN_PREFIX if is_array else _OBJECT_OPEN_PREFIX
            if not final and len(window) < _OPENER_LOOKAHEAD and prefix.fullmatch(window):
                self._scan = at  # undecided until the next non-blank character arrives
                return False
            cursor = at + 1
        if newline < 0:
            if len(buf) - start > MAX_LINE_CHARS:
                self._drop_long_line()
                self._mode = _Mode.SKIP_LINE
                self._next_line(len(buf))
                return False
            if not final:
                self._scan = len(buf)
                return False
            self._next_line(len(buf))
            if not self._input_cut:
                self._read_line(buf[start:])
            elif buf[start:].strip() and not self._after_json:
                self._tally.drop()  # we cut this line at MAX_ANSWER_CHARS: it is partial
            return False
        self._next_line(newline + 1)
        if newline - start > MAX_LINE_CHARS:
            self._drop_long_line()
        else:
            self._read_line(buf[start:newline])
        return True

    def _next_line(self, pos: int) -> None:
        self._pos = self._scan = pos
        self._line_refuses_json = False

    def _drop_long_line(self) -> None:
        if not self._after_json:
            self._tally.drop()

    def _start_json(self, at: int) -> None:
        self._line_refuses_json = False
        self._mode = _Mode.JSON
        self._pos = at
        self._json = JsonScanner(self._offer_json)
        self._lines.end_table()

    def _end_json(self) -> None:
        assert self._json is not None
        if self._json.saw_items:
            self._after_json = True
            self._lines.discard_pending()
        elif self._json.saw_empty_list:
            self._saw_empty_list = True
        self._json = None
        self._mode = _Mode.LINES
        self._scan = self._pos

    def _offer_json(self, text: str | None) -> None:
        self._lines.discard_pending()  # what came before the JSON was its preamble
        self._tally.offer(text, AnswerFormat.JSON)

    def _read_line(self, line: str) -> None:
        if not self._after_json:  # after a JSON list, every line is commentary
            self._lines.read(line)

    def _format(self) -> AnswerFormat:
        return self._tally.format(saw_empty_list=self._saw_empty_list, saw_text=self._saw_text)
