"""An incremental, tolerant scanner of one JSON value that reports the entries it lists.

It reads string literals (double or single quotes, escapes honoured) and tracks only nesting,
never building the value: every string element of a list is an entry; in a list of objects
the ``name`` / ``title`` / ``entry`` / ``item`` / ``label`` field (or any key ending in
"name") is the entry, else the object's first string field that is not a description, once
the object closes; object keys, other fields and lists of sources are ignored. A truncated
value yields its completed elements and drops the partial one. The grammar is RFC 8259's,
read leniently where models stray from it: single quotes, bare-word keys and missing commas
are accepted, and a raw line break ends a string, which is then dropped. Work is linear in the input:
a scan resumes where it stopped, a string longer than ``MAX_JSON_STRING_CHARS`` is skipped
without being buffered, and nesting beyond ``MAX_JSON_DEPTH`` is only counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum, auto

from node.name_cleaning import sanitize

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_STRING_CHARS", "JsonScanner"]

MAX_JSON_STRING_CHARS = 20_000  # a longer JSON string is skipped without being buffered
MAX_JSON_DEPTH = 64  # deeper JSON nesting is skipped (its brackets are only counted)

_JSON_SPACE = re.compile(r"\s*")
_SCALAR = re.compile(r"[^\s,:\[\]{}\"']*")
_STRING_STOP = {'"': re.compile(r'["\\\n]'), "'": re.compile(r"['\\\n]")}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "", "b": "", "f": "", "0": ""}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME_KEYS = frozenset({"name", "title", "entry", "item", "label"})
# Fields of an entry object that describe it; its name is in another field.
_DETAIL_KEYS = frozenset(
    {
        "description", "desc", "summary", "details", "detail", "note", "notes", "reason",
        "why", "about", "info", "comment", "comments", "explanation", "url", "link",
        "website", "source", "type", "category", "notability",
    }
)  # fmt: skip
_NON_ENTRY_KEYS = frozenset(
    {"sources", "references", "citations", "notes", "links", "urls", "tags"}
)


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    text = _ESCAPE.sub(replace, raw)
    if _SURROGATE.search(text):  # "\ud83d\ude00" is one character in two escapes
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return sanitize(text)


def _is_name_key(key: str) -> bool:
    key = key.strip().casefold()
    return key in _NAME_KEYS or key.endswith("name")


class _Role(Enum):
    LIST = auto()  # an array whose elements are entries
    ENTRY = auto()  # an object in a LIST: one entry, named by its name field
    WRAPPER = auto()  # an object around lists ({"entries": [...]})
    IGNORED = auto()  # inside an entry object, or a list of sources


class _Frame:
    __slots__ = ("expect_key", "fallback", "is_object", "key", "named", "role")

    def __init__(self, role: _Role, is_object: bool) -> None:
        self.role = role
        self.is_object = is_object
        self.expect_key = is_object
        self.key: str | None = None
        self.named = False  # an ENTRY whose name field has been given
        self.fallback: str | None = None  # an ENTRY's first string value


class JsonScanner:
    """Tolerant incremental scanner of one JSON value: tracks nesting, reports entries.

    Tokens are consumed only once complete (a string at its closing quote, a scalar at the
    character after it), so where the input is split never changes what is reported.
    """

    def __init__(self, offer: Callable[[str | None], None]) -> None:
        self._offer = offer  # an entry's text, or None for an item that is dropped
        self._stack: list[_Frame] = []
        self._excess_depth = 0  # open brackets beyond MAX_JSON_DEPTH
        self._quote = ""  # the quote of the string being read, "" outside strings
        self._string_scanned = 0  # characters of that string already searched
        self._string_skipped = False  # that string outgrew MAX_JSON_STRING_CHARS
        self._in_scalar = False
        self.saw_items = False  # a list element or entry object was seen
        self.saw_empty_list = False  # a list closed without any element

    def scan(self, buf: str, pos: int) -> tuple[int, bool]:
        """Consume ``buf`` from ``pos``; the position reached and whether the value closed."""
        end = len(buf)
        while pos < end:
            if self._quote:
                pos = self._scan_string(buf, pos)
                if self._quote:
                    return pos, False
                continue
            if self._in_scalar:
                pos = _SCALAR.match(buf, pos).end()  # type: ignore[union-attr]  # matches ""
                if pos == end:
                    return pos, False
                self._in_scalar = False
                continue
            pos = _JSON_SPACE.match(buf, pos).end()  # type: ignore[union-attr]  # matches ""
            if pos == end:
                break
            char = buf[pos]
            pos += 1
            if char == '"' or char == "'":
                self._quote, self._string_scanned, self._string_skipped = char, 0, False
            elif char == "[" or char == "{":
                self._open(is_object=char == "{")
            elif char == "]" or char == "}":
                if self._close():
                    return pos, True
            elif char == "," or char == ":":
                if not self._excess_depth and self._stack[-1].is_object:
                    self._stack[-1].expect_key = char == ","
            else:
                self._scalar()
                self._in_scalar = True
                pos -= 1
        return pos, False

    def finish(self) -> None:
        """The answer ended inside the value: drop the partial element."""
        if self._excess_depth == 0 and self._stack:
            top = self._stack[-1]
            if self._quote and top.role is _Role.LIST:
                self._item(None)
        for frame in self._stack:
            if frame.role is _Role.ENTRY and not frame.named:
                self._item(None)

    def _item(self, text: str | None) -> None:
        self.saw_items = True
        self._offer(text)

    def _scan_string(self, buf: str, pos: int) -> int:
        """Read the open string from ``pos`` (its content start); the new position."""
        stop = _STRING_STOP[self._quote]
        end = len(buf)
        cursor = pos + self._string_scanned
        while True:
            match = stop.search(buf, cursor)
            if match is None:
                cursor = end
                break
            at = match.start()
            if buf[at] == "\\":
                if at + 1 < end:
                    cursor = at + 2
                    continue
                cursor = at  # the escaped character has not arrived yet
                break
            # A closing quote, or a raw line break: a malformed string ends there.
            complete = buf[at] == self._quote
            too_long = self._string_skipped or at - pos > MAX_JSON_STRING_CHARS
            self._quote = ""
            self._on_string(buf[pos:at] if complete and not too_long else None)
            return at + 1
        if self._string_skipped or cursor - pos > MAX_JSON_STRING_CHARS:
            self._string_skipped = True  # stop buffering it: only its end is still needed
            self._string_scanned = 0
            return cursor
        self._string_scanned = cursor - pos
        return pos

    def _on_string(self, raw: str | None) -> None:
        """A complete string (its text between the quotes), or None for a malformed one."""
        if self._excess_depth:
            return
        frame = self._stack[-1]
        text = None if raw is None else _unescape(raw) if "\\" in raw else raw
        if frame.is_object:
            if frame.expect_key:
                frame.key, frame.expect_key = text, False
                return
            frame.expect_key = True  # a value: a key comes next, even without a comma
        if frame.role is _Role.LIST:
            self._item(text)
        elif frame.role is _Role.ENTRY and not frame.named:
            if frame.key is not None and _is_name_key(frame.key):
                frame.named = True
                self._item(text)
            elif (
                frame.fallback is None and (frame.key or "").strip().casefold() not in _DETAIL_KEYS
            ):
                frame.fallback = text

    def _scalar(self) -> None:
        if self._excess_depth:
            return
        frame = self._stack[-1]
        if frame.is_object:
            if frame.expect_key:
                frame.key = None  # a bare word key ({name: ...}): unknown
            frame.expect_key = not frame.expect_key
        elif frame.role is _Role.LIST:
            self._item(None)  # a number or literal where a name belongs

    def _open(self, *, is_object: bool) -> None:
        if self._excess_depth or len(self._stack) >= MAX_JSON_DEPTH:
            self._excess_depth += 1
            return
        parent = self._stack[-1] if self._stack else None
        if parent is None:
            role = _Role.WRAPPER if is_object else _Role.LIST
        elif parent.role is _Role.LIST:
            role = _Role.ENTRY if is_object else _Role.LIST
        elif parent.role is _Role.WRAPPER and not parent.expect_key:
            if is_object:
                role = _Role.WRAPPER
            elif (parent.key or "").strip().casefold() in _NON_ENTRY_KEYS:
                role = _Role.IGNORED
            else:
                role = _Role.LIST
        else:
            role = _Role.IGNORED
        self._stack.append(_Frame(role, is_object))

    def _close(self) -> bool:
        if self._excess_depth:
            self._excess_depth -= 1
            return False
        frame = self._stack.pop()
        if frame.role is _Role.ENTRY:
            self.saw_items = True
            if not frame.named:
                self._item(frame.fallback)
        elif frame.role is _Role.LIST and not self.saw_items:
            self.saw_empty_list = True
        if not self._stack:
            return True
        if self._stack[-1].is_object:
            self._stack[-1].expect_key = True
        return False
